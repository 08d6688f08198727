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
