"""The OTA server's layering: the machine and its tables import no file system,
transport, simulator, device or CLI (the image store is the one part that
reads files), and bridge_emu.ota imports nothing above it."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import bridge_emu.ota

OTA = Path(bridge_emu.ota.__file__).parent
# The machine and what it is built from; image_store (files) is what it is handed.
MACHINE = ("server_machine", "server_states", "server_events", "policy")
ALLOWED_FOR_MACHINE = ("bridge_emu.codec", "bridge_emu.errors", "bridge_emu.fsm", "bridge_emu.ota.policy",
                       "bridge_emu.ota.server_events", "bridge_emu.ota.server_states")
NO_IO = {"os", "pathlib", "io", "shutil", "glob", "tempfile", "socket", "select", "selectors",
         "threading", "asyncio", "time", "serial", "subprocess"}
ABOVE_OTA = ("bridge_emu.core", "bridge_emu.net", "bridge_emu.emulator", "bridge_emu.premises",
             "bridge_emu.tools", "bridge_emu.cli")


def imports(path: Path, *, at_run_time: bool = True) -> set[str]:
    """Modules a file imports (with at_run_time, not those under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    skip = set()
    if at_run_time:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
                skip.update(id(n) for n in ast.walk(node))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def within(name: str, packages) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


@pytest.mark.parametrize("module", MACHINE)
def test_the_machine_imports_no_io_and_only_codec_errors_fsm(module):
    path = OTA / f"{module}.py"
    found = imports(path)
    assert not {n.split(".")[0] for n in found} & NO_IO, found
    ours = {n for n in found if n.startswith("bridge_emu")}
    assert all(within(n, ALLOWED_FOR_MACHINE) for n in ours), ours
    calls = {n.func.id for n in ast.walk(ast.parse(path.read_text()))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert "open" not in calls


def test_only_the_image_store_reads_files():
    assert {"os", "pathlib"} <= imports(OTA / "image_store.py")
    assert "bridge_emu.ota.image_store" not in imports(OTA / "server_machine.py")   # typing only


@pytest.mark.parametrize("path", sorted(OTA.glob("*.py")), ids=lambda p: p.name)
def test_nothing_in_ota_imports_the_layers_above(path):
    found = imports(path, at_run_time=False)
    assert not any(within(n, ABOVE_OTA) for n in found), found


def test_importing_the_server_loads_nothing_above_ota():
    code = ("import sys, bridge_emu.ota.server; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('bridge_emu')))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout.split()
    assert "bridge_emu.ota.server_machine" in loaded
    assert not [m for m in loaded if within(m, ABOVE_OTA)]
