"""The network seams (Clock, Transport, Driver) and the simulated premises network.

Times are chosen as binary fractions where a test asserts them exactly, so the
expected values are the same floats the simulator computes."""
from __future__ import annotations

import math

import pytest

from bridge_emu.net import Driver, LinkSpec, NetError, Scheduler, SimClock, SimNetwork
from bridge_emu.net.sim import ZIGBEE_FRAME_OVERHEAD

CH, B1, B2, B3, B4 = 0x0000, 0x1001, 0x1002, 0x1003, 0x1004
OTA = 0x0019

# Exact-arithmetic specs: 1024 bit/s makes 64 bytes take 0.5 s on the air.
SLOW = LinkSpec(latency_s=0.25, throughput_bps=1024, payload_limit=128)
P2P = LinkSpec(latency_s=0.125, throughput_bps=2048, payload_limit=64)


def premises(seed: int = 0, zigbee: LinkSpec = SLOW, p2p: LinkSpec = P2P, **b3) -> SimNetwork:
    """CH <- B1 on ZigBee; B2, B3 (sleepy), B4 behind B1 on the point-to-point link."""
    net = SimNetwork(seed)
    net.add_node(CH, "CH")
    net.add_node(B1, "B1", parent=CH, link=zigbee)
    net.add_node(B2, "B2", parent=B1, link=p2p)
    net.add_node(B3, "B3", parent=B1, link=p2p, sleepy=True, **b3)
    net.add_node(B4, "B4", parent=B1, link=p2p)
    return net


def inbox(node) -> list:
    """Record (time, src, cluster, payload) of every frame node receives."""
    got: list = []
    clock = node.net.scheduler
    node.on_receive = lambda src, cluster, payload: got.append((clock.time, src, cluster, payload))
    return got


# --------------------------------------------------------------------------- test machines

class Pinger:
    """Sends `count` requests one at a time to `peer`, resending after `timeout`."""

    def __init__(self, peer: int, count: int, timeout: float):
        self.peer, self.left, self.timeout = peer, count, timeout
        self.seq = 0
        self.out: list = []
        self.deadline: float | None = None
        self.answered: list[tuple[float, int]] = []
        self.resends = 0

    def start(self, now: float) -> None:
        self._ask(now)

    def _ask(self, now: float) -> None:
        self.out.append((self.peer, OTA, self.seq.to_bytes(4, "little") + bytes(16)))
        self.deadline = now + self.timeout

    def receive(self, src, cluster, payload, now):
        if int.from_bytes(payload[:4], "little") != self.seq:
            return                                  # a late answer to a resent request
        self.answered.append((now, self.seq))
        self.seq += 1
        self.left -= 1
        if self.left:
            self._ask(now)
        else:
            self.deadline = None

    def timer(self, now):
        self.resends += 1
        self._ask(now)

    def pop_outgoing(self):
        out, self.out = self.out, []
        return out

    def next_deadline(self):
        return self.deadline


class Echo:
    """Answers every frame with the same payload."""

    def __init__(self):
        self.out: list = []

    def receive(self, src, cluster, payload, now):
        self.out.append((src, cluster, payload))

    def timer(self, now):
        raise AssertionError("Echo has no deadline")

    def pop_outgoing(self):
        out, self.out = self.out, []
        return out

    def next_deadline(self):
        return None


class Settable:
    """A machine whose deadline the test sets; records timer calls."""

    def __init__(self):
        self.deadline: float | None = None
        self.fired: list[float] = []
        self.got: list = []
        self.out: list = []

    def receive(self, src, cluster, payload, now):
        self.got.append((src, cluster, payload, now))

    def timer(self, now):
        self.fired.append(now)
        self.deadline = None

    def pop_outgoing(self):
        out, self.out = self.out, []
        return out

    def next_deadline(self):
        return self.deadline


