"""The example campaigns parse, and the small one runs as the README says."""
from __future__ import annotations

import pathlib

from bridge_emu.campaign import load_campaign, run_to

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "campaigns"


def test_the_example_campaigns_parse():
    national = load_campaign(EXAMPLES / "national.toml")
    assert national.homes == 200_000 and len(national.population) == 7 and len(national.classes) == 3
    assert load_campaign(EXAMPLES / "small.toml").homes == 2000


def test_the_small_example_runs_and_its_model_check_agrees(tmp_path):
    doc, _, written = run_to(load_campaign(EXAMPLES / "small.toml"), tmp_path / "out")
    res = doc["results"]
    assert res["homes_attempted"] == 2000 and res["halted_after_wave"] is None
    assert doc["model_check"]["ok"] and doc["model_check"]["held_out_homes"] == 8
    assert res["time_to_upgraded_h"]["90%"] is not None
    assert len(written) == 5
