"""The one retry schedule (bridge_emu.retry.Backoff)."""
from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge_emu.retry import Backoff


def test_the_nominal_delay_doubles_up_to_the_cap():
    b = Backoff(3.0, 40.0)
    assert [b.nominal(k) for k in range(6)] == [3.0, 6.0, 12.0, 24.0, 40.0, 40.0]
    assert b.nominal(10_000) == 40.0             # no overflow, however many tries


@given(first=st.floats(0.001, 100), factor=st.floats(1, 100), jitter=st.floats(0, 0.99),
       attempt=st.integers(0, 200), seed=st.integers(0, 2**32))
def test_a_jittered_delay_lies_within_its_share_below_the_nominal(first, factor, jitter, attempt, seed):
    b = Backoff(first, first * factor, jitter)
    d = b.delay(attempt, random.Random(seed))
    assert b.nominal(attempt) * (1 - jitter) <= d <= b.nominal(attempt)


def test_the_same_seed_gives_the_same_delays_and_devices_spread_out():
    b = Backoff(5.0, 120.0)
    assert [b.delay(k, random.Random(1)) for k in range(5)] == [b.delay(k, random.Random(1)) for k in range(5)]
    assert len({round(b.delay(0, random.Random(s)), 6) for s in range(20)}) == 20


@pytest.mark.parametrize("args", [(0.0, 1.0), (2.0, 1.0), (1.0, 2.0, 1.0), (1.0, 2.0, -0.1), (-1.0, 1.0)])
def test_an_impossible_schedule_is_refused(args):
    with pytest.raises(ValueError, match="backoff"):
        Backoff(*args)
