# bridge-emu: `make test` sets everything up from nothing and runs the suite.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
STAMP   := $(VENV)/.installed
NATIVE  := $(wildcard native/include/*.h native/src/*.c native/src/*.h) native/build_ffi.py
ASAN_RT  = $(shell gcc -print-file-name=libasan.so)
UBSAN_RT = $(shell gcc -print-file-name=libubsan.so)

.PHONY: all venv build peers test lint test-slow sanitize bench images demo clean

all: test

$(STAMP): pyproject.toml setup.py $(NATIVE)
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check "setuptools>=68" wheel "cffi>=1.16"
	$(BIN)/pip install -q --disable-pip-version-check --no-build-isolation -e '.[test,ray]'
	touch $@

venv build: $(STAMP)

# zigbee-herdsman, a host peer of `bridge-emu dongle` (tests/dongle/test_dongle_herdsman.py), as its lock file
# pins it. No install scripts: over tcp:// herdsman never loads the serial port binding they would build.
HERDSMAN       := tests/peers/herdsman
HERDSMAN_STAMP := $(HERDSMAN)/node_modules/.installed

$(HERDSMAN_STAMP): $(HERDSMAN)/package.json $(HERDSMAN)/package-lock.json
	npm ci --prefix $(HERDSMAN) --ignore-scripts --no-audit --no-fund
	touch $@

peers: $(HERDSMAN_STAMP)

# The whole suite, then the house rules (layering and lint).
test: $(STAMP) $(HERDSMAN_STAMP)
	$(PYTHON) -m pytest -q -m "not slow"
	$(MAKE) --no-print-directory lint

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check bridge_emu tests bench native/build_ffi.py

test-slow: $(STAMP) $(HERDSMAN_STAMP)
	$(PYTHON) -m pytest -q -m slow

# The C core under AddressSanitizer + UBSan, running the tests that drive it.
sanitize: $(STAMP)
	rm -rf build/sanitize
	BE_SANITIZE=1 $(PYTHON) native/build_ffi.py build/sanitize >build-sanitize.log 2>&1 \
	  || (cat build-sanitize.log; exit 1)
	BE_NATIVE_DIR=build/sanitize/bridge_emu LD_PRELOAD="$(ASAN_RT) $(UBSAN_RT)" \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(PYTHON) -m pytest -q -m "native and not slow" -p no:cacheprovider

bench: $(STAMP)
	$(PYTHON) -m bench

# Rebuild bridge_emu/images/ byte for byte from its keys/ (deterministic signatures).
images: $(STAMP)
	$(PYTHON) -m bridge_emu.tools.imageset bridge_emu/images

demo: $(STAMP)
	$(BIN)/bridge-emu demo

clean:
	rm -rf build $(VENV) bridge_emu/_native*.so bridge_emu/_native.c *.egg-info
