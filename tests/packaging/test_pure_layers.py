"""The pure layers import without the C extension: with bridge_emu._native
made unimportable, every module of codec/, ota/ and net/, and the base
modules, still imports (a user can decode frames or drive the OTA machines on
a machine with no compiler)."""
from __future__ import annotations

import pkgutil
import subprocess
import sys

import bridge_emu

PURE = ["bridge_emu.errors", "bridge_emu.fsm", "bridge_emu.keys"] + [
    m.name for pkg in ("codec", "ota", "net")
    for m in pkgutil.walk_packages([f"{bridge_emu.__path__[0]}/{pkg}"], prefix=f"bridge_emu.{pkg}.")]

BLOCK_NATIVE = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "bridge_emu._native":
            raise ImportError("the C extension is blocked for this test")
        return None
sys.meta_path.insert(0, Block())
import importlib
for name in sys.argv[1:]:
    importlib.import_module(name)
assert "bridge_emu._native" not in sys.modules
print(len(sys.argv) - 1)
"""


def test_pure_layers_import_without_the_c_extension():
    assert len(PURE) > 8
    r = subprocess.run([sys.executable, "-c", BLOCK_NATIVE, *PURE], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) == len(PURE)


def test_the_block_really_blocks_the_core():
    r = subprocess.run([sys.executable, "-c", BLOCK_NATIVE, "bridge_emu.core.device"], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode != 0 and "blocked" in r.stderr
