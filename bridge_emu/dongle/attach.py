"""`bridge-emu attach`: one emulated bridge of a premises on a real ZigBee network,
through a serial dongle that joins it as a router (or, for a sleepy bridge, an end
device).

The bridge is built as `bridge-emu run` builds it (its Bridge and ZigbeeNode, its
flash file at DIR/PREMISES/BRIDGE/flash.bemu, `--resume` powering on from it), but
its transport is the dongle: uart.znp_join (a TI Z-Stack stick) or uart.ezsp_join
(a Silicon Labs EmberZNet stick) drives it over a SerialUrlLink
(any pyserial URL: a real port, a pty, socket://, rfc2217://) on real time. The
bridge's network address is the one the stick joined as; its hub is 0x0000.

While the stick is down (it reset, the port vanished, it lost the network) the
bridge's frames go nowhere, as on a dead radio: its OTA client retries at the
offset its flash holds, and carries on from there once the stick has rejoined.

    bridge (emulated)  <->  DongleTransport  <->  ZnpJoiner | EzspJoiner  <->  SerialUrlLink  <->  dongle  <->  network

Both joiners give the same events (znp_join's Joined, Received, Down, Refused) and take the
same send(), so nothing here depends on the protocol but the choice of joiner.
"""
from __future__ import annotations

import asyncio
import dataclasses
import pathlib
from collections.abc import Callable

from bridge_emu.emulator.bridge import Bridge, BridgeConfig, Phase
from bridge_emu.emulator.hub import HUB
from bridge_emu.emulator.zigbee_node import NodeIdentity, ZigbeeNode, eui64
from bridge_emu.errors import BridgeEmuError
from bridge_emu.keys import load_public_key
from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.serial_link import SerialUrlLink, StreamDriver
from bridge_emu.net.sim import ZIGBEE_APS_PAYLOAD
from bridge_emu.net.transport import Driver
from bridge_emu.ota.policy import Policy
from bridge_emu.premises.images import ImageSet, bridge_kit
from bridge_emu.premises.report import record_row
from bridge_emu.premises.runner import PremisesRun, device_notes
from bridge_emu.premises.scenario import POWER_ACTIONS, Event, Scenario, ScenarioResult, Stage, Watch
from bridge_emu.premises.schema import PremisesSpec
from bridge_emu.uart import ezsp_join, znp_join

PROTOCOLS = ("znp", "ezsp")
Joiner = znp_join.ZnpJoiner | ezsp_join.EzspJoiner
UNJOINED = 0xFFFE


class AttachError(BridgeEmuError):
    """The bridge cannot be attached through the dongle."""


def check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise AttachError(f"--protocol {protocol!r}: attach drives {', '.join(PROTOCOLS)} dongles only")


def make_joiner(protocol: str, identity: NodeIdentity, seed: int) -> Joiner:
    """The host side that makes the stick join as what `identity` is (router, or end device if sleepy)."""
    make = znp_join.ZnpJoiner if protocol == "znp" else ezsp_join.EzspJoiner
    return make(identity.logical_type, identity.simple_descriptor(), seed=seed)


class DongleTransport:
    """The bridge's Transport (net.transport): frames leave through the stick while the
    bridge is on the air (on_network_change) and the stick is joined; otherwise they are
    lost, as a radio that is down loses them."""

    def __init__(self, joiner: Joiner, clock: AsyncioClock, max_payload: int = ZIGBEE_APS_PAYLOAD):
        self.joiner, self.clock = joiner, clock
        self.on_receive = None
        self.online = False                 # the bridge's view: it is RUNNING
        self.stream: StreamDriver | None = None
        self.inside_port = False            # frames sent from inside the byte machine leave with its output
        self.deaf_until = float("-inf")     # a scenario's link outage: nothing in or out until then
        self.sent = self.lost = 0
        self.outage_dropped = 0             # frames, either way, that an outage took
        self._max_payload = max_payload

    @property
    def address(self) -> int:
        joined = self.joiner.joined
        return joined.nwk if joined is not None else UNJOINED

    @property
    def max_payload(self) -> int:
        return self._max_payload

    def send(self, dst: int, cluster: int, payload: bytes) -> None:
        now = self.clock.now()
        if now < self.deaf_until:
            self.outage_dropped += 1
        if not self.online or now < self.deaf_until or not self.joiner.send(dst, cluster, payload, now):
            self.lost += 1
            return
        self.sent += 1
        if self.stream is not None and not self.inside_port:
            self.stream.poke()              # a bridge timer's frame: write it now


