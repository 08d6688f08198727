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
from array import array

import numpy as np  # matplotlib's own dependency: sorting a million spans in C, 8 bytes apiece

from bridge_emu.campaign.fleet import BATTERIES, WIDTH, Codes, Fleet
from bridge_emu.campaign.homes import carries, premises_of, rng_for
from bridge_emu.campaign.spec import CampaignSpec, self_activating
from bridge_emu.emulator.profiles import PROFILES

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


ACTIVATES = ("upgraded", "rolled back", "bricked")
LINKS = ("any", "meter", "display")


def _attempt(spec, table, recs, start, u, self_act):
    """One attempt at a home's downloads from start (hours): the download end,
    and per bridge (position, record index, activation time or None, its
    download's end)."""
    limit = spec.max_concurrent_downloads
    t = start
    done = []
    for b in range(0, len(recs), limit):
        batch = recs[b:b + limit]
        ends = []
        for k, idx in batch:
            rec = table[idx]
            e = t + contended_s(rec[5], rec[9], len(batch), spec.metering_share) / 3600
            ends.append(e)
            done.append((k, idx, e))
        t = max(ends)
    act = None if self_act else _activation(spec, t, u)
    return t, [(k, idx, ((end if act is None else act) if table[idx][3] in ACTIVATES else None), end)
               for k, idx, end in done]


def simulate(spec: CampaignSpec, fleet: Fleet, table: list, model) -> dict:
    """fleet: every home's codes, clock draws and record indices into table
    (the fast model's records, then the full-fidelity homes' own)."""
    n = spec.homes
    order = array("q", range(n))      # 8 bytes a home, not a list of int objects
    rng_for(spec.seed, "order", 0).shuffle(order)
    bounds = [math.ceil(n * pct / 100) for pct in spec.waves]
    codes = Codes(spec)
    prem = premises_of(spec)
    carried = []                       # per configuration: per bridge position, the links it carries
    for name in codes.configs:
        carry = carries(name, prem[name])
        carried.append(tuple(carry.get(b.name, ("meter",)) for b in prem[name].bridges))
    self_act = [self_activating(h) for h in codes.hubs]
    tally = _Tally(spec, codes, table)
    recs_of, config_of, hub_of = fleet.recs, fleet.config, fleet.hub
    waves = []
    wave_start = 0.0
    halted = None
    lo = 0
    for w, hi in enumerate(bounds):
        members = order[lo:hi]
        lo = hi
        if not members:
            continue
        # first attempts in order of (ready time, home) as two flat arrays; retries, few, in a
        # heap of (ready, home, attempt, its downloads, CS06 uniform); the earlier goes first
        idx = np.frombuffer(members, dtype=np.int64)
        ready = wave_start + np.frombuffer(fleet.ready_h, dtype=np.float64)[idx]
        by = np.lexsort((idx, ready))
        first_i, first_t = array("q", idx[by].tobytes()), array("d", ready[by].tobytes())
        del idx, ready, by
        nfirst, k_first = len(first_i), 0
        queue: list = []
        slots: list[float] = []        # end times of the homes downloading now
        wave_end = wave_start
        wave = _Wave()
        in_flight: dict[int, tuple[dict, list]] = {}    # a home that retries: its final records so far, its spans
        while k_first < nfirst or queue:
            if queue and (k_first == nfirst or queue[0][:2] < (first_t[k_first], first_i[k_first])):
                ready, i, attempt, recs, u = heapq.heappop(queue)
            else:
                ready, i, attempt = first_t[k_first], first_i[k_first], 0
                k_first += 1
                base = i * WIDTH
                recs = [(k, recs_of[base + k]) for k in range(WIDTH) if recs_of[base + k] >= 0]
                u = fleet.act_u[i]
            start = ready
            if len(slots) >= spec.max_concurrent_homes:
                start = max(ready, heapq.heappop(slots))
            c, h = config_of[i], hub_of[i]
            end, acts = _attempt(spec, table, recs, start, u, self_act[h])
            heapq.heappush(slots, end)
            final, spans = in_flight.pop(i, None) or ({}, [])
            last = end
            for k, idx, t_act, _ in acts:
                rec = table[idx]
                tally.download(rec)
                if t_act is None:
                    continue
                links = carried[c][k]
                up = INF if rec[10] else t_act + rec[6] / 3600
                spans.append((t_act, up, links))
                tally.reboot(h, rec, t_act, up, links)
                last = max(last, t_act + rec[6] / 3600)
            wave_end = max(wave_end, last)
            final.update(recs)
            retry = [(k, idx) for k, idx in recs if table[idx][3] in spec.retry_on]
            if retry and attempt < spec.retry_attempts:
                # only the bridges that failed download again, drawn from the fast model
                rng = rng_for(spec.seed, f"retry{attempt + 1}", i)
                cls, battery = codes.classes[fleet.cls[i]], BATTERIES[fleet.battery[i]]
                again = [(k, model.draw_index(codes.hubs[h], table[idx][1], table[idx][2], cls, battery, rng))
                         for k, idx in retry]
                heapq.heappush(queue, (end + spec.retry_after_hours, i, attempt + 1, again, rng.random()))
                tally.retries += 1
                in_flight[i] = (final, spans)
                continue
            tally.home(i, h, [final[k] for k in sorted(final)], spans, last, wave)
        rate = wave.failed / len(members)
        entry = {"wave": w, "kind": "canary" if w == 0 and len(bounds) > 1 else "wave",
                 "homes": len(members), "start_h": round(wave_start, 3), "end_h": round(wave_end, 3),
                 "home_outcomes": dict(sorted(wave.homes.items())),
                 "bridge_outcomes": dict(sorted(wave.bridges.items())),
                 "failure_rate": round(rate, 4), "halted_after": False}
        waves.append(entry)
        if spec.halt_rate is not None and rate > spec.halt_rate:
            entry["halted_after"] = True
            halted = w
            break
        wave_start = wave_end + spec.soak_hours
    end_h = max([wv["end_h"] for wv in waves] + [0.0])
    return tally.outputs(fleet, waves, halted, end_h)


