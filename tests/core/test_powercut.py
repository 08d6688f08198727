"""Power-loss proofs for the boot core.

For each mode x geometry (4 KiB, 8 KiB, mixed 4/16 KiB) x write alignment
(1, 4, 8): cut power before every flash operation of an upgrade, a revert and
a confirm, and tear every write and erase (a prefix lands, or random bits);
then reboot until the device runs. It must run exactly the old or exactly the
new image, byte for byte, in the state that the cut point implies, and a
confirmed image is never lost.
"""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_emu.errors import PowerCut
from support.rig import ALIGNS, GEOMETRY_NAMES, MODES, Rig, seed_for

pytestmark = pytest.mark.native

CONFIGS = [(m, g, a) for m in MODES for g in GEOMETRY_NAMES for a in ALIGNS]
IDS = [f"{m}-{g}-align{a}" for m, g, a in CONFIGS]
TEARS = ("none", "prefix", "bits")


def assert_old_confirmed(rig: Rig, res) -> None:
    assert rig.which() == "old"
    assert res.confirmed
    assert rig.dev.security_counter == 1


def assert_new_trial(rig: Rig, res) -> None:
    assert rig.which() == "new"
    assert not res.confirmed
    assert rig.dev.state.state == "trial" and rig.dev.state.attempts == 1
    assert rig.dev.security_counter == 1  # raised only on confirmation


def check_after_upgrade_cut(rig: Rig, res, k: int, commit_op: int, tear: str, permanent: bool) -> str:
    """The pending record is written by operation commit_op: a cut before it
    leaves the old image (download still held); after it, the install completes."""
    which = rig.which()
    if k < commit_op or (k == commit_op and tear == "none"):
        assert which == "old", f"cut at op {k} ({tear}) before the pending record, yet the new image runs"
    elif k > commit_op:
        assert which == "new", f"cut at op {k} ({tear}) after the pending record, yet the old image runs"
    if which == "old":
        assert_old_confirmed(rig, res)
        assert rig.dev.state.state == "downloading"
    elif permanent:
        assert res.confirmed and rig.dev.state.state == "confirmed"
        assert rig.dev.security_counter == 2
    else:
        assert_new_trial(rig, res)
    return which


@pytest.mark.parametrize("permanent", [False, True], ids=["test", "permanent"])
@pytest.mark.parametrize("mode,geo,align", CONFIGS, ids=IDS)
def test_cut_at_every_operation_of_an_upgrade(mode, geo, align, permanent):
    rig = Rig(geo, align, mode)
    commit_op = rig.ops(lambda: rig.dev.mark_pending(permanent))
    rig.restore(rig.downloaded)
    n = rig.ops(lambda: rig.upgrade(permanent))
    assert n > commit_op
    seen = set()
    for tear in TEARS:
        for k in range(1, n + 1):
            rig.restore(rig.downloaded)
            assert rig.cut_during(lambda: rig.upgrade(permanent), k, tear, seed_for(k, tear))
            rig.power_cycle()
            res = rig.boot_until_runs()
            which = check_after_upgrade_cut(rig, res, k, commit_op, tear, permanent)
            seen.add(which)
            if which == "new" and not permanent:
                # the interrupted install left a working revert path
                rig.power_cycle()
                assert_old_confirmed(rig, rig.boot_until_runs())
    assert seen == {"old", "new"}


def trial_snapshot(rig: Rig) -> bytes:
    rig.restore(rig.downloaded)
    rig.upgrade()
    return rig.flash.snapshot()


def revert(rig: Rig) -> None:
    rig.power_cycle_soft()
    rig.dev.boot()


@pytest.mark.parametrize("mode,geo,align", CONFIGS, ids=IDS)
def test_cut_at_every_operation_of_a_revert(mode, geo, align):
    rig = Rig(geo, align, mode)
    trial = trial_snapshot(rig)
    n = rig.ops(lambda: revert(rig))
    assert n >= 1
    for tear in TEARS:
        for k in range(1, n + 1):
            rig.restore(trial)
            assert rig.cut_during(lambda: revert(rig), k, tear, seed_for(k, tear))
            rig.power_cycle()
            res = rig.boot_until_runs()
            assert_old_confirmed(rig, res)
            assert rig.dev.state.state == "confirmed"


