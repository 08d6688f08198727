"""A premises in which one bridge's place is taken by a virtual dongle (ZNP or EZSP) that
joins the premises' network as a router (or end device): the device side for
`bridge-emu attach`, so an emulated bridge on a host can be tested through a
serial dongle without hardware.

The premises runs as in `bridge-emu run`, paced by the wall clock (speed times
faster, if asked), with its own GBCS hub and OTA server; bridge NAME's node on the
simulated network is the dongle's radio. A host opens the dongle's UART (a socket
or a pty) and joins it to the network: ZNP, a router or end device by NV 0x0087 and
network steering; EZSP, an active scan that hears the premises' beacon, then
joinNetwork. Once joined, the hub serves the host's bridge at that node's address.
Both NCP machines offer the same radio side (pop_network, network_received,
on_network, end_device, reset, radio_network), so everything here is shared.

    hub (GBCS, OTA server)  <->  simulated network  <->  RadioNode  <->  NCP (znp|ezsp)  <->  link  <->  host
"""
from __future__ import annotations

import asyncio
import hashlib
import pathlib

from bridge_emu.codec import zdo
from bridge_emu.dongle.rig import (
    EZSP_DEFAULT,
    MAX_SPEED,
    MIN_SPEED,
    DongleError,
    HostPort,
    PacedRig,
    check_ezsp_version,
    serve,
)
from bridge_emu.emulator.hub import HUB
from bridge_emu.emulator.zigbee_node import HA_PROFILE, eui64
from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.realtime import RealTimePacer
from bridge_emu.net.serial_link import StreamDriver
from bridge_emu.net.transport import ZDO
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.runner import BridgeSlot, PremisesRun
from bridge_emu.premises.schema import PremisesSpec
from bridge_emu.uart.ezsp_ncp import EzspCoordinator
from bridge_emu.uart.znp_ncp import DEVICE_TYPE_CAPABILITIES, JoinableNetwork, ZnpDongle

PROTOCOLS = ("znp", "ezsp")

BROADCASTS = range(0xFFF8, 0x10000)


def premises_network(spec: PremisesSpec, slot: BridgeSlot) -> JoinableNetwork:
    """The premises' HAN as a joining dongle finds it: PAN, channel and key stable per premises; the joiner
    gets the address of the bridge it stands in for, under that bridge's parent."""
    digest = hashlib.sha256(f"bridge-emu/{spec.name}/han".encode()).digest()
    parent = slot.transport.parent.address if slot.transport.parent is not None else HUB
    return JoinableNetwork(pan_id=1 + int.from_bytes(digest[:2], "little") % 0xFFF6,
                           extended_pan_id=int.from_bytes(digest[2:10], "little"), channel=11 + digest[10] % 16,
                           nwk=slot.address, parent_nwk=parent, network_key=digest[16:32])


class RadioNode:
    """The dongle's radio on the simulated network, in a bridge's node: on the air exactly
    while the dongle is joined. A frame Machine (net.transport) towards the network; the
    duck type rig.HostPort drives (take_from_host, join_ready)."""

    def __init__(self, run: PremisesRun, slot: BridgeSlot, ncp: ZnpDongle | EzspCoordinator, clock: AsyncioClock):
        self.run, self.slot, self.ncp, self.clock = run, slot, ncp, clock
        self.transport = slot.transport
        self.profile = slot.bridge.profile
        self.stream: StreamDriver | None = None
        self._outgoing: list[tuple[int, int, bytes]] = []
        self.frames_in = self.frames_out = 0
        self.transport.online = False
        if self.transport.sleepy:
            self.transport.poll_interval_s = 0.0

    # -- network side

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if not self.ncp.on_network:
            return
        self.frames_in += 1
        if cluster >= ZDO:
            self.ncp.network_received(src, 0, 0, zdo.ZDO_PROFILE, cluster - ZDO, payload, 255, self.clock.now())
        else:
            self.ncp.network_received(src, 1, 1, HA_PROFILE, cluster, payload, 255, self.clock.now())
        if self.stream is not None:
            self.stream.poke()

    def timer(self, now: float) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def pop_outgoing(self):
        out, self._outgoing = self._outgoing, []
        return out

    # -- host side (called by HostPort after every input of the dongle)

    def take_from_host(self) -> None:
        nodes, me = self.run.net.nodes, self.transport.address
        for aps in self.ncp.pop_network():
            if not self.ncp.on_network:
                continue
            key = ZDO | aps.cluster if aps.profile == zdo.ZDO_PROFILE else aps.cluster
            dst = HUB if aps.dst_nwk in BROADCASTS else aps.dst_nwk   # no flooding modelled: the hub hears it
            if dst in nodes and dst != me:
                self.frames_out += 1
                self._outgoing.append((dst, key, aps.payload))

    def join_ready(self, now: float) -> None:
        """The node is on the air while the dongle is on the network; an end device polls its parent."""
        up = self.ncp.on_network
        if up != self.transport.online:
            self.transport.online = up
        if self.transport.sleepy:
            interval = (self.profile.fast_poll_s or self.profile.poll_interval_s) if up else 0.0
            if not self.ncp.end_device:
                interval = min(interval, 0.05) if up else 0.0   # a router stand-in listens: poll often
            if interval != self.transport.poll_interval_s:
                self.transport.poll_interval_s = interval


