"""Campaigns: homes per second of wall time, full fidelity and calibrated, on
one core and on two, and the wall time of the 200,000-home example campaign.

full fidelity: FULL homes of examples/campaigns/national.toml (its first
FULL home indices: every configuration, class, faulty image and brown-out the
campaign draws), each a real PremisesRun in memory (campaign.runner.full_task),
in this process, then over a pool of two processes (started and warmed up
before the clock starts: the pool's start-up is a fixed cost, given apart).
calibrated: FAST homes drawn and given records by a fast model calibrated on
the full-fidelity runs above (with no faulty or incompatible offers drawn,
which that model may lack) (campaign.runner.fast_task over the shards
campaign.runner.shards gives two workers), the same way, each shard's compact
result copied into the campaign's Fleet in the parent as it arrives (as the
runner does): merge_s is the parent's time in that copy, result_bytes_per_home
what a worker sends back per home. national: the whole example campaign (calibration, sample, fast
model, campaign clock) with --engine processes on all cores; its size can be
shrunk with BENCH_CAMPAIGN_HOMES.

cores_got_*: CPU seconds the tasks took over wall seconds: the cores the run
really had (about 1 and 2 on an idle 2-core machine; less when other work
shares it, which makes the ratio say nothing about the code).
outside_tasks_s_two: wall seconds of the two-worker run not spent inside a
task (per worker): what the engine itself loses (start-up, task and result
transfer, the parent's merge, workers idle at the end); descheduled_s_two:
seconds tasks were in progress but off a core (per worker): what other work on
the machine took.

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
from bridge_emu.campaign.fleet import Fleet
from bridge_emu.campaign.model import FastModel
from bridge_emu.campaign.runner import fast_task, full_task, shards

NATIONAL = pathlib.Path(__file__).resolve().parents[1] / "examples" / "campaigns" / "national.toml"


def _full_cpu(*args):
    t0 = time.process_time()
    out = full_task(*args)
    return time.process_time() - t0, out


def _fast_cpu(*args):
    t0, w0 = time.process_time(), time.perf_counter()
    out = fast_task(*args)
    return (time.process_time() - t0, time.perf_counter() - w0), out


def _timed(eng, fn, tasks) -> tuple[float, list, float]:
    """(wall s, results, CPU s the tasks themselves took): on a machine that other
    work shares, CPU s / wall s says how many cores the run really got."""
    t0 = time.perf_counter()
    out = eng.map(fn, tasks)
    wall = time.perf_counter() - t0
    return wall, [r for _, r in out], sum(c for c, _ in out)


class _Merge:
    """What the runner does with each shard as it arrives: copy it into the Fleet."""

    def __init__(self, spec):
        self.fleet = Fleet(spec)
        self.cpu = 0.0
        self.in_tasks_s = 0.0
        self.merge_s = 0.0
        self.nbytes = 0

    def __call__(self, result) -> None:
        t0 = time.perf_counter()
        (cpu, wall), encoded = result
        self.cpu += cpu
        self.in_tasks_s += wall
        self.nbytes += sum(len(b) for b in encoded[2].values())
        self.fleet.put(encoded)
        self.merge_s += time.perf_counter() - t0


def _timed_fast(eng, tasks, spec) -> tuple[float, _Merge]:
    merge = _Merge(spec)
    t0 = time.perf_counter()
    eng.map(_fast_cpu, tasks, on_result=merge)
    return time.perf_counter() - t0, merge


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
    fast_tasks = [(big, model.table, model.buckets, lo, hi) for lo, hi in shards(fast_n, 2)]
    fast1, m1 = _timed_fast(local, fast_tasks, big)
    fast2, m2 = _timed_fast(pool, fast_tasks, big)
    pool.close()
    assert m1.fleet.arrays == m2.fleet.arrays                # the same homes either way
    cpu_fast1, cpu_fast2 = m1.cpu, m2.cpu
    out = {
        "full_fidelity": {"homes": full_n, "one_core_homes_per_s": round(full_n / full1, 2),
                          "two_cores_homes_per_s": round(full_n / full2, 2), "ratio": round(full1 / full2, 2),
                          "cores_got_one": round(cpu_full1 / full1, 2), "cores_got_two": round(cpu_full2 / full2, 2),
                          "cpu_s_per_home": round(cpu_full1 / full_n, 3)},
        "calibrated": {"homes": fast_n, "one_core_homes_per_s": round(fast_n / fast1),
                       "two_cores_homes_per_s": round(fast_n / fast2), "ratio": round(fast1 / fast2, 2),
                       "cores_got_one": round(cpu_fast1 / fast1, 2), "cores_got_two": round(cpu_fast2 / fast2, 2),
                       "cpu_us_per_home": round(cpu_fast1 / fast_n * 1e6, 1), "tasks": len(fast_tasks),
                       "merge_s_two": round(m2.merge_s, 4), "result_bytes_per_home": round(m2.nbytes / fast_n, 1),
                       # wall s of two workers not inside a task (start, transfer, merge, the tail), and
                       # of tasks not on a core (descheduled: another process had it)
                       "outside_tasks_s_two": round(fast2 - m2.in_tasks_s / 2, 3),
                       "descheduled_s_two": round((m2.in_tasks_s - m2.cpu) / 2, 3)},
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
