"""A premises run: a Communications Hub and its bridges on the simulated
network, on virtual time, with the power cuts the premises asks for."""
from __future__ import annotations

import hashlib
import pathlib
from dataclasses import dataclass

from bridge_emu.core.device import Device
from bridge_emu.emulator.bridge import Bridge, BridgeConfig, Phase
from bridge_emu.emulator.factory import factory_program
from bridge_emu.emulator.hub import HUB, Hub
from bridge_emu.emulator.zigbee_node import NodeIdentity, ZigbeeNode, eui64
from bridge_emu.errors import BridgeEmuError
from bridge_emu.keys import load_private_key, load_public_key
from bridge_emu.net.sim import LinkSpec, SimNetwork
from bridge_emu.net.transport import Driver
from bridge_emu.ota.server import ImageStore, OtaServer, Policy
from bridge_emu.premises.images import BridgeKit, ImageSet, bridge_kit
from bridge_emu.premises.schema import BridgeSpec, PremisesError, PremisesSpec, link_spec
from bridge_emu.tools.imageset import USER_INDEX


@dataclass
class BridgeSlot:
    spec: BridgeSpec
    address: int
    bridge: Bridge
    transport: object
    driver: Driver
    offered_version: str | None
    cut_done: bool = False


def device_notes(spec: PremisesSpec, b: BridgeSpec) -> dict:
    """What a device's flash file says it is, so a resume cannot take another bridge's file."""
    notes = {"bridge": b.name, "type": b.type, "premises": spec.name}
    if b.profile is not None:
        notes["profile"] = b.profile.name
    return notes


