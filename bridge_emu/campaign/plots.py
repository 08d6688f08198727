"""The campaign's plots (PNG): completion curve, homes offline over time,
outcomes per wave. matplotlib is imported here only, with the Agg backend (no
display needed), so the rest of bridge-emu starts without it."""
from __future__ import annotations

import io
import pathlib

from bridge_emu.campaign.outputs import write_bytes

OUTCOME_COLOURS = {"upgraded": "#2a9d8f", "declined": "#8d99ae", "refused": "#e9c46a", "rolled back": "#f4a261",
                   "stuck": "#e76f51", "bricked": "#6d1a36", "no update": "#cccccc"}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def write_plots(out: pathlib.Path, doc: dict) -> list[pathlib.Path]:
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global figure state

    res = doc["results"]
    n = res["homes"]
    written = []

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    curve = res["completion_curve"]
    if curve:
        ax.step([0.0] + [t / 24 for t, _ in curve], [0.0] + [p for _, p in curve], where="post", color="#2a9d8f")
    for w in res["waves"]:
        ax.axvline(w["start_h"] / 24, color="#999999", lw=0.6, ls=":")
    ax.set_xlabel("campaign time (days)")
    ax.set_ylabel("homes upgraded (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{doc['campaign']}: {n:,} homes, completion")
    written.append(write_bytes(out, "completion.png", _png(fig)))

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    b = res["homes_offline_per_bin"]
    xs = [k * b["bin_h"] / 24 for k in range(len(b["counts"]))]
    ax.bar(xs, b["counts"], width=b["bin_h"] / 24, align="edge", color="#e76f51")
    ax.set_xlabel("campaign time (days)")
    ax.set_ylabel(f"homes off a meter or display link\n(in each {b['bin_h']:g} h)")
    ax.set_title(f"lost service: {res['lost_service_minutes']['any']:,.0f} home-minutes")
    written.append(write_bytes(out, "offline.png", _png(fig)))

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    outcomes = [o for o in OUTCOME_COLOURS if any(o in w["home_outcomes"] for w in res["waves"])]
    labels = [f"{'canary' if w['kind'] == 'canary' else 'wave ' + str(w['wave'])}" for w in res["waves"]]
    bottom = [0.0] * len(labels)
    for o in outcomes:
        vals = [w["home_outcomes"].get(o, 0) / w["homes"] * 100 for w in res["waves"]]
        ax.bar(labels, vals, bottom=bottom, label=o, color=OUTCOME_COLOURS[o])
        bottom = [a + v for a, v in zip(bottom, vals)]
    ax.set_ylabel("homes in the wave (%)")
    ax.set_title("outcome per wave" + (" (halted)" if res["halted_after_wave"] is not None else ""))
    if outcomes:
        ax.legend(loc="lower right", fontsize=8)
    written.append(write_bytes(out, "waves.png", _png(fig)))
    return written
