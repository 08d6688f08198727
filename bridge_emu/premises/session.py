"""The engine of `bridge-emu demo` and `bridge-emu run`: premises on the
simulated network, in a run directory of our own, with their result rows.
Presentation (progress bars, tables) is the command line's.

The demo runs two built-in premises with nothing else to start:
- "gsme-battery" (2 bridges: B1 at the hub, battery B3 at the gas meter), with
  the power cut at B3 when 40 % of its download is in: it resumes from its flash;
- "both-apart-mains" (3 bridges: B1, B2 at the gas meter, B4 at the IHD), where
  B4 is given the faulty image: it installs, fails its self-test, and the
  bootloader rolls it back.
The hub holds new images for every bridge type and runs the GBCS flow:
verification alerts, CS06 activation, trial boot, confirmation.
"""
from __future__ import annotations

import dataclasses
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from bridge_emu.errors import BridgeEmuError
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.report import bridge_rows
from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.schema import PremisesSpec, builtin_premises

MARKER = ".bridge-emu-run"
DEFAULT_LIMIT_S = 4 * 3600


def demo_premises() -> list[PremisesSpec]:
    built = builtin_premises()
    two = built["gsme-battery"]
    two = dataclasses.replace(two, bridges=tuple(
        dataclasses.replace(b, power_cut={"at_fraction": 0.4, "tear": "bits", "seed": 3}) if b.type == "B3" else b
        for b in two.bridges))
    three = built["both-apart-mains"]
    three = dataclasses.replace(three, bridges=tuple(
        dataclasses.replace(b, offer="faulty") if b.type == "B4" else b for b in three.bridges))
    return [two, three]


DEVICE_FILES = ("flash.bemu", "events.jsonl")   # what a run writes for each bridge


def prepare_dir(base: pathlib.Path) -> pathlib.Path:
    """A run directory we own: created, or cleared of what an earlier run made.

    Only the files a run writes (each bridge's flash file and event log, and the
    folders that held them once empty) are removed: anything else a user put in
    the folder stays. A non-empty folder without our marker is refused.
    """
    try:
        if base.exists() and not base.is_dir():
            raise BridgeEmuError(f"{base}: is a file, not a folder for the run")
        if base.exists() and any(base.iterdir()):
            if not (base / MARKER).is_file():
                raise BridgeEmuError(f"{base}: exists and is not a bridge-emu run directory; refusing to overwrite")
            _clear_earlier_run(base)
        base.mkdir(parents=True, exist_ok=True)
        (base / MARKER).write_text("made by bridge-emu; `bridge-emu state` reads the devices in it\n")
    except OSError as e:
        raise BridgeEmuError(f"{e.filename or base}: cannot prepare the run directory ({e.strerror})") from None
    return base


def resume_dir(base: pathlib.Path) -> pathlib.Path:
    """A run directory an earlier run made, to go on from its devices' flash files."""
    if not (base / MARKER).is_file():
        raise BridgeEmuError(f"{base}: no earlier run to resume here (no {MARKER} marker)")
    return base


def _clear_earlier_run(base: pathlib.Path) -> None:
    """Remove the device files of an earlier run (premises/bridge/flash.bemu and
    events.jsonl, two levels down, never following links), then the folders
    left empty."""
    for premises in sorted(base.iterdir()):
        if not premises.is_dir() or premises.is_symlink():
            continue
        for bridge in sorted(premises.iterdir()):
            if not bridge.is_dir() or bridge.is_symlink():
                continue
            for name in DEVICE_FILES:
                f = bridge / name
                if f.is_file() and not f.is_symlink():
                    f.unlink()
            if not any(bridge.iterdir()):
                bridge.rmdir()
        if not any(premises.iterdir()):
            premises.rmdir()


@dataclass
class Session:
    """Premises runs that share one image set and one run directory."""
    runs: list[PremisesRun]
    run_dir: pathlib.Path | None
    settled: bool = False
    wall_s: float = 0.0

    @classmethod
    def open(cls, specs: list[PremisesSpec], *, images_dir: pathlib.Path | ImageSet,
             run_dir: pathlib.Path | None, seed: int | None = None, resume: bool = False) -> Session:
        """seed: the network's seed for every premises (None: each premises' own).
        resume: the devices are the flash files an earlier (killed) run left in run_dir."""
        images = images_dir if isinstance(images_dir, ImageSet) else ImageSet(images_dir)
        runs = []
        try:
            for spec in specs:
                runs.append(PremisesRun(spec, images, None if run_dir is None else run_dir / spec.name, seed=seed,
                                        resume=resume))
        except BaseException:
            cls(runs, run_dir).close()
            raise
        return cls(runs, run_dir)

    def run(self, limit_s: float = DEFAULT_LIMIT_S,
            on_slice: Callable[[PremisesRun], None] | None = None) -> bool:
        """Run each premises until every bridge settles or limit_s of virtual time passes."""
        wall0 = time.perf_counter()
        self.settled = all([r.run(limit_s=limit_s, on_slice=on_slice) for r in self.runs])
        self.wall_s = time.perf_counter() - wall0
        return self.settled

    def rows(self) -> list[dict]:
        return [row for r in self.runs for row in bridge_rows(r)]

    def virtual_s(self) -> float:
        return sum(r.net.scheduler.time for r in self.runs)

    def close(self) -> None:
        for r in self.runs:
            for s in r.slots:
                s.bridge.device.close()


def sweep_seeds(specs: list[PremisesSpec], *, images_dir: pathlib.Path, seeds: list[int],
                limit_s: float = DEFAULT_LIMIT_S, on_seed: Callable[[int, Session], None] | None = None) -> dict:
    """Run the premises once per seed, in memory; what each bridge ended as, per seed,
    and a summary: per bridge, how many seeds gave each outcome and which seeds did
    not settle (each with the step it stalled at)."""
    images = ImageSet(images_dir)
    runs, summary = [], {}
    for seed in seeds:
        session = Session.open(specs, images_dir=images, run_dir=None, seed=seed)
        try:
            session.run(limit_s)
            rows = session.rows()
        finally:
            session.close()
        runs.append({"seed": seed, "settled": session.settled, "bridges": rows})
        for row in rows:
            entry = summary.setdefault(f"{row['premises']}/{row['bridge']}",
                                       {"premises": row["premises"], "bridge": row["bridge"], "type": row["type"],
                                        "offered": row["offered"], "outcomes": {}, "unsettled": []})
            entry["outcomes"][row["outcome"]] = entry["outcomes"].get(row["outcome"], 0) + 1
            if "stalled" in row:
                entry["unsettled"].append({"seed": seed, "stalled": row["stalled"]})
        if on_seed is not None:
            on_seed(seed, session)
    return {"seeds": list(seeds), "settled": all(r["settled"] for r in runs), "summary": list(summary.values()),
            "runs": runs}
