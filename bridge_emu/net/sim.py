"""A deterministic discrete-event simulation of the premises network, on virtual time.

- Scheduler: a heap of (time, seq, fn, arg) on virtual time; seq breaks ties in
  scheduling order, and every random draw comes from its one seeded Random, so a
  run is a function of its seed and inputs.
- SimClock: the Clock protocol over a Scheduler.
- SimNetwork: nodes on a tree rooted at the Communications Hub (CH). Each node
  but the root has a parent and a Link to it, with its own LinkSpec (latency,
  jitter, loss, throughput, payload limit): the B1-B2/B3/B4 hops are the Alt
  HAN point-to-point links, the others ZigBee hops. A frame climbs to the
  common ancestor of source and destination, then goes down; each hop is
  store-and-forward.
- SimTransport: one node's Transport. Frames for a sleepy node wait at its
  parent until it polls.

The hot path (a frame hop, a timer) allocates one heap tuple per event and
does not log; tracing is opt-in (SimNetwork.enable_trace()).
"""
from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from heapq import heapify, heappop, heappush
from itertools import count
from typing import Any

from bridge_emu.net.transport import NetError, ReceiveFn

# IEEE 802.15.4 at 2.4 GHz (see docs/zigbee-ota.md, "Radio facts for sizing").
ZIGBEE_BPS = 250_000
ZIGBEE_APS_PAYLOAD = 82                  # unfragmented APS payload: the ZCL frame, header included
ZIGBEE_FRAME_OVERHEAD = 127 - 82 + 6     # MAC/NWK/APS headers of a full 127-byte PSDU + 6-byte PHY header


# --------------------------------------------------------------------------- scheduler

class Timer:
    """A handle from Scheduler.call_at."""
    __slots__ = ("when", "fn", "active", "background")

    def __init__(self, when: float, fn: Callable[[], None], background: bool):
        self.when = when
        self.fn = fn
        self.active = True
        self.background = background

    def __repr__(self) -> str:
        state = "active" if self.active else "done"
        return f"<Timer at {self.when:.6f} {state}{' background' if self.background else ''}>"


