"""Bounded exponential backoff with jitter: the one retry schedule every step
that waits on the other side uses (the OTA client's queries and Upgrade End
Requests, a bridge's GBCS alerts, the hub's CS06 commands).

Attempt k (0 for the first retry) waits first_s * 2**k, capped at cap_s, less a
random share of up to `jitter` of it, so devices that lost the same frame do
not all retry at the same instant. The draw comes from the caller's own
random.Random, so a seeded run retries at the same times every time.
"""
from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    first_s: float
    cap_s: float
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not (0 < self.first_s <= self.cap_s) or not 0 <= self.jitter < 1:
            raise ValueError(f"backoff needs 0 < first_s <= cap_s and 0 <= jitter < 1, got {self}")

    def nominal(self, attempt: int) -> float:
        """The delay before retry `attempt`, without jitter."""
        return min(self.cap_s, self.first_s * 2.0 ** min(max(attempt, 0), 60))

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The delay before retry `attempt` (0-based), jittered."""
        return self.nominal(attempt) * (1.0 - self.jitter * rng.random())
