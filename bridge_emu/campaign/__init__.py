"""Campaigns at national scale: a firmware rollout over many premises, a sample
at full fidelity and the rest through a fast model calibrated on it, on one
process, a pool of processes or Ray (`bridge-emu campaign`)."""
from __future__ import annotations

import pathlib

from bridge_emu.campaign.engines import ENGINES, engine
from bridge_emu.campaign.runner import run_campaign
from bridge_emu.campaign.spec import CampaignError, CampaignSpec, load_campaign, parse_campaign

__all__ = ["ENGINES", "CampaignError", "CampaignSpec", "load_campaign", "parse_campaign", "run_campaign",
           "engine", "run_to"]


def run_to(spec: CampaignSpec, out: pathlib.Path, *, engine_name: str = "local", workers: int | None = None,
           address: str | None = None, seed: int | None = None, progress=None, plots: bool = True):
    """Run the campaign and write DIR/campaign.json (the same for a seed whatever the
    engine), DIR/run.json (engine, workers, wall times) and the plots. Returns
    (document, run facts, files written)."""
    from bridge_emu.campaign.outputs import prepare_out, write_json

    if address is not None and engine_name != "ray":
        raise CampaignError("--ray-address is for --engine ray")
    out = prepare_out(pathlib.Path(out))
    eng = engine(engine_name, workers, address)
    try:
        doc, facts = run_campaign(spec, eng, progress, seed=seed)
    finally:
        eng.close()
    written = [write_json(out, "campaign.json", doc), write_json(out, "run.json", facts)]
    if plots:
        from bridge_emu.campaign.plots import write_plots
        written += write_plots(out, doc)
    return doc, facts, written