def joining_ncp(protocol: str, ieee: int, nv, *, seed: int, device_types: int, ezsp_version: int):
    """The NCP machine of a joining dongle. device_types: what the build can be (1 coordinator, 2 router,
    4 end device; for EZSP the router bit is the ZigBee PRO library's router capability)."""
    if protocol == "znp":
        return ZnpDongle(ieee, nv, seed=seed, device_types=device_types)
    check_ezsp_version(ezsp_version)
    return EzspCoordinator(ieee, nv, seed=seed, version=ezsp_version, device_types=device_types)


class RouterDongleRig(PacedRig):
    """A premises whose bridge `bridge` is a virtual ZNP or EZSP dongle on `link` (serve_tcp, open_pty)."""

    def __init__(self, spec: PremisesSpec, images: ImageSet, link, bridge: str, *, protocol: str = "znp",
                 run_dir: pathlib.Path | None = None, loop: asyncio.AbstractEventLoop | None = None,
                 resume: bool = False, seed: int = 1, speed: float = 1.0,
                 device_types: int = DEVICE_TYPE_CAPABILITIES, ezsp_version: int = EZSP_DEFAULT):
        if protocol not in PROTOCOLS:
            raise DongleError(f"protocol {protocol!r}: a router-role dongle is emulated for "
                              f"{' and '.join(PROTOCOLS)}")
        if not MIN_SPEED <= speed <= MAX_SPEED:
            raise DongleError(f"speed {speed!r}: want {MIN_SPEED:g} to {MAX_SPEED:g} times the wall clock")
        self.loop = loop or asyncio.get_running_loop()
        self.run_dir = None if run_dir is None else run_dir / spec.name
        self.nv_path = None if run_dir is None else self.run_dir / f"dongle-{bridge}-{protocol}.json"
        try:
            self.ncp = joining_ncp(protocol, eui64(spec.name, f"dongle-{bridge}"), self._load_nv(), seed=seed,
                                   device_types=device_types, ezsp_version=ezsp_version)
        except ValueError as e:      # a saved NV the NCP cannot take
            raise DongleError(f"{self.nv_path}: {e}") from None
        self.run = PremisesRun(spec, images, self.run_dir, resume=resume)
        slot = next((s for s in self.run.slots if s.spec.name == bridge), None)
        if slot is None:
            raise DongleError(f"premises {spec.name}: no bridge {bridge!r} (bridges: "
                              f"{', '.join(b.name for b in spec.bridges)})")
        self.slot = slot
        self.ncp.radio_network = premises_network(spec, slot)
        self.clock = AsyncioClock(self.loop)
        self.pacer = RealTimePacer(self.run.net.scheduler, self.loop, speed)
        self.radio = RadioNode(self.run, slot, self.ncp, self.clock)
        self.network_driver = self.run.replace_bridge(bridge, self.radio)
        self.port = HostPort(self.ncp, self.radio, self.pacer, self.network_driver)
        self.link = link
        self.stream = StreamDriver(self.port, link, self.clock)
        self.radio.stream = self.stream


    # -- what a test does to a real dongle

    def reset_dongle(self) -> None:
        """Its reset pin: RAM state (endpoints, the joined state) lost; the host hears of it (ZNP: SYS.ResetInd,
        EZSP: an unasked RSTACK)."""
        self.ncp.reset(self.clock.now())
        self.radio.join_ready(self.run.net.scheduler.time)      # off the air at once
        self.stream.poke()

    def drop_link(self) -> None:
        """The cable pulled: the host's connection is closed (it may connect again)."""
        drop = getattr(self.link, "drop", None)
        if drop is None:
            raise DongleError(f"{type(self.link).__name__}: no host connection to drop")
        drop()


async def serve_router(spec: PremisesSpec, images: ImageSet, bridge: str, *, listen: str | None, pty: bool,
                       run_dir: pathlib.Path | None, resume: bool, allow_remote: bool, announce, warn,
                       stop: asyncio.Event | None = None, speed: float = 1.0, protocol: str = "znp",
                       ezsp_version: int = EZSP_DEFAULT, scenario=None):
    """Run a premises whose bridge `bridge` is a router-role dongle until `stop` is set, or
    its scenario (for the premises' other bridges and its hub) is over (rig.serve)."""
    return await serve(spec, images, protocol, listen=listen, pty=pty, run_dir=run_dir, resume=resume,
                       allow_remote=allow_remote, announce=announce, warn=warn, stop=stop, speed=speed,
                       scenario=scenario,
                       make_rig=lambda link, loop: RouterDongleRig(
                           spec, images, link, bridge, protocol=protocol, run_dir=run_dir, loop=loop, resume=resume,
                           speed=speed, ezsp_version=ezsp_version))
