"""Campaigns: homes per second of wall time, full fidelity and calibrated, on
one core and on two, and the wall time of the 200,000-home example campaign.

full fidelity: FULL homes of examples/campaigns/national.toml (its first
FULL home indices: every configuration, class, faulty image and brown-out the
campaign draws), each a real PremisesRun in memory (campaign.runner.full_task),
in this process, then over a pool of two processes (started and warmed up
before the clock starts: the pool's start-up is a fixed cost, given apart).
calibrated: FAST homes drawn and given records by a fast model calibrated on
the full-fidelity runs above (with no faulty or incompatible offers drawn,
which that model may lack) (campaign.runner.fast_task, shards of 5,000), the
same way. national: the whole example campaign (calibration, sample, fast
model, campaign clock) with --engine processes on all cores; its size can be
shrunk with BENCH_CAMPAIGN_HOMES.

cores_got_*: CPU seconds the tasks took over wall seconds: the cores the run
really had (about 1 and 2 on an idle 2-core machine; less when other work
shares it, which makes the ratio say nothing about the code).

Env: BENCH_CAMPAIGN_FULL (default 16), BENCH_CAMPAIGN_FAST (default 100000),
BENCH_CAMPAIGN_HOMES (default 200000; 0 skips the national run).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import time

from bridge_emu.campaign import load_campaign, run_campaign
from bridge_emu.campaign.engines import LocalEngine, ProcessEngine
from bridge_emu.campaign.model import FastModel
from bridge_emu.campaign.runner import FAST_SHARD, fast_task, full_task

NATIONAL = pathlib.Path(__file__).resolve().parents[1] / "examples" / "campaigns" / "national.toml"


def _full_cpu(*args):
    t0 = time.process_time()
    out = full_task(*args)
    return time.process_time() - t0, out


def _fast_cpu(*args):
    t0 = time.process_time()
    out = fast_task(*args)
    return time.process_time() - t0, out


def _timed(eng, fn, tasks) -> tuple[float, list, float]:
    """(wall s, results, CPU s the tasks themselves took): on a machine that other
    work shares, CPU s / wall s says how many cores the run really got."""
    t0 = time.perf_counter()
    out = eng.map(fn, tasks)
    wall = time.perf_counter() - t0
    return wall, [r for _, r in out], sum(c for c, _ in out)


def run() -> dict:
    full_n = int(os.environ.get("BENCH_CAMPAIGN_FULL", "16"))
    fast_n = int(os.environ.get("BENCH_CAMPAIGN_FAST", "100000"))
    homes = int(os.environ.get("BENCH_CAMPAIGN_HOMES", "200000"))
    spec = load_campaign(NATIONAL)
    full_tasks = [(spec, "home", i, None) for i in range(full_n)]
    local = LocalEngine()
    t0 = time.perf_counter()
    pool = ProcessEngine(2)
    pool.map(_full_cpu, full_tasks[:4])                   # start and warm both workers
    pool_start = time.perf_counter() - t0
    full1, runs, cpu_full1 = _timed(local, _full_cpu, full_tasks)
    full2, runs2, cpu_full2 = _timed(pool, _full_cpu, full_tasks)
    assert [r[1] for r in runs] == [r[1] for r in runs2]  # the same records either way
    model = FastModel.calibrate(runs)
    # the bench's model has only these homes' offers: draw plain offers (the cost per home is the same)
    big = dataclasses.replace(spec, homes=fast_n, faulty_share=0.0, incompatible_share=0.0)
    fast_tasks = [(big, model.table, model.buckets, lo, min(fast_n, lo + FAST_SHARD), ())
                  for lo in range(0, fast_n, FAST_SHARD)]
    fast1, _, cpu_fast1 = _timed(local, _fast_cpu, fast_tasks)
    fast2, _, cpu_fast2 = _timed(pool, _fast_cpu, fast_tasks)
    pool.close()
    out = {
        "full_fidelity": {"homes": full_n, "one_core_homes_per_s": round(full_n / full1, 2),
                          "two_cores_homes_per_s": round(full_n / full2, 2), "ratio": round(full1 / full2, 2),
                          "cores_got_one": round(cpu_full1 / full1, 2), "cores_got_two": round(cpu_full2 / full2, 2),
                          "cpu_s_per_home": round(cpu_full1 / full_n, 3)},
        "calibrated": {"homes": fast_n, "one_core_homes_per_s": round(fast_n / fast1),
                       "two_cores_homes_per_s": round(fast_n / fast2), "ratio": round(fast1 / fast2, 2),
                       "cores_got_one": round(cpu_fast1 / fast1, 2), "cores_got_two": round(cpu_fast2 / fast2, 2),
                       "cpu_us_per_home": round(cpu_fast1 / fast_n * 1e6, 1)},
        "pool_start_s": round(pool_start, 2),
    }
    if homes:
        national = dataclasses.replace(spec, homes=homes)
        eng = ProcessEngine(os.cpu_count())
        try:
            t0 = time.perf_counter()
            doc, facts = run_campaign(national, eng)
            wall = time.perf_counter() - t0
        finally:
            eng.close()
        res = doc["results"]
        out["national"] = {"homes": homes, "workers": eng.workers, "wall_s": round(wall, 1),
                           "full_fidelity_runs": doc["fidelity"]["full_fidelity_runs"],
                           "full_fidelity_s": facts["full_fidelity_s"], "calibrated_s": facts["calibrated_s"],
                           "clock_s": facts["clock_s"], "time_to_upgraded_h": res["time_to_upgraded_h"],
                           "model_check_ok": doc["model_check"]["ok"]}
    return out
