"""One home of a campaign: what it is (drawn from the campaign's distributions
by its own seed), and, at full fidelity, what its update does (a real
PremisesRun in memory: every block through the client, server, codec and C
flash).

A home's draws come from random.Random(f"{seed}/{stream}/{index}") (string
seeds go through SHA-512, so they do not depend on the process, the worker or
PYTHONHASHSEED): the same home is the same whatever engine runs it.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import random
import struct
from dataclasses import dataclass

from bridge_emu.campaign.spec import CampaignSpec, self_activating
from bridge_emu.premises.images import DEFAULT_IMAGES, ImageSet
from bridge_emu.premises.report import bridge_rows
from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.schema import PremisesSpec

# What each bridge of a built-in configuration carries (docs/bridge-model.md: the
# meter and the IHD reach the hub through the bridges; one that reboots takes its
# links down). Other premises: B4 carries the display, B2/B3 the meter, B1 all.
CARRIES = {
    "ihd": {"b1": ("display",), "b4": ("display",)},
    "gsme-mains": {"b1": ("meter",), "b2": ("meter",)},
    "gsme-battery": {"b1": ("meter",), "b3": ("meter",)},
    "both-close-mains": {"b1": ("meter", "display"), "b2": ("meter", "display")},
    "both-close-battery": {"b1": ("meter", "display"), "b3": ("meter", "display")},
    "both-apart-mains": {"b1": ("meter", "display"), "b2": ("meter",), "b4": ("display",)},
    "both-apart-battery": {"b1": ("meter", "display"), "b3": ("meter",), "b4": ("display",)},
}
HUB_HOP_BPS = 250_000          # the 2.4 GHz ZigBee channel every frame of the home crosses
FRAME_OVERHEAD = 30 + 45       # MAC/NWK/APS/ZCL bytes of a block response, plus its request


# A bridge's result, as a plain tuple. download_s includes flash_busy_dl_s: the flash
# work done while the download was held (the blob's erases, copy-swap's pre-erase of
# the save area, an erase at a resume), which stalls the block writes on a real part.
RECORD_FIELDS = ("bridge", "type", "offer", "outcome", "cause", "download_s", "downtime_s", "flash_erases",
                 "energy_mJ", "airtime_s", "offline_after", "flash_busy_dl_s")
FLASH_MA, VOLTS = 15.0, 3.0   # premises/report.py's battery model: flash-busy current, supply


_EIGHT_U64 = struct.Struct("<8Q")
_TO_UNIT = 2.0 ** -64


def rng_for(seed: int, stream: str, index: int) -> random.Random:
    return random.Random(f"{seed}/{stream}/{index}")


def uniforms(seed: int, stream: str, index: int) -> tuple[float, ...]:
    """Eight uniforms in [0, 1) for (seed, stream, index): a hash, far cheaper than
    seeding a Random where a few draws are all that is needed."""
    d = hashlib.blake2b(f"{seed}/{stream}/{index}".encode(), digest_size=64).digest()
    return tuple(x * _TO_UNIT for x in _EIGHT_U64.unpack(d))


@dataclass(frozen=True)
class Home:
    index: int
    config: str
    cls: str                       # distance class
    links: tuple                   # per bridge: its link dict (None for B1, at the hub)
    faulty: str | None = None      # the bridge given the faulty image
    incompatible: str | None = None  # the bridge offered another type's image
    battery: str = "good"          # a B3's battery ("low": a brown-out cuts it mid-download)
    cut_at: float | None = None    # where in its download the brown-out lands
    net_seed: int = 0
    personality: str = "gbcs-ch"   # the hub's


def _weighted(rng: random.Random, items, weight):
    items = [i for i in items if weight(i) > 0]
    total = sum(weight(i) for i in items)
    x = rng.random() * total
    for i in items:
        x -= weight(i)
        if x < 0:
            return i
    return items[-1]


def draw_home(spec: CampaignSpec, index: int, stream: str = "home", force: dict | None = None,
              rng: random.Random | None = None) -> Home:
    """The home at index, drawn from the campaign's distributions. force fixes
    some draws (config, cls, faulty_type, incompatible_type, battery) for the
    calibration strata, and personality; the draws are made in the same order either
    way (the hub is drawn last, and only when the campaign mixes hubs). rng:
    rng_for(seed, stream, index), given by a caller that goes on drawing from it."""
    force = force or {}
    rng = rng or rng_for(spec.seed, stream, index)
    name, _, premises = _weighted(rng, spec.population, lambda p: p[1])
    cls = _weighted(rng, spec.classes, lambda c: c.weight)
    if "config" in force:
        name, _, premises = next(p for p in spec.population if p[0] == force["config"])
    if "cls" in force:
        cls = next(c for c in spec.classes if c.name == force["cls"])
    links = []
    for b in premises.bridges:
        link = None
        if b.parent is not None:
            link = {"loss": round(cls.loss.draw(rng), 5), "latency_ms": round(cls.latency_ms.draw(rng), 2),
                    "jitter_ms": round(cls.jitter_ms.draw(rng), 2),
                    "throughput_kbps": round(cls.throughput_kbps.draw(rng), 2),
                    "payload_limit": int(b.link.get("payload_limit", 82))}
        links.append(link)
    names = [b.name for b in premises.bridges]
    faulty = incompatible = None
    if rng.random() < spec.faulty_share:
        faulty = rng.choice(names)
    if rng.random() < spec.incompatible_share:
        incompatible = rng.choice(names)
    battery = "low" if rng.random() < spec.b3_low_share else "good"
    cut_at = round(rng.uniform(0.1, 0.9), 3)
    net_seed = rng.randrange(1 << 31)
    types = {b.name: b.type for b in premises.bridges}
    if "faulty_type" in force:
        faulty = next((n for n in names if types[n] == force["faulty_type"]), None)
    if "incompatible_type" in force:
        incompatible = next((n for n in names if types[n] == force["incompatible_type"]), None)
    if "battery" in force:
        battery = force["battery"]
    if incompatible == faulty:
        faulty = None   # one offer per bridge: the other type's image wins
    has_b3 = "B3" in types.values()
    hubs = spec.hubs
    hub = hubs[0] if len(hubs) == 1 else _weighted(rng, spec.personalities, lambda p: p[1])[0]
    hub = force.get("personality", hub)
    return Home(index, name, cls.name, tuple(links), faulty, incompatible, battery if has_b3 else "good",
                cut_at if has_b3 and battery == "low" else None, net_seed, hub)


def premises_of(spec: CampaignSpec) -> dict[str, PremisesSpec]:
    return {name: p for name, _, p in spec.population}


def carries(config: str, premises: PremisesSpec) -> dict[str, tuple[str, ...]]:
    if config in CARRIES:
        return CARRIES[config]
    out = {}
    for b in premises.bridges:
        out[b.name] = {"B4": ("display",), "B2": ("meter",), "B3": ("meter",)}.get(b.type, ())
    b1 = next(b.name for b in premises.bridges if b.type == "B1")
    out[b1] = tuple(sorted({k for v in out.values() for k in v})) or ("meter",)
    return out


def offer_kind(home: Home, bridge: str) -> str:
    if home.incompatible == bridge:
        return "incompatible"
    if home.faulty == bridge:
        return "faulty"
    return "next"


@functools.lru_cache(maxsize=1)
def _images() -> ImageSet:
    return ImageSet(DEFAULT_IMAGES)


def premises_spec(spec: CampaignSpec, home: Home) -> PremisesSpec:
    """The premises the home is: its configuration with the drawn links, offers,
    brown-out and its hub's personality."""
    base = premises_of(spec)[home.config]
    images = _images()
    bridges = []
    for b, link in zip(base.bridges, home.links):
        kw = {}
        if link is not None:
            kw["link"] = link
        kind = offer_kind(home, b.name)
        if kind == "incompatible" and b.offer in ("next", "faulty"):
            other = images.file("B4" if b.type == "B1" else "B1", "next")
            kw.update(offer=str(other), offer_files=(other,), offer_folder=False)
        elif kind == "faulty" and b.offer == "next":
            kw["offer"] = "faulty"
        if b.type == "B3" and home.cut_at is not None:
            kw["power_cut"] = {"at_fraction": home.cut_at, "tear": "bits", "seed": home.index % 1000}
        bridges.append(dataclasses.replace(b, **kw))
    hub = dict(base.hub, personality=home.personality,
               activation="none" if self_activating(home.personality) else "immediate")
    return dataclasses.replace(base, name=base.name, bridges=tuple(bridges), hub=hub, seed=home.net_seed)


