"""A real power cut: a process booting a device from its memory-mapped flash
file is killed with SIGKILL in the middle of a swap (or a revert); a fresh
process boots the same file and must finish the job correctly."""
from __future__ import annotations

import mmap
import os
import pathlib
import signal
import struct
import subprocess
import sys
import time

import pytest

from bridge_emu.core.device import Device
from bridge_emu.core.flash import STATS_OFF, Flash, Geometry, Layout
from support.rig import KEY, image

pytestmark = pytest.mark.native

IMAGE_SIZE = 1_500_000
# Where to kill, as a fraction of the boot's flash writes. A busy machine can
# make a kill land late (after the work finished); such attempts still check
# the outcome, and more are made until WANTED kills landed inside the work.
FRACTIONS = (0.2, 0.5, 0.8, 0.1, 0.35, 0.65, 0.05, 0.25, 0.45, 0.15, 0.3, 0.05)
WANTED = 3
CHILD = """
import sys
from bridge_emu.core.device import Device
dev = Device.open(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
dev.boot()
print("done", flush=True)
sys.stdin.readline()
"""


def writes_in_file(mm: mmap.mmap) -> int:
    return struct.unpack_from("<Q", mm, STATS_OFF)[0]  # be_flash_stats_t.writes


def make_device(path: pathlib.Path) -> tuple[bytes, bytes]:
    g = Geometry.uniform(4096, 3 + 400 + 401)
    dev = Device.create(path, g, Layout.simple(g, "copy-swap"), keys=[KEY.public_key()])
    old, new = image("1.0.0", IMAGE_SIZE, 1), image("2.0.0", IMAGE_SIZE - 50_000, 2)
    dev.stage(old, permanent=True)
    dev.boot()
    dev.confirm()
    dev.stage(new)
    dev.close()
    return old, new


def dry_run_writes(path: pathlib.Path, step) -> int:
    """Writes the next boot makes, counted on an in-memory copy of the file."""
    data = bytearray(path.read_bytes())
    flash = Flash(data, Flash.open(path).config)
    dev = Device(flash)
    before = flash.stats["writes"]
    step(dev)
    return flash.stats["writes"] - before


def kill_during_boot(path: pathlib.Path, after_writes: int) -> None:
    """Start a process that boots the device; SIGKILL it once it has made
    `after_writes` flash writes (observed through the shared file mapping)."""
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[2]))
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "ready"
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            start = writes_in_file(mm)
            child.stdin.write("go\n")
            child.stdin.flush()
            deadline = time.monotonic() + 60
            while writes_in_file(mm) - start < after_writes:
                if child.poll() is not None or time.monotonic() > deadline:
                    break
            child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def which(dev: Device, old: bytes, new: bytes) -> str:
    img = dev.running_image()
    assert img in (old, new), "runs neither the old nor the new image"
    return "old" if img == old else "new"


def test_sigkill_mid_swap_then_fresh_process_finishes(tmp_path):
    path = tmp_path / "bridge.flash"
    old, new = make_device(path)
    pristine = path.read_bytes()
    total = dry_run_writes(path, lambda d: d.boot())
    mid_swap_kills = 0
    for fraction in FRACTIONS:
        if mid_swap_kills >= WANTED:
            break
        path.write_bytes(pristine)
        kill_during_boot(path, int(total * fraction))
        dev = Device.open(path)  # the fresh process's view: only what the file holds
        interrupted = dev.state.state == "swapping"
        mid_swap_kills += interrupted
        res = dev.boot()
        assert which(dev, old, new) == "new" and not res.confirmed
        if interrupted:
            assert "resumed" in res.actions
        dev.power_cycle()  # unconfirmed: the next boot must restore the old image
        res = dev.boot()
        assert which(dev, old, new) == "old" and res.confirmed
        dev.close()
    assert mid_swap_kills >= WANTED, "the kills did not land inside the swap; the test proved nothing"


def test_sigkill_mid_revert_then_fresh_process_finishes(tmp_path):
    path = tmp_path / "bridge.flash"
    old, new = make_device(path)
    dev = Device.open(path)
    dev.boot()  # installs the new image on trial; not confirmed
    dev.close()
    trial = path.read_bytes()
    total = dry_run_writes(path, lambda d: d.boot())
    mid_revert_kills = 0
    for fraction in FRACTIONS:
        if mid_revert_kills >= WANTED:
            break
        path.write_bytes(trial)
        kill_during_boot(path, int(total * fraction))
        dev = Device.open(path)
        mid_revert_kills += dev.state.state == "reverting"
        res = dev.boot()
        assert which(dev, old, new) == "old" and res.confirmed
        dev.close()
    assert mid_revert_kills >= WANTED, "the kills did not land inside the revert; the test proved nothing"