@pytest.mark.parametrize("mode,geo,align", CONFIGS, ids=IDS)
def test_cut_at_every_operation_of_a_confirm(mode, geo, align):
    rig = Rig(geo, align, mode)
    rig.restore(rig.downloaded)
    rig.upgrade()
    n = rig.ops(rig.dev.confirm)
    assert n == 2  # the confirmed record, then the OTP counter
    for tear in TEARS:
        for k in range(1, n + 1):
            rig.restore(rig.downloaded)
            rig.upgrade()
            assert rig.cut_during(rig.dev.confirm, k, tear, seed_for(k, tear))
            rig.power_cycle()
            res = rig.boot_until_runs()
            which = rig.which()
            if k == 1 and tear == "none":
                assert which == "old"  # not confirmed: the trial ends in a revert
            if k == 2:
                assert which == "new"  # the record was committed: confirmed
            assert res.confirmed
            assert rig.dev.security_counter == (2 if which == "new" else 1)
            # and it stays so
            rig.power_cycle()
            assert rig.boot_until_runs().confirmed and rig.which() == which


def upgrade_then_revert(rig: Rig, k_step: int, tears: tuple[str, ...]) -> int:
    """A cut in the upgrade, then a cut at every operation of the revert that follows."""
    rig.restore(rig.downloaded)
    commit_op = rig.ops(rig.dev.mark_pending)
    rig.restore(rig.downloaded)
    n = rig.ops(rig.upgrade)
    runs = 0
    for i, k in enumerate(range(commit_op + 1, n + 1, k_step)):
        tear_k = tears[i % len(tears)]
        rig.restore(rig.downloaded)
        assert rig.cut_during(rig.upgrade, k, tear_k, seed_for(k, tear_k))
        rig.power_cycle()
        assert_new_trial(rig, rig.boot_until_runs())
        after_first = rig.flash.snapshot()
        m = rig.ops(lambda: revert(rig))
        for j in range(1, m + 1):
            tear_j = tears[(i + j) % len(tears)]
            rig.restore(after_first)
            assert rig.cut_during(lambda: revert(rig), j, tear_j, seed_for(j, tear_j))
            rig.power_cycle()
            assert_old_confirmed(rig, rig.boot_until_runs())
            runs += 1
    return runs


def test_cut_in_upgrade_then_every_cut_in_revert_full():
    """Every (upgrade cut, revert cut) pair on the reference configuration."""
    rig = Rig("4k", 4, "copy-swap")
    assert upgrade_then_revert(rig, 1, ("none",)) > 1000


@pytest.mark.parametrize("mode,geo,align", CONFIGS, ids=IDS)
def test_cut_in_upgrade_then_cuts_in_revert(mode, geo, align):
    """Every configuration: upgrade cuts sampled, every revert cut, tears rotating."""
    rig = Rig(geo, align, mode)
    assert upgrade_then_revert(rig, 7, TEARS) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("mode,geo,align", CONFIGS, ids=IDS)
def test_cut_in_upgrade_then_revert_exhaustive(mode, geo, align):
    rig = Rig(geo, align, mode)
    for tear in TEARS:
        upgrade_then_revert(rig, 1, (tear,))


# ---------------------------------------------------------------- random cuts

_RIGS: dict[tuple, Rig] = {}


def _rig(config) -> Rig:
    if config not in _RIGS:
        mode, geo, align = config
        _RIGS[config] = Rig(geo, align, mode)
    return _RIGS[config]


