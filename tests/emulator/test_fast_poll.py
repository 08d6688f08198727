"""A sleepy bridge polls fast while its OTA client expects replies and, once let
into a network, for the window it is given (Bridge.poll_fast_for), then falls
back to its slow poll; a reboot forgets the window."""
from __future__ import annotations

import dataclasses

import pytest

from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.schema import builtin_premises
from support.paths import IMAGES

pytestmark = pytest.mark.native


def b3_with_nothing_to_download():
    spec = builtin_premises()["gsme-battery"]
    spec = dataclasses.replace(spec, bridges=tuple(dataclasses.replace(b, offer="none") for b in spec.bridges))
    run = PremisesRun(spec, ImageSet(IMAGES))
    run.start()
    run.step(30.0)                               # booted, joined, its first query answered
    [slot] = [s for s in run.slots if s.spec.type == "B3"]
    return run, slot


def test_the_window_after_a_join_polls_fast_then_slow():
    run, s = b3_with_nothing_to_download()
    prof = s.bridge.profile
    assert s.transport.poll_interval_s == prof.poll_interval_s           # idle: the slow poll
    now = run.clock.now()
    s.bridge.poll_fast_for(now, 60.0)
    s.driver.poke()                              # called from outside its driver, as the rig does
    assert s.transport.poll_interval_s == prof.fast_poll_s
    polls = s.transport.stats.polls
    run.step(now + 59.0)
    assert s.transport.poll_interval_s == prof.fast_poll_s
    assert s.transport.stats.polls - polls >= 59 / prof.fast_poll_s - 2
    run.step(now + 61.0)
    assert s.transport.poll_interval_s == prof.poll_interval_s


def test_a_reboot_forgets_the_window_and_a_mains_bridge_ignores_it():
    run, s = b3_with_nothing_to_download()
    now = run.clock.now()
    s.bridge.poll_fast_for(now, 600.0)
    s.bridge.power_off(now)
    s.driver.poke()
    run.step(now + 60.0)                          # back up and joined again, nothing to download
    assert s.bridge.phase.value == "running"
    assert s.transport.poll_interval_s == s.bridge.profile.poll_interval_s
    [b1] = [x for x in run.slots if x.spec.type == "B1"]
    b1.bridge.poll_fast_for(run.clock.now(), 60.0)                    # not sleepy: nothing to do
    assert b1.transport.poll_interval_s == 0.0