class Scheduler:
    """Virtual time and the event heap.

    `time` is the current virtual time (seconds). Events at equal times run in
    the order they were scheduled. Background events (a sleepy node's automatic
    polls) run like others but do not keep run_until_idle() going: the
    simulation is idle when only background events are left and nothing is held.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.rng = random.Random(seed)    # the only source of randomness in a simulation
        self.time = 0.0
        self.executed = 0                 # events run so far
        self._heap: list[tuple[float, int, Callable[[Any], None], Any]] = []
        self._seq = count()
        self._foreground = 0              # foreground events pending + holds
        self._cancelled = 0               # cancelled timers still in the heap
        self._fire = self._fire_timer     # one bound method: heap entries are told apart by identity

    # -- scheduling

    def schedule(self, t: float, fn: Callable[[Any], None], arg: Any = None) -> None:
        """Call fn(arg) at virtual time t (now, if t is past). No handle: cannot be
        cancelled. The fast path the network uses for frames."""
        if t < self.time:
            t = self.time
        heappush(self._heap, (t, next(self._seq), fn, arg))
        self._foreground += 1

    def call_at(self, t: float, fn: Callable[[], None], background: bool = False) -> Timer:
        """Call fn() at virtual time t (now, if t is past); returns a Timer for cancel()."""
        if t < self.time:
            t = self.time
        timer = Timer(t, fn, background)
        heappush(self._heap, (t, next(self._seq), self._fire, timer))
        if not background:
            self._foreground += 1
        return timer

    def cancel(self, timer: Timer) -> None:
        """The timer will not fire. No effect if it already fired or was cancelled."""
        if not timer.active:
            return
        timer.active = False
        if not timer.background:
            self._foreground -= 1
        self._cancelled += 1
        if self._cancelled > 256 and 2 * self._cancelled > len(self._heap):
            self._compact()

    def hold(self) -> None:
        """Count outside work as pending, so run_until_idle() does not stop (e.g. a
        frame waiting at a parent for the next automatic poll)."""
        self._foreground += 1

    def release(self) -> None:
        """Undo one hold()."""
        self._foreground -= 1

    def _fire_timer(self, timer: Timer) -> None:
        timer.active = False
        if not timer.background:
            self._foreground -= 1
        timer.fn()

    def _compact(self) -> None:
        # Cancelled timers stay in the heap until popped; drop them in one pass
        # when they are the majority, so long timeouts re-armed per frame stay cheap.
        fire = self._fire
        self._heap[:] = [e for e in self._heap if e[2] is not fire or e[3].active]
        heapify(self._heap)
        self._cancelled = 0

    # -- state

    @property
    def idle(self) -> bool:
        """True when no foreground event is pending and nothing is held."""
        return self._foreground <= 0

    @property
    def pending(self) -> int:
        """Events in the heap, cancelled timers excluded."""
        return len(self._heap) - self._cancelled

    def next_time(self) -> float | None:
        """Time of the earliest pending event (possibly a cancelled timer), or None."""
        return self._heap[0][0] if self._heap else None

    # -- running

    def run_until(self, t: float) -> int:
        """Run every event due at or before t, then set the time to t (if later).
        Returns the number of events run."""
        n = self._run(t, False, None, None)
        if t > self.time:
            self.time = t
        return n

    def run_until_idle(self, max_events: int | None = None) -> int:
        """Run until only background events are left (or max_events ran). The time
        stays at the last event. Returns the number of events run."""
        return self._run(math.inf, True, None, max_events)

    def run(self, predicate: Callable[[], bool], limit: float = math.inf,
            max_events: int | None = None) -> bool:
        """Run until predicate() is true (checked before the first event and after
        each), the simulation is idle, virtual time would pass `limit` (absolute),
        or max_events ran. Returns predicate() at the end. If it stopped at the
        limit, the time is set to the limit."""
        if predicate():
            return True
        n = self._run(limit, True, predicate, max_events)
        if predicate():
            return True
        stopped_by_limit = not self.idle and (max_events is None or n < max_events)
        if stopped_by_limit and limit != math.inf and self.time < limit:
            self.time = limit
        return False

    def _run(self, until: float, stop_idle: bool, predicate: Callable[[], bool] | None,
             max_events: int | None) -> int:
        heap = self._heap
        fire = self._fire
        n = 0
        try:
            while heap:
                if stop_idle and self._foreground <= 0:
                    break
                t, _, fn, arg = heap[0]
                if t > until:
                    break
                heappop(heap)
                if fn is fire:
                    if not arg.active:        # cancelled: accounted for by cancel()
                        self._cancelled -= 1
                        continue
                else:
                    self._foreground -= 1
                self.time = t
                n += 1
                fn(arg)
                if n == max_events or (predicate is not None and predicate()):
                    break
        finally:
            self.executed += n
        return n


class SimClock:
    """The Clock protocol on a Scheduler's virtual time."""
    __slots__ = ("scheduler",)

    def __init__(self, scheduler: Scheduler):
        self.scheduler = scheduler

    def now(self) -> float:
        return self.scheduler.time

    def call_at(self, t: float, fn: Callable[[], None]) -> Timer:
        return self.scheduler.call_at(t, fn)

    def cancel(self, handle: Timer) -> None:
        self.scheduler.cancel(handle)


# --------------------------------------------------------------------------- links

