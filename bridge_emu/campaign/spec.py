"""A campaign file (TOML): who is updated, under what conditions, and how the
rollout goes. Checked before anything runs; every refusal is one line naming
the file and the field, e.g. `big.toml.rollout.waves: 120 is outside 0..100`.

    name = "national"
    homes = 200000
    seed = 1
    [population]                 # weights: built-in configurations, or premises files
    ihd = 3                      # (a name that is not built-in is a path, relative to this file)
    "flats/tower.toml" = 1
    [conditions.near]            # distance classes: a weight and the point-to-point link
    weight = 3
    loss = [0.0, 0.02]           # a number, or [lo, hi]: uniform between
    latency_ms = [10, 30]
    jitter_ms = 5
    throughput_kbps = [80, 120]
    [devices]
    faulty_share = 0.01          # homes one of whose bridges gets an image that fails its self-test
    incompatible_share = 0.01    # homes one of whose bridges is offered another type's image
    b3_battery = { good = 0.9, low = 0.1 }   # low: a brown-out cuts it mid-download
    [hub]
    personality = "gbcs-ch"      # or "zigpy", "herdsman" (self-activating), or a mix of hubs by weight:
                                 # { gbcs-ch = 6, zigpy = 3, herdsman = 1 } (each home draws its hub)
    distribution_days = 2        # a wave's images reach its hubs over this many days
    activation_window = [2, 4]   # hours of the day the hub sends CS06 (gbcs-ch only)
    max_concurrent_downloads = 1 # per hub
    metering_share = 0.05        # of the home's 2.4 GHz airtime, taken by its own metering traffic
    [rollout]
    waves = [1, 10, 50, 100]     # cumulative percent of homes; the first wave is the canary
    max_concurrent_homes = 5000  # campaign-wide
    jitter_hours = 2
    soak_hours = 24              # between a wave's end and the next wave
    halt = { failure_rate = 0.05 }
    retry = { attempts = 2, after_hours = 6 }
    [fidelity]
    sample_homes = 40            # campaign homes run at full fidelity (also the fast model's check)
    calibration_runs = 3         # full-fidelity runs per calibration stratum
    limit_hours = 4              # virtual time one full-fidelity home may take to settle
"""
from __future__ import annotations

import difflib
import math
import pathlib
import tomllib
from dataclasses import dataclass, field

from bridge_emu.errors import BridgeEmuError
from bridge_emu.ota.policy import PRESETS
from bridge_emu.premises.schema import PremisesError, PremisesSpec, builtin_premises, load_premises, read_text_file

MAX_HOMES = 10_000_000
HALT_ON = ("rolled back", "stuck", "bricked", "refused")
RETRY_ON = ("stuck",)
_NUMBER = (int, float)


