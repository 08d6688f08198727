"""State records and plan entries whose checksums hold but whose fields the
layout cannot have, and states the boot core cannot act on (issue 8, part 5).

Bit rot and firmware bugs write such records. A record is checked against the
layout (its download inside the download slot, its plan reference inside the
plan area, its state one the mode writes, no unknown flag) and one that fails
is as corrupt as a torn one: the record before it stands. A state that still
cannot be acted on, with a valid image in flash, boots that image ("rescued")
instead of stopping.
"""
from __future__ import annotations

import hashlib
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_boot import MODES, NEW, OLD, confirmed, download, runs

from bridge_emu.errors import NoBootableImage

pytestmark = pytest.mark.native

REC = 32
ST = {"confirmed": 1, "downloading": 2, "pending": 3, "swapping": 4, "trial": 5, "reverting": 6}


def records(dev) -> list[tuple[int, bytes]]:
    found = []
    for base in dev.config.layout.log:
        size = next(s for a, s in dev.config.geometry.sectors() if a == base)
        for off in range(0, size, REC):
            raw = dev.flash.read(base + off, REC)
            if raw != b"\xff" * REC:
                found.append((base + off, raw))
    return found


def newest(dev) -> bytes:
    return max(records(dev), key=lambda r: struct.unpack_from("<I", r[1], 4)[0])[1]


def forge(dev, *, state=None, flags=None, bank=None, size=None, offset=None, check=None) -> None:
    """Append a record with a valid checksum: the newest one with fields changed."""
    raw = bytearray(newest(dev))
    seq = struct.unpack_from("<I", raw, 4)[0] + 1
    struct.pack_into("<I", raw, 4, seq)
    for i, v in ((8, state), (9, flags), (10, bank)):
        if v is not None:
            raw[i] = v
    if size is not None:
        struct.pack_into("<I", raw, 12, size)
    if offset is not None:
        struct.pack_into("<I", raw, 16, offset)
    if check is not None:
        struct.pack_into("<I", raw, 20, check)
    body = bytes(raw[:24])
    dev.flash.write(max(a for a, _ in records(dev)) + REC, body + hashlib.sha256(body).digest()[:8])


def slot_bytes(dev, slot: int) -> bytes:
    addr, size = dev.config.layout.slots[slot]
    return dev.flash.read(addr, size)


# ------------------------------------------------------------------ records out of range


@pytest.mark.parametrize("mode", MODES)
def test_a_download_record_pointing_outside_the_download_slot_is_corrupt(mode):
    dev = confirmed(mode)
    dev.begin_download(len(NEW))
    genuine = dev.state
    home = 0 if mode == "copy-swap" else dev.state.bank
    primary = slot_bytes(dev, home)
    unit = dev.download_addr()
    for bad in ({"offset": 64 * 1024},                        # the image would start inside the other slot
                {"size": 1 << 30},                            # past the slot, into what follows
                {"size": 0},
                {"size": 100, "offset": 200}):                # image offset past the blob
        forge(dev, state=ST["downloading"], **bad)
        dev.power_cycle()
        assert dev.state == genuine and dev.download_addr() == unit, bad
    # the download goes on where it should, and the running image is untouched
    for off in range(0, len(NEW), 256):
        dev.write_download(off, NEW[off:off + 256])
    assert slot_bytes(dev, home) == primary
    dev.mark_pending()
    dev.power_cycle()
    assert "installed" in dev.boot().actions and runs(dev) == NEW


@pytest.mark.parametrize("mode", MODES)
def test_a_record_with_unknown_flags_is_corrupt(mode):
    dev = confirmed(mode)
    before = dev.state
    forge(dev, flags=0x80)
    dev.power_cycle()
    assert dev.state == before


def test_bank_switch_never_writes_swapping_or_reverting():
    dev = confirmed("bank-switch")
    before = dev.state
    for state in ("swapping", "reverting"):
        forge(dev, state=ST[state], size=64, offset=0)
        dev.power_cycle()
        assert dev.state == before, state


def test_a_swap_record_whose_plan_lies_outside_the_plan_area_is_corrupt():
    dev = confirmed("copy-swap")
    download(dev, NEW)
    dev.mark_pending()
    before = dev.state
    plan_size = dev.config.layout.plan[1]
    for size, offset in ((plan_size + 32, 0), (64, plan_size), (16, 0), (64, 0xFFFFFFF0)):
        forge(dev, state=ST["swapping"], size=size, offset=offset)
        dev.power_cycle()
        assert dev.state == before, (size, offset)
    assert "installed" in dev.boot().actions and runs(dev) == NEW