class PremisesRun:
    """A premises on the simulated network, on virtual time."""

    def __init__(self, spec: PremisesSpec, images: ImageSet, run_dir: pathlib.Path | None = None, *,
                 seed: int | None = None, bridge_config: BridgeConfig | None = None, resume: bool = False):
        """resume: the bridges' flash files in run_dir are their devices as a killed
        run left them (a power cut of the whole rig): they power on from what
        their flash holds, and the hub, whose memory went with the power, starts
        afresh. Power cuts the premises asks for are not repeated."""
        self.spec = spec
        self.images = images
        self.run_dir = run_dir
        self.net = SimNetwork(spec.seed if seed is None else seed)
        self.clock = self.net.clock
        hub_cfg = spec.hub
        policy = Policy.preset(hub_cfg.get("personality", "gbcs-ch"))
        store = ImageStore()
        offers = {}

        def serve(path: pathlib.Path, named_by: str):
            if str(path) not in offers:
                offers[str(path)] = store.add_file(path)
                if offers[str(path)] is None:
                    raise PremisesError(f"{path}: not an OTA file the hub can serve ({store.skipped[-1][1]}); "
                                        f"named by {named_by}")
            return offers[str(path)]

        for b in spec.bridges:
            if b.offer_folder:
                for path in b.offer_files:
                    offers.setdefault(str(path), store.add_file(path))   # a folder may hold other files too
                for path, sha in zip(b.offer_files, b.offer_sha256):    # an indexed folder: as indexed
                    image = offers[str(path)]
                    if image is None or hashlib.sha256(image.data).hexdigest() != sha:
                        raise PremisesError(f"{b.offer}/{USER_INDEX}: {path} is not the file indexed there "
                                            f"({'not an OTA file' if image is None else 'its SHA-256 differs'}); "
                                            f"re-run bridge-emu image index {b.offer}")
                if not any(offers[str(p)] for p in b.offer_files):
                    raise PremisesError(f"{b.offer}: no OTA file the hub can serve in this folder "
                                        f"(offered to bridge {b.name} of {spec.name})")
            elif b.offer_files:
                serve(b.offer_files[0], f"bridge {b.name}'s offer in {spec.name}")
            elif b.offer != "none":
                serve(images.file(b.type, b.offer), f"{images.index_path} for {b.type}/{b.offer}")
        self.server = OtaServer(store, policy, address=HUB)
        self.hub_log: list[dict] = []
        if spec.signing_key is None:
            signer = images.supplier_signer
        else:
            signer = None if spec.signing_key == "none" else load_private_key(spec.signing_key)
        self.hub = Hub(self.server, activation=hub_cfg.get("activation", "immediate"), log=self.hub_log,
                       seed=self.net.scheduler.rng.randrange(1 << 30), signer=signer)
        hub_transport = self.net.add_node(HUB, "hub")
        self.hub_driver = Driver(self.hub, hub_transport, self.clock)
        self.hub_driver.start()
        names = {b.name: i + 1 for i, b in enumerate(spec.bridges)}
        cfg = bridge_config or BridgeConfig(utc0=policy.utc(0.0))
        self.slots: list[BridgeSlot] = []
        self.replaced: dict[str, BridgeSlot] = {}      # bridges whose node another machine took (replace_bridge)
        for b in spec.bridges:
            kit = bridge_kit(b, images)
            prof = kit.profile
            addr = names[b.name]
            if b.parent is None:
                link = LinkSpec.zigbee(latency_s=0.005, jitter_s=0.002, loss=0.0)
                parent = HUB
            else:
                link = link_spec(b.link)
                parent = names[b.parent]
            sleepy = {"sleepy": True, "poll_interval_s": prof.poll_interval_s} if prof.sleepy else {}
            t = self.net.add_node(addr, b.name, parent=parent, link=link, **sleepy)
            path = None
            if run_dir is not None:
                (run_dir / b.name).mkdir(parents=True, exist_ok=True)
                path = run_dir / b.name / "flash.bemu"
            notes = device_notes(spec, b)
            if resume and path is not None and path.exists():
                device = self.resumed_device(path, notes)
            else:
                device = self.factory_device(path, kit, b, notes)
            # a real remote party's counter outlives its restarts; this hub's starts
            # above any the resumed bridges have accepted
            self.hub.counter = max(self.hub.counter, device.origin_counter)
            authority = None if b.authority_key is None else load_public_key(b.authority_key)
            bridge = Bridge(b.name, prof, device, supplier_key=kit.supplier_key, hub=HUB, config=cfg,
                            address=addr, authority_key=authority,
                            max_payload=t.max_payload, seed=self.net.scheduler.rng.randrange(1 << 30),
                            log_path=None if run_dir is None else run_dir / b.name / "events.jsonl")
            bridge.on_network_change = lambda up, tr=t: setattr(tr, "online", up)
            if prof.sleepy:
                bridge.on_fast_poll = lambda fast, tr=t, p=prof: setattr(
                    tr, "poll_interval_s", p.fast_poll_s if fast else p.poll_interval_s)
            # the bridge answers a coordinator's interview (ZDO, Basic) itself, as a ZigBee device does
            node = ZigbeeNode(bridge, NodeIdentity(eui64(spec.name, b.name), addr, prof),
                              lambda br=bridge: br.phase is Phase.RUNNING)
            driver = Driver(node, t, self.clock)
            offered = None
            if b.offer_files:
                img = self._chosen(b, prof, offers)
                self.server.offer(addr, img)
                offered = None if img is None else f"{img.file_version:#010x}"
            elif b.offer == "none":
                self.server.offer(addr, None)
            else:
                img = offers[str(images.file(b.type, b.offer))]
                self.server.offer(addr, img)
                offered = images.entry(b.type, b.offer)["version"]
            slot = BridgeSlot(b, addr, bridge, t, driver, offered, cut_done=resume)
            if resume:
                # what it ran before the campaign, not what it runs now it is resumed
                bridge.record.version_before = kit.factory_version()
            self.slots.append(slot)

    @staticmethod
    def _chosen(b: BridgeSpec, prof, offers: dict):
        """The image a path offer gives this bridge: the file itself; from a folder, the
        newest that fits the bridge (manufacturer, image type, hardware version), or none."""
        if not b.offer_folder:
            return offers[str(b.offer_files[0])]
        return ImageStore(offers[str(p)] for p in b.offer_files if offers[str(p)] is not None).select(
            prof.manufacturer, prof.image_type, -1, prof.hw_version)

    @staticmethod
    def factory_device(path, kit: BridgeKit, b: BridgeSpec, notes: dict) -> Device:
        prof = kit.profile
        device = Device.create(path, prof.geometry, prof.layout(), keys=[kit.manufacturer_key], notes=notes)
        try:
            factory_program(device, kit.factory.read_bytes(), prof.body)
        except (BridgeEmuError, OSError) as e:
            device.close()
            raise PremisesError(f"{kit.factory}: cannot program it as {b.name}'s factory image "
                                f"({getattr(e, 'strerror', None) or e})") from None
        return device

    @staticmethod
    def resumed_device(path: pathlib.Path, notes: dict) -> Device:
        device = Device.open(path)
        held = device.config.notes
        if any(held.get(k) != v for k, v in notes.items()):
            device.close()
            raise PremisesError(f"{path}: holds bridge {held.get('bridge')!r} ({held.get('type')}) of premises "
                                f"{held.get('premises')!r}, not {notes['bridge']!r} ({notes['type']}) of "
                                f"{notes['premises']!r}; cannot resume it as that")
        return device

    def replace_hub(self, machine) -> Driver:
        """Another machine takes the hub's place on its node (a host stack behind a
        virtual coordinator dongle). The GBCS hub is detached and sends nothing."""
        transport = self.hub_driver.transport
        self.hub_driver.stop()
        self.hub_driver = Driver(machine, transport, self.clock)
        self.hub_driver.start()
        return self.hub_driver

    # -- running

    def start(self) -> None:
        for i, s in enumerate(self.slots):
            def on(s=s):
                s.bridge.power_on(self.clock.now())
                s.driver.poke()
            self.clock.call_at(0.05 * i, on)

    def settled(self, s: BridgeSlot) -> bool:
        b = s.bridge
        if b.phase is Phase.DEAD:
            return True
        if b.phase is not Phase.RUNNING or not b.confirmed:
            return False
        if b.client.status != 0:
            return False
        if b.unacked or s.address in self.hub.pending:
            return False   # an exchange with the hub is still being repeated
        # offered nothing ("none", or a folder with nothing that fits it): settled once confirmed
        return s.offered_version is None or b.record.outcome in ("upgraded", "rolled back", "declined", "refused")

    def stall(self, s: BridgeSlot) -> str | None:
        """Why a bridge has not settled (None if it has): the step it waits on and
        what it last heard."""
        if self.settled(s):
            return None
        b = s.bridge
        p = self.hub.pending.get(s.address)
        step = (f"the hub's CS06 sent {p.tries} times, unanswered" if p is not None and b.phase is Phase.RUNNING
                and b.confirmed and not b.unacked else b.stalled_at())
        return f"{step}; {b.heard()}"

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
        """(bytes in, of how many) of the bridge's download: while it downloads, what
        its flash holds; once done, all of it (the bar stays full after the reboot)."""
        r = s.bridge.record
        c = s.bridge.client
        if c is not None and c.size and c.offset < c.size:
            return c.offset, c.size
        if r.download_done is not None:
            return r.download_bytes, r.download_bytes
        st = self.server.clients.get(s.address)
        return 0, st.offered.size if st and st.offered else 0

    def replace_bridge(self, name: str, machine) -> Driver:
        """Another machine takes bridge `name`'s place on its node (a virtual router dongle
        whose host runs the bridge elsewhere). The emulated bridge is detached: it leaves
        `slots` (so start() does not power it and done() does not wait on it) for
        `replaced`; the hub still serves its address."""
        slot = next((s for s in self.slots if s.spec.name == name), None)
        if slot is None:
            raise PremisesError(f"premises {self.spec.name}: no bridge {name!r} to replace "
                                f"(bridges: {', '.join(s.spec.name for s in self.slots) or 'none'})")
        slot.driver.stop()
        slot.bridge.on_network_change = slot.bridge.on_fast_poll = None
        self.slots.remove(slot)
        self.replaced[name] = slot
        slot.driver = Driver(machine, slot.transport, self.clock)
        slot.driver.start()
        return slot.driver
