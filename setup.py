# The C core is compiled by cffi (API mode) as part of the package build.
from setuptools import setup

setup(cffi_modules=["native/build_ffi.py:ffibuilder"])
