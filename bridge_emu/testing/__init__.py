"""bridge-emu for your own test suite: emulated bridges and premises a test drives
on virtual time, with power cuts where it wants them. The pytest plugin
(bridge_emu.testing.plugin, installed with the package) hands these out as
fixtures; they work without pytest too.

    from bridge_emu.testing import Premises

    site = Premises.open("ihd")                       # a built-in name, a TOML file or text, or a spec
    site.advance(30)                                   # 30 s of virtual time
    site.cut_power("b4", at_op=5)                      # the 5th flash operation from now is cut
    assert site.run_until_settled()
    assert site.outcome("b4") == "upgraded"
"""
from __future__ import annotations

import json
import pathlib

from bridge_emu.core.device import Device
from bridge_emu.emulator.bridge import Bridge
from bridge_emu.emulator.factory import factory_program
from bridge_emu.emulator.profiles import profile as builtin_profile
from bridge_emu.errors import BridgeEmuError
from bridge_emu.premises.images import DEFAULT_IMAGES, ImageSet, bridge_kit
from bridge_emu.premises.runner import BridgeSlot, PremisesRun
from bridge_emu.premises.schema import (
    BridgeSpec,
    PremisesSpec,
    builtin_premises,
    load_premises,
    parse_document,
    parse_premises,
    parse_profile,
    with_hub,
)
from bridge_emu.tools.devices import device_report

__all__ = ["Premises", "premises_spec", "one_bridge", "one_bridge_spec", "flash_file", "fuzz_server", "ota_server"]

DEFAULT_LIMIT_S = 4 * 3600.0