class Attachment:
    """One bridge of a premises, behind a ZNP or EZSP stick at `port_url`."""

    def __init__(self, spec: PremisesSpec, images: ImageSet, bridge_name: str, port_url: str, *,
                 protocol: str = "znp",
                 run_dir: pathlib.Path | None = None, resume: bool = False,
                 loop: asyncio.AbstractEventLoop | None = None,
                 announce: Callable[[str], None] = print, warn: Callable[[str], None] = print,
                 **link_options):
        """link_options: SerialUrlLink's (baudrate, flow_control)."""
        b = next((b for b in spec.bridges if b.name == bridge_name), None)
        if b is None:
            raise AttachError(f"premises {spec.name}: no bridge {bridge_name!r} (bridges: "
                              f"{', '.join(x.name for x in spec.bridges)})")
        self.spec, self.bspec, self.images = spec, b, images
        self.loop = loop or asyncio.get_running_loop()
        self.announce, self.warn = announce, warn
        self.clock = AsyncioClock(self.loop)
        kit = bridge_kit(b, images)
        prof = kit.profile
        # laid out as `bridge-emu run` lays out a premises: DIR/PREMISES/BRIDGE/
        self.dir = None if run_dir is None else run_dir / spec.name / b.name
        path = None
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            path = self.dir / "flash.bemu"
        notes = device_notes(spec, b)
        if resume and path is not None and path.exists():
            device = PremisesRun.resumed_device(path, notes)
        else:
            device = PremisesRun.factory_device(path, kit, b, notes)
        policy = Policy.preset(spec.hub.get("personality", "gbcs-ch"))
        # the bridge's UTC starts where the hub's does (virtual time 0 is now)
        config = BridgeConfig(utc0=policy.utc(0.0) - int(self.clock.now()))
        authority = None if b.authority_key is None else load_public_key(b.authority_key)
        ieee = eui64(spec.name, b.name)
        self.bridge = Bridge(b.name, prof, device, supplier_key=kit.supplier_key, hub=HUB, config=config,
                             address=UNJOINED, authority_key=authority, max_payload=ZIGBEE_APS_PAYLOAD,
                             seed=ieee & 0x3FFF_FFFF,
                             log_path=None if self.dir is None else self.dir / "events.jsonl")
        if resume:
            self.bridge.record.version_before = kit.factory_version()
        self.identity = NodeIdentity(ieee, UNJOINED, prof)
        self.protocol = protocol
        self.joiner = make_joiner(protocol, self.identity, ieee & 0xFFFF)
        self.transport = DongleTransport(self.joiner, self.clock)
        self.bridge.on_network_change = lambda up: setattr(self.transport, "online", up)
        self.node = ZigbeeNode(self.bridge, self.identity,
                               lambda: self.bridge.phase is Phase.RUNNING and self.joiner.is_joined)
        self.driver = Driver(self.node, self.transport, self.clock)
        self.joins: list[znp_join.Joined] = []
        self.downs: list[tuple[str, int | None]] = []     # (reason, the OTA offset then)
        self.refused: str | None = None
        self.errors: list[BaseException] = []
        self.result: ScenarioResult | None = None          # a scenario's, judged when it ends
        self.link = SerialUrlLink(port_url, self.loop, **link_options)
        self.port = JoinerPort(self.joiner, self.transport, self._events, self.errors)
        self.stream = StreamDriver(self.port, self.link, self.clock)
        self.transport.stream = self.stream

    def start(self) -> None:
        try:
            self.link.open()                 # LinkError at once if the port cannot be opened
        except BridgeEmuError:
            self.bridge.device.close()
            raise
        self.stream.start()
        self.bridge.power_on(self.clock.now())
        self.driver.poke()

    def stop(self) -> None:
        self.driver.stop()
        self.stream.stop()
        self.link.close()
        self.bridge.device.close()

    @property
    def offset(self) -> int | None:
        client = self.bridge.client
        return client.offset if client is not None and client.size else None

    def _events(self, now: float) -> None:
        for ev in self.joiner.pop_events():
            if isinstance(ev, znp_join.Received):
                if now < self.transport.deaf_until:
                    self.transport.outage_dropped += 1        # a scenario's link outage
                    continue
                if self.transport.on_receive is not None:
                    self.transport.on_receive(ev.src, ev.cluster, ev.payload)
            elif isinstance(ev, znp_join.Joined):
                self.joins.append(ev)
                self.bridge.address = ev.nwk          # the id a CS06 is signed for
                self.node.identity = dataclasses.replace(self.identity, nwk=ev.nwk)
                self.announce(f"{self.bspec.name}: joined as {ev.role} 0x{ev.nwk:04X} on PAN 0x{ev.pan_id:04X} "
                              f"(channel {ev.channel})")
                if self.bridge.client is not None:
                    self.bridge.client.query_now(now)  # idle: ask the hub at once
                self.driver.poke()
            elif isinstance(ev, znp_join.Down):
                self.downs.append((ev.reason, self.offset))
                self.warn(f"{self.bspec.name}: network down: {ev.reason}")
            elif isinstance(ev, znp_join.Refused):
                self.refused = ev.reason
                self.warn(f"{self.bspec.name}: {ev.reason}")


