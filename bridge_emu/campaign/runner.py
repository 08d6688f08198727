"""A campaign, end to end:
1. full fidelity: the calibration strata and the campaign's sample homes, each a
   real PremisesRun (one task per home, on the engine);
2. the fast model calibrated on the strata, and checked against the sample;
3. every home drawn and given records by the fast model (shards of homes, sent
   back as compact arrays: fleet.py); the full-fidelity sample homes then take
   their measured records instead;
4. the campaign clock over all homes, in home order (one process).
Every draw is seeded by the campaign seed and the home's index, so the
document is the same for a seed whatever the engine and the worker count.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from bridge_emu.campaign import clock, model
from bridge_emu.campaign.fleet import Codes, Fleet, Shard, clock_draws
from bridge_emu.campaign.homes import draw_home, full_fidelity, rng_for
from bridge_emu.campaign.spec import CampaignSpec

FAST_SHARD = 5_000     # homes per fast-model task at most
MIN_SHARD = 500        # ... and at least (a task's fixed cost stays small beside it)
TAIL_TASKS = 3         # tasks per worker in the last stretch: no worker idles long while another finishes


def shards(homes: int, workers: int) -> list[tuple[int, int]]:
    """(lo, hi) per task, shrinking towards the end (guided scheduling): while
    many homes are left, FAST_SHARD; then each task takes a share of what is
    left, so the last ones are small and the workers finish together."""
    out = []
    lo = 0
    while lo < homes:
        left = homes - lo
        size = max(MIN_SHARD, min(FAST_SHARD, left // (workers * TAIL_TASKS)))
        out.append((lo, min(homes, lo + size)))
        lo += size
    return out


def sample_indices(spec: CampaignSpec) -> list[int]:
    return sorted(rng_for(spec.seed, "sample", 0).sample(range(spec.homes), spec.sample_homes))


def full_task(spec: CampaignSpec, stream: str, index: int, force: dict | None) -> tuple:
    home = draw_home(spec, index, stream, force)
    return home, full_fidelity(spec, home)


def fast_task(spec: CampaignSpec, table: list, buckets: dict, lo: int, hi: int) -> tuple:
    """Homes lo..hi drawn and given records by the fast model: a Shard, encoded
    (a few bytes per home)."""
    fast = model.FastModel(table, buckets)
    codes = Codes(spec)
    shard = Shard(lo, hi)
    for i in range(lo, hi):
        rng = rng_for(spec.seed, "home", i)     # the home's own draws, then its records
        home = draw_home(spec, i, rng=rng)
        shard.add(codes.of(home), clock_draws(spec, i), fast.home_indices(spec, home, rng))
    return shard.encode()


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
    ftasks = [(spec, fast.table, fast.buckets, lo, hi) for lo, hi in shards(spec.homes, eng.workers)]
    done[0] = 0
    if progress is not None:
        progress("calibrated homes", 0, len(ftasks))
    fleet = Fleet(spec)
    eng.map(fast_task, ftasks, tick("calibrated homes", len(ftasks)), fleet.put)
    walls["calibrated_s"] = time.perf_counter() - t1
    # the sample homes take their measured records, appended to the one table of records
    table = list(fast.table)
    codes = Codes(spec)
    for i, (home, records) in zip(sample, held):
        fleet.put_home(i, codes.of(home), clock_draws(spec, i), tuple(range(len(table), len(table) + len(records))))
        fleet.full.add(i)
        table.extend(records)
    t2 = time.perf_counter()
    out = clock.simulate(spec, fleet, table, fast)
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
            "b3_low_share": round(spec.b3_low_share, 6),
            "personality": dict(spec.personalities) if len(spec.personalities) > 1 else spec.personalities[0][0],
            "distribution_days": spec.distribution_days, "activation_window_h": list(spec.activation_window),
            "max_concurrent_downloads_per_hub": spec.max_concurrent_downloads,
            "metering_share": spec.metering_share, "waves_percent": list(spec.waves),
            "max_concurrent_homes": spec.max_concurrent_homes, "jitter_hours": spec.jitter_hours,
            "soak_hours": spec.soak_hours, "halt_failure_rate": spec.halt_rate, "halt_on": list(spec.halt_on),
            "retry_attempts": spec.retry_attempts, "retry_after_hours": spec.retry_after_hours,
            "retry_on": list(spec.retry_on)}