@dataclass(frozen=True, slots=True)
class LinkSpec:
    """How one hop behaves. Replace a Link's spec to change it mid-run.

    A frame of n payload bytes occupies the hop for airtime = (n + overhead_bytes)
    * 8 / throughput_bps, after any frame already on it (half duplex unless
    full_duplex), then arrives latency_s + uniform[0, jitter_s) later. It is lost
    with probability `loss` (read it as the loss left after MAC retries). Payload
    means the APS payload, i.e. the whole ZCL frame; one over payload_limit is
    dropped before it is sent and counted as oversize.
    """
    latency_s: float = 0.0
    jitter_s: float = 0.0
    loss: float = 0.0
    throughput_bps: float = ZIGBEE_BPS
    payload_limit: int = ZIGBEE_APS_PAYLOAD
    overhead_bytes: int = 0
    full_duplex: bool = False

    def __post_init__(self) -> None:
        if not (self.latency_s >= 0 and self.jitter_s >= 0):
            raise NetError(f"latency and jitter must be >= 0, got {self.latency_s}, {self.jitter_s}")
        if not 0 <= self.loss <= 1:
            raise NetError(f"loss is a probability, got {self.loss}")
        if not self.throughput_bps > 0:
            raise NetError(f"throughput must be > 0 bit/s, got {self.throughput_bps}")
        if self.payload_limit < 0 or self.overhead_bytes < 0:
            raise NetError("payload_limit and overhead_bytes must be >= 0")

    def airtime(self, payload_len: int) -> float:
        """Seconds a frame of payload_len payload bytes occupies the hop."""
        return (payload_len + self.overhead_bytes) * 8 / self.throughput_bps

    @classmethod
    def zigbee(cls, latency_s: float = 0.0, jitter_s: float = 0.0, loss: float = 0.0) -> LinkSpec:
        """An 802.15.4 hop: 250 kbit/s, 82-byte APS payload, full-frame header overhead."""
        return cls(latency_s, jitter_s, loss, ZIGBEE_BPS, ZIGBEE_APS_PAYLOAD, ZIGBEE_FRAME_OVERHEAD)


@dataclass(slots=True)
class LinkStats:
    """Counters of one link, both directions. `frames` and `bytes` (payload plus
    overhead) count what went on the air, lost frames included."""
    frames: int = 0
    bytes: int = 0
    lost: int = 0
    oversize: int = 0

    @property
    def delivered(self) -> int:
        return self.frames - self.lost


@dataclass(slots=True)
class NodeStats:
    """Counters of one node. Radio time is counted per frame sent or received
    (airtime, relaying included) and per poll (poll_radio_s each), so for a
    sleepy node radio_on_s is the time its radio is on."""
    sent: int = 0          # frames this node originated
    received: int = 0      # frames delivered to this node's on_receive
    dropped: int = 0       # frames lost because this node was offline (or had no on_receive)
    polls: int = 0
    tx_s: float = 0.0
    rx_s: float = 0.0
    poll_s: float = 0.0

    @property
    def radio_on_s(self) -> float:
        return self.poll_s + self.tx_s + self.rx_s


class Link:
    """The hop between a node (child) and its parent."""
    __slots__ = ("child", "parent", "spec", "stats", "busy", "name", "outages")

    def __init__(self, child: SimTransport, parent: SimTransport, spec: LinkSpec):
        self.child = child
        self.parent = parent
        self.spec = spec
        self.stats = LinkStats()
        self.busy = [0.0, 0.0]     # time the hop is free again: [shared or up, down]
        self.name = f"{parent.name}-{child.name}"
        self.outages: list[tuple[float, float]] = []   # [start, end): every frame sent then is lost

    def outage(self, start: float, duration: float) -> None:
        """A burst outage (interference, a door closed on the radio path): every
        frame that starts across this hop in [start, start + duration) is lost."""
        if not (duration > 0 and math.isfinite(start) and math.isfinite(duration)):
            raise NetError(f"an outage needs a finite start and a duration above 0, got {start}, {duration}")
        self.outages.append((start, start + duration))

    def out(self, t: float) -> bool:
        """True while an outage holds the hop (ended ones are dropped as time passes)."""
        self.outages = [o for o in self.outages if o[1] > t]
        return any(a <= t for a, _ in self.outages)

    def __repr__(self) -> str:
        return f"<Link {self.name} {self.spec} {self.stats}>"