class Premises:
    """A premises on virtual time: the hub, its bridges, their flash files.
    Time moves only when the test moves it (advance, run_until_settled)."""

    def __init__(self, spec: PremisesSpec, *, images: ImageSet | None = None, run_dir: pathlib.Path | None = None,
                 seed: int | None = None, hub: dict | None = None):
        if hub:
            spec = with_hub(spec, hub)
        self.spec = spec
        self.images = images or ImageSet(DEFAULT_IMAGES)
        self.run_dir = None if run_dir is None else pathlib.Path(run_dir) / spec.name
        self.run = PremisesRun(spec, self.images, self.run_dir, seed=seed)
        self.run.start()

    @classmethod
    def open(cls, what: str | pathlib.Path | PremisesSpec, **kw) -> Premises:
        """A built-in premises by name, a TOML file, TOML text, or a PremisesSpec."""
        return cls(premises_spec(what), **kw)

    # -- time

    @property
    def now(self) -> float:
        """Virtual seconds since the premises was powered."""
        return self.run.clock.now()

    def advance(self, seconds: float) -> None:
        """Run the premises for `seconds` of virtual time (power cuts it names apply)."""
        if not seconds >= 0:
            raise ValueError(f"advance by {seconds!r}: want seconds >= 0")
        self.run.step(self.now + seconds)

    def run_until_settled(self, limit_s: float = DEFAULT_LIMIT_S, slice_s: float = 10.0) -> bool:
        """Advance until every bridge has settled (upgraded, rolled back, declined,
        refused, or offered nothing and confirmed), at most limit_s more seconds."""
        give_up = self.now + limit_s
        while not self.run.done():
            if self.now >= give_up:
                return False
            self.run.step(min(give_up, self.now + slice_s))
        return True

    # -- the bridges

    def slot(self, name: str) -> BridgeSlot:
        for s in self.run.slots:
            if s.spec.name == name:
                return s
        raise KeyError(f"no bridge {name!r} in {self.spec.name} (bridges: "
                       f"{', '.join(s.spec.name for s in self.run.slots)})")

    def bridge(self, name: str) -> Bridge:
        return self.slot(name).bridge

    def outcome(self, name: str) -> str:
        return self.bridge(name).record.outcome

    def version(self, name: str) -> str:
        """The version the bridge runs now."""
        m = self.bridge(name).manifest
        return "" if m is None else str(m.version)

    def events(self, name: str) -> list[dict]:
        """The bridge's event log, oldest first."""
        return list(self.bridge(name).events)

    def stall(self, name: str) -> str | None:
        """Why the bridge has not settled, or None."""
        return self.run.stall(self.slot(name))

    # -- faults

    def cut_power(self, name: str, *, at_op: int = 1, tear: str = "none", seed: int = 0) -> None:
        """Cut the bridge's power at its at_op-th flash operation from now (1: the next
        one), tearing it as `tear` says ("none", "bits", "zeros", ...): a real power
        cut, decided by the C flash model; the bridge comes back after its off time."""
        if at_op < 1:
            raise ValueError(f"at_op {at_op}: want 1 or more")
        self.bridge(name).cut_power_at_op(at_op, tear, seed)

    def run_with_faults(self, name: str, schedule, limit_s: float = DEFAULT_LIMIT_S) -> bool:
        """Apply a fault schedule (bridge_emu.strategies.PowerCut records: at a virtual
        time, a cut at a flash operation count) to one bridge, then run until settled."""
        for cut in sorted(schedule, key=lambda c: c.at_s):
            if cut.at_s > self.now:
                self.advance(cut.at_s - self.now)
            self.cut_power(name, at_op=cut.at_op, tear=cut.tear, seed=cut.seed)
        return self.run_until_settled(limit_s)

    def power_off(self, name: str) -> None:
        """Cut the bridge's power now, between flash operations; it powers on again after its off time."""
        s = self.slot(name)
        s.bridge.power_off(self.now)
        s.driver.poke()

    # -- what a failing test shows

    def report(self, events: int = 30) -> str:
        """Each bridge's state, outcome and last events, as text."""
        lines = [f"premises {self.spec.name} at t={self.now:.1f} s virtual"]
        for s in self.run.slots:
            b = s.bridge
            lines.append(f"  {s.spec.name} ({s.spec.type}): {b.phase.value}, runs {self.version(s.spec.name)}, "
                         f"outcome {b.record.outcome}" + (f"; stalled: {self.stall(s.spec.name)}"
                                                           if not self.run.settled(s) else ""))
            for e in b.events[-events:]:
                lines.append("    " + json.dumps(e, sort_keys=True))
            try:
                state = device_report(b.device)       # reads only: looking at a device never changes it
                lines.append("    flash: " + json.dumps({"state": state["state"], "slots": [
                    {k: slot[k] for k in ("slot", "image", "valid", "error")} for slot in state["slots"]]}))
            except BridgeEmuError as e:
                lines.append(f"    flash: cannot be read ({e})")
        return "\n".join(lines)

    def close(self) -> None:
        for s in self.run.slots:
            s.bridge.device.close()


def premises_spec(what: str | pathlib.Path | PremisesSpec) -> PremisesSpec:
    """A built-in premises by name, a TOML file, TOML text, or a PremisesSpec, as a PremisesSpec."""
    if isinstance(what, PremisesSpec):
        return what
    if isinstance(what, pathlib.Path) or (isinstance(what, str) and what.endswith(".toml") and "\n" not in what):
        return load_premises(what)
    if "\n" in what or "=" in what:
        return parse_premises(what, "premises text")
    built = builtin_premises()
    if what not in built:
        raise BridgeEmuError(f"no built-in premises {what!r} (built-in: {', '.join(sorted(built))})")
    return built[what]


