"""cffi builder for the C core (API, out-of-line mode).

The public header native/be.h is the single description of the interface: it is
compiled into the module and, with preprocessor lines stripped, given to cdef.
BE_SANITIZE=1 builds with AddressSanitizer and UndefinedBehaviorSanitizer.
"""
import os
import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = sorted(str(p.relative_to(HERE.parent)) for p in HERE.glob("be_*.c"))

# Host callbacks the C core calls through be_crypto_t.
CALLBACKS = """
extern "Python" int32_t be_py_ecdsa_verify(void *, const uint8_t *, uint32_t,
                                           const uint8_t *, const uint8_t *,
                                           uint32_t, uint32_t);
"""


def _cdef_text() -> str:
    text = (HERE / "be.h").read_text()
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

ffibuilder = FFI()
ffibuilder.cdef(_cdef_text())
ffibuilder.set_source(
    "bridge_emu._native",
    '#include "be.h"',
    sources=SOURCES,
    include_dirs=[str(HERE.relative_to(HERE.parent))],
    extra_compile_args=cflags,
    extra_link_args=ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