def classify(row: dict) -> tuple[str, str]:
    """(outcome, cause) of a bridge's result row."""
    outcome = row["outcome"]
    if outcome.startswith("unsettled"):
        return "stuck", row.get("stalled", "did not settle").split(";")[0]
    return outcome, {"upgraded": "", "rolled back": "the new firmware failed its self-test; the bootloader "
                     "reverted", "declined": "the offer was not this device's to take",
                     "refused": "the image failed its checks", "bricked": "nothing left to boot"}.get(outcome, "")


def full_fidelity(spec: CampaignSpec, home: Home) -> tuple:
    """Run the home as a real PremisesRun in memory: per bridge, a record
    (RECORD_FIELDS)."""
    pspec = premises_spec(spec, home)
    run = PremisesRun(pspec, _images(), None, seed=home.net_seed)
    # the flash's busy time so far is the factory programming, not the update's
    factory_s = [s.bridge.device.flash.stats["busy_us"] / 1e6 for s in run.slots]
    try:
        run.run(limit_s=spec.limit_hours * 3600)
        rows = bridge_rows(run)
        phases = [s.bridge.phase for s in run.slots]
        busy_s = [s.bridge.device.flash.stats["busy_us"] / 1e6 for s in run.slots]
        boots_s = [sum(e["flash_busy_ms"] for e in s.bridge.events if e["event"] == "boot") / 1000
                   for s in run.slots]
    finally:
        for s in run.slots:
            s.bridge.device.close()
    out = []
    for b, row, phase, f0, f1, boot in zip(pspec.bridges, rows, phases, factory_s, busy_s, boots_s):
        outcome, cause = classify(row)
        blocks, nbytes = row["blocks"], row["bytes"]
        download_s = row["download_s"]
        if download_s is None and outcome == "stuck":
            download_s = spec.limit_hours * 3600   # it held its slot for the whole limit
        # the update's flash work outside its boots is the download's (the boots' is in downtime_s)
        dl_flash = round(max(0.0, f1 - f0 - boot), 3) if download_s else 0.0
        energy = float(row.get("energy_mJ", 0.0))
        if "energy_mJ" in row:
            energy = round(energy - f0 * FLASH_MA * VOLTS, 1)
        out.append((b.name, b.type, offer_kind(home, b.name), outcome, cause, round((download_s or 0.0) + dl_flash, 3),
                    float(row["downtime_s"]), int(row["flash_erases"]), energy,
                    round((nbytes + blocks * FRAME_OVERHEAD) * 8 / HUB_HOP_BPS, 3),
                    str(phase) != "running", dl_flash))
    return tuple(out)
