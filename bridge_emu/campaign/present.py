"""What `bridge-emu campaign` shows: progress while the shards run, and a
summary table at the end (rich), over the campaign document."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class CampaignProgress:
    """A bar per phase (full-fidelity homes, calibrated shards)."""

    def __init__(self, console: Console):
        self.progress = Progress(TextColumn("{task.description:<18}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)


def _h(hours) -> str:
    if hours is None:
        return "not reached"
    return f"{hours:,.1f} h ({hours / 24:,.2f} d)"


def _downtime(d: dict) -> str:
    s = d["downtime_s"]
    out = f"{d['reboots']:,} reboots"
    if s["mean"] is not None:
        out += f", {s['mean']:,} s mean (p50 {s['p50']:,}, p90 {s['p90']:,}, max {s['max']:,})"
    links = d["link_minutes"]
    out += f"; off the meter link {links['meter']:,.1f} min, the display {links['display']:,.1f}"
    if d["left_offline"]:
        out += f"; {d['left_offline']:,} never back"
    return out


def print_summary(con: Console, doc: dict, facts: dict, written: list) -> None:
    res = doc["results"]
    t = Table(title=f"campaign {doc['campaign']}: {doc['homes']:,} homes, seed {doc['seed']}", show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row("homes", f"{res['homes_full_fidelity']:,} at full fidelity, {res['homes_calibrated']:,} calibrated; "
              f"{res['homes_attempted']:,} attempted, {res['homes_upgraded']:,} upgraded")
    for pct, hours in res["time_to_upgraded_h"].items():
        t.add_row(f"time to {pct} upgraded", _h(hours))
    t.add_row("halted", "no" if res["halted_after_wave"] is None else f"after wave {res['halted_after_wave']}")
    t.add_row("home outcomes", ", ".join(f"{k} {v:,}" for k, v in res["home_outcomes"].items()))
    t.add_row("bridge outcomes", ", ".join(f"{k} {v:,}" for k, v in res["bridge_outcomes"].items()))
    for cause, count in list(res["causes"].items())[:6]:
        t.add_row("  cause", f"{count:,} x {cause}")
    t.add_row("retries", f"{res['retries']:,}")
    lost = res["lost_service_minutes"]
    t.add_row("lost service", f"{lost['any']:,.1f} home-minutes (meter {lost['meter']:,.1f}, display "
              f"{lost['display']:,.1f}); at most {res['peak_homes_offline_at_once']:,} homes offline at once")
    for rtype, d in res["downtime"]["per_type"].items():
        t.add_row(f"downtime {rtype} ({d['mode']})", _downtime(d))
    for hub, h in res["downtime"]["per_hub"].items():
        lost = h["lost_service_minutes"]
        t.add_row(f"downtime, {hub} hubs", f"{h['homes']:,} homes: {lost['meter']:,.1f} min off the meter link "
                  f"({h['meter_minutes_per_home']:,.3f} per home), display {lost['display']:,.1f}; "
                  + ", ".join(f"{rtype} mean {d['downtime_s']['mean']:,} s" for rtype, d in h["per_type"].items()
                              if d["downtime_s"]["mean"] is not None))
    e = res["b3_energy_mJ"]
    if e["b3_bridges"]:
        t.add_row("B3 energy", f"{e['total'] / 1000:,.1f} J in all; {e['mean_per_b3_final']:,.0f} mJ per B3 update")
    for rtype, w in res["flash_erases"].items():
        t.add_row(f"flash erases {rtype}", f"mean {w['mean']:,} per download, max {w['max']:,}")
    check = doc["model_check"]
    worst = []
    for rtype, entry in check["per_type"].items():
        ks = entry["download_s"]
        worst.append(f"{rtype} KS {ks['ks']:.2f}/{ks['ks_critical_1pct']:.2f}")
    t.add_row("fast model check", ("[green]agrees[/]" if check["ok"] else "[red]DISAGREES[/]")
              + f" with {check['held_out_homes']} held-out homes (download time " + ", ".join(worst) + ")")
    t.add_row("waves", "; ".join(f"{w['kind']} {w['wave']}: {w['homes']:,} homes, failure "
                                 f"{w['failure_rate'] * 100:.1f} %" for w in res["waves"]))
    plural = "s" if facts["workers"] != 1 else ""
    t.add_row("run", f"engine {facts['engine']} ({facts['workers']} worker{plural}), {facts['total_s']:.1f} s wall "
              f"(full fidelity {facts['full_fidelity_s']:.1f} s, calibrated {facts['calibrated_s']:.1f} s)")
    con.print(t)
    for path in written:
        con.print(f"wrote {path}", highlight=False)