class CampaignError(BridgeEmuError):
    """A campaign file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Range:
    """A value drawn uniformly from lo..hi (lo == hi: fixed)."""
    lo: float
    hi: float

    def draw(self, rng) -> float:
        return self.lo if self.lo == self.hi else rng.uniform(self.lo, self.hi)


@dataclass(frozen=True)
class DistanceClass:
    name: str
    weight: float
    loss: Range
    latency_ms: Range
    jitter_ms: Range
    throughput_kbps: Range


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    homes: int
    seed: int
    population: tuple[tuple[str, float, PremisesSpec], ...]     # (name, weight, premises)
    classes: tuple[DistanceClass, ...]
    faulty_share: float = 0.0
    incompatible_share: float = 0.0
    b3_low_share: float = 0.0
    personalities: tuple[tuple[str, float], ...] = (("gbcs-ch", 1.0),)   # (hub personality, weight)
    distribution_days: float = 1.0
    activation_window: tuple[float, float] = (2.0, 4.0)
    max_concurrent_downloads: int = 1
    metering_share: float = 0.05
    waves: tuple[float, ...] = (1.0, 100.0)
    max_concurrent_homes: int = 10_000
    jitter_hours: float = 1.0
    soak_hours: float = 24.0
    halt_rate: float | None = None
    halt_on: tuple[str, ...] = HALT_ON
    retry_attempts: int = 0
    retry_after_hours: float = 6.0
    retry_on: tuple[str, ...] = RETRY_ON
    sample_homes: int = 10
    calibration_runs: int = 2
    limit_hours: float = 4.0
    where: str = field(default="campaign", compare=False)

    @property
    def hubs(self) -> tuple[str, ...]:
        """The hub personalities homes may draw (weight above 0), in file order."""
        return tuple(name for name, w in self.personalities if w > 0)


def self_activating(personality: str) -> bool:
    """zigpy and herdsman answer Upgrade End with a time: the bridge activates itself."""
    return personality != "gbcs-ch"


def _num(lo, hi, integer=False):
    return (int if integer else _NUMBER, lo, hi)


_TOP = {"name": str, "description": str, "homes": _num(1, MAX_HOMES, True), "seed": _num(0, 2**32 - 1, True),
        "population": dict, "conditions": dict, "devices": dict, "hub": dict, "rollout": dict, "fidelity": dict}
_CLASS = {"weight": _num(0, 1e9), "loss": "range:0:0.5", "latency_ms": "range:0:10000", "jitter_ms": "range:0:10000",
          "throughput_kbps": "range:1:100000"}
_DEVICES = {"faulty_share": _num(0, 1), "incompatible_share": _num(0, 1), "b3_battery": dict}
_BATTERY = {"good": _num(0, 1e9), "low": _num(0, 1e9)}
_HUB = {"personality": (str, dict), "distribution_days": _num(0, 365), "activation_window": "range:0:24",
        "max_concurrent_downloads": _num(1, 3, True), "metering_share": _num(0, 0.9)}
_ROLLOUT = {"waves": list, "max_concurrent_homes": _num(1, MAX_HOMES, True), "jitter_hours": _num(0, 24 * 365),
            "soak_hours": _num(0, 24 * 365), "halt": dict, "retry": dict}
_HALT = {"failure_rate": _num(0, 1), "on": list}
_RETRY = {"attempts": _num(0, 10, True), "after_hours": _num(0, 24 * 365), "on": list}
_FIDELITY = {"sample_homes": _num(0, 100_000, True), "calibration_runs": _num(1, 1000, True),
             "limit_hours": _num(0.01, 48)}
_OUTCOMES = ("rolled back", "stuck", "bricked", "refused", "declined")
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "a table", list: "an array",
               _NUMBER: "a number", (str, dict): "a string or a table"}


def _type_error(path: str, want, value) -> CampaignError:
    got = "a boolean" if isinstance(value, bool) else _TYPE_NAMES.get(type(value), type(value).__name__)
    return CampaignError(f"{path}: expected {_TYPE_NAMES.get(want, want)}, got {got}")


def _range(value, path: str, lo: float, hi: float) -> Range:
    """A number (fixed) or [lo, hi] (uniform), within lo..hi."""
    if isinstance(value, list):
        if len(value) != 2 or any(isinstance(v, bool) or not isinstance(v, _NUMBER) for v in value):
            raise CampaignError(f"{path}: want a number or [lo, hi] (two numbers), got {value!r}")
        a, b = value
    elif isinstance(value, _NUMBER) and not isinstance(value, bool):
        a = b = value
    else:
        raise _type_error(path, _NUMBER, value)
    for v in (a, b):
        if not (math.isfinite(v) and lo <= v <= hi):
            raise CampaignError(f"{path}: {v!r} is outside {lo:g}..{hi:g}")
    if a > b:
        raise CampaignError(f"{path}: [{a!r}, {b!r}]: lo is above hi")
    return Range(float(a), float(b))


def _check(table: dict, keys: dict, path: str) -> dict:
    """Unknown keys, wrong types and values out of range, named by their path."""
    if not isinstance(table, dict):
        raise _type_error(path, dict, table)
    out = {}
    for key, value in table.items():
        if key not in keys:
            near = difflib.get_close_matches(key, list(keys), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f"; known keys: {', '.join(keys)}"
            raise CampaignError(f"{path}.{key}: unknown key{hint}")
        want = keys[key]
        if isinstance(want, str) and want.startswith("range:"):
            _, lo, hi = want.split(":")
            out[key] = _range(value, f"{path}.{key}", float(lo), float(hi))
            continue
        lo = hi = None
        if isinstance(want, tuple) and len(want) == 3:
            want, lo, hi = want
        if isinstance(value, bool) or not isinstance(value, want):
            raise _type_error(f"{path}.{key}", want, value)
        if lo is not None and not (math.isfinite(value) and lo <= value <= hi):
            raise CampaignError(f"{path}.{key}: {value!r} is outside {lo:g}..{hi:g}")
        out[key] = value
    return out


def _outcome_list(value: list, path: str) -> tuple[str, ...]:
    for v in value:
        if v not in _OUTCOMES:
            raise CampaignError(f"{path}: {v!r} is not one of {', '.join(_OUTCOMES)}")
    return tuple(value)


def parse_campaign(text: str, where: str = "campaign", base: pathlib.Path | None = None) -> CampaignSpec:
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise CampaignError(f"{where}: not valid TOML: {e}") from None
    top = _check(d, _TOP, where)
    for key in ("name", "homes", "population"):
        if key not in top:
            raise CampaignError(f"{where}.{key}: missing")
    population = _population(top["population"], f"{where}.population", base)
    classes = _classes(top.get("conditions", {}), f"{where}.conditions")
    dev = _check(top.get("devices", {}), _DEVICES, f"{where}.devices")
    battery = _check(dev.get("b3_battery", {"good": 1}), _BATTERY, f"{where}.devices.b3_battery")
    total = sum(battery.values())
    if total <= 0:
        raise CampaignError(f"{where}.devices.b3_battery: the weights add up to 0")
    hub = _check(top.get("hub", {}), _HUB, f"{where}.hub")
    personalities = _personalities(hub.get("personality", "gbcs-ch"), f"{where}.hub.personality")
    window = hub.get("activation_window", Range(2, 4))
    if window.hi <= window.lo:
        raise CampaignError(f"{where}.hub.activation_window: [{window.lo:g}, {window.hi:g}] is empty "
                            "(hours of the day, start before end)")
    roll = _check(top.get("rollout", {}), _ROLLOUT, f"{where}.rollout")
    waves = _waves(roll.get("waves", [100]), f"{where}.rollout.waves")
    halt = _check(roll.get("halt", {}), _HALT, f"{where}.rollout.halt")
    retry = _check(roll.get("retry", {}), _RETRY, f"{where}.rollout.retry")
    fid = _check(top.get("fidelity", {}), _FIDELITY, f"{where}.fidelity")
    homes = top["homes"]
    return CampaignSpec(
        name=top["name"], homes=homes, seed=top.get("seed", 1), population=population, classes=classes,
        faulty_share=dev.get("faulty_share", 0.0), incompatible_share=dev.get("incompatible_share", 0.0),
        b3_low_share=battery.get("low", 0) / total,
        personalities=personalities, distribution_days=hub.get("distribution_days", 1.0),
        activation_window=(window.lo, window.hi), max_concurrent_downloads=hub.get("max_concurrent_downloads", 1),
        metering_share=hub.get("metering_share", 0.05), waves=waves,
        max_concurrent_homes=roll.get("max_concurrent_homes", 10_000), jitter_hours=roll.get("jitter_hours", 1.0),
        soak_hours=roll.get("soak_hours", 24.0), halt_rate=halt.get("failure_rate"),
        halt_on=_outcome_list(halt.get("on", list(HALT_ON)), f"{where}.rollout.halt.on"),
        retry_attempts=retry.get("attempts", 0), retry_after_hours=retry.get("after_hours", 6.0),
        retry_on=_outcome_list(retry.get("on", list(RETRY_ON)), f"{where}.rollout.retry.on"),
        sample_homes=min(fid.get("sample_homes", 10), homes), calibration_runs=fid.get("calibration_runs", 2),
        limit_hours=fid.get("limit_hours", 4.0), where=where)


def _population(table: dict, path: str, base: pathlib.Path | None) -> tuple:
    if not isinstance(table, dict):
        raise _type_error(path, dict, table)
    if not table:
        raise CampaignError(f"{path}: empty: name at least one configuration with a weight")
    built = builtin_premises()
    out = []
    for name, weight in table.items():
        where = f"{path}.{name}" if name.replace("-", "").replace("_", "").isalnum() else f'{path}."{name}"'
        if isinstance(weight, bool) or not isinstance(weight, _NUMBER):
            raise _type_error(where, _NUMBER, weight)
        if not (math.isfinite(weight) and weight >= 0):
            raise CampaignError(f"{where}: weight {weight!r} must be 0 or more")
        if name in built:
            spec = built[name]
        else:
            file = pathlib.Path(name).expanduser()
            if base is not None and not file.is_absolute():
                file = base / file
            if not file.is_file():
                near = difflib.get_close_matches(name, list(built), n=1)
                hint = f" (did you mean {near[0]!r}?)" if near else f"; built-in: {', '.join(built)}"
                raise CampaignError(f"{where}: neither a built-in configuration nor a premises file{hint}")
            try:
                spec = load_premises(file)
            except PremisesError as e:
                raise CampaignError(f"{where}: {e}") from None
        out.append((name, float(weight), spec))
    if sum(w for _, w, _ in out) <= 0:
        raise CampaignError(f"{path}: the weights add up to 0")
    return tuple(out)


def _personalities(value, path: str) -> tuple[tuple[str, float], ...]:
    """One hub personality for every home, or a table of them by weight."""
    table = {value: 1.0} if isinstance(value, str) else value
    for name, weight in table.items():
        if name not in PRESETS:
            raise CampaignError(f"{path}{'' if isinstance(value, str) else '.' + name}: {name!r} is not one of "
                                f"{', '.join(PRESETS)}")
        if isinstance(weight, bool) or not isinstance(weight, _NUMBER) or not (math.isfinite(weight) and weight >= 0):
            raise CampaignError(f"{path}.{name}: weight {weight!r} must be a number, 0 or more")
    if sum(table.values()) <= 0:
        raise CampaignError(f"{path}: the weights add up to 0")
    return tuple((name, float(w)) for name, w in table.items())


def _classes(table: dict, path: str) -> tuple[DistanceClass, ...]:
    if not isinstance(table, dict):
        raise _type_error(path, dict, table)
    if not table:   # the built-in premises' own link
        table = {"default": {"loss": 0.01, "latency_ms": 20, "jitter_ms": 5, "throughput_kbps": 100}}
    out = []
    for name, cls in table.items():
        c = _check(cls, _CLASS, f"{path}.{name}")
        out.append(DistanceClass(name, float(c.get("weight", 1.0)), c.get("loss", Range(0.01, 0.01)),
                                 c.get("latency_ms", Range(20, 20)), c.get("jitter_ms", Range(5, 5)),
                                 c.get("throughput_kbps", Range(100, 100))))
    if sum(c.weight for c in out) <= 0:
        raise CampaignError(f"{path}: the class weights add up to 0")
    return tuple(out)


def _waves(value: list, path: str) -> tuple[float, ...]:
    if not value:
        raise CampaignError(f"{path}: empty: give cumulative percentages ending at 100, e.g. [1, 10, 100]")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, _NUMBER):
            raise _type_error(f"{path}[{i + 1}]", _NUMBER, v)
        if not (math.isfinite(v) and 0 < v <= 100):
            raise CampaignError(f"{path}[{i + 1}]: {v!r} is outside 0..100 (cumulative percent of homes)")
        if i and v <= value[i - 1]:
            raise CampaignError(f"{path}[{i + 1}]: {v!r} is not above the wave before ({value[i - 1]!r}); "
                                "waves are cumulative percentages")
    if value[-1] != 100:
        raise CampaignError(f"{path}: the last wave must reach 100 (percent of homes), not {value[-1]!r}")
    return tuple(float(v) for v in value)


def load_campaign(path: str | pathlib.Path) -> CampaignSpec:
    path = pathlib.Path(path)
    return parse_campaign(read_text_file(path, CampaignError), str(path), path.parent)