_RANK = {o: k for k, o in enumerate(("bricked", "stuck", "rolled back", "refused", "declined", "no update",
                                      "upgraded"))}


def _worst(recs) -> str:
    outcomes = {r[3] for r in recs}
    if len(outcomes) == 1:
        return outcomes.pop()
    return min(outcomes, key=lambda o: _RANK.get(o, 0))


def _curve(done, n: int) -> list[list[float]]:
    """[hours, percent of homes upgraded] at most ~500 points, ending at the last
    (done: the sorted completion times)."""
    stride = max(1, len(done) // 500)
    ks = list(range(stride - 1, len(done), stride))
    if len(done) and ks[-1] != len(done) - 1:
        ks.append(len(done) - 1)
    return [[round(float(done[k]), 3), round((k + 1) / n * 100, 3)] for k in ks]


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


class _Wave:
    """A wave's homes as they finish: outcomes, and how many failed (the halt rule)."""

    def __init__(self):
        self.homes: dict[str, int] = {}
        self.bridges: dict[str, int] = {}
        self.failed = 0


class _Lost:
    """Hours off a link, summed as homes finish: a span that ends is added at
    once; one still open at the end (a dead bridge) is kept as a count and the
    sum of its starts, and closed at the campaign's end."""
    __slots__ = ("closed_h", "open_n", "open_from_h")

    def __init__(self):
        self.closed_h = 0.0
        self.open_n = 0
        self.open_from_h = 0.0

    def add(self, a: float, b: float) -> None:
        if b == INF:
            self.open_n += 1
            self.open_from_h += a
        else:
            self.closed_h += b - a

    def merge(self, other: _Lost) -> None:
        self.closed_h += other.closed_h
        self.open_n += other.open_n
        self.open_from_h += other.open_from_h

    def minutes(self, end_h: float) -> float:
        return round((self.closed_h + self.open_n * end_h - self.open_from_h) * 60, 2)


class _Downtime:
    """One bridge type's reboots (under one hub, or all): how long each kept its
    bridge down (a histogram: the records are few, the reboots many), and the
    minutes its reboots took off the meter and display links."""

    def __init__(self):
        self.reboots = 0
        self.seconds: dict[float, int] = {}
        self.left_offline = 0
        self.links = {"meter": _Lost(), "display": _Lost()}

    def add(self, downtime_s: float, t_act: float, up: float, links) -> None:
        self.reboots += 1
        if up == INF:
            self.left_offline += 1
        else:
            self.seconds[downtime_s] = self.seconds.get(downtime_s, 0) + 1
        for link in links:
            self.links[link].add(t_act, up)

    def merge(self, other: _Downtime) -> None:
        self.reboots += other.reboots
        self.left_offline += other.left_offline
        for v, c in other.seconds.items():
            self.seconds[v] = self.seconds.get(v, 0) + c
        for link, lost in other.links.items():
            self.links[link].merge(lost)

    def summary(self, end_h: float, mode: str | None) -> dict:
        values = sorted(self.seconds.items())
        came_back = sum(c for _, c in values)
        out = {"mode": mode} if mode else {}
        out.update({"reboots": self.reboots, "came_back": came_back, "left_offline": self.left_offline,
                    "downtime_s": {"mean": round(sum(v * c for v, c in values) / came_back, 3) if came_back else None,
                                   "p50": _hist_q(values, came_back, 0.5), "p90": _hist_q(values, came_back, 0.9),
                                   "max": values[-1][0] if values else None},
                    "link_minutes": {link: lost.minutes(end_h) for link, lost in self.links.items()}})
        return out


def _hist_q(values: list[tuple[float, int]], total: int, q: float):
    """The q quantile (interpolated as model._q does) of a sorted histogram."""
    if not total:
        return None
    x = (total - 1) * q
    lo, hi = math.floor(x), math.ceil(x)
    at = {}
    seen = 0
    for v, c in values:
        for rank in (lo, hi):
            if rank not in at and rank < seen + c:
                at[rank] = v
        seen += c
        if hi in at:
            break
    return round(at[lo] + (at[hi] - at[lo]) * (x - lo), 3)


class _Hub:
    """The homes of one hub personality, as they finish."""

    def __init__(self):
        self.homes = 0
        self.upgraded = 0
        self.lost = {link: _Lost() for link in LINKS}
        self.types: dict[str, _Downtime] = {}


class _Tally:
    """Everything the campaign reports, summed as homes finish (streamed: no
    per-home state is kept but a home's completion time and its offline spans,
    a few numbers each, for the curve, the peak and the per-bin counts)."""

    def __init__(self, spec: CampaignSpec, codes: Codes, table: list):
        self.spec, self.codes, self.table = spec, codes, table
        self.hubs = [_Hub() for _ in codes.hubs]
        self.attempted = 0
        self.retries = 0
        self.home_outcomes: dict[str, int] = {}
        self.bridge_outcomes: dict[str, int] = {}
        self.causes: dict[str, int] = {}
        self.energy = 0.0
        self.b3_final = [0, 0.0]              # B3 bridges' final records: how many, their energy
        self.erases: dict[str, list] = {}     # type: [downloads, total, max]
        self.done = array("d")                # completion times of the homes upgraded
        self.span_a, self.span_b = array("d"), array("d")   # each home's offline spans (any link)
        self.span_first = array("B")          # 1: the home's first span (a home counts once per bin)

    def download(self, rec: tuple) -> None:
        self.energy += rec[8]
        e = self.erases.setdefault(rec[1], [0, 0, 0])
        e[0] += 1
        e[1] += rec[7]
        e[2] = max(e[2], rec[7])

    def reboot(self, hub: int, rec: tuple, t_act: float, up: float, links) -> None:
        types = self.hubs[hub].types
        if rec[1] not in types:
            types[rec[1]] = _Downtime()
        types[rec[1]].add(rec[6], t_act, up, links)

    def home(self, i: int, hub: int, final: list[int], spans: list, last: float, wave: _Wave) -> None:
        recs = [self.table[k] for k in final]
        self.attempted += 1
        worst = _worst(recs)
        for d in (wave.homes, self.home_outcomes):
            d[worst] = d.get(worst, 0) + 1
        for r in recs:
            for d in (wave.bridges, self.bridge_outcomes):
                d[r[3]] = d.get(r[3], 0) + 1
            if r[3] != "upgraded":
                cause = f"{r[3]}: {r[4]}"
                self.causes[cause] = self.causes.get(cause, 0) + 1
            if r[1] == "B3":
                self.b3_final[0] += 1
                self.b3_final[1] += r[8]
        wave.failed += any(r[3] in self.spec.halt_on for r in recs)
        h = self.hubs[hub]
        h.homes += 1
        if all(r[3] == "upgraded" for r in recs):
            self.done.append(last)
            h.upgraded += 1
        if not spans:
            return
        for link in ("meter", "display"):
            for a, b in _union([(a, b) for a, b, links in spans if link in links]):
                h.lost[link].add(a, b)
        for k, (a, b) in enumerate(_union([(a, b) for a, b, _ in spans])):
            h.lost["any"].add(a, b)
            self.span_a.append(a)
            self.span_b.append(b)
            self.span_first.append(k == 0)

    def outputs(self, fleet: Fleet, waves: list, halted, end_h: float) -> dict:
        spec = self.spec
        n = spec.homes
        done = np.sort(np.frombuffer(self.done, dtype=np.float64))
        times = {}
        for pct in (50, 90, 99, 100):
            k = math.ceil(n * pct / 100)
            times[f"{pct}%"] = round(float(done[k - 1]), 3) if k <= len(done) else None
        bin_h = 1.0 if end_h <= 24 * 60 else 6.0
        nbins = max(1, math.ceil(end_h / bin_h) + 1)
        lost = {link: _Lost() for link in LINKS}
        for h in self.hubs:
            for link in LINKS:
                lost[link].merge(h.lost[link])
        b3_n, b3_energy = self.b3_final
        full = len(fleet.full)
        return {
            "homes": n, "homes_full_fidelity": full, "homes_calibrated": n - full,
            "homes_attempted": self.attempted,
            "homes_upgraded": len(done), "halted_after_wave": halted,
            "time_to_upgraded_h": times,
            "campaign_end_h": round(end_h, 3),
            "home_outcomes": dict(sorted(self.home_outcomes.items())),
            "bridge_outcomes": dict(sorted(self.bridge_outcomes.items())),
            "causes": dict(sorted(self.causes.items())),
            "retries": self.retries,
            "lost_service_minutes": {link: lost[link].minutes(end_h) for link in LINKS},
            "peak_homes_offline_at_once": self._peak(end_h),
            "homes_offline_per_bin": {"bin_h": bin_h, "counts": self._bins(end_h, bin_h, nbins)},
            "completion_curve": _curve(done, n),
            "b3_energy_mJ": {"total": round(self.energy, 1), "b3_bridges": b3_n,
                             "mean_per_b3_final": round(b3_energy / b3_n, 1) if b3_n else None},
            "flash_erases": {t: {"downloads": d, "total": tot, "mean": round(tot / d, 2), "max": mx}
                             for t, (d, tot, mx) in sorted(self.erases.items())},
            "downtime": self._downtime(end_h),
            "waves": waves,
        }

    def _downtime(self, end_h: float) -> dict:
        """Reboots per bridge type (its swap mode: copy-swap copies at the boot,
        bank-switch does not) and per hub personality."""
        all_types: dict[str, _Downtime] = {}
        per_hub = {}
        for name, h in zip(self.codes.hubs, self.hubs):
            if not h.homes:
                continue
            for t, d in h.types.items():
                all_types.setdefault(t, _Downtime()).merge(d)
            per_hub[name] = {
                "homes": h.homes, "homes_upgraded": h.upgraded,
                "lost_service_minutes": {link: h.lost[link].minutes(end_h) for link in LINKS},
                "meter_minutes_per_home": round(h.lost["meter"].minutes(end_h) / h.homes, 3),
                "per_type": {t: d.summary(end_h, None) for t, d in sorted(h.types.items())}}
        per_mode: dict[str, _Downtime] = {}
        for t, d in all_types.items():
            per_mode.setdefault(_mode(t), _Downtime()).merge(d)
        return {"per_type": {t: d.summary(end_h, _mode(t)) for t, d in sorted(all_types.items())},
                "per_mode": {m: d.summary(end_h, None) for m, d in sorted(per_mode.items())},
                "per_hub": per_hub}

    def _peak(self, end_h: float) -> int:
        """The most homes offline at once: a sweep over the spans' starts and ends
        (an end before a start at the same time)."""
        if not self.span_a:
            return 0
        starts = np.frombuffer(self.span_a, dtype=np.float64)
        ends = np.minimum(np.frombuffer(self.span_b, dtype=np.float64), end_h)
        times = np.concatenate((ends, starts))
        step = np.concatenate((np.full(len(ends), -1, np.int64), np.ones(len(starts), np.int64)))
        return max(0, int(np.cumsum(step[np.lexsort((step, times))]).max()))

    def _bins(self, end_h: float, bin_h: float, nbins: int) -> list[int]:
        """Per bin, the homes off a link at some time in it (each home once)."""
        diff = [0] * (nbins + 1)
        last = -1
        for a, b, first in zip(self.span_a, self.span_b, self.span_first):
            if first:
                last = -1
            k0 = max(int(a // bin_h), last + 1)
            k1 = min(nbins - 1, int(min(b, end_h) // bin_h))
            if k0 <= k1:
                diff[k0] += 1
                diff[k1 + 1] -= 1
                last = k1
            else:
                last = max(last, k1)
        out, cur = [], 0
        for d in diff[:nbins]:
            cur += d
            out.append(cur)
        return out


def _mode(rtype: str) -> str:
    return PROFILES[rtype].mode if rtype in PROFILES else "?"