class RecordingClock(SimClock):
    """A SimClock that records call_at and cancel."""

    def __init__(self, scheduler):
        super().__init__(scheduler)
        self.calls: list = []

    def call_at(self, t, fn):
        self.calls.append(("call_at", t))
        return super().call_at(t, fn)

    def cancel(self, handle):
        self.calls.append(("cancel", handle.when))
        super().cancel(handle)


def ping_pong_trace(seed: int, loss: float, jitter: float = 0.01) -> tuple[list, Pinger]:
    zig = LinkSpec.zigbee(latency_s=0.002, jitter_s=jitter, loss=loss)
    p2p = LinkSpec(latency_s=0.020, jitter_s=jitter, loss=loss, throughput_bps=100_000,
                   payload_limit=82)
    net = premises(seed, zig, p2p)
    trace = net.enable_trace()
    pinger = Pinger(B4, 200, timeout=0.5)
    Driver(Echo(), net.node(B4), net.clock).start()
    pinger.start(0.0)
    Driver(pinger, net.node(CH), net.clock).start()
    net.scheduler.run_until_idle()
    return trace, pinger


# --------------------------------------------------------------------------- determinism

def test_same_seed_gives_the_same_trace():
    a, pa = ping_pong_trace(seed=7, loss=0.1)
    b, pb = ping_pong_trace(seed=7, loss=0.1)
    assert a == b
    assert pa.left == 0 and pa.resends > 0          # loss happened and was recovered
    assert any(kind == "lost" for _, kind, *_ in a)


def test_different_seeds_differ_when_frames_are_lost():
    a, _ = ping_pong_trace(seed=1, loss=0.1, jitter=0.0)
    b, _ = ping_pong_trace(seed=2, loss=0.1, jitter=0.0)
    assert a != b


def test_without_loss_or_jitter_the_seed_does_not_matter():
    a, _ = ping_pong_trace(seed=1, loss=0.0, jitter=0.0)
    b, _ = ping_pong_trace(seed=2, loss=0.0, jitter=0.0)
    assert a == b


# --------------------------------------------------------------------------- link arithmetic

def test_latency_and_serialization_are_exact():
    net = premises()
    got = inbox(net.node(B1))
    net.node(CH).send(B1, OTA, bytes(64))         # 64 B at 1024 bit/s = 0.5 s, + 0.25 s
    net.scheduler.run_until_idle()
    assert got == [(0.75, CH, OTA, bytes(64))]
    assert SLOW.airtime(64) == 0.5


def test_frames_queue_behind_each_other_on_a_hop():
    net = premises()
    got = inbox(net.node(B1))
    for i in range(3):
        net.node(CH).send(B1, OTA, bytes([i]) * 32)   # 0.25 s each on the air
    net.scheduler.run_until_idle()
    assert [(t, p[0]) for t, _, _, p in got] == [(0.5, 0), (0.75, 1), (1.0, 2)]


def test_half_duplex_by_default_full_duplex_on_request():
    # 32 B take 0.25 s on the air: B1's answer waits for CH's frame unless full duplex
    for full, ch_at in ((False, 0.75), (True, 0.5)):
        net = SimNetwork()
        net.add_node(CH, "CH")
        net.add_node(B1, "B1", parent=CH, link=LinkSpec(0.25, throughput_bps=1024, full_duplex=full))
        at_ch, at_b1 = inbox(net.node(CH)), inbox(net.node(B1))
        net.node(CH).send(B1, OTA, bytes(32))
        net.node(B1).send(CH, OTA, bytes(32))
        net.scheduler.run_until_idle()
        assert at_b1[0][0] == 0.5
        assert at_ch[0][0] == ch_at


def test_overhead_counts_towards_airtime_and_link_bytes():
    spec = LinkSpec.zigbee(latency_s=0.0)
    net = SimNetwork()
    net.add_node(CH, "CH")
    net.add_node(B1, "B1", parent=CH, link=spec)
    got = inbox(net.node(B1))
    net.node(CH).send(B1, OTA, bytes(82))
    net.scheduler.run_until_idle()
    assert got[0][0] == (82 + ZIGBEE_FRAME_OVERHEAD) * 8 / 250_000
    stats = net.link(B1).stats
    assert (stats.frames, stats.bytes, stats.lost, stats.oversize) == (1, 82 + ZIGBEE_FRAME_OVERHEAD, 0, 0)