class _Hop:
    """One hop of one route (src -> dst), chained through `next`. Built once per
    route and reused, so a frame in flight is just (cluster, payload)."""
    __slots__ = ("net", "link", "sender", "receiver", "down", "next", "indirect", "src", "dst",
                 "arrive")

    def __init__(self, net: SimNetwork, link: Link, down: bool, src: int, dst: int):
        self.net = net
        self.link = link
        self.down = down
        self.sender = link.parent if down else link.child
        self.receiver = link.child if down else link.parent
        self.indirect = down and link.child.sleepy     # waits at the parent for a poll
        self.next: _Hop | None = None
        self.src = src
        self.dst = dst
        self.arrive = self._arrive                      # bound once: no allocation per event

    def transmit(self, frame: tuple[int, bytes]) -> None:
        net = self.net
        link = self.link
        spec = link.spec
        stats = link.stats
        n = len(frame[1])
        if n > spec.payload_limit:
            stats.oversize += 1
            if net.trace is not None:
                net._note("oversize", link.name, self, frame)
            return
        sched = net.scheduler
        air = (n + spec.overhead_bytes) * 8 / spec.throughput_bps
        busy = link.busy
        i = 1 if (self.down and spec.full_duplex) else 0
        start = busy[i]
        if start < sched.time:
            start = sched.time
        end = start + air
        busy[i] = end
        stats.frames += 1
        stats.bytes += n + spec.overhead_bytes
        self.sender.stats.tx_s += air
        rng = sched.rng
        if (spec.loss and rng.random() < spec.loss) or (link.outages and link.out(start)):
            stats.lost += 1
            if net.trace is not None:
                net._note("lost", link.name, self, frame)
            return
        self.receiver.stats.rx_s += air
        t = end + spec.latency_s
        if spec.jitter_s:
            t += rng.random() * spec.jitter_s
        if net.trace is not None:
            net._note("tx", link.name, self, frame, t)
        sched.schedule(t, self.arrive, frame)

    def _arrive(self, frame: tuple[int, bytes]) -> None:
        node = self.receiver
        if not node.online:
            node.stats.dropped += 1
            if self.net.trace is not None:
                self.net._note("drop", node.name, self, frame)
            return
        nxt = self.next
        if nxt is None:
            fn = node.on_receive
            if fn is None:
                node.stats.dropped += 1
                return
            node.stats.received += 1
            if self.net.trace is not None:
                self.net._note("deliver", node.name, self, frame)
            fn(self.src, frame[0], frame[1])
        elif nxt.indirect:
            nxt.wait(frame)
        else:
            nxt.transmit(frame)

    def wait(self, frame: tuple[int, bytes]) -> None:
        """Leave the frame at the parent until the sleepy receiver polls."""
        self.receiver._waiting.append((self, frame))
        self.net.scheduler.hold()
        if self.net.trace is not None:
            self.net._note("wait", self.sender.name, self, frame)


# --------------------------------------------------------------------------- nodes

