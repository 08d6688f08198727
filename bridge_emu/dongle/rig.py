"""A premises behind a virtual coordinator dongle: real ZigBee host stacks meet
emulated bridges.

The premises runs as it does in `bridge-emu run` (the same simulated network,
bridges and flash files), paced by the wall clock, except that the hub's place
is taken by a coordinator dongle (bridge_emu.uart: ZNP or EZSP) whose UART is a
byte link a host stack opens. The host becomes the hub: whatever OTA server it
runs serves the bridges. Each bridge joins the host's network once the host
permits joining, and answers the interview itself (bridge_emu.emulator.zigbee_node).

    radio side (simulated network)  <->  Coordinator adapter  <->  NCP machine  <->  link  <->  host stack
"""
from __future__ import annotations

import asyncio
import json
import pathlib

from bridge_emu.codec import zdo
from bridge_emu.codec.ezsp import TABLE_VERSIONS
from bridge_emu.emulator.bridge import Phase
from bridge_emu.emulator.zigbee_node import HA_PROFILE, eui64
from bridge_emu.errors import BridgeEmuError
from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.realtime import RealTimePacer
from bridge_emu.net.serial_link import StreamDriver
from bridge_emu.net.transport import ZDO
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.report import bridge_rows, record_row
from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.scenario import RunStage, Scenario, ScenarioResult, Watch
from bridge_emu.premises.schema import PremisesSpec
from bridge_emu.uart.ezsp_ncp import DEFAULT_VERSION as EZSP_DEFAULT
from bridge_emu.uart.ezsp_ncp import EzspCoordinator
from bridge_emu.uart.znp_ncp import ZnpCoordinator

PROTOCOLS = ("znp", "ezsp")
EZSP_VERSIONS = TABLE_VERSIONS        # what the virtual EZSP NCP can speak (the host asks for one)
JOIN_RETRY_S = 2.0           # a bridge that is up but not joined asks again this often
# A sleepy end device polls fast for a while after it joins, as real ones do, so the
# coordinator's interview does not wait a slow poll (7.5 s on B3) per request.
AFTER_JOIN_FAST_POLL_S = 60.0
BROADCASTS = range(0xFFF8, 0x10000)
# Faster than life is for quick test cycles: past a few tens the bridges' own
# timeouts (3 s virtual per block) fall below a host's reply time.
MIN_SPEED, MAX_SPEED = 0.1, 100.0


class DongleError(BridgeEmuError):
    """The virtual dongle cannot be set up."""


def check_ezsp_version(version: int) -> None:
    if version not in EZSP_VERSIONS:
        raise DongleError(f"EZSP version {version}: want one of {', '.join(map(str, EZSP_VERSIONS))}")


class Coordinator:
    """The hub's node on the simulated network, carrying frames between the
    bridges and the NCP machine, and joining bridges while the host permits it.
    A frame Machine (net.transport) towards the network."""

    def __init__(self, run: PremisesRun, ncp, clock: AsyncioClock):
        self.run, self.ncp, self.clock = run, ncp, clock
        self.joined: set[int] = set()
        self._outgoing: list[tuple[int, int, bytes]] = []
        self._next_join = 0.0
        self.stream: StreamDriver | None = None       # set by the rig: poked after the NCP is fed

    # -- network side

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if src not in self.joined:
            return                                    # not on the host's network
        if cluster >= ZDO:
            self.ncp.network_received(src, 0, 0, zdo.ZDO_PROFILE, cluster - ZDO, payload, 255, self.clock.now())
        else:
            self.ncp.network_received(src, 1, 1, HA_PROFILE, cluster, payload, 255, self.clock.now())
        self._flush_host()

    def timer(self, now: float) -> None:
        self._next_join = now + JOIN_RETRY_S
        self.join_ready(now)

    def next_deadline(self) -> float | None:
        return self._next_join

    def pop_outgoing(self):
        out, self._outgoing = self._outgoing, []
        return out

    def join_ready(self, now: float) -> None:
        if not self.ncp.permit_joining:
            return
        for s in self.run.slots:
            if s.address in self.joined or s.bridge.phase is not Phase.RUNNING:
                continue
            parent = s.transport.parent.address if s.transport.parent is not None else 0
            me = s.driver.machine.identity        # the bridge's ZigbeeNode knows who it is
            if self.ncp.device_joined(s.address, me.ieee, parent, self.clock.now(), mac_capabilities=me.mac_capability):
                self.joined.add(s.address)
                s.bridge.poll_fast_for(now, AFTER_JOIN_FAST_POLL_S)
                s.driver.poke()                           # its timers changed from outside its driver
        self._flush_host()

    # -- host side

    def take_from_host(self) -> None:
        """What the host asked the NCP to send over the air, onto the network."""
        for aps in self.ncp.pop_network():
            key = ZDO | aps.cluster if aps.profile == zdo.ZDO_PROFILE else aps.cluster
            if aps.dst_nwk in BROADCASTS:
                targets = sorted(self.joined)
            else:
                targets = [aps.dst_nwk] if aps.dst_nwk in self.joined else []
            for dst in targets:
                self._outgoing.append((dst, key, aps.payload))

    def _flush_host(self) -> None:
        if self.stream is not None:
            self.stream.poke()


