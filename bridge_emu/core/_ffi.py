"""The compiled C core (cffi). Everything in Python reaches C through here.

BE_NATIVE_DIR points at an alternative build of the same module (the
sanitizer build of `make sanitize`); otherwise the in-package build is used.
"""
import importlib.util
import os
import pathlib

_alt = os.environ.get("BE_NATIVE_DIR")
if _alt:
    _matches = sorted(pathlib.Path(_alt).glob("_native*.so"))
    if not _matches:
        raise ImportError(f"BE_NATIVE_DIR={_alt!r} holds no _native*.so build")
    _spec = importlib.util.spec_from_file_location("bridge_emu._native", _matches[0])
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    ffi, lib = _mod.ffi, _mod.lib
else:
    from bridge_emu._native import ffi, lib  # noqa: F401

SANITIZED = bool(_alt)
