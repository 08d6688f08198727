"""What the two stick joiners (znp_join.py for TI Z-Stack, ezsp_join.py for Silicon
Labs EmberZNet) share: the events they give, the role values, and the scaffolding of
a bring-up driven one step at a time (one timed step pending, a refusal said once,
Down when a joined stick goes). Each joiner keeps its own state table and its own
wire protocol."""
from __future__ import annotations

import enum
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge_emu.fsm import Transitions
from bridge_emu.retry import Backoff

ZDO_KEY = 0x1_0000                        # net.transport.ZDO: a ZDO frame's cluster key
ROUTER, END_DEVICE = 1, 2                 # ZCD_NV_LOGICAL_TYPE values (ZigbeeNode gives them too)
ROLE_NAMES = {ROUTER: "router", END_DEVICE: "end device"}
DEFAULT_CHANNELS = 0x07FFF800             # 11-26
MAX_QUEUED_SENDS = 64                     # data waiting for the line; more is dropped (the layer above retries)
STEERING_BACKOFF = Backoff(1.0, 30.0)     # no network in range: look again after 1 s, doubling to 30 s
DESCRIPTOR_FIELDS = {"endpoint", "profile", "device_type", "device_version", "input_clusters", "output_clusters"}


# -- events ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Joined:
    """The stick is on a network: its NWK address, the PAN, and the role it joined as."""
    nwk: int
    pan_id: int
    extended_pan_id: int
    channel: int
    role: str
    ieee: int


@dataclass(frozen=True)
class Received:
    """A frame for this node: its sender's NWK address, the cluster key (ZDO_KEY | cluster for ZDO), the payload
    (a ZDO payload starts with its TSN)."""
    src: int
    cluster: int
    payload: bytes


@dataclass(frozen=True)
class Down:
    """The node left the network: the stick reset, the link went, or the stick lost the network."""
    reason: str


@dataclass(frozen=True)
class Refused:
    """The stick cannot take the role asked of it (a coordinator-only build, a command it does not know)."""
    reason: str


Event = Joined | Received | Down | Refused


class StickJoiner:
    """The base of ZnpJoiner and EzspJoiner. A subclass sets TRANSITIONS (its state table) and
    JOINED (its joined state), sets `state`, and defines _clear() (forget what is queued and pending,
    then call _cancel_after()), `_queue` (what waits for the line) and `stats`."""

    TRANSITIONS: Transitions
    JOINED: enum.Enum

    def __init__(self, role: int, endpoint: Mapping[str, Any], channels: int, seed: int):
        if role not in ROLE_NAMES:
            raise ValueError(f"role {role!r}: want {ROUTER} (router) or {END_DEVICE} (end device)")
        missing = DESCRIPTOR_FIELDS - set(endpoint)
        if missing:
            raise ValueError(f"endpoint: simple descriptor lacks {', '.join(sorted(missing))}")
        if not channels & DEFAULT_CHANNELS:
            raise ValueError(f"channels 0x{channels:08X}: no channel of 11-26")
        self.role, self.endpoint = role, dict(endpoint)
        self.rng = random.Random(seed)
        self.state: enum.Enum
        self.joined: Joined | None = None
        self._events: list[Event] = []
        self._state_deadline: float | None = None
        self._on_state_deadline: Callable[[float], None] | None = None
        self._refused_said = False

    def pop_events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    @property
    def is_joined(self) -> bool:
        return self.state is self.JOINED

    def _clear(self) -> None:
        raise NotImplementedError

    def _drops_send(self) -> bool:
        """Not joined, or too much waiting for the line: the frame is dropped (the layer above retries)."""
        if self.state is not self.JOINED or len(self._queue) >= MAX_QUEUED_SENDS:
            self.stats["send_dropped"] += 1
            return True
        return False

    def _go(self, trigger: str) -> None:
        self.state = self.TRANSITIONS.go(self.state, trigger)

    def _after(self, at: float, action: Callable[[float], None]) -> None:
        """The one timed step of the bring-up: `action` at `at` (a backoff, a wait for the stick)."""
        self._state_deadline, self._on_state_deadline = at, action

    def _cancel_after(self) -> None:
        self._state_deadline = self._on_state_deadline = None

    def _state_timer(self, now: float) -> None:
        if self._state_deadline is not None and now >= self._state_deadline:
            action, self._on_state_deadline, self._state_deadline = self._on_state_deadline, None, None
            if action is not None:
                action(now)

    def _down(self, reason: str) -> None:
        self.joined = None
        self.stats["downs"] += 1
        self._events.append(Down(reason))

    def _refuse(self, now: float, trigger: str, reason: str) -> None:
        self._go(trigger)
        self._clear()
        if not self._refused_said:
            self._refused_said = True
            self._events.append(Refused(reason))
