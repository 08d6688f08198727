"""A hostile OTA client on a real ZigBee network, through a serial stick: fuzz the
OTA server of whatever coordinator the stick joins (zigpy's, zigbee-herdsman's, a
Communications Hub test harness) as bridge_emu.testing.fuzz_server fuzzes one on
the simulated network.

The stick joins as a router (uart.znp_join or uart.ezsp_join, as `attach` drives
it); the client answers the coordinator's interview as a bridge does (ZigbeeNode:
node and simple descriptors, Basic reads, the OTA cluster as a client cluster), so
a host stack that serves only devices it knows will serve it; then it plays its
plan (bridge_emu.ota.hostile) against the server at `server`, and every answer is
checked against the ZCL OTA rules. A stick that goes down stops the plan where it
is (frames meanwhile are lost, as a dead radio loses them) and it goes on once the
stick has rejoined.

    HostileClient  <->  ZigbeeNode  <->  DongleTransport  <->  joiner  <->  SerialUrlLink  <->  stick
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable

from bridge_emu.dongle.attach import UNJOINED, AttachError, DongleTransport, JoinerPort, check_protocol, make_joiner
from bridge_emu.emulator.hub import HUB
from bridge_emu.emulator.profiles import BridgeProfile, profile
from bridge_emu.emulator.zigbee_node import NodeIdentity, ZigbeeNode, eui64
from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.serial_link import SerialUrlLink, StreamDriver
from bridge_emu.net.transport import Driver
from bridge_emu.ota.hostile import HostileClient, Step
from bridge_emu.uart import znp_join


class DongleFuzz:
    """A HostileClient behind the stick at `port_url`; it starts its plan once joined."""

    def __init__(self, plan: list[Step], port_url: str, *, protocol: str = "znp", server: int = HUB,
                 gap_s: float = 0.05, after_join_s: float = 1.0, as_profile: BridgeProfile | None = None,
                 name: str = "hostile",
                 loop: asyncio.AbstractEventLoop | None = None,
                 announce: Callable[[str], None] = print, warn: Callable[[str], None] = print, **link_options):
        """after_join_s: how long after the join the plan starts (the coordinator's interview and
        routes come first: a frame sent at the instant of joining was seen lost through the virtual
        sticks, and a plan does not retry); as_profile: what it says it is when interviewed (default
        a B4: a mains router); link_options: the serial port's (baudrate, flow_control)."""
        check_protocol(protocol)
        self.loop = loop or asyncio.get_running_loop()
        self.clock = AsyncioClock(self.loop)
        self.announce, self.warn = announce, warn
        self.after_join_s = after_join_s
        self.client = HostileClient(list(plan), server=server, gap_s=gap_s, start=float("inf"))
        ieee = eui64("fuzz", name)
        self.identity = NodeIdentity(ieee, UNJOINED, as_profile or profile("B4"))
        self.joiner = make_joiner(protocol, self.identity, ieee & 0xFFFF)
        self.transport = DongleTransport(self.joiner, self.clock)
        self.node = ZigbeeNode(self.client, self.identity, lambda: self.joiner.is_joined)
        self.driver = Driver(self.node, self.transport, self.clock)
        self.joins: list[znp_join.Joined] = []
        self.downs: list[str] = []
        self.refused: str | None = None
        self.errors: list[BaseException] = []
        self.link = SerialUrlLink(port_url, self.loop, **link_options)
        self.port = JoinerPort(self.joiner, self.transport, self._events, self.errors)
        self.stream = StreamDriver(self.port, self.link, self.clock)
        self.transport.stream = self.stream

    def start(self) -> None:
        self.link.open()
        self.stream.start()

    def stop(self) -> None:
        self.driver.stop()
        self.stream.stop()
        self.link.close()

    def _events(self, now: float) -> None:
        for ev in self.joiner.pop_events():
            if isinstance(ev, znp_join.Received):
                if self.transport.on_receive is not None:
                    self.transport.on_receive(ev.src, ev.cluster, ev.payload)
            elif isinstance(ev, znp_join.Joined):
                self.joins.append(ev)
                self.transport.online = True
                self.node.identity = NodeIdentity(self.identity.ieee, ev.nwk, self.identity.profile)
                self.announce(f"joined as {ev.role} 0x{ev.nwk:04X} on PAN 0x{ev.pan_id:04X} (channel {ev.channel})")
                if len(self.joins) == 1:
                    self.client.resume_at(now + self.after_join_s)   # once there is a network to play it on
                    self.driver.start()
                self.driver.poke()
            elif isinstance(ev, znp_join.Down):
                self.transport.online = False
                self.downs.append(ev.reason)
                self.warn(f"network down: {ev.reason}")
            elif isinstance(ev, znp_join.Refused):
                self.refused = ev.reason
                self.warn(ev.reason)


async def fuzz_through_dongle(plan: list[Step], port_url: str, protocol: str = "znp", *, server: int = HUB,
                              gap_s: float = 0.05, after_join_s: float = 1.0, settle_s: float = 5.0,
                              join_timeout_s: float = 60.0,
                              limit_s: float = 600.0, announce=print, warn=print, **options) -> HostileClient:
    """Play `plan` against the OTA server at `server` on the network the stick at `port_url`
    joins, then listen `settle_s` more; returns the client (its findings and what it heard).
    AttachError if the stick cannot join (refused, or not within join_timeout_s), stops with
    a fault, or the plan is not played within limit_s (seconds of wall time)."""
    fuzz = DongleFuzz(plan, port_url, protocol=protocol, server=server, gap_s=gap_s, after_join_s=after_join_s,
                      announce=announce, warn=warn, **options)
    fuzz.start()
    started = fuzz.clock.now()
    try:
        while not (fuzz.joins and fuzz.client.done):
            await asyncio.sleep(0.1)
            waited = fuzz.clock.now() - started
            if fuzz.refused is not None:
                raise AttachError(f"{port_url}: {fuzz.refused}")
            if fuzz.errors:
                raise AttachError(f"the fuzzer stopped: {fuzz.errors[0]!r}")
            if not fuzz.joins and waited > join_timeout_s:
                raise AttachError(f"{port_url}: the stick did not join a network within {join_timeout_s:g} s")
            if waited > limit_s:
                raise AttachError(f"{port_url}: the plan was not played within {limit_s:g} s "
                                  f"(stick down: {', '.join(fuzz.downs) or 'never'})")
        await asyncio.sleep(settle_s)
    finally:
        fuzz.stop()
    return fuzz.client
