"""Every home of a campaign, compact: a few bytes per home in flat arrays (its
configuration, distance class, battery and hub as small codes; its clock draws;
its bridges' records as indices into one table of records), so a million homes
take tens of megabytes, not a list of a million objects.

A worker fills one shard (homes lo..hi) and sends it back as bytes (encode);
the parent copies each shard into place (put: a memcpy per field), so merging
the shards is linear and costs next to nothing beside the workers' work.
"""
from __future__ import annotations

from array import array

from bridge_emu.campaign.homes import Home, uniforms
from bridge_emu.campaign.spec import CampaignSpec

WIDTH = 3                      # bridges per home at most (a premises has 2 or 3)
BATTERIES = ("good", "low")
# field: (typecode, values per home)
FIELDS = {"config": ("B", 1), "cls": ("B", 1), "battery": ("B", 1), "hub": ("B", 1),
          "ready_h": ("d", 1), "act_u": ("d", 1), "recs": ("i", WIDTH)}


def clock_draws(spec: CampaignSpec, index: int) -> tuple[float, float]:
    """(hours from its wave's start to the home's images reaching its hub, the
    uniform that places its CS06 in the window): the home's own, by its index."""
    u = uniforms(spec.seed, "clock", index)
    return u[0] * spec.distribution_days * 24 + u[1] * spec.jitter_hours, u[2]


class Codes:
    """The small codes a home's names go by, in the campaign file's order."""

    def __init__(self, spec: CampaignSpec):
        self.configs = [name for name, _, _ in spec.population]
        self.classes = [c.name for c in spec.classes]
        self.hubs = [name for name, _ in spec.personalities]
        self._config = {n: k for k, n in enumerate(self.configs)}
        self._cls = {n: k for k, n in enumerate(self.classes)}
        self._hub = {n: k for k, n in enumerate(self.hubs)}

    def of(self, home: Home) -> tuple[int, int, int, int]:
        return (self._config[home.config], self._cls[home.cls], BATTERIES.index(home.battery),
                self._hub[home.personality])


class Shard:
    """Homes lo..hi as a worker fills them."""

    def __init__(self, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.arrays = {f: array(code) for f, (code, _) in FIELDS.items()}

    def add(self, codes: tuple[int, int, int, int], draws: tuple[float, float], recs: tuple[int, ...]) -> None:
        a = self.arrays
        for f, v in zip(("config", "cls", "battery", "hub"), codes):
            a[f].append(v)
        a["ready_h"].append(draws[0])
        a["act_u"].append(draws[1])
        a["recs"].extend(recs + (-1,) * (WIDTH - len(recs)))

    def encode(self) -> tuple:
        """(lo, hi, {field: bytes}): cheap to pickle, whatever the shard's size."""
        return self.lo, self.hi, {f: a.tobytes() for f, a in self.arrays.items()}


class Fleet:
    """All homes: per field one array over the campaign."""

    def __init__(self, spec: CampaignSpec):
        n = spec.homes
        self.n = n
        self.arrays = {f: array(code, bytes(array(code).itemsize * per * n)) for f, (code, per) in FIELDS.items()}
        self.full: set[int] = set()        # homes run at full fidelity

    def __getattr__(self, name):
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None

    def put(self, encoded: tuple) -> None:
        lo, hi, data = encoded
        for f, raw in data.items():
            a = self.arrays[f]
            size = a.itemsize * FIELDS[f][1]
            with memoryview(a) as mv, mv.cast("B") as b:
                b[lo * size:hi * size] = raw

    def put_home(self, index: int, codes: tuple[int, int, int, int], draws: tuple[float, float],
                 recs: tuple[int, ...]) -> None:
        a = self.arrays
        for f, v in zip(("config", "cls", "battery", "hub"), codes):
            a[f][index] = v
        a["ready_h"][index], a["act_u"][index] = draws
        a["recs"][index * WIDTH:(index + 1) * WIDTH] = array("i", recs + (-1,) * (WIDTH - len(recs)))