def one_bridge_spec(bridge_type: str, *, offer: str = "next", name: str | None = None,
                    link: dict | None = None, hub: dict | None = None, profile: dict | None = None) -> PremisesSpec:
    """A premises around one bridge of a type: the bridge and, for a remote type, the B1
    it reaches the hub through (a B1 gets a B4 beside it); the other is offered nothing.
    The remote's link loses nothing unless `link` says otherwise (a premises link table).
    profile: the bridge is a user's own device of that base type, as a premises'
    [profile] table gives it (manufacturer, image_type, geometry, keys, factory...;
    relative paths from the current folder)."""
    t = builtin_profile(bridge_type.upper()).bridge_type
    name = name or t.lower()
    remote_link = {"loss": 0.0, **(link or {})}
    this = {"name": name, "offer": offer, **({"profile": "own"} if profile else {"type": t})}
    if t == "B1":
        bridges = [this, {"name": "other", "type": "B4", "parent": name, "offer": "none", "link": remote_link}]
    else:
        bridges = [{"name": "b1", "type": "B1", "offer": "none"}, {**this, "parent": "b1", "link": remote_link}]
    doc = {"name": f"{name}-site", "bridge": bridges, **({"hub": hub} if hub else {}),
           **({"profile": {"own": {"base": t, **profile}}} if profile else {})}
    return parse_document(doc, f"one {t}")


def one_bridge(bridge_type: str, *, offer: str = "next", name: str | None = None, link: dict | None = None,
               profile: dict | None = None, **kw) -> Premises:
    """A Premises of one_bridge_spec (the other keywords as Premises takes them)."""
    return Premises(one_bridge_spec(bridge_type, offer=offer, name=name, link=link, profile=profile), **kw)


def flash_file(path: pathlib.Path, bridge_type: str, *, role: str = "current",
               images: ImageSet | None = None, profile: dict | None = None) -> Device:
    """A flash file of a factory-fresh bridge of a type, programmed with the image
    set's image in `role` (current, next or faulty), booted and confirmed; with
    `profile` (a [profile] table, as one_bridge_spec takes it), a user's own device
    of that base type, programmed with the profile's factory image."""
    images = images or ImageSet(DEFAULT_IMAGES)
    t = builtin_profile(bridge_type.upper()).bridge_type
    own = None if profile is None else parse_profile("own", {"base": t, **profile})
    kit = bridge_kit(BridgeSpec("flash", t, profile=own), images)
    if own is not None and own.factory is not None and role != "current":
        raise BridgeEmuError(f"role {role!r}: a profile with a factory image is programmed with that image")
    prof = kit.profile
    device = Device.create(pathlib.Path(path), prof.geometry, prof.layout(), keys=[kit.manufacturer_key],
                           notes={"type": t, **({"profile": "own"} if own else {})})
    factory_program(device, (kit.factory if role == "current" else images.file(t, role)).read_bytes(),
                    prof.body)
    return device


def ota_server(files, personality: str = "zigpy"):
    """bridge-emu's own OTA server (a Machine) serving these OTA files (paths or bytes)
    with a hub personality: a target for fuzz_server."""
    from bridge_emu.ota.server import ImageStore, OtaServer, Policy
    store = ImageStore()
    for f in files:
        image = store.add_bytes(f, "<bytes>") if isinstance(f, bytes | bytearray) else store.add_file(f)
        if image is None:
            raise BridgeEmuError(f"not an OTA file the server can serve: {store.skipped[-1][1]}")
    return OtaServer(store, Policy.preset(personality))


def fuzz_server(server, plan, *, client_address: int = 0x2B04, latency_s: float = 0.005, gap_s: float = 0.05,
                settle_s: float = 120.0, seed: int = 0):
    """Play a hostile client's plan (bridge_emu.ota.hostile) against an OTA server
    machine on the simulated network (the server at 0x0000, the client one hop away,
    nothing lost), then let the server settle; the client holds the findings."""
    from bridge_emu.net.sim import LinkSpec, SimNetwork
    from bridge_emu.net.transport import Driver
    from bridge_emu.ota.hostile import HostileClient
    net = SimNetwork(seed)
    Driver(server, net.add_node(0x0000, "server"), net.clock).start()
    client = HostileClient(list(plan), server=0x0000, gap_s=gap_s)
    transport = net.add_node(client_address, "hostile", parent=0x0000, link=LinkSpec.zigbee(latency_s=latency_s))
    driver = Driver(client, transport, net.clock)
    driver.start()
    driver.poke()
    while not client.done:
        net.scheduler.run_until(net.clock.now() + 1.0)
    net.scheduler.run_until(net.clock.now() + settle_s)
    return client
