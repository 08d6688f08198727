"""The campaign clock, in hours: waves, distribution, the campaign-wide cap on
homes downloading at once, the per-hub limit on concurrent downloads, airtime
contention, activation (CS06 in a daily window, or self-activating), reboots,
retries and the halt rule. It runs in one process over every home's per-bridge
records (measured at full fidelity or drawn from the fast model), in home
order, so its result depends only on the seed.

Airtime: every frame of a home crosses its one 2.4 GHz channel (the hub-B1
hop). A download's measured time is split into its airtime share `a`
(bytes and per-frame overhead at 250 kbit/s, over its measured time) and the
rest (latency, timers, polling); with n downloads at once in the home and the
metering traffic taking share m of the channel, the airtime part stretches by
n / (1 - m): t' = t * ((1 - a) + a * n / (1 - m)).
"""
from __future__ import annotations

import heapq
import math

from bridge_emu.campaign.homes import carries, premises_of, rng_for, uniforms
from bridge_emu.campaign.spec import CampaignSpec

INF = math.inf


def contended_s(download_s: float, airtime_s: float, n: int, metering_share: float) -> float:
    if download_s <= 0:
        return 0.0
    a = min(1.0, airtime_s / download_s)
    return download_s * ((1 - a) + a * n / (1 - metering_share))


def _activation(spec: CampaignSpec, t: float, u: float) -> float:
    """The time (hours) the hub sends CS06 for downloads verified at t: at once
    inside the daily window, else in the next window, at fraction u of it."""
    lo, hi = spec.activation_window
    day, hour = divmod(t, 24.0)
    if lo <= hour < hi:
        return t
    start = day * 24 + lo if hour < lo else (day + 1) * 24 + lo
    return start + u * (hi - lo)


def _attempt(spec, records, start, u):
    """One attempt at a home's downloads from start (hours): the download end,
    and per bridge (record, activation time or None)."""
    limit = spec.max_concurrent_downloads
    t = start
    done = []
    for i in range(0, len(records), limit):
        batch = records[i:i + limit]
        ends = []
        for rec in batch:
            d = contended_s(rec[5], rec[9], len(batch), spec.metering_share) / 3600
            ends.append(t + d)
            done.append((rec, t + d))
        t = max(ends)
    act = _activation(spec, t, u) if not spec.self_activating else None
    out = []
    for rec, end in done:
        activates = rec[3] in ("upgraded", "rolled back", "bricked")
        out.append((rec, (end if act is None else act) if activates else None, end))
    return t, out


def simulate(spec: CampaignSpec, results: list[tuple], model) -> dict:
    """results[i]: home i's (config, class, battery, fidelity, records)."""
    n = spec.homes
    order = list(range(n))
    rng_for(spec.seed, "order", 0).shuffle(order)
    bounds = [math.ceil(n * pct / 100) for pct in spec.waves]
    prem = premises_of(spec)
    carry_of = {name: carries(name, p) for name, p in prem.items()}
    final = [None] * n            # per home: its final records
    upgraded_at = [None] * n
    intervals: list[list] = [[] for _ in range(n)]   # per home: (down, up, links)
    attempts = [0] * n
    waves = []
    wave_start = 0.0
    halted = None
    lo = 0
    energy = 0.0
    erases: dict[str, list] = {}
    for w, hi in enumerate(bounds):
        members = order[lo:hi]
        lo = hi
        if not members:
            continue
        queue = []
        for i in members:
            u = uniforms(spec.seed, "clock", i)
            t = wave_start + u[0] * spec.distribution_days * 24 + u[1] * spec.jitter_hours
            queue.append((t, i, 0, results[i][4], u[2]))
        heapq.heapify(queue)
        slots: list[float] = []   # end times of the homes downloading now
        wave_end = wave_start
        while queue:
            ready, i, attempt, records, u = heapq.heappop(queue)
            start = ready
            if len(slots) >= spec.max_concurrent_homes:
                start = max(ready, heapq.heappop(slots))
            end, acts = _attempt(spec, records, start, u)
            heapq.heappush(slots, end)
            attempts[i] = attempt + 1
            config = results[i][0]
            for rec, t_act, _ in acts:
                energy += rec[8]
                erases.setdefault(rec[1], []).append(rec[7])
                if t_act is None:
                    continue
                links = carry_of[config].get(rec[0], ("meter",))
                up = INF if rec[10] else t_act + rec[6] / 3600
                intervals[i].append((t_act, up, links))
            last = max((t_act + rec[6] / 3600 if t_act is not None else end) for rec, t_act, _ in acts)
            wave_end = max(wave_end, last)
            if final[i] is None:
                final[i] = {}
            final[i].update({r[0]: r for r in records})
            retry = [rec for rec in records if rec[3] in spec.retry_on]
            if retry and attempt < spec.retry_attempts:
                # only the bridges that failed download again, drawn from the fast model
                rng = rng_for(spec.seed, f"retry{attempt + 1}", i)
                cls, battery = results[i][1], results[i][2]
                again = tuple(model.draw(r[0], r[1], r[2], cls, battery, rng) for r in retry)
                heapq.heappush(queue, (end + spec.retry_after_hours, i, attempt + 1, again, rng.random()))
                continue
            if all(r[3] == "upgraded" for r in final[i].values()):
                upgraded_at[i] = last
        failed = sum(any(r[3] in spec.halt_on for r in final[i].values()) for i in members)
        rate = failed / len(members)
        entry = {"wave": w, "kind": "canary" if w == 0 and len(bounds) > 1 else "wave",
                 "homes": len(members), "start_h": round(wave_start, 3), "end_h": round(wave_end, 3),
                 "home_outcomes": _home_outcomes(final[i].values() for i in members),
                 "bridge_outcomes": _count(r[3] for i in members for r in final[i].values()),
                 "failure_rate": round(rate, 4), "halted_after": False}
        waves.append(entry)
        if spec.halt_rate is not None and rate > spec.halt_rate:
            entry["halted_after"] = True
            halted = w
            break
        wave_start = wave_end + spec.soak_hours
    end_h = max([wv["end_h"] for wv in waves] + [0.0])
    return _outputs(spec, results, final, upgraded_at, intervals, attempts, waves, halted, end_h, energy, erases)