def test_a_plan_entry_with_more_units_than_the_primary_is_corrupt():
    """Its checksum holds, but following it would copy and erase past the slots."""
    dev = confirmed("copy-swap")
    download(dev, NEW)
    dev.mark_pending()
    plan_addr, plan_size = dev.config.layout.plan
    slot0 = dev.config.layout.slots[0][1]
    unit = slot0 // (slot0 // 4096)
    n = slot0 // unit + 1
    body = b"\xff" * ((n * 16 + 31) // 32 * 32)
    length = 32 + len(body)
    offset = plan_size - length
    offset -= offset % 32
    assert dev.flash.read(plan_addr + offset, length) == b"\xff" * length
    head = struct.pack("<IIIIII", 0x4C504542, len(OLD), len(NEW), unit, n, 0xFFFFFFFF)
    digest = hashlib.sha256(head + body).digest()
    dev.flash.write(plan_addr + offset + 32, body)
    dev.flash.write(plan_addr + offset, head + digest[:8])
    forge(dev, state=ST["swapping"], size=length, offset=offset, check=struct.unpack("<I", digest[:4])[0])
    erases = dev.flash.erase_counts()
    dev.power_cycle()
    assert dev.state.state == "swapping"            # in range: it is the state until followed
    res = dev.boot()
    assert "rescued" in res.actions and runs(dev) == OLD and res.confirmed
    sectors = dev.config.geometry.sectors()
    log_sectors = {i for i, (a, _) in enumerate(sectors) if a in dev.config.layout.log}
    changed = {i for i, (x, y) in enumerate(zip(erases, dev.flash.erase_counts())) if x != y}
    assert changed <= log_sectors                   # nothing but the log was erased


# ------------------------------------------------------------------ rescue: boot the best valid image


def test_bank_switch_confirmed_naming_an_empty_bank_boots_the_other():
    dev = confirmed("bank-switch")
    bank = dev.state.bank
    forge(dev, state=ST["confirmed"], bank=1 - bank, size=0, offset=0)
    dev.power_cycle()
    assert dev.state.bank == 1 - bank
    res = dev.boot()
    assert "rescued" in res.actions and res.confirmed and runs(dev) == OLD
    assert res.refused == "BE_ERR_IMG_MAGIC" and dev.state.bank == bank   # why the named bank could not boot
    dev.power_cycle()
    assert dev.boot().actions == () and runs(dev) == OLD      # committed: the next boot is plain


@pytest.mark.parametrize("mode", MODES)
def test_a_trial_whose_revert_cannot_be_followed_boots_a_valid_image(mode):
    """An exhausted trial whose plan no longer checks out (copy-swap), or whose
    way back names a bank without an image (bank-switch)."""
    dev = confirmed(mode)
    download(dev, NEW)
    dev.mark_pending()
    dev.power_cycle()
    assert not dev.boot().confirmed and runs(dev) == NEW
    if mode == "copy-swap":
        # the way back names a plan entry in range that holds no plan (bit rot in the record)
        plan_size = dev.config.layout.plan[1]
        forge(dev, state=ST["reverting"], size=64, offset=plan_size - 64)
    else:
        old_bank = dev.state.bank                              # a trial record names the confirmed bank
        dev.flash.erase(dev.image_addr(old_bank))              # the old bank lost its image
    dev.power_cycle()
    res = dev.boot()                                          # the revert cannot be followed
    assert res.image is not None and "rescued" in res.actions and res.confirmed
    assert runs(dev) == NEW


@pytest.mark.parametrize("mode", MODES)
def test_with_no_valid_image_anywhere_there_is_still_nothing_to_boot(mode):
    dev = confirmed(mode)
    for addr, size in dev.config.layout.slots:
        for a, _size in dev.config.geometry.sectors():
            if addr <= a < addr + size:
                dev.flash.erase(a)
    dev.power_cycle()
    with pytest.raises(NoBootableImage):
        dev.boot()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(MODES), seed=st.integers(0, 2**32 - 1), flips=st.integers(1, 12),
       where=st.sampled_from(["log", "plan", "both"]))
def test_byte_flips_in_the_state_of_a_device_left_in_trial_never_stop_it_booting(mode, seed, flips, where):
    """Random bytes of the state log and plan area damaged (the images intact):
    the boot core still boots one of the valid images it holds."""
    dev = confirmed(mode)
    download(dev, NEW)
    dev.mark_pending()
    dev.power_cycle()
    dev.boot()
    rng = random.Random(seed)
    areas = []
    lay = dev.config.layout
    if where in ("log", "both"):
        areas += [(a, next(s for b, s in dev.config.geometry.sectors() if b == a)) for a in lay.log]
    if where in ("plan", "both") and lay.plan[1]:
        areas.append(lay.plan)
    if not areas:
        areas = [(lay.log[0], 4096)]
    align = dev.config.geometry.write_align
    for _ in range(flips):
        addr, size = rng.choice(areas)
        a = addr + rng.randrange(size) // align * align
        unit = bytearray(dev.flash.read(a, align))
        unit[rng.randrange(align)] &= ~(1 << rng.randrange(8)) & 0xFF              # NOR: bits only clear
        dev.flash.write(a, bytes(unit))
    dev.power_cycle()
    res = dev.boot()
    assert runs(dev) in (OLD, NEW) and res.image is not None
    dev.power_cycle()
    dev.boot()
    assert runs(dev) in (OLD, NEW)