class AttachStage(Stage):
    """Where a scenario's events land when its bridge is attached through a dongle: the
    bridge's power, and link outages (its frames through the stick dropped both ways);
    the network and its hub are real, so nothing of theirs."""
    place = "a bridge attached through a dongle (the network and its hub are real)"
    actions = (*POWER_ACTIONS, "outage_s")

    def __init__(self, attachment: Attachment):
        self.attachment, self.clock = attachment, attachment.clock

    def bridge(self, name: str) -> Bridge:
        return self.attachment.bridge

    def poke(self, name: str) -> None:
        self.attachment.driver.poke()

    def act(self, ev: Event, now: float) -> None:          # outage_s, the one action here
        self.attachment.transport.deaf_until = now + float(ev.argument)


class JoinerPort:
    """The joiner as the link sees it: after every input, on_events(now) takes its
    events to what runs behind the stick; a fault there is kept in `errors` (its
    owner ends the run and reports it)."""

    def __init__(self, joiner: Joiner, transport: DongleTransport, on_events: Callable[[float], None],
                 errors: list[BaseException]):
        self.joiner, self.transport, self.on_events, self.errors = joiner, transport, on_events, errors

    def _run(self, fn, *args) -> None:
        now = args[-1]
        self.transport.inside_port = True
        try:
            fn(*args)
            self.on_events(now)
        except Exception as e:          # noqa: BLE001 - a fault ends the run; its owner reports it
            self.errors.append(e)
        finally:
            self.transport.inside_port = False

    def connection_made(self, now: float) -> None:
        self._run(self.joiner.connection_made, now)

    def connection_lost(self, now: float) -> None:
        self._run(self.joiner.connection_lost, now)

    def receive_bytes(self, data: bytes, now: float) -> None:
        self._run(self.joiner.receive_bytes, data, now)

    def timer(self, now: float) -> None:
        self._run(self.joiner.timer, now)

    def pop_bytes(self) -> bytes:
        return self.joiner.pop_bytes()

    def next_deadline(self) -> float | None:
        return self.joiner.next_deadline()


async def attach(spec: PremisesSpec, images: ImageSet, bridge_name: str, port_url: str, protocol: str = "znp",
                 run_dir: pathlib.Path | None = None, resume: bool = False, announce=print, warn=print,
                 stop: asyncio.Event | None = None,
                 ready: Callable[[Attachment], None] | None = None, scenario: Scenario | None = None,
                 **link_options) -> Attachment:
    """Run bridge `bridge_name` of `spec` through the dongle at `port_url` until `stop` is set (or the task is
    cancelled). announce(line) is told what it does, warn(line) what goes wrong; ready(attachment), if given,
    once it runs; link_options: the serial port's (baudrate, flow_control). scenario: its events are applied
    to the bridge as they come (at_s: seconds of the wall clock from the start), and it ends by itself once
    the scenario is over (premises.scenario.Watch); its result is the attachment's `result`.
    Returns the attachment (its bridge's record, its joins and downs)."""
    check_protocol(protocol)
    attachment = Attachment(spec, images, bridge_name, port_url, protocol=protocol, run_dir=run_dir,
                            resume=resume, announce=announce, warn=warn, **link_options)
    watch = None
    if scenario is not None:
        try:
            watch = Watch(scenario, AttachStage(attachment), [bridge_name],
                          lambda: [record_row(spec.name, attachment.bspec, attachment.bridge)])
        except BaseException:
            attachment.bridge.device.close()
            raise
    attachment.start()
    announce(f"{bridge_name} ({attachment.bspec.type}) of {spec.name}: attaching through {port_url}")
    if ready is not None:
        ready(attachment)
    stop = stop or asyncio.Event()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.5)
            except TimeoutError:
                pass
            if watch is not None and watch.over():
                break
            if attachment.refused is not None:
                raise AttachError(f"{port_url}: {attachment.refused}")
            if attachment.errors:
                raise AttachError(f"{bridge_name} stopped: {attachment.errors[0]!r}")
    finally:
        if watch is not None:
            attachment.result = watch.result()      # judged before the flash file is closed
        attachment.stop()
    return attachment
