"""cffi builder for the C core (API, out-of-line mode).

The public header native/include/be.h is the single description of the
interface: it is compiled into the module and, with comments and preprocessor
lines stripped, given to cdef. The sources and their private headers are
native/src/. BE_SANITIZE=1 builds with AddressSanitizer and
UndefinedBehaviorSanitizer.
"""
import os
import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
INCLUDE = HERE / "include"
SRC = HERE / "src"
SOURCES = sorted(str(p.relative_to(HERE.parent)) for p in SRC.glob("be_*.c"))
# Headers, so that a change to one alone rebuilds the module.
DEPENDS = sorted(str(p.relative_to(HERE.parent)) for p in [*INCLUDE.glob("*.h"), *SRC.glob("*.h")])

# Host callbacks the C core calls through be_crypto_t.
CALLBACKS = """
extern "Python" int32_t be_py_ecdsa_verify(void *, const uint8_t *, uint32_t,
                                           const uint8_t *, const uint8_t *,
                                           uint32_t, uint32_t);
"""


def _cdef_text() -> str:
    text = (INCLUDE / "be.h").read_text()
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("#")]
    return "\n".join(lines) + CALLBACKS


cflags = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-O2"]
ldflags = []
if os.environ.get("BE_SANITIZE") == "1":
    cflags = [f for f in cflags if f != "-O2"] + [
        "-O1", "-g", "-fno-omit-frame-pointer",
        "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined",
    ]
    ldflags = ["-fsanitize=address,undefined"]


def make_builder(absolute: bool = False) -> FFI:
    """Relative paths for the package build (setup.py runs from the project
    root); absolute ones for a standalone build, which cffi runs in its tmpdir."""
    root = HERE.parent

    def path(p: str) -> str:
        return str(root / p) if absolute else p

    builder = FFI()
    builder.cdef(_cdef_text())
    builder.set_source(
        "bridge_emu._native",
        '#include "be.h"',
        sources=[path(s) for s in SOURCES],
        depends=[path(h) for h in DEPENDS],
        include_dirs=[path(str(INCLUDE.relative_to(root)))],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )
    return builder


ffibuilder = make_builder()

if __name__ == "__main__":
    # Standalone build (the sanitizer build): python native/build_ffi.py OUTDIR
    import sys

    out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "build/native")
    out.mkdir(parents=True, exist_ok=True)
    built = pathlib.Path(make_builder(absolute=True).compile(tmpdir=str(out.resolve()), verbose=False))
    print(built)