def _count(items) -> dict:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


_RANK = {o: k for k, o in enumerate(("bricked", "stuck", "rolled back", "refused", "declined", "no update",
                                      "upgraded"))}


def _worst(recs) -> str:
    outcomes = {r[3] for r in recs}
    if len(outcomes) == 1:
        return outcomes.pop()
    return min(outcomes, key=lambda o: _RANK.get(o, 0))


def _home_outcomes(finals) -> dict:
    """A home's outcome: upgraded if every bridge is, else its worst bridge's."""
    return _count(_worst(recs) for recs in finals)


def _curve(done: list[float], n: int) -> list[list[float]]:
    """[hours, percent of homes upgraded] at most ~500 points, ending at the last."""
    stride = max(1, len(done) // 500)
    ks = list(range(stride - 1, len(done), stride))
    if done and ks[-1] != len(done) - 1:
        ks.append(len(done) - 1)
    return [[round(done[k], 3), round((k + 1) / n * 100, 3)] for k in ks]


def _union(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(spans) < 2:
        return spans
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _outputs(spec, results, final, upgraded_at, intervals, attempts, waves, halted, end_h, energy, erases) -> dict:
    n = spec.homes
    final = [None if f is None else tuple(f.values()) for f in final]
    done = sorted(t for t in upgraded_at if t is not None)
    times = {}
    for pct in (50, 90, 99, 100):
        k = math.ceil(n * pct / 100)
        times[f"{pct}%"] = round(done[k - 1], 3) if k <= len(done) else None
    bin_h = 1.0 if end_h <= 24 * 60 else 6.0
    nbins = max(1, math.ceil(end_h / bin_h) + 1)
    offline_bins = [0] * nbins
    lost = {"any": 0.0, "meter": 0.0, "display": 0.0}
    events = []
    for spans in intervals:
        if not spans:
            continue
        for link in ("meter", "display"):
            for a, b in _union([(a, min(b, end_h)) for a, b, links in spans if link in links]):
                lost[link] += (b - a) * 60
        seen = set()
        for a, b in _union([(a, min(b, end_h)) for a, b, _ in spans]):
            lost["any"] += (b - a) * 60
            events.append((a, 1))
            events.append((b, -1))
            seen.update(range(int(a // bin_h), min(nbins - 1, int(b // bin_h)) + 1))
        for k in seen:
            offline_bins[k] += 1
    peak = cur = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):
        cur += d
        peak = max(peak, cur)
    recs = [r for f in final if f is not None for r in f]
    causes = _count(f"{r[3]}: {r[4]}" for r in recs if r[3] != "upgraded")
    b3 = [r for r in recs if r[1] == "B3"]
    full = sum(1 for r in results if r[3] == "full")
    return {
        "homes": n, "homes_full_fidelity": full, "homes_calibrated": n - full,
        "homes_attempted": sum(f is not None for f in final),
        "homes_upgraded": len(done), "halted_after_wave": halted,
        "time_to_upgraded_h": times,
        "campaign_end_h": round(end_h, 3),
        "home_outcomes": _home_outcomes(f for f in final if f is not None),
        "bridge_outcomes": _count(r[3] for r in recs),
        "causes": causes,
        "retries": sum(max(0, a - 1) for a in attempts),
        "lost_service_minutes": {k: round(v, 2) for k, v in lost.items()},
        "peak_homes_offline_at_once": peak,
        "homes_offline_per_bin": {"bin_h": bin_h, "counts": offline_bins},
        "completion_curve": _curve(done, n),
        "b3_energy_mJ": {"total": round(energy, 1), "b3_bridges": len(b3),
                         "mean_per_b3_final": round(sum(r[8] for r in b3) / len(b3), 1) if b3 else None},
        "flash_erases": {t: {"downloads": len(v), "total": sum(v), "mean": round(sum(v) / len(v), 2),
                             "max": max(v)} for t, v in sorted(erases.items())},
        "waves": waves,
    }