def test_jitter_stays_within_its_bound():
    spec = LinkSpec(latency_s=0.25, jitter_s=0.125, throughput_bps=1024, full_duplex=True)
    net = SimNetwork(seed=3)
    net.add_node(CH, "CH")
    net.add_node(B1, "B1", parent=CH, link=spec)
    got = inbox(net.node(B1))
    sched = net.scheduler
    for i in range(200):
        sched.run_until(i * 10.0)
        net.node(CH).send(B1, OTA, bytes(32))
    sched.run_until_idle()
    delays = [t - i * 10.0 for i, (t, *_) in enumerate(got)]
    assert all(0.5 <= d < 0.625 for d in delays)
    assert max(delays) - min(delays) > 0.1                # it does spread


# --------------------------------------------------------------------------- loss and size

def test_loss_rate_is_statistically_right():
    n, p = 20_000, 0.1
    net = SimNetwork(seed=11)
    net.add_node(CH, "CH")
    net.add_node(B1, "B1", parent=CH, link=LinkSpec(loss=p, full_duplex=True))
    got = inbox(net.node(B1))
    for _ in range(n):
        net.node(CH).send(B1, OTA, bytes(10))
    net.scheduler.run_until_idle()
    stats = net.link(B1).stats
    sigma = math.sqrt(n * p * (1 - p))
    assert stats.frames == n
    assert abs(stats.lost - n * p) < 5 * sigma
    assert len(got) == stats.delivered == n - stats.lost


def test_oversize_frames_are_dropped_and_counted_at_the_hop_that_refuses_them():
    net = premises()                                   # CH-B1 limit 128, B1-B4 limit 64
    got = inbox(net.node(B4))
    net.node(CH).send(B4, OTA, bytes(100))            # fits the first hop, not the second
    net.node(CH).send(B4, OTA, bytes(200))            # fits neither
    net.node(CH).send(B4, OTA, bytes(64))             # fits both
    net.scheduler.run_until_idle()
    assert [len(p) for *_, p in got] == [64]
    zig, p2p = net.link(B1).stats, net.link(B4).stats
    assert (zig.frames, zig.oversize) == (2, 1)
    assert (p2p.frames, p2p.oversize) == (1, 1)


def test_max_payload_is_the_smallest_limit_on_the_path():
    net = premises()
    assert net.node(B1).max_payload == 128
    assert net.node(B4).max_payload == 64
    assert net.node(CH).max_payload == 64             # the root can reach every node with it
    assert net.path_limit(CH, B1) == 128
    assert net.path_limit(B2, B4) == 64


# --------------------------------------------------------------------------- routing

def test_multi_hop_goes_through_the_parent_with_each_links_own_spec():
    net = premises()
    at_b4, at_ch = inbox(net.node(B4)), inbox(net.node(CH))
    net.node(CH).send(B4, OTA, bytes(64))
    net.scheduler.run_until_idle()
    # CH-B1: 0.5 + 0.25; B1-B4: 64 B at 2048 bit/s = 0.25, + 0.125
    assert at_b4 == [(0.75 + 0.25 + 0.125, CH, OTA, bytes(64))]
    start = net.scheduler.time
    net.node(B4).send(CH, OTA, bytes(64))
    net.scheduler.run_until_idle()
    assert at_ch == [(start + 0.25 + 0.125 + 0.5 + 0.25, B4, OTA, bytes(64))]
    assert net.link(B1).stats.frames == 2 and net.link(B4).stats.frames == 2
    assert net.node(B1).stats.received == 0              # relayed, not delivered to B1
    assert net.node(B1).stats.tx_s == 0.5 + 0.25         # but its radio relayed both


