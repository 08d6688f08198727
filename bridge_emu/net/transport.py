"""The seams between protocol logic and the world: Clock, Transport, Machine, Driver.

Protocol logic in bridge-emu is sans-I/O: a Machine takes frames and the
current time in, and gives frames to send and its next deadline out. It never
reads a clock, sleeps or touches a radio. A Driver binds one Machine to a
Transport (how frames travel) and a Clock (what time it is, and wake-ups),
so the same Machine runs on virtual time in the simulator (net.sim) and in
real time over a serial ZigBee dongle.

Nothing here may assume the simulation: a real transport may lose frames,
deliver them late, or call on_receive from inside send() (a loopback).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from bridge_emu.errors import BridgeEmuError

#: on_receive(src, cluster, payload): a frame arrived from NWK address src.
ReceiveFn = Callable[[int, int, bytes], None]

#: A frame's `cluster` is a ZCL cluster id (home-automation profile, endpoint 1)
#: below this, and ZDO (profile 0, endpoint 0) at ZDO | the ZDO cluster id.
ZDO = 0x1_0000


class NetError(BridgeEmuError):
    """A network was set up or used impossibly (unknown node, bad link spec, ...)."""


class Frame(NamedTuple):
    """One frame a Machine wants sent: ZCL payload for `cluster` at node `dst`."""
    dst: int
    cluster: int
    payload: bytes


class Clock(Protocol):
    """Time and wake-ups. Times are seconds (floats) on the clock's own scale."""

    def now(self) -> float:
        """The current time."""
        ...

    def call_at(self, t: float, fn: Callable[[], None]) -> Any:
        """Call fn() once, at time t or as soon as possible after it (at once if t
        is already past, but never from inside call_at). Returns a handle for cancel."""
        ...

    def cancel(self, handle: Any) -> None:
        """After this returns, the call behind handle never happens. Cancelling a
        handle that already fired or was already cancelled does nothing."""
        ...


class Transport(Protocol):
    """How one node sends and receives ZCL frames."""

    #: Called for every frame that reaches this node; set by whoever owns the node.
    on_receive: ReceiveFn | None

    @property
    def address(self) -> int:
        """This node's 16-bit NWK address."""
        ...

    @property
    def max_payload(self) -> int:
        """Bytes of ZCL payload one frame carries on this node's path (an OTA client
        picks its max_data_size from this). Larger frames are lost."""
        ...

    def send(self, dst: int, cluster: int, payload: bytes) -> None:
        """Queue a frame for dst and return at once. The frame may be lost without
        any sign, as radio frames are: protocols above retry on their own timers."""
        ...


class SleepyTransport(Transport, Protocol):
    """A transport of a sleepy end device: frames for it wait at its parent."""

    def poll(self) -> int:
        """Ask the parent for waiting frames; returns how many it released."""
        ...


class Machine(Protocol):
    """A sans-I/O protocol state machine, as a Driver sees it."""

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        """A frame arrived."""
        ...

    def timer(self, now: float) -> None:
        """The deadline last returned by next_deadline() has been reached (now >= it).
        The machine must then move its deadline past now, or drop it."""
        ...

    def pop_outgoing(self) -> list[Frame] | list[tuple[int, int, bytes]]:
        """Frames to send, oldest first; the machine forgets them."""
        ...

    def next_deadline(self) -> float | None:
        """When timer() should next be called, or None for never."""
        ...


class Driver:
    """Runs one Machine on one Transport and one Clock.

    After every input (a frame or the timer) it sends everything the machine
    wants sent, then keeps exactly one clock call pending, at the machine's
    next deadline (none if that is None). The clock call is only replaced when
    the deadline moves earlier (or goes): a deadline that moves later, as a
    request timeout does with every block, keeps the pending call, which on
    firing finds the deadline not reached and re-arms for it. So a block
    exchange costs no cancel and no new clock entry, and the clock's queue holds
    no cancelled calls; the machine's timer() still runs only once its deadline
    is reached.
    """

    def __init__(self, machine: Machine, transport: Transport, clock: Clock):
        self.machine = machine
        self.transport = transport
        self.clock = clock
        self._handle: Any = None          # the one pending clock call, if any
        self._armed_at: float | None = None
        self._pumping = False
        self._again = False               # _pump was entered while pumping: pop again
        transport.on_receive = self._on_receive

    @property
    def armed_at(self) -> float | None:
        """The time of the pending timer call, or None."""
        return self._armed_at

    def start(self) -> None:
        """Send what the machine has to say from the start and arm its first deadline."""
        self._pump()

    def stop(self) -> None:
        """Cancel the timer and stop taking frames."""
        self._disarm()
        if self.transport.on_receive == self._on_receive:
            self.transport.on_receive = None

    def poke(self) -> None:
        """Call after changing the machine from outside (e.g. telling it to start
        a download): sends what it now wants sent and re-arms its deadline."""
        self._pump()

    def _on_receive(self, src: int, cluster: int, payload: bytes) -> None:
        self.machine.receive(src, cluster, payload, self.clock.now())
        self._pump()

    def _on_timer(self) -> None:
        self._handle = None
        self._armed_at = None
        now = self.clock.now()
        deadline = self.machine.next_deadline()
        if deadline is not None and deadline > now:
            self._arm(deadline)     # it moved later since this call was armed
            return
        self.machine.timer(now)
        self._pump()

    def _pump(self) -> None:
        # A transport may deliver a reply from inside send(). The nested call has
        # already fed the machine; the outer loop sends its output in order (it
        # asks the machine again only if such a nested call came).
        if self._pumping:
            self._again = True
            return
        self._pumping = True
        machine = self.machine
        try:
            out = machine.pop_outgoing()
            while out:
                self._again = False
                send = self.transport.send
                for dst, cluster, payload in out:
                    send(dst, cluster, payload)
                out = machine.pop_outgoing() if self._again else None
        finally:
            self._pumping = False
        deadline = machine.next_deadline()
        armed = self._armed_at
        if deadline != armed and (deadline is None or armed is None or deadline < armed):
            self._arm(deadline)

    def _arm(self, deadline: float | None) -> None:
        armed = self._armed_at
        if deadline == armed or (deadline is not None and armed is not None and deadline > armed):
            return                  # the pending call comes first, and re-arms then
        self._disarm()
        if deadline is not None:
            self._armed_at = deadline
            self._handle = self.clock.call_at(deadline, self._on_timer)

    def _disarm(self) -> None:
        if self._handle is not None:
            self.clock.cancel(self._handle)
        self._handle = None
        self._armed_at = None