class HostPort:
    """The NCP as the byte link sees it: after every input, what the host asked
    to send over the air goes onto the (paced) network."""

    def __init__(self, ncp, coordinator: Coordinator, pacer: RealTimePacer, driver):
        self.ncp, self.coordinator, self.pacer, self.driver = ncp, coordinator, pacer, driver

    def connection_made(self, now: float) -> None:
        self.ncp.connection_made(now)

    def connection_lost(self, now: float) -> None:
        self.ncp.connection_lost(now)

    def receive_bytes(self, data: bytes, now: float) -> None:
        self.ncp.receive_bytes(data, now)
        self._to_network()

    def timer(self, now: float) -> None:
        self.ncp.timer(now)
        self._to_network()

    def pop_bytes(self) -> bytes:
        return self.ncp.pop_bytes()

    def next_deadline(self) -> float | None:
        return self.ncp.next_deadline()

    def _to_network(self) -> None:
        self.pacer.sync()
        self.coordinator.take_from_host()
        self.driver.poke()               # sends at the network's current (paced) time
        self.coordinator.join_ready(self.pacer.scheduler.time)
        self.pacer.wake()


class PacedRig:
    """What every rig has: a premises run paced by the wall clock (`run`, `pacer`), an NCP
    machine (`ncp`) whose NV is kept at `nv_path`, on a byte link (`link`, `stream`).
    own_hub: the premises' GBCS hub serves its bridges (False: a host stack does)."""
    nv_path: pathlib.Path | None
    own_hub = True

    def _load_nv(self):
        if self.nv_path is None or not self.nv_path.exists():
            return None
        try:
            return json.loads(self.nv_path.read_text())
        except (OSError, ValueError) as e:
            raise DongleError(f"{self.nv_path}: cannot read the dongle's saved state ({e})") from None

    def save_nv(self) -> None:
        if self.nv_path is not None:
            tmp = self.nv_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.ncp.nv_snapshot()))
            tmp.replace(self.nv_path)

    def start(self) -> None:
        self.run.start()
        self.pacer.start()
        self.stream.start()

    def stop(self) -> None:
        self.stream.stop()
        self.pacer.stop()
        self.save_nv()
        self.link.close()


class DongleRig(PacedRig):
    """A premises behind a virtual dongle on `link` (serial_link: serve_tcp, open_pty)."""
    own_hub = False

    def __init__(self, spec: PremisesSpec, images: ImageSet, protocol: str, link, *,
                 run_dir: pathlib.Path | None = None, loop: asyncio.AbstractEventLoop | None = None,
                 resume: bool = False, seed: int = 1, speed: float = 1.0, ezsp_version: int = EZSP_DEFAULT):
        """speed: virtual time runs this many times the wall clock (the radio, the
        bridges' timers and their flash); the host's own timers stay its own."""
        if protocol not in PROTOCOLS:
            raise DongleError(f"protocol {protocol!r}: want one of {', '.join(PROTOCOLS)}")
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise DongleError(f"speed {speed!r}: want {MIN_SPEED:g} to {MAX_SPEED:g} times the wall clock")
        self.loop = loop or asyncio.get_running_loop()
        # laid out as `bridge-emu run` lays out a premises: DIR/PREMISES/BRIDGE/, the dongle's NV beside them
        self.run_dir = None if run_dir is None else run_dir / spec.name
        self.nv_path = None if run_dir is None else self.run_dir / f"dongle-{protocol}.json"
        nv = self._load_nv()
        ieee = eui64(spec.name, f"dongle-{protocol}")
        if protocol == "ezsp":
            check_ezsp_version(ezsp_version)
        try:
            self.ncp = (ZnpCoordinator(ieee, nv, seed=seed) if protocol == "znp"
                        else EzspCoordinator(ieee, nv, seed=seed, version=ezsp_version))
        except ValueError as e:      # a saved NV the NCP cannot take
            raise DongleError(f"{self.nv_path}: {e}") from None
        self.run = PremisesRun(spec, images, self.run_dir, resume=resume)
        self.clock = AsyncioClock(self.loop)
        self.pacer = RealTimePacer(self.run.net.scheduler, self.loop, speed)
        self.coordinator = Coordinator(self.run, self.ncp, self.clock)
        self.network_driver = self.run.replace_hub(self.coordinator)
        self.port = HostPort(self.ncp, self.coordinator, self.pacer, self.network_driver)
        self.link = link
        self.stream = StreamDriver(self.port, link, self.clock)
        self.coordinator.stream = self.stream



