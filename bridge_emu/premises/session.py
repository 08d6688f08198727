"""The demonstration, and `bridge-emu run`: premises on the simulated network.

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
import json
import pathlib
import shutil
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bridge_emu.errors import BridgeEmuError
from bridge_emu.premises.runner import DEFAULT_IMAGES, ImageSet, PremisesRun, PremisesSpec, builtin_premises

MARKER = ".bridge-emu-run"


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


def prepare_dir(base: pathlib.Path) -> pathlib.Path:
    """A run directory we own: created, or emptied if an earlier run made it."""
    if base.exists() and any(base.iterdir()):
        if not (base / MARKER).exists():
            raise BridgeEmuError(f"{base}: exists and is not a bridge-emu run directory; refusing to overwrite")
        shutil.rmtree(base)
    base.mkdir(parents=True, exist_ok=True)
    (base / MARKER).write_text("made by bridge-emu; `bridge-emu state` reads the devices in it\n")
    return base


def run_premises(specs: list[PremisesSpec], *, run_dir: pathlib.Path | None, images_dir: pathlib.Path,
                 limit_s: float, json_out: bool, console: Console | None = None) -> int:
    images = ImageSet(images_dir)
    if console is None:
        console = Console()
        if not console.is_terminal:
            console = Console(width=120)
    runs = [PremisesRun(spec, images, None if run_dir is None else run_dir / spec.name) for spec in specs]
    wall0 = time.perf_counter()
    if json_out:
        settled = [r.run(limit_s=limit_s) for r in runs]
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            tasks = {}
            for r in runs:
                for s in r.slots:
                    tasks[(r.spec.name, s.spec.name)] = progress.add_task(
                        f"{r.spec.name}/{s.spec.name} ({s.spec.type})", total=1, info="")

            def update(r: PremisesRun) -> None:
                for s in r.slots:
                    done, size = r.progress(s)
                    b = s.bridge
                    info = f"t={r.net.scheduler.time:7.0f}s  {b.phase:8s} {b.record.outcome}"
                    progress.update(tasks[(r.spec.name, s.spec.name)], completed=done, total=max(size, 1),
                                    info=info)

            settled = [r.run(limit_s=limit_s, on_slice=update) for r in runs]
    wall = time.perf_counter() - wall0
    rows = [row for r in runs for row in r.results()]
    if json_out:
        print(json.dumps({"wall_s": round(wall, 3), "settled": all(settled), "bridges": rows}, indent=2))
    else:
        _table(console, rows)
        console.print(f"wall time {wall:.2f} s for {sum(r.net.scheduler.time for r in runs):.0f} s of virtual time"
                      + (f"; devices and event logs in {run_dir} (see `bridge-emu state {run_dir}`)"
                         if run_dir is not None else ""))
        if not all(settled):
            console.print(f"[red]not every bridge settled within {limit_s:.0f} s of virtual time[/]")
    for r in runs:
        for s in r.slots:
            s.bridge.device.close()
    return 0 if all(settled) else 1


def _table(console: Console, rows: list[dict]) -> None:
    for premises in dict.fromkeys(r["premises"] for r in rows):
        t = Table(title=f"premises {premises}", title_justify="left")
        for c in ("bridge", "offered", "firmware", "bytes / blocks", "download", "downtime", "erases",
                  "alerts", "outcome"):
            t.add_column(c, justify="right" if c in ("bytes / blocks", "download", "downtime", "erases")
                         else "left")
        for r in (r for r in rows if r["premises"] == premises):
            extra = []
            if r["resumed_from"]:
                extra.append("resumed at byte " + ", ".join(str(o) for o in r["resumed_from"]))
            if "energy_mJ" in r:
                extra.append(f"{r['energy_mJ'] / 1000:.2f} J, {r['polls']} polls")
            colour = {"upgraded": "green", "rolled back": "yellow"}.get(r["outcome"], "red")
            t.add_row(f"{r['bridge']} {r['type']}", r["offered"],
                      f"{r['version_before'].split('+')[0]} -> {r['version_after'].split('+')[0]}",
                      f"{r['bytes']} / {r['blocks']}",
                      "-" if r["download_s"] is None else f"{r['download_s']:.0f} s", f"{r['downtime_s']:.1f} s",
                      str(r["flash_erases"]), " ".join(a.replace("0x", "") for a in r["alerts"]),
                      f"[{colour}]{r['outcome']}[/]" + ("\n" + "\n".join(extra) if extra else ""))
        console.print(t)
    console.print("download and downtime in virtual time. Downtime: from a reboot until the bridge routes "
                  "again (flash work, boot, rejoin). Alerts: 8F72 verified, 8F1C refused, 8F43 running "
                  "version changed, 8F1B refused at power-on.")


def run_demo(*, run_dir: pathlib.Path | None = pathlib.Path("out/demo"), images_dir: pathlib.Path = DEFAULT_IMAGES,
             json_out: bool = False, limit_s: float = 4 * 3600) -> int:
    return run_premises(demo_premises(), run_dir=None if run_dir is None else prepare_dir(run_dir),
                        images_dir=images_dir, limit_s=limit_s, json_out=json_out)
