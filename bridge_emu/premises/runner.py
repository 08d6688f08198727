"""Premises: a Communications Hub and two or three Alt HAN bridges on a
simulated network, run on virtual time.

A premises is described in TOML (built-in ones in bridge_emu/premises/*.toml
cover every configuration of the seed):

    name = "gsme-mains"
    description = "..."
    seed = 1
    [hub]
    personality = "gbcs-ch"     # or "zigpy", "herdsman"
    activation = "immediate"    # CS06 at once; "future:SECONDS" future-dated; "none" (self-activating route)
    [[bridge]]
    name = "b1"
    type = "B1"
    offer = "next"              # what the hub offers it: "next", "faulty", "none"
    [[bridge]]
    name = "b2"
    type = "B2"
    parent = "b1"               # remote bridges hang off B1 over the point-to-point link
    offer = "next"
    link = { latency_ms = 20, jitter_ms = 5, loss = 0.01, throughput_kbps = 100, payload_limit = 82 }
    power_cut = { at_fraction = 0.5 }   # optional: cut power when half the download is in

The network model: B1 talks to the hub over ZigBee (250 kbit/s, 82-byte
payloads); each remote bridge reaches B1 over the point-to-point link given.
"""
from __future__ import annotations

import importlib.resources
import json
import pathlib
import tomllib
from dataclasses import dataclass, field

from bridge_emu.codec import gbcs
from bridge_emu.emulator.bridge import Bridge, BridgeConfig
from bridge_emu.codec import ota_file as ota
from bridge_emu.codec import zcl
from bridge_emu.core.device import Device
from bridge_emu.errors import BridgeEmuError
from bridge_emu.core.flash import TEAR
from bridge_emu.keys import key_paths, load_public_key
from bridge_emu.net.sim import LinkSpec, SimNetwork
from bridge_emu.net.transport import Driver
from bridge_emu.emulator.profiles import ProfileError, profile

DEFAULT_IMAGES = pathlib.Path(__file__).resolve().parents[1] / "images"   # package data: see pyproject.toml
HUB = 0x0000
OFFERS = ("next", "faulty", "none")


