"""A campaign, end to end:
1. full fidelity: the calibration strata and the campaign's sample homes, each a
   real PremisesRun (one task per home, on the engine);
2. the fast model calibrated on the strata, and checked against the sample;
3. every other home drawn and given records by the fast model (shards of homes);
4. the campaign clock over all homes, in home order (one process).
Every draw is seeded by the campaign seed and the home's index, so the
document is the same for a seed whatever the engine and the worker count.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from bridge_emu.campaign import clock, model
from bridge_emu.campaign.homes import draw_home, full_fidelity, rng_for
from bridge_emu.campaign.spec import CampaignSpec

FAST_SHARD = 5_000     # homes per fast-model task


def sample_indices(spec: CampaignSpec) -> list[int]:
    return sorted(rng_for(spec.seed, "sample", 0).sample(range(spec.homes), spec.sample_homes))


def full_task(spec: CampaignSpec, stream: str, index: int, force: dict | None) -> tuple:
    home = draw_home(spec, index, stream, force)
    return home, full_fidelity(spec, home)


def fast_task(spec: CampaignSpec, table: list, buckets: dict, lo: int, hi: int, skip: tuple) -> list:
    """Homes lo..hi (but skip) drawn and given records by the fast model, as
    (index, config, class, battery, record indices)."""
    fast = model.FastModel(table, buckets)
    skip = set(skip)
    out = []
    for i in range(lo, hi):
        if i in skip:
            continue
        rng = rng_for(spec.seed, "home", i)     # the home's own draws, then its records
        home = draw_home(spec, i, rng=rng)
        out.append((i, home.config, home.cls, home.battery, fast.home_indices(spec, home, rng)))
    return out


def run_campaign(spec: CampaignSpec, eng, progress: Callable[[str, int, int], None] | None = None,
                 seed: int | None = None) -> tuple[dict, dict]:
    """(the campaign document, run facts: engine, workers, wall times)."""
    if seed is not None:
        spec = dataclasses.replace(spec, seed=seed)
    walls = {}
    t0 = time.perf_counter()
    strata = model.strata(spec)
    sample = sample_indices(spec)
    tasks = [(spec, "calibration", k, force) for k, force in enumerate(strata)]
    tasks += [(spec, "home", i, None) for i in sample]
    done = [0]

    def tick(phase, total):
        def on(k):
            done[0] += k
            if progress is not None:
                progress(phase, done[0], total)
        return on
    if progress is not None:
        progress("full fidelity", 0, len(tasks))
    runs = eng.map(full_task, tasks, tick("full fidelity", len(tasks)))
    walls["full_fidelity_s"] = time.perf_counter() - t0
    calibration, held = runs[:len(strata)], runs[len(strata):]
    fast = model.FastModel.calibrate(calibration)
    check = model.check(spec, fast, held, rng_for)
    t1 = time.perf_counter()
    shards = [(lo, min(spec.homes, lo + FAST_SHARD)) for lo in range(0, spec.homes, FAST_SHARD)]
    ftasks = [(spec, fast.table, fast.buckets, lo, hi, tuple(i for i in sample if lo <= i < hi))
              for lo, hi in shards]
    done[0] = 0
    if progress is not None:
        progress("calibrated homes", 0, len(ftasks))
    parts = eng.map(fast_task, ftasks, tick("calibrated homes", len(ftasks)))
    walls["calibrated_s"] = time.perf_counter() - t1
    results: list = [None] * spec.homes
    names = {name: [b.name for b in p.bridges] for name, _, p in spec.population}
    for part in parts:
        for i, config, cls, battery, indices in part:
            results[i] = (config, cls, battery, "fast", fast.records(names[config], indices))
    for i, (home, records) in zip(sample, held):
        results[i] = (home.config, home.cls, home.battery, "full", records)
    t2 = time.perf_counter()
    out = clock.simulate(spec, results, fast)
    walls["clock_s"] = time.perf_counter() - t2
    walls["total_s"] = time.perf_counter() - t0
    doc = {
        "campaign": spec.name, "seed": spec.seed, "homes": spec.homes,
        "settings": _settings(spec),
        "fidelity": {"calibration_runs": len(strata), "sample_homes": len(sample),
                     "full_fidelity_runs": len(tasks)},
        "model_check": check,
        "fast_model": fast.summary(),
        "results": out,
    }
    facts = {"engine": eng.name, "workers": eng.workers, **{k: round(v, 3) for k, v in walls.items()},
             "homes_per_s_full": round(len(tasks) / walls["full_fidelity_s"], 2) if walls["full_fidelity_s"] else None,
             "homes_per_s_calibrated": round((spec.homes - len(sample)) / walls["calibrated_s"], 1)
             if walls["calibrated_s"] else None}
    return doc, facts


def _settings(spec: CampaignSpec) -> dict:
    return {"population": {name: w for name, w, _ in spec.population},
            "classes": {c.name: c.weight for c in spec.classes},
            "faulty_share": spec.faulty_share, "incompatible_share": spec.incompatible_share,
            "b3_low_share": round(spec.b3_low_share, 6), "personality": spec.personality,
            "distribution_days": spec.distribution_days, "activation_window_h": list(spec.activation_window),
            "max_concurrent_downloads_per_hub": spec.max_concurrent_downloads,
            "metering_share": spec.metering_share, "waves_percent": list(spec.waves),
            "max_concurrent_homes": spec.max_concurrent_homes, "jitter_hours": spec.jitter_hours,
            "soak_hours": spec.soak_hours, "halt_failure_rate": spec.halt_rate, "halt_on": list(spec.halt_on),
            "retry_attempts": spec.retry_attempts, "retry_after_hours": spec.retry_after_hours,
            "retry_on": list(spec.retry_on)}