def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT (PORT 0: any free port); [v6]:PORT for IPv6."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise DongleError(f"--listen {text!r}: want HOST:PORT, e.g. 127.0.0.1:0")
    return host.strip("[]") or "127.0.0.1", int(port)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


async def serve(spec: PremisesSpec, images: ImageSet, protocol: str, *, listen: str | None, pty: bool,
                run_dir: pathlib.Path | None, resume: bool, allow_remote: bool, announce, warn,
                stop: asyncio.Event | None = None, speed: float = 1.0, ezsp_version: int = EZSP_DEFAULT,
                make_rig=None, scenario: Scenario | None = None) -> ScenarioResult | None:
    """Run a premises behind a virtual dongle until `stop` is set (or the task is
    cancelled). announce(line) is told where it listens, first; warn(line) any warning.
    make_rig(link, loop): another rig on the link (router_rig's), instead of the coordinator's.
    scenario: its events are applied to the premises as they come (on its paced virtual
    time), and it ends by itself once the scenario is over (premises.scenario.Watch);
    the scenario's result is returned, judged when it ends."""
    from bridge_emu.net.serial_link import open_pty, serve_tcp

    loop = asyncio.get_running_loop()
    if pty:
        link = open_pty(loop)
        where = link.name
    else:
        host, port = parse_listen(listen or "127.0.0.1:0")
        if host not in LOOPBACK and not allow_remote:
            raise DongleError(f"--listen {host}: not a loopback address; whoever connects controls the emulated "
                              "devices, so binding it needs --allow-remote")
        link = await serve_tcp(host, port)
        where = link.url
        if host not in LOOPBACK:
            warn(f"listening on {host}, not loopback: anyone who can reach it controls the emulated devices")
    try:
        rig = (make_rig(link, loop) if make_rig is not None else
               DongleRig(spec, images, protocol, link, run_dir=run_dir, loop=loop, resume=resume, speed=speed,
                         ezsp_version=ezsp_version))
    except BaseException:
        link.close()
        raise
    watch = None
    if scenario is not None:
        try:
            names = [s.spec.name for s in rig.run.slots]
            # with the host as the hub, the hub's counts are the host's: the bridges' own records say it all
            rows = ((lambda: bridge_rows(rig.run)) if rig.own_hub else
                    (lambda: [record_row(rig.run.spec.name, s.spec, s.bridge) for s in rig.run.slots]))
            stage = RunStage(rig.run, images, hub=rig.own_hub)
            if rig.run.replaced:                  # a router dongle's: that bridge is the host's
                stage.place = f"the premises around the dongle in {', '.join(rig.run.replaced)}'s place"
            watch = Watch(scenario, stage, names, rows)
        except BaseException:
            rig.link.close()
            raise
    rig.start()
    announce(f"listening on {where}")
    stop = stop or asyncio.Event()
    saved = loop.time()
    try:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 5.0 if watch is None else 0.25)
            except TimeoutError:
                pass
            if loop.time() - saved >= 5.0:
                rig.save_nv()              # a kill loses at most five seconds of the dongle's NV
                saved = loop.time()
            if watch is not None and watch.over():
                break
            if rig.pacer.errors:
                raise DongleError(f"the premises stopped: {rig.pacer.errors[0]!r}")
            if rig.stream.errors:
                raise DongleError(f"the virtual {protocol} dongle failed: {rig.stream.errors[0]!r}")
    finally:
        rig.stop()
    return None if watch is None else watch.result()