cut_strategy = st.tuples(st.integers(1, 160), st.sampled_from(TEARS), st.integers(0, 2**32 - 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=st.sampled_from(CONFIGS), cuts=st.lists(cut_strategy, max_size=5), confirm=st.booleans())
def test_random_sequences_of_up_to_five_cuts(config, cuts, confirm):
    """Firmware that marks its download pending, reboots, and confirms (or not)
    the new image, with up to five power cuts anywhere on the way."""
    rig = _rig(config)
    rig.restore(rig.downloaded)
    pending = list(cuts)

    def arm_next():
        if pending:
            k, tear, seed = pending.pop(0)
            rig.flash.arm_cut(k, tear, seed)
        else:
            rig.flash.disarm()

    arm_next()
    marked = confirmed_new = False
    for _ in range(40):
        try:
            res = rig.dev.boot()
            which = rig.which()
            if confirmed_new:
                assert which == "new" and res.confirmed
            if which == "old":
                assert res.confirmed
            state = rig.dev.state.state
            if which == "new" and not res.confirmed:
                if confirm:
                    rig.dev.confirm()
                    confirmed_new = True
                # else: the watchdog resets it unconfirmed
            elif which == "old" and state == "downloading" and not marked:
                rig.dev.mark_pending()
                marked = True
            else:
                break  # settled: old (reverted or never installed) or new confirmed
            rig.power_cycle_soft()
        except PowerCut:
            rig.power_cycle()
            arm_next()
    else:
        raise AssertionError("firmware never settled")
    final = rig.which()
    assert res.confirmed
    if not confirm:
        assert final == "old"
    if confirmed_new:
        assert final == "new"
    assert rig.dev.security_counter == (2 if final == "new" else 1)


# ------------------------------------------- the save area erased ahead of the install
#
# Copy-swap with room in the secondary past the blob for the whole running image:
# the install saves the old image there (not in the units the new image vacates),
# and be_dl_prepare erases that area while the download is held. These sizes leave
# room on all three geometries (4k: blob to unit 7, 5 old units; 8k: 4 + 3 of 9;
# mixed: 3 + 2 of 5); the sweeps above, with the default sizes, have none.

ROOMY_OLD, ROOMY_NEW = 20_000, 22_000
CS_CONFIGS = [c for c in CONFIGS if c[0] == "copy-swap"]
CS_IDS = [f"{m}-{g}-align{a}" for m, g, a in CS_CONFIGS]


def prepare_all(rig: Rig) -> int:
    """Erase the whole save area, one sector per call (as DeviceStore does per block)."""
    calls = 0
    while rig.dev.prepare_download(1):
        calls += 1
    return calls


def roomy_rig(geo: str, align: int, *, prepared: bool) -> Rig:
    rig = Rig(geo, align, "copy-swap", old_size=ROOMY_OLD, new_size=ROOMY_NEW)
    rig.unprepared = rig.downloaded
    if prepared:
        prepare_all(rig)
        rig.downloaded = rig.flash.snapshot()
    return rig


UNIT = {"4k": 4096, "8k": 8192, "mixed": 16384}


def primary_sectors_overwritten(rig: Rig, geo: str) -> int:
    """Sectors of the primary's units that held the old image and take the new
    one: what the install must erase (a blank sector is not erased)."""
    unit = UNIT[geo]
    addr = rig.dev.config.layout.slots[0][0]
    end = addr + -(-min(ROOMY_OLD, ROOMY_NEW) // unit) * unit
    return sum(1 for a, _ in rig.flash.geometry.sectors() if addr <= a < end)


def dirty(rig: Rig) -> bytes:
    """rig.unprepared with one word programmed into every sector of the secondary
    past the blob: what an earlier install's saved units are to this one."""
    rig.restore(rig.unprepared)
    start = rig.dev.download_addr() + ROOMY_NEW
    slot = rig.dev.config.layout.slots[1]
    for a, size in rig.flash.geometry.sectors():
        if a >= start and a + size <= slot[0] + slot[1]:
            rig.flash.write(a, b"\0" * 16)
    return rig.flash.snapshot()


@pytest.mark.parametrize("mode,geo,align", CS_CONFIGS, ids=CS_IDS)
def test_with_room_the_boot_erases_only_the_primary_units(mode, geo, align):
    """A blank area past the blob: the install saves there and erases nothing
    but the primary's units the new image overwrites; the revert restores the old image."""
    rig = roomy_rig(geo, align, prepared=False)
    rig.restore(rig.unprepared)
    rig.dev.boot()
    assert prepare_all(rig) == 0 and not rig.dev.prepare_download(0)   # nothing to erase
    m = rig.flash.stats["erases"]
    rig.upgrade()
    # the primary's units that held the old image (a blank sector is not erased)
    assert rig.flash.stats["erases"] - m == primary_sectors_overwritten(rig, geo)
    assert rig.which() == "new" and rig.dev.state.state == "trial"
    rig.power_cycle()
    assert_old_confirmed(rig, rig.boot_until_runs())


@pytest.mark.parametrize("mode,geo,align", CS_CONFIGS, ids=CS_IDS)
def test_prepare_halves_the_boot_erases_when_the_area_held_data(mode, geo, align):
    """The area held data (an earlier install's): without prepare the boot
    erases it; with prepare the download did, and the boot erases only the
    primary's units."""
    rig = roomy_rig(geo, align, prepared=False)
    dirty_snap = dirty(rig)
    boot_erases = {}
    for prepared in (False, True):
        rig.restore(dirty_snap)
        rig.dev.boot()
        if prepared:
            before = rig.flash.stats["erases"]
            assert prepare_all(rig) >= 1
            assert rig.flash.stats["erases"] > before
        m = rig.flash.stats["erases"]
        rig.upgrade()
        boot_erases[prepared] = rig.flash.stats["erases"] - m
        assert rig.which() == "new"
        rig.dev.confirm()
    assert boot_erases[True] == primary_sectors_overwritten(rig, geo)
    assert boot_erases[False] > boot_erases[True]


@pytest.mark.parametrize("tear", TEARS)
@pytest.mark.parametrize("mode,geo,align", CS_CONFIGS, ids=CS_IDS)
def test_cut_at_every_operation_of_the_prepare(mode, geo, align, tear):
    """A cut (before, or tearing, any erase of the prepare) leaves the download
    held and the old image confirmed; the upgrade that follows installs the new
    image, saves the old one, and its revert restores it."""
    rig = roomy_rig(geo, align, prepared=False)
    dirty_snap = dirty(rig)
    rig.restore(dirty_snap)
    rig.dev.boot()
    n = rig.ops(lambda: prepare_all(rig))
    assert n >= 2
    for k in range(1, n + 1):
        rig.restore(dirty_snap)
        rig.dev.boot()
        assert rig.cut_during(lambda: prepare_all(rig), k, tear, seed_for(k, tear))
        rig.power_cycle()
        assert_old_confirmed(rig, rig.boot_until_runs())
        assert rig.dev.state.state == "downloading"
        assert rig.dev.resume_offset() >= len(rig.new) - 256     # the download was not touched
        assert rig.dev.read_download(0, len(rig.new)) == rig.new
        if k % 2:
            prepare_all(rig)                                    # finished after the cut, or not
        rig.upgrade()
        assert rig.which() == "new" and rig.dev.state.state == "trial"
        rig.power_cycle()
        assert_old_confirmed(rig, rig.boot_until_runs())


def sweep_upgrade(rig: Rig, permanent: bool) -> None:
    commit_op = rig.ops(lambda: rig.dev.mark_pending(permanent))
    rig.restore(rig.downloaded)
    n = rig.ops(lambda: rig.upgrade(permanent))
    seen = set()
    for tear in TEARS:
        for k in range(1, n + 1):
            rig.restore(rig.downloaded)
            assert rig.cut_during(lambda: rig.upgrade(permanent), k, tear, seed_for(k, tear))
            rig.power_cycle()
            res = rig.boot_until_runs()
            which = check_after_upgrade_cut(rig, res, k, commit_op, tear, permanent)
            seen.add(which)
            if which == "new" and not permanent:
                rig.power_cycle()
                assert_old_confirmed(rig, rig.boot_until_runs())
    assert seen == {"old", "new"}


@pytest.mark.parametrize("prepared", [False, True], ids=["not-prepared", "prepared"])
@pytest.mark.parametrize("permanent", [False, True], ids=["test", "permanent"])
@pytest.mark.parametrize("mode,geo,align", CS_CONFIGS, ids=CS_IDS)
def test_cut_at_every_operation_of_an_upgrade_saving_past_the_blob(mode, geo, align, permanent, prepared):
    """The sweep of test_cut_at_every_operation_of_an_upgrade on the placement
    that saves past the blob, with the area erased ahead or not."""
    rig = roomy_rig(geo, align, prepared=prepared)
    rig.restore(rig.downloaded)
    sweep_upgrade(rig, permanent)


@pytest.mark.parametrize("prepared", [False, True], ids=["not-prepared", "prepared"])
@pytest.mark.parametrize("mode,geo,align", CS_CONFIGS, ids=CS_IDS)
def test_cut_at_every_operation_of_a_revert_saving_past_the_blob(mode, geo, align, prepared):
    rig = roomy_rig(geo, align, prepared=prepared)
    trial = trial_snapshot(rig)
    n = rig.ops(lambda: revert(rig))
    assert n >= 1
    for tear in TEARS:
        for k in range(1, n + 1):
            rig.restore(trial)
            assert rig.cut_during(lambda: revert(rig), k, tear, seed_for(k, tear))
            rig.power_cycle()
            assert_old_confirmed(rig, rig.boot_until_runs())
            assert rig.dev.state.state == "confirmed"


@pytest.mark.parametrize("mode,geo,align", CS_CONFIGS, ids=CS_IDS)
def test_cut_in_upgrade_then_cuts_in_revert_saving_past_the_blob(mode, geo, align):
    rig = roomy_rig(geo, align, prepared=True)
    assert upgrade_then_revert(rig, 5, TEARS) >= 1


def test_prepare_is_a_no_op_for_bank_switch_and_needs_a_download():
    from bridge_emu.errors import StateError
    rig = Rig("4k", 4, "bank-switch")
    before = rig.flash.stats["erases"]
    assert rig.dev.prepare_download(8) is False
    assert rig.flash.stats["erases"] == before
    rig2 = roomy_rig("4k", 4, prepared=False)
    rig2.dev.discard_download()
    with pytest.raises(StateError):
        rig2.dev.prepare_download(1)
    rig2.restore(rig2.unprepared)                               # not running (no boot yet)
    with pytest.raises(StateError):
        rig2.dev.prepare_download(1)
