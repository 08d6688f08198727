"""Copy-on-write flash in memory (core/flash.py Base, Flash.in_memory, Flash.adopt)
and the factory's cached programming (emulator/factory.py).

An in-memory device is a private MAP_PRIVATE mapping of a sealed base image. It
must behave exactly as a device over its own bytearray: same contents, counters,
erase counts and power-cut outcomes; devices of one base never see each other's
writes; and nothing a device does reaches the base."""
from __future__ import annotations

import hashlib
import os

import pytest

from bridge_emu.core import flash as flash_mod
from bridge_emu.core.device import Device
from bridge_emu.core.flash import Base, DeviceConfig, DeviceFileError, Flash
from bridge_emu.emulator.factory import factory_program
from bridge_emu.emulator.profiles import PROFILES
from bridge_emu.errors import PowerCut
from bridge_emu.keys import public_key_der
from bridge_emu.premises.images import DEFAULT_IMAGES, ImageSet
from support.rig import KEY, image, layout
from support.rig import geometry as rig_geometry

pytestmark = pytest.mark.native

needs_cow = pytest.mark.skipif(not flash_mod._COW, reason="no memfd on this platform")
IMAGES = ImageSet(DEFAULT_IMAGES)


def private_device(config: DeviceConfig) -> Device:
    """A device over its own bytearray (what every in-memory device was)."""
    from bridge_emu.core._ffi import lib
    from bridge_emu.core.errors import check
    flash = Flash(Flash._image(config), config)
    der = public_key_der(KEY.public_key())
    check(lib.be_otp_add_key(flash.ctx, der, len(der)), "provision key")
    return Device(flash)


def cow_device(config: DeviceConfig) -> Device:
    return Device.create(None, config.geometry, config.layout, keys=[KEY.public_key()])


def script(dev: Device, cut: tuple[int, str, int] | None) -> list:
    """Install, download, pre-erase, upgrade and revert, with one cut armed at
    the upgrade if asked; returns what was observed along the way."""
    seen = []
    old, new = image("1.0.0", 20_000, 1), image("1.1.0", 22_000, 2)
    dev.stage(old, permanent=True)
    seen.append(dev.boot().actions)
    dev.confirm()
    dev.begin_download(len(new))
    for off in range(0, len(new), 64):
        dev.write_download(off, new[off:off + 64])
        dev.prepare_download(1)
    dev.mark_pending()
    dev.reopen()
    if cut is not None:
        dev.flash.arm_cut(*cut)
    try:
        seen.append(dev.boot().actions)
    except PowerCut:
        seen.append("cut")
        dev.power_cycle()
        seen.append(dev.boot().actions)
    seen.append((dev.state, dev.running_image() == new))
    dev.power_cycle()
    seen.append(dev.boot().actions)       # unconfirmed: reverts
    seen.append(dev.running_image() == old)
    return seen


@needs_cow
@pytest.mark.parametrize("cut", [None, (3, "none", 0), (9, "bits", 77), (20, "prefix", 1234)],
                         ids=["no-cut", "cut-3", "tear-9-bits", "tear-20-prefix"])
@pytest.mark.parametrize("mode", ["copy-swap", "bank-switch"])
@pytest.mark.parametrize("geo", ["4k", "mixed"])
def test_cow_device_behaves_exactly_as_a_private_one(geo, mode, cut):
    g, _ = rig_geometry(geo, 4)
    config = DeviceConfig(g, layout(geo, g, mode))
    a, b = cow_device(config), private_device(config)
    assert isinstance(a.flash._buf, flash_mod.mmap.mmap) and isinstance(b.flash._buf, bytearray)
    assert a.flash.snapshot() == b.flash.snapshot()
    assert script(a, cut) == script(b, cut)
    assert a.flash.snapshot() == b.flash.snapshot()
    assert a.flash.stats == b.flash.stats
    assert a.flash.erase_counts() == b.flash.erase_counts()
    assert a.flash.otp_contents() == b.flash.otp_contents()


@needs_cow
def test_devices_of_one_base_do_not_see_each_others_writes_and_the_base_never_changes():
    g, _ = rig_geometry("4k", 4)
    config = DeviceConfig(g, layout("4k", g, "copy-swap"))
    a, b = cow_device(config), cow_device(config)
    base = a.flash.base
    assert base is b.flash.base                     # one base per config
    pristine = base.read()
    assert hashlib.sha256(pristine).digest() == base.digest
    blank = b.flash.snapshot()
    a.stage(image("1.0.0", 20_000, 1), permanent=True)
    a.boot()
    a.flash.erase(0)
    assert b.flash.snapshot() == blank              # b sees none of it
    assert b.state.state == "none" and b.flash.stats["writes"] == 0
    assert base.read() == pristine                  # nor does the base
    c = cow_device(config)                          # a device made after a's writes starts blank
    assert c.flash.snapshot() == blank              # (its key provisioned, as b)
    # and the base cannot be written at all: its memory file is sealed
    with pytest.raises(PermissionError):
        os.pwrite(base._fd, b"\0", 0)


@needs_cow
def test_a_base_of_the_wrong_size_or_a_file_device_is_refused(tmp_path):
    g, _ = rig_geometry("4k", 4)
    config = DeviceConfig(g, layout("4k", g, "copy-swap"))
    with pytest.raises(DeviceFileError):
        Flash.in_memory(config, Base(b"\xff" * 4096))
    f = Flash.create(tmp_path / "d.bemu", config)
    with pytest.raises(DeviceFileError):
        f.adopt(Flash.in_memory(config).base)
    f.close()


@pytest.mark.parametrize("bridge_type", ["B1", "B2", "B3", "B4"])
def test_factory_programmed_devices_are_identical_cached_or_not(bridge_type, tmp_path):
    """Two in-memory factory devices (the second from the cache) and a file-backed
    one (programmed for real) leave the factory byte for byte alike, counters,
    erase counts and state included, and all run the factory image."""
    prof = PROFILES[bridge_type]
    current = IMAGES.file(bridge_type, "current").read_bytes()
    devs = []
    for path in (None, None, tmp_path / "flash.bemu"):
        d = Device.create(path, prof.geometry, prof.layout(), keys=[IMAGES.manufacturer_key])
        factory_program(d, current)
        devs.append(d)
    snaps = [d.flash.snapshot() for d in devs]
    assert snaps[0] == snaps[1] == snaps[2]
    assert devs[0].flash.stats == devs[1].flash.stats == devs[2].flash.stats
    assert devs[0].flash.erase_counts() == devs[2].flash.erase_counts()
    for d in devs:
        assert d.state.state == "confirmed" and d.running_slot is not None
    if flash_mod._COW:
        assert devs[0].flash.base is devs[1].flash.base
    # a write to one reaches neither the other nor its base
    before = devs[1].flash.snapshot()
    devs[0].begin_download(4096)
    assert devs[1].flash.snapshot() == before
    kept = devs[2].flash.contents(), devs[2].flash.otp_contents()
    devs[2].close()
    # the file device reopens from its file as ever (format unchanged)
    again = Device.open(tmp_path / "flash.bemu")       # (opening reads the log: counted)
    assert (again.flash.contents(), again.flash.otp_contents()) == kept
    again.close()
