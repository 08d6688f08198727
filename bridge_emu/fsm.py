"""The one mechanism behind every explicit state table (OTA client, OTA server,
bridge): a machine's states are an enum, its transitions one table a reader can
scan, and every move it makes goes through `Transitions.go`, which refuses a
move the table does not hold. A move outside the table is a bug in the machine,
so it raises IllegalTransition (not a BridgeEmuError: nothing a user does can
cause it).

    class State(enum.Enum):
        IDLE = "idle"
        BUSY = "busy"

    TABLE = Transitions({
        (State.IDLE, "start"): State.BUSY,
        (State.BUSY, "done"): State.IDLE,
    })
    state = TABLE.go(state, "start")

Every move taken is counted in `taken`, so a test can check that a run stayed
inside the table and which rows it exercised.
"""
from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterator, Mapping


class IllegalTransition(RuntimeError):
    """A machine tried a move its state table does not hold."""


class Transitions(Mapping):
    """(state, trigger) -> next state, read-only, with a tally of moves taken."""

    def __init__(self, table: Mapping[tuple[enum.Enum, str], enum.Enum], name: str = "machine"):
        self._table = dict(table)
        self.name = name
        self.taken: Counter[tuple[enum.Enum, str]] = Counter()

    def go(self, state: enum.Enum, trigger: str) -> enum.Enum:
        try:
            nxt = self._table[(state, trigger)]
        except KeyError:
            raise IllegalTransition(f"{self.name}: no transition from {state.name} on {trigger!r}") from None
        self.taken[(state, trigger)] += 1
        return nxt

    def triggers(self) -> set[str]:
        return {t for _, t in self._table}

    def __getitem__(self, key: tuple[enum.Enum, str]) -> enum.Enum:
        return self._table[key]

    def __iter__(self) -> Iterator[tuple[enum.Enum, str]]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)
