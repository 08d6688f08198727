"""The device's boot core through bridge_emu.core.device.Device: the device file,
upgrade / confirm / revert, refusals (downgrade, rollback, unknown key,
corruption), downloads (any order, idempotent, mismatch, range, state rules,
resume after a power cut), erase economy of both modes, layout validation and
the factory-fresh device.

Power cuts during upgrade / revert / confirm are proven in test_powercut.py;
here cuts only appear in the download-resume test.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_emu.core.device import Device
from bridge_emu.core.flash import DeviceConfig, DeviceFileError, Flash, Geometry, Layout, Region
from bridge_emu.errors import CoreError, FlashError, ImageError, NoBootableImage, PowerCut, StateError
from support.rig import KEY, OTHER_KEY, Rig, geometry, image, layout

pytestmark = pytest.mark.native

MODES = ("copy-swap", "bank-switch")
TEARS = ("none", "prefix", "bits")

OLD = image("1.0.0", 9_000, 1)
NEW = image("1.1.0", 12_000, 5)


def deliver(dev: Device, blob: bytes, start: int = 0, block: int = 64) -> None:
    for off in range(start, len(blob), block):
        dev.write_download(off, blob[off:off + block])


def download(dev: Device, blob: bytes, block: int = 64) -> None:
    dev.begin_download(len(blob))
    deliver(dev, blob, 0, block)


def dl_slot(dev: Device) -> int:
    """The slot a download goes to (copy-swap: secondary; bank-switch: the other bank)."""
    return 1 if dev.config.layout.mode == "copy-swap" else 1 - dev.state.bank


def confirmed(mode: str, *, geo: str = "4k", align: int = 4, max_attempts: int = 1,
              allow_downgrade: bool = False, old: bytes = OLD) -> Device:
    """A device with `old` installed, booted and confirmed (running)."""
    g, _ = geometry(geo, align)
    lay = layout(geo, g, mode)
    lay = Layout(lay.mode, lay.log, lay.slots, lay.plan, max_attempts=max_attempts,
                 allow_downgrade=allow_downgrade)
    dev = Device.create(None, g, lay, keys=[KEY.public_key()])
    dev.stage(old, permanent=True)
    res = dev.boot()
    assert res.confirmed and dev.running_image() == old
    dev.confirm()
    return dev


def runs(dev: Device) -> bytes:
    return dev.running_image()


# --------------------------------------------------------------- device file


@pytest.mark.parametrize("mode", MODES)
def test_device_file_persists_state_and_images(tmp_path, mode):
    g, _ = geometry("4k", 4)
    lay = layout("4k", g, mode)
    path = tmp_path / "meter.bemu"
    dev = Device.create(path, g, lay, keys=[KEY.public_key()], notes={"profile": "p1"})
    dev.stage(OLD, permanent=True)
    dev.boot()
    dev.confirm()
    dev.stage(NEW)
    snap, stats, config = dev.flash.snapshot(), dev.flash.stats, dev.config
    dev.close()
    assert path.read_bytes() == snap

    dev2 = Device.open(path)
    assert dev2.config == config and dev2.config.notes == {"profile": "p1"}
    assert dev2.state.state == "pending"
    assert dev2.n_keys == 1 and dev2.security_counter == 1
    persistent = ("writes", "erases", "bytes_written", "bytes_erased", "busy_us", "otp_writes")
    assert {k: dev2.flash.stats[k] for k in persistent} == {k: stats[k] for k in persistent}
    assert dev2.flash.stats["reads"] > stats["reads"]  # opening read the state log
    res = dev2.boot()
    assert "installed" in res.actions and not res.confirmed
    assert runs(dev2) == NEW
    dev2.close()

    dev3 = Device.open(path)
    assert dev3.state.state == "trial" and dev3.state.attempts == 1
    res = dev3.boot()  # unconfirmed: reverts
    assert "reverted" in res.actions and res.confirmed
    assert runs(dev3) == OLD
    dev3.close()


def test_create_refuses_an_existing_file(tmp_path):
    g, _ = geometry("4k", 4)
    lay = layout("4k", g, "bank-switch")
    path = tmp_path / "dev.bemu"
    Device.create(path, g, lay, keys=[KEY.public_key()]).close()
    before = path.read_bytes()
    with pytest.raises(DeviceFileError, match="already exists") as ei:
        Device.create(path, g, lay)
    assert str(path) in str(ei.value)
    assert path.read_bytes() == before
    other = tmp_path / "notes.txt"
    other.write_text("not a device")
    with pytest.raises(DeviceFileError):
        Device.create(other, g, lay)
    assert other.read_text() == "not a device"


def _device_file(tmp_path) -> bytes:
    g, _ = geometry("4k", 4)
    path = tmp_path / "good.bemu"
    Device.create(path, g, layout("4k", g, "copy-swap"), keys=[KEY.public_key()]).close()
    return path.read_bytes()


@pytest.mark.parametrize("damage", ["magic", "empty", "trunc12", "trunc100", "trunc4096",
                                    "trunc-1", "json", "missing"])
def test_open_refuses_damaged_files_naming_the_path(tmp_path, damage):
    good = _device_file(tmp_path)
    path = tmp_path / f"bad-{damage}.bemu"
    if damage == "magic":
        path.write_bytes(b"BEMUDEV2" + good[8:])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage.startswith("trunc"):
        n = int(damage[5:])
        path.write_bytes(good[:n])
    elif damage == "json":
        path.write_bytes(good[:12] + b"#" + good[13:])
    with pytest.raises(DeviceFileError) as ei:
        Device.open(path)
    assert str(path) in str(ei.value)


def test_open_file_truncated_inside_the_length_field(tmp_path):
    good = _device_file(tmp_path)
    for n in (8, 10, 11):
        path = tmp_path / f"cut{n}.bemu"
        path.write_bytes(good[:n])
        with pytest.raises(DeviceFileError) as ei:
            Flash.open(path)
        assert str(path) in str(ei.value)


# ---------------------------------------------------------- upgrade / revert


@pytest.mark.parametrize("mode", MODES)
def test_upgrade_then_confirm(mode):
    dev = confirmed(mode)
    download(dev, NEW)
    info = dev.mark_pending()
    assert info.version == "1.1.0+0" and info.security_counter == 5 and info.total_size == len(NEW)
    assert dev.state.state == "pending"
    dev.power_cycle()
    res = dev.boot()
    assert "installed" in res.actions and "reverted" not in res.actions
    assert not res.confirmed and runs(dev) == NEW
    assert res.image.version == "1.1.0+0"
    assert dev.state.state == "trial" and dev.state.attempts == 1
    assert dev.security_counter == 1  # not before confirmation
    dev.confirm()
    assert dev.state.state == "confirmed"
    assert dev.security_counter == 5
    otp_writes = dev.flash.stats["otp_writes"]
    dev.confirm()  # idempotent
    assert dev.flash.stats["otp_writes"] == otp_writes and dev.security_counter == 5
    for _ in range(2):
        dev.power_cycle()
        res = dev.boot()
        assert res.confirmed and runs(dev) == NEW and res.actions == ()


@pytest.mark.parametrize("mode", MODES)
def test_unconfirmed_image_reverts_on_the_next_boot(mode):
    dev = confirmed(mode)
    download(dev, NEW)
    dev.mark_pending()
    dev.power_cycle()
    res = dev.boot()
    assert not res.confirmed and runs(dev) == NEW
    dev.power_cycle()
    res = dev.boot()
    assert "reverted" in res.actions and res.confirmed
    assert runs(dev) == OLD and dev.state.state == "confirmed"
    assert dev.security_counter == 1
    dev.power_cycle()
    res = dev.boot()
    assert res.actions == () and res.confirmed and runs(dev) == OLD


@pytest.mark.parametrize("mode", MODES)
def test_max_attempts_three_gives_three_trial_boots(mode):
    dev = confirmed(mode, max_attempts=3)
    download(dev, NEW)
    dev.mark_pending()
    seen = []
    for _ in range(6):
        dev.power_cycle()
        res = dev.boot()
        seen.append(("new" if runs(dev) == NEW else "old", res.confirmed, "reverted" in res.actions))
        if not res.confirmed:
            assert dev.state.attempts == len(seen)
    assert seen == [("new", False, False)] * 3 + [("old", True, True)] + [("old", True, False)] * 2
    assert dev.security_counter == 1


@pytest.mark.parametrize("mode", MODES)
def test_permanent_install_is_confirmed_at_once(mode):
    dev = confirmed(mode)
    download(dev, NEW)
    dev.mark_pending(permanent=True)
    assert dev.state.permanent
    dev.power_cycle()
    res = dev.boot()
    assert "installed" in res.actions and res.confirmed
    assert runs(dev) == NEW and dev.state.state == "confirmed"
    assert dev.security_counter == 5
    dev.power_cycle()
    res = dev.boot()
    assert res.confirmed and runs(dev) == NEW and "reverted" not in res.actions


# ------------------------------------------------------------------ refusals


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("lower", ["0.9.0", "0.255.65535+4294967295"])
def test_downgrade_refused_at_mark_pending(mode, lower):
    dev = confirmed(mode, old=image("1.0.0+7", 9_000, 1))
    download(dev, image(lower, 9_500, 1))
    with pytest.raises(ImageError) as ei:
        dev.mark_pending()
    assert ei.value.name == "BE_ERR_IMG_DOWNGRADE"
    assert dev.state.state == "downloading"
    # a lower build number alone is a downgrade too; the same version is not
    download(dev, image("1.0.0+6", 9_500, 1))
    with pytest.raises(ImageError, match="BE_ERR_IMG_DOWNGRADE"):
        dev.mark_pending()
    download(dev, image("1.0.0+7", 9_600, 1))
    dev.mark_pending()
    dev.power_cycle()
    dev.boot()
    assert runs(dev) == image("1.0.0+7", 9_600, 1)


@pytest.mark.parametrize("mode", MODES)
def test_downgrade_marked_before_boot_is_refused_by_the_bootloader(mode):
    dev = confirmed(mode)
    dev.power_cycle()  # nothing runs yet: mark_pending has no running version to compare with
    lower = image("0.9.0", 9_500, 1)
    download(dev, lower)
    dev.mark_pending()
    res = dev.boot()
    assert "refused" in res.actions and res.refused == "BE_ERR_IMG_DOWNGRADE"
    assert res.confirmed and runs(dev) == OLD and dev.state.state == "confirmed"


@pytest.mark.parametrize("mode", MODES)
def test_allow_downgrade_still_enforces_the_security_counter(mode):
    dev = confirmed(mode, allow_downgrade=True)
    download(dev, NEW)
    dev.mark_pending(permanent=True)
    dev.power_cycle()
    dev.boot()
    assert runs(dev) == NEW and dev.security_counter == 5
    lower_same_counter = image("0.9.0", 9_500, 5)
    download(dev, lower_same_counter)
    assert dev.mark_pending().version == "0.9.0+0"
    dev.power_cycle()
    res = dev.boot()
    assert "installed" in res.actions and runs(dev) == lower_same_counter
    dev.confirm()
    rollback = image("0.8.0", 9_500, 4)
    download(dev, rollback)
    with pytest.raises(ImageError) as ei:
        dev.mark_pending()
    assert ei.value.name == "BE_ERR_IMG_ROLLBACK"
    # a higher version with a lower counter is a rollback just the same
    download(dev, image("2.0.0", 9_500, 4))
    with pytest.raises(ImageError, match="BE_ERR_IMG_ROLLBACK"):
        dev.mark_pending()
    dev.power_cycle()
    assert dev.boot().confirmed and runs(dev) == lower_same_counter


@pytest.mark.parametrize("mode", MODES)
def test_image_signed_by_an_unprovisioned_key_is_refused(mode):
    dev = confirmed(mode)
    download(dev, image("1.2.0", 10_000, 2, OTHER_KEY))
    with pytest.raises(ImageError) as ei:
        dev.mark_pending()
    assert ei.value.name == "BE_ERR_IMG_KEY_UNKNOWN"
    assert dev.state.state == "downloading"
    dev.power_cycle()
    res = dev.boot()
    assert res.confirmed and runs(dev) == OLD and res.actions == ()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("align", [1, 8])
def test_pending_image_corrupted_in_flash_is_refused_at_boot(mode, align):
    dev = confirmed(mode, align=align)
    download(dev, NEW)
    dev.mark_pending()
    addr = dev.image_addr(dl_slot(dev))
    assert dev.flash.read(addr, len(NEW)) == NEW
    pos = next(p for p in range(0x200 + 1234, len(NEW)) if NEW[p] & 1)  # a payload byte
    a = addr + pos
    patch = bytearray(b"\xff" * align)
    patch[a % align] = 0xFE
    dev.flash.write(a - a % align, bytes(patch))
    assert dev.flash.read(a, 1)[0] == NEW[pos] & 0xFE
    dev.power_cycle()
    res = dev.boot()
    assert "refused" in res.actions and "installed" not in res.actions
    assert res.refused == "BE_ERR_IMG_HASH"
    assert res.confirmed and runs(dev) == OLD
    assert dev.state.state == "confirmed"
    dev.power_cycle()
    res = dev.boot()
    assert res.actions == () and res.confirmed and runs(dev) == OLD


# ----------------------------------------------------------------- downloads


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("align", [1, 4, 8])
def test_download_out_of_order_at_arbitrary_offsets(mode, align):
    dev = confirmed(mode, align=align)
    rng = random.Random(f"{mode}{align}")
    cuts = sorted(rng.sample(range(1, len(NEW)), 150))
    pieces = list(zip([0] + cuts, cuts + [len(NEW)]))
    rng.shuffle(pieces)
    dev.begin_download(len(NEW))
    for i, (lo, hi) in enumerate(pieces):
        dev.write_download(lo, NEW[lo:hi])
        if i % 7 == 0:  # and a resend of a random range, overlapping written and unwritten bytes
            a = rng.randrange(len(NEW))
            b = min(len(NEW), a + rng.randrange(1, 300))
            dev.write_download(a, NEW[a:b])
    assert dev.read_download(0, len(NEW)) == NEW
    info = dev.mark_pending()
    assert info.total_size == len(NEW) and info.version == "1.1.0+0"
    dev.power_cycle()
    dev.boot()
    assert runs(dev) == NEW


@pytest.mark.parametrize("mode", MODES)
def test_resending_identical_blocks_writes_nothing(mode):
    dev = confirmed(mode, align=8)
    dev.begin_download(len(NEW))
    deliver(dev, NEW[:3000], 0, 50)
    before, stats = dev.read_download(0, len(NEW)), dev.flash.stats
    for off, n in ((0, 50), (100, 50), (1003, 77), (2950, 50), (7, 1), (0, 3000)):
        dev.write_download(off, NEW[off:off + n])
    after = dev.flash.stats
    assert after["writes"] == stats["writes"]
    assert after["bytes_written"] == stats["bytes_written"] and after["erases"] == stats["erases"]
    assert dev.read_download(0, len(NEW)) == before


@pytest.mark.parametrize("mode", MODES)
def test_different_data_at_a_written_offset_is_a_mismatch(mode):
    dev = confirmed(mode)
    dev.begin_download(len(NEW))
    dev.write_download(1000, NEW[1000:1100])
    before = dev.read_download(0, len(NEW))
    flipped = bytes(b ^ 0xFF for b in NEW[1000:1100])
    with pytest.raises(StateError) as ei:
        dev.write_download(1000, flipped)
    assert ei.value.name == "BE_ERR_MISMATCH"
    assert dev.read_download(0, len(NEW)) == before
    # overlapping (within one flash page): starts on unwritten bytes, ends on
    # written ones, and one written byte differs by a bit the flash has cleared
    dev.write_download(1100, NEW[1100:1200])
    j = next(i for i in range(1149, 1100, -1) if NEW[i] != 0xFF)
    block = bytearray(NEW[1050:j + 1])
    block[-1] |= next(1 << b for b in range(8) if not NEW[j] & (1 << b))
    with pytest.raises(StateError, match="BE_ERR_MISMATCH"):
        dev.write_download(1050, bytes(block))
    assert dev.read_download(1100, 100) == NEW[1100:1200]
    assert dev.read_download(1000, 100) == NEW[1000:1100]


@pytest.mark.parametrize("mode", MODES)
def test_writes_beyond_the_blob_are_out_of_range(mode):
    dev = confirmed(mode)
    dev.begin_download(len(NEW))
    for off, n in ((len(NEW) - 10, 20), (len(NEW), 1), (0xFFFFFFF0, 0x20)):
        with pytest.raises(FlashError) as ei:
            dev.write_download(off, NEW[:n] if off < len(NEW) else b"\0" * n)
        assert ei.value.name == "BE_ERR_RANGE"
    with pytest.raises(FlashError, match="BE_ERR_RANGE"):
        dev.read_download(len(NEW) - 4, 8)
    dev.write_download(len(NEW) - 10, NEW[-10:])  # the very end is fine
    # a blob larger than the download slot cannot begin
    slot_size = dev.config.layout.slots[dl_slot(dev)][1]
    with pytest.raises(FlashError, match="BE_ERR_RANGE"):
        dev.begin_download(slot_size + 1)


@pytest.mark.parametrize("mode", MODES)
def test_operations_refused_in_the_wrong_state(mode):
    dev = confirmed(mode)
    # no download in progress
    with pytest.raises(StateError) as ei:
        dev.mark_pending()
    assert ei.value.name == "BE_ERR_STATE"
    with pytest.raises(StateError, match="BE_ERR_STATE"):
        dev.write_download(0, b"\0" * 4)
    with pytest.raises(StateError, match="BE_ERR_STATE"):
        dev.resume_offset()
    # confirm before a boot
    dev.power_cycle()
    with pytest.raises(StateError, match="BE_ERR_STATE"):
        dev.confirm()
    # begin_download during a trial
    dev.boot()
    download(dev, NEW)
    dev.mark_pending()
    with pytest.raises(StateError, match="BE_ERR_STATE"):
        dev.write_download(0, NEW[:64])  # pending: no more writes
    dev.power_cycle()
    with pytest.raises(StateError, match="BE_ERR_STATE"):
        dev.confirm()  # still before the boot
    dev.boot()
    assert dev.state.state == "trial"
    with pytest.raises(StateError) as ei:
        dev.begin_download(len(NEW))
    assert ei.value.name == "BE_ERR_STATE"
    assert dev.state.state == "trial"
    dev.confirm()
    dev.begin_download(len(NEW))  # fine once confirmed


def test_fresh_device_confirm_is_refused():
    g, _ = geometry("4k", 4)
    dev = Device.create(None, g, layout("4k", g, "copy-swap"), keys=[KEY.public_key()])
    with pytest.raises(StateError, match="BE_ERR_STATE"):
        dev.confirm()


RESUME_NEW = image("1.1.0", 7_000, 2)
_RESUME: dict[tuple[str, int], tuple[Device, bytes, int]] = {}


def _resume_base(mode: str, align: int) -> tuple[Device, bytes, int]:
    """A device with OLD confirmed and a download of RESUME_NEW begun; the
    snapshot of that, and how many flash writes the download takes in 50-byte blocks."""
    key = (mode, align)
    if key not in _RESUME:
        dev = confirmed(mode, align=align)
        dev.begin_download(len(RESUME_NEW))
        snap = dev.flash.snapshot()
        dev.flash.arm_cut(0)
        deliver(dev, RESUME_NEW, 0, 50)
        n = dev.flash.ops_since_arm
        assert n > 20
        _RESUME[key] = (dev, snap, n)
    return _RESUME[key]


@pytest.mark.parametrize("tear", TEARS)
@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_download_resumes_after_a_power_cut(mode, tear, data):
    align = data.draw(st.sampled_from([1, 8]), label="align")
    dev, snap, n = _resume_base(mode, align)
    k = data.draw(st.integers(1, n), label="cut at write")
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    blob, size = RESUME_NEW, len(RESUME_NEW)
    dev.flash.restore(snap)
    dev.reopen()
    dev.flash.arm_cut(k, tear, seed)
    delivered = None
    for off in range(0, size, 50):
        try:
            dev.write_download(off, blob[off:off + 50])
        except PowerCut:
            delivered = min(off + 50, size)
            break
    assert delivered is not None, "the cut never happened"
    dev.power_cycle()
    assert dev.state.state == "downloading"
    resume = dev.resume_offset()
    page = dev.flash.geometry.page_size
    assert 0 <= resume <= delivered
    have = dev.read_download(0, size)
    assert have[:resume] == blob[:resume], "bytes before the resume offset are not all correct"
    programmed = [i for i, b in enumerate(have) if b != 0xFF]
    if programmed:
        assert resume <= programmed[-1] < resume + page
    else:
        assert resume == 0
    base = dev.image_addr(dl_slot(dev))
    assert (base + resume) % page == 0
    deliver(dev, blob, resume, 50)  # the rest, from there, in order
    assert dev.read_download(0, size) == blob
    info = dev.mark_pending()
    assert info.total_size == size
    dev.power_cycle()
    res = dev.boot()
    assert "installed" in res.actions and runs(dev) == blob


# ------------------------------------------------------------ erase economy


@pytest.mark.parametrize("geo", ["4k", "mixed"])
def test_bank_switch_installs_and_reverts_without_erasing(geo):
    rig = Rig(geo, 4, "bank-switch")
    counts, erases = rig.flash.erase_counts(), rig.flash.stats["erases"]
    rig.dev.mark_pending()
    rig.power_cycle()
    res = rig.dev.boot()
    assert "installed" in res.actions and rig.which() == "new"
    assert rig.flash.stats["erases"] == erases and rig.flash.erase_counts() == counts
    rig.power_cycle()
    res = rig.dev.boot()
    assert "reverted" in res.actions and rig.which() == "old"
    assert rig.flash.stats["erases"] == erases and rig.flash.erase_counts() == counts


def _slot_sectors(g: Geometry, lay: Layout) -> list[int]:
    out = []
    for i, (start, _) in enumerate(g.sectors()):
        if any(a <= start < a + n for a, n in lay.slots):
            out.append(i)
    return out


@pytest.mark.parametrize("geo", ["4k", "8k", "mixed"])
def test_copy_swap_erases_each_slot_sector_at_most_once(geo):
    rig = Rig(geo, 4, "copy-swap")
    g, lay = rig.flash.geometry, rig.dev.config.layout
    slot_secs = _slot_sectors(g, lay)
    before = rig.flash.erase_counts()
    rig.dev.mark_pending()
    rig.power_cycle()
    res = rig.dev.boot()
    assert "installed" in res.actions and rig.which() == "new"
    after = rig.flash.erase_counts()
    diff = [after[i] - before[i] for i in slot_secs]
    assert max(diff) == 1 and min(diff) >= 0, diff
    # the primary sectors that held the old image were erased exactly once
    for i, (start, _size) in enumerate(g.sectors()):
        if lay.slots[0][0] <= start < lay.slots[0][0] + len(rig.old):
            assert after[i] - before[i] == 1, f"primary sector {i}"
    rig.power_cycle()
    res = rig.dev.boot()
    assert "reverted" in res.actions and rig.which() == "old"
    reverted = rig.flash.erase_counts()
    diff = [reverted[i] - after[i] for i in slot_secs]
    assert max(diff) == 1 and min(diff) >= 0, diff


# ------------------------------------------------------- layout validation


def open_with(g: Geometry, lay: Layout) -> Device:
    return Device(Flash.in_memory(DeviceConfig(g, lay)))


K4 = 4096
G40 = Geometry.uniform(K4, 40)


@pytest.mark.parametrize("lay", [
    # bank-switch: the banks overlap
    Layout("bank-switch", (0, K4), ((2 * K4, 16 * K4), (17 * K4, 16 * K4))),
    # a log sector inside a bank
    Layout("bank-switch", (0, 5 * K4), ((2 * K4, 16 * K4), (18 * K4, 16 * K4))),
    # both log sectors the same
    Layout("bank-switch", (0, 0), ((2 * K4, 16 * K4), (18 * K4, 16 * K4))),
    # copy-swap: the plan inside the primary
    Layout("copy-swap", (0, K4), ((3 * K4, 16 * K4), (19 * K4, 17 * K4)), plan=(10 * K4, K4)),
    # copy-swap: the plan on a log sector
    Layout("copy-swap", (0, K4), ((3 * K4, 16 * K4), (19 * K4, 17 * K4)), plan=(K4, K4)),
    # a slot not starting on a sector boundary
    Layout("bank-switch", (0, K4), ((2 * K4 + 1024, 16 * K4), (19 * K4, 16 * K4))),
    # a slot not ending on a sector boundary
    Layout("bank-switch", (0, K4), ((2 * K4, 16 * K4 - 512), (19 * K4, 16 * K4))),
    # a log sector address not at a sector start
    Layout("bank-switch", (0, K4 + 32), ((2 * K4, 16 * K4), (18 * K4, 16 * K4))),
    # a slot past the end of the flash
    Layout("bank-switch", (0, K4), ((2 * K4, 16 * K4), (30 * K4, 16 * K4))),
    # copy-swap: secondary as big as the primary, or smaller
    Layout("copy-swap", (0, K4), ((3 * K4, 16 * K4), (19 * K4, 16 * K4)), plan=(2 * K4, K4)),
    Layout("copy-swap", (0, K4), ((3 * K4, 16 * K4), (19 * K4, 15 * K4)), plan=(2 * K4, K4)),
    # a bank of a single sector has no room for an image after its first sector
    Layout("bank-switch", (0, K4), ((2 * K4, K4), (3 * K4, K4))),
], ids=["banks-overlap", "log-in-bank", "same-log", "plan-in-slot", "plan-on-log",
        "slot-start-unaligned", "slot-end-unaligned", "log-unaligned", "slot-past-end",
        "secondary-equal", "secondary-smaller", "bank-one-sector"])
def test_layout_errors_are_geometry(lay):
    with pytest.raises(FlashError) as ei:
        open_with(G40, lay)
    assert ei.value.name == "BE_ERR_GEOMETRY"
    assert "open device" in str(ei.value)


def test_layout_controls_open():
    open_with(G40, Layout("bank-switch", (0, K4), ((2 * K4, 16 * K4), (18 * K4, 16 * K4))))
    open_with(G40, Layout("copy-swap", (0, K4), ((3 * K4, 16 * K4), (19 * K4, 17 * K4)), plan=(2 * K4, K4)))
    open_with(G40, Layout("copy-swap", (0, K4), ((3 * K4, 16 * K4), (19 * K4, 21 * K4)), plan=(2 * K4, K4)))


def test_copy_swap_secondary_must_be_one_unit_bigger_in_units_of_the_largest_sector():
    # slots over 4 KiB and 16 KiB sectors: the unit is 16 KiB, so a secondary one
    # 4 KiB sector bigger than the primary is not enough
    k = 1024
    g = Geometry((Region(8, 4 * k, 45_000), Region(8, 16 * k, 120_000)))
    good = Layout("copy-swap", (0, 4 * k), ((16 * k, 64 * k), (80 * k, 80 * k)), plan=(8 * k, 4 * k))
    open_with(g, good)
    bad = Layout("copy-swap", (0, 4 * k), ((32 * k, 16 * k), (48 * k, 20 * k)), plan=(8 * k, 4 * k))
    with pytest.raises(FlashError, match="BE_ERR_GEOMETRY"):
        open_with(g, bad)


def test_plan_area_too_small_is_plan_error():
    # 256-byte sectors and a one-sector plan area: a plan holds 32 + 16 per unit
    # (rounded to 32) bytes, so 14 units fit and 15 do not
    g = Geometry.uniform(256, 40, page_size=256)
    fits = Layout("copy-swap", (0, 256), ((3 * 256, 14 * 256), (17 * 256, 15 * 256)), plan=(512, 256))
    open_with(g, fits)
    too_big = Layout("copy-swap", (0, 256), ((3 * 256, 15 * 256), (18 * 256, 16 * 256)), plan=(512, 256))
    with pytest.raises(CoreError) as ei:
        open_with(g, too_big)
    assert ei.value.name == "BE_ERR_PLAN"
    with pytest.raises(CoreError, match="BE_ERR_PLAN"):
        Device.create(None, g, too_big)


# -------------------------------------------------------- no bootable image


@pytest.mark.parametrize("mode", MODES)
def test_fresh_device_has_no_bootable_image(mode):
    g, _ = geometry("4k", 4)
    dev = Device.create(None, g, layout("4k", g, mode), keys=[KEY.public_key()])
    assert dev.state.state == "none"
    with pytest.raises(NoBootableImage) as ei:
        dev.boot()
    assert ei.value.name == "BE_ERR_NO_IMAGE"
    assert dev.running_slot is None
    with pytest.raises(StateError):
        dev.running_image()
    # and it still takes a first image
    dev.stage(OLD)
    res = dev.boot()
    assert res.confirmed and runs(dev) == OLD  # nothing to fall back on: installed confirmed