def test_siblings_route_through_their_common_parent_only():
    net = premises()
    assert [ln.name for ln in net.route(B2, B4)] == ["B1-B2", "B1-B4"]
    assert [ln.name for ln in net.route(B4, CH)] == ["B1-B4", "CH-B1"]
    assert [ln.name for ln in net.route(CH, B3)] == ["CH-B1", "B1-B3"]
    got = inbox(net.node(B4))
    net.node(B2).send(B4, OTA, b"hi")
    net.scheduler.run_until_idle()
    assert [(src, p) for _, src, _, p in got] == [(B2, b"hi")]
    assert net.link(B1).stats.frames == 0


def test_bad_topologies_and_addresses_are_refused():
    net = premises()
    with pytest.raises(NetError):
        net.add_node(B1, "again", parent=CH, link=SLOW)
    with pytest.raises(NetError):
        net.add_node(0x2000, "orphan", parent=0x7777, link=SLOW)
    with pytest.raises(NetError):
        net.add_node(0x2000, "no link", parent=CH)
    with pytest.raises(NetError):
        net.add_node(0x2000, "second root")
    with pytest.raises(NetError):
        net.add_node(0x2000, "under sleepy", parent=B3, link=P2P)
    with pytest.raises(NetError):
        net.node(CH).send(0x7777, OTA, b"")
    with pytest.raises(NetError):
        LinkSpec(loss=1.5)


def test_an_offline_relay_drops_what_reaches_it():
    net = premises()
    got = inbox(net.node(B4))
    net.node(B1).online = False                        # rebooting into new firmware
    net.node(CH).send(B4, OTA, b"a")
    net.scheduler.run_until_idle()
    net.node(B1).online = True
    net.node(CH).send(B4, OTA, b"b")
    net.scheduler.run_until_idle()
    assert [p for *_, p in got] == [b"b"]
    assert net.node(B1).stats.dropped == 1


# --------------------------------------------------------------------------- sleepy end devices

def test_frames_for_a_sleepy_node_wait_for_its_poll():
    net = premises()
    b3 = net.node(B3)
    got = inbox(b3)
    net.node(CH).send(B3, OTA, bytes(64))
    net.scheduler.run_until(100.0)
    assert got == [] and b3.waiting == 1
    assert b3.poll() == 1
    net.scheduler.run_until_idle()
    assert got == [(100.0 + 0.25 + 0.125, CH, OTA, bytes(64))]
    assert b3.stats.polls == 1
    assert b3.stats.radio_on_s == 0.010 + 0.25            # one poll + the frame's airtime
    assert b3.poll() == 0 and b3.stats.polls == 2


def test_a_sleepy_node_sends_at_once():
    net = premises()
    got = inbox(net.node(CH))
    net.node(B3).send(CH, OTA, bytes(64))
    net.scheduler.run_until_idle()
    assert got[0][0] == 0.25 + 0.125 + 0.5 + 0.25
    assert net.node(B3).stats.tx_s == 0.25


def test_automatic_polls_deliver_and_do_not_keep_the_simulation_busy():
    net = premises(poll_interval_s=7.5)
    sched = net.scheduler
    assert sched.run_until_idle() == 0                   # only background polls are pending
    b3 = net.node(B3)
    got = inbox(b3)
    sched.run_until(1.0)
    net.node(CH).send(B3, OTA, bytes(64))
    sched.run_until_idle()                               # runs on to the poll that releases it
    assert got == [(7.5 + 0.25 + 0.125, CH, OTA, bytes(64))]
    assert b3.stats.polls == 1
    sched.run_until(75.0)
    assert b3.stats.polls == 10
    b3.poll_interval_s = 0.5                             # fast polling, from now
    sched.run_until(76.0)
    assert b3.stats.polls == 12


def test_frames_waiting_at_a_parent_that_goes_offline_are_lost():
    net = premises()
    net.node(CH).send(B3, OTA, b"x")
    net.scheduler.run_until_idle()
    assert net.node(B3).waiting == 1
    net.node(B1).online = False
    assert net.node(B3).waiting == 0 and net.node(B1).stats.dropped == 1
    assert net.scheduler.idle