class SimTransport:
    """A node of a SimNetwork and its Transport (see net.transport.Transport)."""
    __slots__ = ("net", "_address", "name", "parent", "children", "link", "sleepy", "poll_radio_s",
                 "on_receive", "stats", "_online", "_routes", "_waiting", "_poll_interval_s",
                 "_poll_timer")

    def __init__(self, net: SimNetwork, address: int, name: str, parent: SimTransport | None,
                 link_spec: LinkSpec | None, sleepy: bool, poll_radio_s: float):
        self.net = net
        self._address = address
        self.name = name
        self.parent = parent
        self.children: list[SimTransport] = []
        self.link = Link(self, parent, link_spec) if parent is not None and link_spec is not None else None
        self.sleepy = sleepy
        self.poll_radio_s = poll_radio_s      # radio-on time one poll costs, frames aside
        self.on_receive: ReceiveFn | None = None
        self.stats = NodeStats()
        self._online = True
        self._routes: dict[int, _Hop] = {}    # dst -> first hop, built on first use
        self._waiting: list[tuple[_Hop, tuple[int, bytes]]] = []   # frames for me, at my parent
        self._poll_interval_s = 0.0
        self._poll_timer: Timer | None = None

    def __repr__(self) -> str:
        return f"<SimTransport {self.name} 0x{self._address:04x}>"

    # -- Transport

    @property
    def address(self) -> int:
        return self._address

    @property
    def max_payload(self) -> int:
        """The smallest payload limit on the way to the root. For the root, the
        smallest in the network: what it can send to any node."""
        links = [n.link for n in self._ancestry() if n.link is not None] if self.parent else \
            [n.link for n in self.net.nodes.values() if n.link is not None]
        return min((ln.spec.payload_limit for ln in links), default=0)

    def send(self, dst: int, cluster: int, payload: bytes) -> None:
        if type(payload) is not bytes:
            payload = bytes(payload)          # the frame must not change while in flight
        self.stats.sent += 1
        hop = self._routes.get(dst)
        if hop is None:
            hop = self._routes[dst] = self.net._route(self, dst)
        frame = (cluster, payload)
        if self.net.trace is not None:
            self.net._note("send", self.name, hop, frame)
        if not self._online:
            self.stats.dropped += 1
        elif hop.indirect:
            hop.wait(frame)
        else:
            hop.transmit(frame)

    # -- sleepy end devices

    def poll(self) -> int:
        """Ask the parent for the frames waiting for this node; they go down the
        link now, in order. Returns how many were released. Costs poll_radio_s of
        radio time plus each frame's airtime."""
        if not self.sleepy:
            raise NetError(f"{self.name} is not a sleepy node: it does not poll")
        if not self._online:
            return 0
        self.stats.polls += 1
        self.stats.poll_s += self.poll_radio_s
        waiting = self._waiting
        if self.net.trace is not None:
            self.net.trace.append((self.net.scheduler.time, "poll", self.name, self._address,
                                   self.parent._address, -1, len(waiting)))
        if not waiting or not self.parent._online:
            return 0
        self._waiting = []
        sched = self.net.scheduler
        for hop, frame in waiting:
            sched.release()
            hop.transmit(frame)
        return len(waiting)

    @property
    def waiting(self) -> int:
        """Frames waiting at the parent for this node's next poll."""
        return len(self._waiting)

    @property
    def poll_interval_s(self) -> float:
        """Automatic poll period (0: polls only when poll() is called). Setting it
        restarts the period from now (e.g. fast polling during a download)."""
        return self._poll_interval_s

    @poll_interval_s.setter
    def poll_interval_s(self, seconds: float) -> None:
        if seconds < 0:
            raise NetError(f"poll interval must be >= 0, got {seconds}")
        if seconds and not self.sleepy:
            raise NetError(f"{self.name} is not a sleepy node: it does not poll")
        sched = self.net.scheduler
        if self._poll_timer is not None:
            sched.cancel(self._poll_timer)
            self._poll_timer = None
        self._poll_interval_s = seconds
        if seconds:
            self._poll_timer = sched.call_at(sched.time + seconds, self._auto_poll, background=True)

    def _auto_poll(self) -> None:
        sched = self.net.scheduler
        self._poll_timer = sched.call_at(sched.time + self._poll_interval_s, self._auto_poll,
                                         background=True)
        self.poll()

    # -- power

    @property
    def online(self) -> bool:
        return self._online

    @online.setter
    def online(self, up: bool) -> None:
        """Offline (e.g. rebooting into new firmware), a node neither sends, receives
        nor relays; frames reaching it are counted as dropped, and frames it held
        for its sleepy children are lost."""
        self._online = bool(up)
        if up:
            return
        sched = self.net.scheduler
        for child in self.children:
            if child._waiting:
                self.stats.dropped += len(child._waiting)
                for _ in child._waiting:
                    sched.release()
                child._waiting = []

    def _ancestry(self) -> list[SimTransport]:
        """This node, its parent, ... up to the root."""
        chain, node = [], self
        while node is not None:
            chain.append(node)
            node = node.parent
        return chain


# --------------------------------------------------------------------------- network