class PremisesError(BridgeEmuError):
    """A premises file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class BridgeSpec:
    name: str
    type: str
    parent: str | None = None
    offer: str = "next"
    link: dict = field(default_factory=dict)
    power_cut: dict = field(default_factory=dict)


@dataclass(frozen=True)
class PremisesSpec:
    name: str
    description: str
    bridges: tuple[BridgeSpec, ...]
    hub: dict = field(default_factory=dict)
    seed: int = 1


def parse_premises(text: str, where: str = "premises") -> PremisesSpec:
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PremisesError(f"{where}: not valid TOML: {e}") from None
    try:
        bridges = tuple(BridgeSpec(
            name=str(b["name"]), type=str(b["type"]).upper(), parent=b.get("parent"),
            offer=str(b.get("offer", "next")), link=dict(b.get("link", {})),
            power_cut=dict(b.get("power_cut", {}))) for b in d.get("bridge", []))
        spec = PremisesSpec(str(d["name"]), str(d.get("description", "")), bridges, dict(d.get("hub", {})),
                            int(d.get("seed", 1)))
    except (KeyError, TypeError, ValueError) as e:
        raise PremisesError(f"{where}: missing or bad field: {e}") from None
    names = [b.name for b in bridges]
    if not 1 <= len(bridges) <= 3:
        raise PremisesError(f"{where}: a premises has 1 to 3 bridges, not {len(bridges)}")
    if len(set(names)) != len(names):
        raise PremisesError(f"{where}: bridge names repeat: {names}")
    _check_hub(spec.hub, where)
    for i, b in enumerate(bridges):
        try:
            profile(b.type)
        except ProfileError as e:
            raise PremisesError(f"{where}: bridge {b.name}: {e}") from None
        if b.offer not in OFFERS:
            raise PremisesError(f"{where}: bridge {b.name}: offer {b.offer!r} not one of {OFFERS}")
        if b.parent is not None and b.parent not in names:
            raise PremisesError(f"{where}: bridge {b.name}: parent {b.parent!r} is not a bridge here")
        if b.parent is not None and b.parent not in names[:i]:
            # the network is built in file order, from the hub outwards (no loops)
            raise PremisesError(f"{where}: bridge {b.name}: parent {b.parent!r} must be listed before it")
        if b.type == "B1" and b.parent is not None:
            raise PremisesError(f"{where}: bridge {b.name}: B1 sits at the hub; it has no parent")
        _check_bridge_tables(b, f"{where}: bridge {b.name}")
    return spec


def _check_hub(hub: dict, where: str) -> None:
    """What the run reads from [hub], checked here rather than failing mid-run."""
    from bridge_emu.ota.server import PRESETS

    personality = hub.get("personality", "gbcs-ch")
    if personality not in PRESETS:
        raise PremisesError(f"{where}: hub personality {personality!r} not one of {tuple(PRESETS)}")
    activation = hub.get("activation", "immediate")
    ok = activation in ("immediate", "none")
    if isinstance(activation, str) and activation.startswith("future:"):
        seconds = activation.split(":", 1)[1]
        ok = seconds.isascii() and seconds.isdigit()
    if not ok:
        raise PremisesError(f"{where}: hub activation {activation!r}: want immediate, none or future:SECONDS")


def _check_bridge_tables(b: BridgeSpec, where: str) -> None:
    unknown = set(b.link) - {"latency_ms", "jitter_ms", "loss", "throughput_kbps", "payload_limit"}
    if unknown:
        raise PremisesError(f"{where}: link: unknown keys {sorted(unknown)}")
    try:
        _link_spec(b.link)
    except (TypeError, ValueError, BridgeEmuError) as e:
        raise PremisesError(f"{where}: link: {e}") from None
    unknown = set(b.power_cut) - {"at_fraction", "tear", "seed"}
    if unknown:
        raise PremisesError(f"{where}: power_cut: unknown keys {sorted(unknown)}")
    if b.power_cut:
        fraction = b.power_cut.get("at_fraction", 0.5)
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
            raise PremisesError(f"{where}: power_cut: at_fraction {fraction!r} is not a number in 0..1")
        if b.power_cut.get("tear", "bits") not in TEAR:
            raise PremisesError(f"{where}: power_cut: tear {b.power_cut['tear']!r} not one of {tuple(TEAR)}")
        if not isinstance(b.power_cut.get("seed", 7), int):
            raise PremisesError(f"{where}: power_cut: seed {b.power_cut['seed']!r} is not an integer")


def load_premises(path: str | pathlib.Path) -> PremisesSpec:
    path = pathlib.Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise PremisesError(f"{path}: cannot read ({e.strerror})") from None
    return parse_premises(text, str(path))


def builtin_premises() -> dict[str, PremisesSpec]:
    out = {}
    for f in sorted(importlib.resources.files("bridge_emu.premises.builtin").iterdir()):
        if f.name.endswith(".toml"):
            spec = parse_premises(f.read_text(), f"built-in {f.name}")
            out[spec.name] = spec
    return out


def _link_spec(d: dict) -> LinkSpec:
    """The point-to-point link of a remote bridge (defaults: a sub-GHz style link)."""
    return LinkSpec(latency_s=d.get("latency_ms", 20) / 1000, jitter_s=d.get("jitter_ms", 5) / 1000,
                    loss=float(d.get("loss", 0.01)), throughput_bps=d.get("throughput_kbps", 100) * 1000,
                    payload_limit=int(d.get("payload_limit", 82)))


@dataclass
class ImageSet:
    """The firmware files the hub can offer, and the keys of the test PKI."""
    directory: pathlib.Path

    def __post_init__(self):
        index_path = self.directory / "index.json"
        try:
            self.index = json.loads(index_path.read_text())
        except (OSError, ValueError) as e:
            raise PremisesError(f"{index_path}: cannot read the image index ({e})") from None
        keys = self.directory / "keys"
        self.manufacturer_key = load_public_key(key_paths(keys, "manufacturer").public)
        self.supplier_key = load_public_key(key_paths(keys, "supplier").certificate)

    def file(self, bridge_type: str, role: str) -> pathlib.Path:
        return self.directory / self.index[f"{bridge_type}/{role}"]["file"]


def factory_program(device: Device, ota_bytes: bytes) -> None:
    """The factory writes the current firmware: the same download path, marked permanent."""
    header = ota.read_strict(ota_bytes, ota.BodyKind.GBCS).header
    device.stage(ota_bytes, image_offset=header.header_length, permanent=True)
    device.reopen()
    device.boot()
    device.confirm()


# ------------------------------------------------------------------ the hub


class Hub:
    """The Communications Hub: the OTA server, plus the GBCS side. It answers a
    Firmware Verification Successful alert with a CS06 Activate Firmware for the
    reported hash (now, or future-dated). An image, once activated on a bridge,
    is not offered to it again (nor after a rollback on the self-activating
    route: alert 0x8F43 with another version, or a Query Next Image Request from
    another version after its Upgrade End, whichever arrives first)."""

    def __init__(self, server, *, activation: str = "immediate", log: list | None = None):
        self.server = server
        self.activation = activation
        self.log = log if log is not None else []
        self.outcomes: dict[int, int] = {}     # bridge -> CS06 outcome
        self.running: dict[int, int] = {}      # bridge -> file version from its last 0x8F43
        self._out: list[tuple[int, int, bytes]] = []
        self._counter = 0x1000

    def pop_outgoing(self):
        # a new list: the server's may be its own (empty) queue, not ours to extend
        out = self.server.pop_outgoing() + self._out
        self._out = []
        return out

    def next_deadline(self):
        return self.server.next_deadline()

    def timer(self, now: float) -> None:
        self.server.timer(now)

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if cluster != gbcs.GBCS_CLUSTER:
            if cluster == zcl.OTA_CLUSTER_ID:
                self._went_back_before_alert(src, payload)
            self.server.receive(src, cluster, payload, now)
            return
        try:
            msg = gbcs.decode(payload)
        except gbcs.GbcsError as e:
            self.log.append({"t": now, "from": src, "event": "malformed", "error": str(e)})
            return
        if isinstance(msg, gbcs.ActivateResponse):
            self.outcomes[src] = msg.outcome
            self.log.append({"t": now, "from": src, "event": "cs06_response", "outcome": msg.outcome})
            if msg.outcome in (gbcs.Outcome.SUCCESS, gbcs.Outcome.ACCEPTED):
                # activated (or, future-dated, held for activation): the image was delivered
                # once, as the DCC distributes it; if the bridge rolls it back, it is not pushed
                # again (its 0x8F43 may reach the hub after its next query)
                self.server.offer(src, None)
            return
        if not isinstance(msg, gbcs.AlertMessage):
            return
        self.log.append({"t": now, "from": src, "event": "alert", "code": f"0x{msg.code:04X}"})
        if msg.code == gbcs.Alert.FIRMWARE_VERIFICATION_SUCCESSFUL and self.activation != "none":
            utc = self.server.policy.utc(now)
            when = 0
            if self.activation.startswith("future:"):
                when = utc + int(self.activation.split(":", 1)[1])
            self._counter += 1
            self._out.append((src, gbcs.GBCS_CLUSTER, gbcs.encode(
                gbcs.ActivateFirmware(self._counter, msg.data, when, msg.sequence))))
        elif msg.code == gbcs.Alert.FIRMWARE_VERSION_CHANGED and len(msg.data) == 4:
            version = int.from_bytes(msg.data, "little")
            self.running[src] = version
            offered = self.server.overrides.get(src)
            if offered is not None and version != offered.file_version:
                self.server.offer(src, None)  # it went back: do not push that image again

    def _went_back_before_alert(self, src: int, payload: bytes) -> None:
        """On the self-activating route a bridge activates once its Upgrade End
        SUCCESS is answered with a time. A Query Next Image Request from another
        version after that means it went back, even if its 0x8F43 alert has not
        arrived (frames on a link can overtake each other, or be lost): stop
        offering before the server answers the query."""
        offered = self.server.overrides.get(src)
        st = self.server.clients.get(src)
        if (offered is None or st is None or self.server.policy.upgrade_time == "wait"
                or st.upgrade_end_status != zcl.Status.SUCCESS or st.upgrade_end_version != offered.file_version):
            return
        # cluster-specific, not manufacturer-specific: byte 2 is the command id
        if len(payload) < 3 or payload[0] & 0x07 != 0x01 or payload[2] != zcl.OtaCommand.QUERY_NEXT_IMAGE_REQUEST:
            return
        try:
            cmd = zcl.decode(payload, zcl.Direction.CLIENT_TO_SERVER).command
        except zcl.ZclError:
            return  # the server answers what is malformed
        if cmd.current_file_version != offered.file_version:
            self.server.offer(src, None)


# ------------------------------------------------------------------ a run


@dataclass
class BridgeSlot:
    spec: BridgeSpec
    address: int
    bridge: Bridge
    transport: object
    driver: Driver
    offered_version: str | None
    cut_done: bool = False


class PremisesRun:
    """A premises on the simulated network, on virtual time."""

    def __init__(self, spec: PremisesSpec, images: ImageSet, run_dir: pathlib.Path | None = None, *,
                 seed: int | None = None, bridge_config: BridgeConfig | None = None):
        from bridge_emu.ota.server import ImageStore, OtaServer, Policy

        self.spec = spec
        self.images = images
        self.run_dir = run_dir
        self.net = SimNetwork(spec.seed if seed is None else seed)
        self.clock = self.net.clock
        hub_cfg = spec.hub
        policy = Policy.preset(hub_cfg.get("personality", "gbcs-ch"))
        store = ImageStore()
        offers = {}
        for b in spec.bridges:
            if b.offer != "none":
                path = images.file(b.type, b.offer)
                if str(path) not in offers:
                    offers[str(path)] = store.add_file(path)
        self.server = OtaServer(store, policy, address=HUB)
        self.hub_log: list[dict] = []
        self.hub = Hub(self.server, activation=hub_cfg.get("activation", "immediate"), log=self.hub_log)
        hub_transport = self.net.add_node(HUB, "hub")
        self.hub_driver = Driver(self.hub, hub_transport, self.clock)
        self.hub_driver.start()
        names = {b.name: i + 1 for i, b in enumerate(spec.bridges)}
        cfg = bridge_config or BridgeConfig(utc0=policy.utc(0.0))
        self.slots: list[BridgeSlot] = []
        for b in spec.bridges:
            prof = profile(b.type)
            addr = names[b.name]
            if b.parent is None:
                link = LinkSpec.zigbee(latency_s=0.005, jitter_s=0.002, loss=0.0)
                parent = HUB
            else:
                link = _link_spec(b.link)
                parent = names[b.parent]
            sleepy = {"sleepy": True, "poll_interval_s": prof.poll_interval_s} if prof.sleepy else {}
            t = self.net.add_node(addr, b.name, parent=parent, link=link, **sleepy)
            path = None
            if run_dir is not None:
                (run_dir / b.name).mkdir(parents=True, exist_ok=True)
                path = run_dir / b.name / "flash.bemu"
            device = Device.create(path, prof.geometry, prof.layout(), keys=[images.manufacturer_key],
                                   notes={"bridge": b.name, "type": b.type, "premises": spec.name})
            factory_program(device, images.file(b.type, "current").read_bytes())
            bridge = Bridge(b.name, prof, device, supplier_key=images.supplier_key, hub=HUB, config=cfg,
                            max_payload=t.max_payload, seed=self.net.scheduler.rng.randrange(1 << 30),
                            log_path=None if run_dir is None else run_dir / b.name / "events.jsonl")
            bridge.on_network_change = lambda up, tr=t: setattr(tr, "online", up)
            if prof.sleepy:
                bridge.on_fast_poll = lambda fast, tr=t, p=prof: setattr(
                    tr, "poll_interval_s", p.fast_poll_s if fast else p.poll_interval_s)
            driver = Driver(bridge, t, self.clock)
            offered = None
            if b.offer == "none":
                self.server.offer(addr, None)
            else:
                img = offers[str(images.file(b.type, b.offer))]
                self.server.offer(addr, img)
                offered = images.index[f"{b.type}/{b.offer}"]["version"]
            self.slots.append(BridgeSlot(b, addr, bridge, t, driver, offered))

    # -- running

    def start(self) -> None:
        for i, s in enumerate(self.slots):
            def on(s=s):
                s.bridge.power_on(self.clock.now())
                s.driver.poke()
            self.clock.call_at(0.05 * i, on)

    def settled(self, s: BridgeSlot) -> bool:
        b = s.bridge
        if b.phase == "dead":
            return True
        if b.phase != "running" or not b.confirmed or b.client is None:
            return False
        if b.client.status != 0:
            return False
        return s.spec.offer == "none" or b.record.outcome in ("upgraded", "rolled back")

    def done(self) -> bool:
        return all(self.settled(s) for s in self.slots)

    def step(self, until: float) -> None:
        """Advance virtual time to `until`, applying scheduled power cuts."""
        sched = self.net.scheduler
        while sched.time < until:
            sched.run_until(min(until, sched.time + 1.0))
            for s in self.slots:
                self._maybe_cut(s)

    def _maybe_cut(self, s: BridgeSlot) -> None:
        cut = s.spec.power_cut
        if not cut or s.cut_done or s.bridge.client is None or not s.bridge.client.size:
            return
        fraction = float(cut.get("at_fraction", 0.5))
        if s.bridge.client.offset >= fraction * s.bridge.client.size:
            s.cut_done = True
            s.bridge.cut_power_at_op(1, cut.get("tear", "bits"), int(cut.get("seed", 7)))

    def run(self, limit_s: float = 4 * 3600, slice_s: float = 10.0, on_slice=None) -> bool:
        self.start()
        t = 0.0
        while t < limit_s:
            t += slice_s
            self.step(t)
            if on_slice is not None:
                on_slice(self)
            if self.done():
                return True
        return False

    # -- results

    def progress(self, s: BridgeSlot) -> tuple[int, int]:
        c = s.bridge.client
        st = self.server.clients.get(s.address)
        size = c.size if c is not None and c.size else (st.offered.size if st and st.offered else 0)
        done = c.offset if c is not None and c.size else (size if s.bridge.record.download_done else 0)
        return done, size

    def results(self) -> list[dict]:
        rows = []
        for s in self.slots:
            b = s.bridge
            r = b.record
            st = self.server.clients.get(s.address)
            downtime = sum((up - down) for down, up in r.reboots if up is not None)
            row = {
                "premises": self.spec.name, "bridge": s.spec.name, "type": s.spec.type,
                "offered": s.spec.offer if s.spec.offer == "none" else f"{s.spec.offer} {s.offered_version}",
                "version_before": r.version_before, "version_after": r.version_after,
                "bytes": st.bytes_served if st else 0, "blocks": st.blocks_served if st else 0,
                "download_s": (round(r.download_done - r.download_started, 1)
                               if r.download_done is not None and r.download_started is not None else None),
                "resumed_from": r.resumed_from,
                "downtime_s": round(downtime, 2),
                "flash_erases": b.device.flash.stats["erases"] - r.erases_before,
                "alerts": r.alerts, "outcome": r.outcome if self.settled(s) else f"unsettled ({r.outcome})",
            }
            if s.bridge.profile.power == "battery":
                ns = s.transport.stats
                flash_s = b.device.flash.stats["busy_us"] / 1e6
                row["energy_mJ"] = round((ns.radio_on_s * s.bridge.profile.active_ma
                                          + flash_s * 15.0) * 3.0, 1)
                row["polls"] = ns.polls
            rows.append(row)
        return rows