def test_only_sleepy_nodes_poll():
    net = premises()
    with pytest.raises(NetError):
        net.node(B4).poll()
    with pytest.raises(NetError):
        net.node(B4).poll_interval_s = 1.0


# --------------------------------------------------------------------------- scheduler

def test_events_at_the_same_time_run_in_scheduling_order():
    sched = Scheduler()
    seen: list = []
    for i in range(5):
        sched.schedule(1.0, seen.append, i)
    sched.call_at(1.0, lambda: seen.append("t"))
    sched.schedule(0.5, seen.append, "early")
    sched.run_until_idle()
    assert seen == ["early", 0, 1, 2, 3, 4, "t"]


def test_cancel_works_and_no_timer_fires_twice():
    sched = Scheduler()
    fired: list = []
    keep = sched.call_at(2.0, lambda: fired.append("keep"))
    drop = sched.call_at(1.0, lambda: fired.append("drop"))
    late = sched.call_at(9.0, lambda: fired.append("late"))
    sched.cancel(drop)
    sched.cancel(drop)                                   # twice: harmless
    sched.cancel(late)
    assert sched.pending == 1
    assert sched.run_until_idle() == 1
    assert fired == ["keep"]
    assert sched.time == 2.0                             # cancelled timers do not move time
    sched.cancel(keep)                                   # after it fired: harmless
    sched.run_until(20.0)
    assert fired == ["keep"] and sched.idle


def test_timers_in_the_past_fire_now_not_from_inside_call_at():
    sched = Scheduler()
    sched.run_until(5.0)
    fired: list = []
    sched.call_at(1.0, lambda: fired.append(sched.time))
    assert fired == []
    sched.run_until_idle()
    assert fired == [5.0]


def test_many_cancelled_timers_are_compacted_and_live_ones_survive():
    sched = Scheduler()
    fired: list = []
    timers = [sched.call_at(10.0 + i, lambda i=i: fired.append(i)) for i in range(2000)]
    for i, timer in enumerate(timers):
        if i % 100:
            sched.cancel(timer)
    assert len(sched._heap) < 2000                       # compaction ran
    assert sched.pending == 20
    sched.run_until_idle()
    assert fired == list(range(0, 2000, 100))


def test_run_until_a_predicate_or_a_limit():
    sched = Scheduler()
    count = [0]

    def tick():
        count[0] += 1
        sched.call_at(sched.time + 1.0, tick)

    sched.call_at(1.0, tick)
    assert sched.run(lambda: count[0] == 3, limit=100.0)
    assert sched.time == 3.0
    assert not sched.run(lambda: count[0] == 1000, limit=50.0)
    assert sched.time == 50.0 and count[0] == 50
    assert not sched.run(lambda: False, max_events=5)
    assert count[0] == 55
    assert sched.run_until(60.0) == 5 and sched.time == 60.0


# --------------------------------------------------------------------------- driver

def driver_rig():
    sched = Scheduler()
    net = SimNetwork(scheduler=sched)
    net.add_node(CH, "CH")
    net.add_node(B1, "B1", parent=CH, link=SLOW)
    clock = RecordingClock(sched)
    machine = Settable()
    driver = Driver(machine, net.node(CH), clock)
    return sched, net, clock, machine, driver


