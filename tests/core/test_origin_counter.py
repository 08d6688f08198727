"""The originator counter in the state log (issue 8, part 6).

A firmware command (CS06) is accepted once, in rising counter order; the
counter is committed to flash before the command is acted on and shares the
state log with the boot state, so each kind's newest record must survive the
other's appends and the sector switches they cause. Power is cut before (and
torn inside) every flash operation of hundreds of counter updates and of
state changes between them, across several log-sector switches: the counter
never goes back, never moves without its commit, and the boot state is never
lost.
"""
from __future__ import annotations

import pytest

from bridge_emu.errors import StateError
from support.rig import ALIGNS, GEOMETRY_NAMES, MODES, Rig, seed_for

pytestmark = pytest.mark.native

TEARS = ("none", "prefix", "bits")


def stale(dev, value: int) -> bool:
    try:
        dev.accept_origin(value)
    except StateError as e:
        assert e.name == "BE_ERR_STALE"
        return True
    return False


@pytest.mark.parametrize("mode", MODES)
def test_counter_rises_only_and_persists(mode, tmp_path):
    rig = Rig("4k", 4, mode)
    dev = rig.dev
    assert dev.origin_counter == 0
    assert stale(dev, 0)
    dev.accept_origin(5)
    assert dev.origin_counter == 5
    assert stale(dev, 5) and stale(dev, 4) and dev.origin_counter == 5
    dev.accept_origin(2**64 - 2)
    rig.power_cycle()
    assert dev.origin_counter == 2**64 - 2
    assert stale(dev, 7)
    with pytest.raises(ValueError):
        dev.accept_origin(2**64)
    # the download the rig left in flash is untouched by the counter's records
    assert dev.state.state == "downloading"


def state_of(dev) -> tuple:
    st = dev.state
    return (st.state, st.bank, st.attempts, st.permanent)


def sweep(rig: Rig, steps: int) -> int:
    """Counter updates and state changes, each cut at every operation and tear.

    Returns how many cuts were made."""
    dev, cuts, last = rig.dev, 0, 0
    before_state = state_of(dev)
    for step in range(steps):
        if step % 5 == 4:
            # a state change (it carries the counter when the log switches sector)
            downloading = dev.state.state == "downloading"

            def change(downloading=downloading):
                if downloading:
                    dev.discard_download()
                else:
                    dev.begin_download(len(rig.new))
            after_state = "confirmed" if downloading else "downloading"
        else:
            target = last + 1 + step % 3

            def change(target=target):
                dev.accept_origin(target)
        snap = rig.flash.snapshot()
        ops = rig.ops(change)
        rig.restore(snap)
        for k in range(1, ops + 1):
            for tear in TEARS:
                rig.restore(snap)
                assert rig.cut_during(change, k, tear, seed_for(k, tear))
                cuts += 1
                rig.power_cycle()
                res = rig.boot_until_runs()
                assert rig.which() == "old" and res.confirmed
                # not committed: the counter is where it was, and a replay is still refused
                assert dev.origin_counter == last, f"step {step}: cut at op {k} ({tear})"
                if step % 5 == 4:
                    assert dev.state.state in (before_state[0], after_state)
                else:
                    assert state_of(dev) == before_state
        rig.restore(snap)
        rig.power_cycle()
        rig.boot_until_runs()
        change()
        if step % 5 != 4:
            last = target
            assert dev.origin_counter == last
            assert stale(dev, last)
        before_state = state_of(dev)
        rig.power_cycle()
        rig.boot_until_runs()
        assert dev.origin_counter == last and state_of(dev) == before_state
    return cuts


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("geo", GEOMETRY_NAMES)
def test_counter_survives_a_cut_at_every_operation(mode, geo):
    rig = Rig(geo, 4, mode)
    per_sector = min(s for a, s in rig.dev.config.geometry.sectors() if a in rig.dev.config.layout.log) // 32
    rig.power_cycle()
    rig.boot_until_runs()
    cuts = sweep(rig, steps=per_sector * 2 + 20)   # past two log-sector switches
    assert cuts > per_sector * 2 * len(TEARS)


@pytest.mark.parametrize("align", ALIGNS)
def test_counter_record_is_written_whole_on_every_alignment(align):
    rig = Rig("mixed", align, "copy-swap")
    for v in range(1, 300):
        rig.dev.accept_origin(v)
    rig.power_cycle()
    assert rig.dev.origin_counter == 299 and rig.dev.state.state == "downloading"


@pytest.mark.parametrize("mode", MODES)
def test_counter_outlives_many_state_changes(mode):
    """State appends alone fill and switch the log sectors many times over:
    each switch must carry the counter, or erasing the older sector loses it."""
    rig = Rig("4k", 4, mode)
    dev = rig.dev
    dev.accept_origin(41)
    per_sector = 4096 // 32
    for _ in range(3 * per_sector):
        if dev.state.state == "downloading":
            dev.discard_download()
        else:
            dev.begin_download(len(rig.new))
    rig.power_cycle()
    assert dev.origin_counter == 41
    assert stale(dev, 41)
