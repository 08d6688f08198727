"""Deterministic for a seed whatever the engine and worker count: campaign.json
is the same byte for byte from one process, two processes and a local Ray with
two workers (CI runs the Ray one: the test set-up installs bridge-emu[ray])."""
from __future__ import annotations

import json
import pathlib
import sys

from bridge_emu.campaign import load_campaign, run_to

BIN = pathlib.Path(sys.executable).parent


def _run(spec, out, **kw):
    doc, facts, _ = run_to(spec, out, plots=False, **kw)
    return (out / "campaign.json").read_bytes(), doc, facts


def test_local_and_two_processes_write_the_same_document(tiny, tmp_path):
    spec = load_campaign(tiny(homes=600, sample=3))
    local, doc, facts = _run(spec, tmp_path / "local")
    procs, _, pfacts = _run(spec, tmp_path / "procs", engine_name="processes", workers=2)
    assert (facts["engine"], pfacts["engine"], pfacts["workers"]) == ("local", "processes", 2)
    assert local == procs
    res = doc["results"]
    assert res["homes_full_fidelity"] == 3 and res["homes_calibrated"] == 597
    assert res["homes_attempted"] == 600
    # run facts (engine, wall time) stay out of the document, in run.json
    assert "engine" not in json.loads(local) and json.loads((tmp_path / "procs" / "run.json").read_text())[
        "workers"] == 2


def test_another_seed_gives_another_campaign(tiny, tmp_path):
    spec = load_campaign(tiny(homes=300, sample=1))
    a, _, _ = _run(spec, tmp_path / "a")
    b, doc, _ = _run(spec, tmp_path / "b", seed=99)
    assert a != b and doc["seed"] == 99


def test_a_local_ray_with_two_workers_gives_the_single_process_result(tiny, tmp_path, loopback_ray):
    """`bridge-emu campaign --engine ray --workers 2` starts a local Ray of two workers (in a
    loopback-only namespace: Ray's servers listen on every interface they see)."""
    run, _ = loopback_ray
    path = tiny(homes=400, sample=2)
    local, _, _ = _run(load_campaign(path), tmp_path / "local")
    on_ray = run([str(BIN / "bridge-emu"), "campaign", str(path), "--engine", "ray", "--workers", "2",
                  "--out", str(tmp_path / "ray")], timeout=600)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    facts = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert facts["engine"] == "ray" and facts["workers"] == 2
    assert (tmp_path / "ray" / "campaign.json").read_bytes() == local