def test_driver_keeps_one_timer_at_the_machines_deadline():
    sched, _, clock, machine, driver = driver_rig()
    driver.start()
    assert clock.calls == [] and driver.armed_at is None
    machine.deadline = 10.0
    driver.poke()
    assert clock.calls == [("call_at", 10.0)]
    driver.poke()                                        # same deadline: left alone
    assert clock.calls == [("call_at", 10.0)]
    machine.deadline = 4.0                               # earlier: replaced
    driver.poke()
    machine.deadline = 6.0                               # later: the call at 4.0 stays
    driver.poke()
    assert clock.calls[1:] == [("cancel", 10.0), ("call_at", 4.0)]
    assert sched.pending == 1 and driver.armed_at == 4.0
    sched.run_until(5.0)                                 # it fires, finds 6.0 not reached, re-arms
    assert machine.fired == [] and driver.armed_at == 6.0
    assert clock.calls[-1] == ("call_at", 6.0) and sched.pending == 1
    sched.run_until_idle()
    assert machine.fired == [6.0] and driver.armed_at is None
    machine.deadline = 8.0
    driver.poke()
    machine.deadline = None                              # no deadline any more
    driver.poke()
    assert clock.calls[-2:] == [("call_at", 8.0), ("cancel", 8.0)]
    sched.run_until(100.0)
    assert machine.fired == [6.0] and sched.pending == 0


def test_driver_feeds_frames_with_the_time_and_sends_output():
    sched, net, _, machine, driver = driver_rig()
    at_b1 = inbox(net.node(B1))
    machine.out.append((B1, OTA, bytes(32)))
    driver.start()
    sched.run_until_idle()
    assert [(t, p) for t, _, _, p in at_b1] == [(0.5, bytes(32))]
    net.node(B1).send(CH, OTA, b"ok")
    sched.run_until_idle()
    assert machine.got == [(B1, OTA, b"ok", 0.5 + 2 * 8 / 1024 + 0.25)]
    driver.stop()
    net.node(B1).send(CH, OTA, b"ignored")
    sched.run_until_idle()
    assert len(machine.got) == 1


class Loopback:
    """A transport that delivers synchronously, from inside send(): legal for a
    real transport, never done by the simulator."""

    def __init__(self, address: int, peer: Loopback | None = None):
        self.address = address
        self.max_payload = 82
        self.on_receive = None
        self.peer = peer
        self.sent: list = []

    def send(self, dst, cluster, payload):
        self.sent.append(payload)
        self.peer.on_receive(self.address, cluster, payload)


def test_driver_keeps_output_order_when_the_transport_answers_from_inside_send():
    sched = Scheduler()
    clock = SimClock(sched)
    a, b = Loopback(1), Loopback(2)
    a.peer, b.peer = b, a
    pinger = Pinger(2, 3, timeout=1.0)
    pinger.out.append((2, OTA, b"first"))               # queued before the pinger's request
    pinger.start(0.0)
    Driver(Echo(), b, clock)
    Driver(pinger, a, clock).start()
    assert a.sent[0] == b"first"
    assert [seq for _, seq in pinger.answered] == [0, 1, 2]
    assert sched.pending == 0                            # the deadline was dropped at the end


def test_driven_ping_pong_recovers_from_loss_over_two_hops():
    trace, pinger = ping_pong_trace(seed=5, loss=0.2)
    assert pinger.left == 0
    assert [seq for _, seq in pinger.answered] == list(range(200))
    assert pinger.resends > 0


# --------------------------------------------------------------------------- burst outages


def test_a_burst_outage_loses_every_frame_sent_across_its_hop_and_only_then():
    net = premises()
    got = inbox(net.node(B2))
    net.link(B2).outage(1.0, 2.0)               # [1, 3)
    for t in (0.0, 1.0, 2.5, 3.0):
        net.scheduler.call_at(t, lambda t=t: net.node(B1).send(B2, OTA, bytes([int(t * 2)])))
    net.scheduler.run_until_idle()
    assert [p for _, _, _, p in got] == [bytes([0]), bytes([6])]
    assert net.link(B2).stats.lost == 2 and net.link(B4).stats.lost == 0
    assert net.link(B2).outages == []            # ended outages are dropped as time passes


def test_an_outage_needs_a_finite_start_and_a_positive_duration():
    net = premises()
    for start, duration in ((0.0, 0.0), (0.0, -1.0), (math.inf, 1.0), (0.0, math.nan)):
        with pytest.raises(NetError, match="outage"):
            net.link(B2).outage(start, duration)