class SimNetwork:
    """Nodes on a tree, the links between them, and the scheduler they run on."""

    def __init__(self, seed: int = 0, scheduler: Scheduler | None = None):
        self.scheduler = scheduler if scheduler is not None else Scheduler(seed)
        self.clock = SimClock(self.scheduler)
        self.nodes: dict[int, SimTransport] = {}
        # (time, kind, where, src, dst, cluster, bytes) per step, when enabled.
        # Kinds: send, tx (time = arrival), lost, oversize, wait, poll, deliver, drop.
        self.trace: list[tuple] | None = None

    def enable_trace(self) -> list[tuple]:
        self.trace = []
        return self.trace

    def _note(self, kind: str, where: str, hop: _Hop, frame: tuple[int, bytes],
              t: float | None = None) -> None:
        assert self.trace is not None
        self.trace.append((self.scheduler.time if t is None else t, kind, where, hop.src, hop.dst,
                           frame[0], len(frame[1])))

    def add_node(self, address: int, name: str | None = None, parent: int | None = None,
                 link: LinkSpec | None = None, sleepy: bool = False, poll_interval_s: float = 0.0,
                 poll_radio_s: float = 0.010) -> SimTransport:
        """Add a node; the first one is the root (the CH) and has no parent or link.
        Every other node names its parent's address and the spec of its link to it.
        A sleepy node polls its parent every poll_interval_s (0: only on poll())."""
        if not (isinstance(address, int) and 0 <= address <= 0xFFFF):
            raise NetError(f"NWK address must be a 16-bit integer, got {address!r}")
        if address in self.nodes:
            raise NetError(f"address 0x{address:04x} is already {self.nodes[address].name}")
        name = name or f"0x{address:04x}"
        if parent is None:
            if self.nodes:
                raise NetError(f"{name}: only the first node (the root) has no parent")
            if link is not None or sleepy:
                raise NetError(f"{name}: the root has no link and does not sleep")
            up = None
        else:
            up = self.nodes.get(parent)
            if up is None:
                raise NetError(f"{name}: parent 0x{parent:04x} is not in the network")
            if up.sleepy:
                raise NetError(f"{name}: parent {up.name} is a sleepy end device and has no children")
            if link is None:
                raise NetError(f"{name}: a node with a parent needs the LinkSpec of its link")
        node = SimTransport(self, address, name, up, link, sleepy, poll_radio_s)
        if up is not None:
            up.children.append(node)
        self.nodes[address] = node
        if poll_interval_s:
            node.poll_interval_s = poll_interval_s
        return node

    def node(self, address: int) -> SimTransport:
        try:
            return self.nodes[address]
        except KeyError:
            raise NetError(f"no node 0x{address:04x} in the network") from None

    def link(self, child: int) -> Link:
        """The link between node `child` and its parent."""
        link = self.node(child).link
        if link is None:
            raise NetError(f"{self.nodes[child].name} is the root: it has no link")
        return link

    @property
    def links(self) -> list[Link]:
        return [n.link for n in self.nodes.values() if n.link is not None]

    def route(self, src: int, dst: int) -> list[Link]:
        """The links a frame from src to dst crosses, in order."""
        hops, hop = [], self._route(self.node(src), dst)
        while hop is not None:
            hops.append(hop.link)
            hop = hop.next
        return hops

    def path_limit(self, src: int, dst: int) -> int:
        """The largest payload that can go from src to dst."""
        return min(link.spec.payload_limit for link in self.route(src, dst))

    def _route(self, src: SimTransport, dst_address: int) -> _Hop:
        dst = self.nodes.get(dst_address)
        if dst is None:
            raise NetError(f"{src.name}: no node 0x{dst_address:04x} in the network")
        if dst is src:
            raise NetError(f"{src.name}: a node does not send to itself")
        up_chain = src._ancestry()
        on_up_chain = {id(n) for n in up_chain}
        down_chain = []                     # dst, its parent, ... below the common ancestor
        node = dst
        while id(node) not in on_up_chain:
            down_chain.append(node)
            node = node.parent
        common = node
        hops = [_Hop(self, n.link, False, src._address, dst_address)
                for n in up_chain[:up_chain.index(common)]]
        hops += [_Hop(self, n.link, True, src._address, dst_address) for n in reversed(down_chain)]
        for a, b in zip(hops, hops[1:]):
            a.next = b
        return hops[0]
