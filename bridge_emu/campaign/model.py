"""The calibrated fast model: per-download records (outcome, download time,
downtime, flash erases, energy) measured by full-fidelity runs, resampled.

Calibration runs are stratified so every kind of download the campaign can
draw has measurements of its own: each configuration in each distance class;
each bridge type with the faulty image and with another type's image (when the
campaign has those); B3 configurations with a low battery; all of it for each
hub personality the campaign mixes (pacing and activation differ). A fast
bridge draws a whole record (outcome and figures together, so their correlation
is kept) from the finest bucket with at least MIN_SAMPLES records, always of its
own hub: (hub, type, offer, class, battery) -> (hub, type, offer, class) ->
(hub, type, offer). Bridges of one home are drawn independently.

The check: the campaign's own full-fidelity homes are held out (never used in
calibration); the model predicts each of their bridges REPLICATES times, and
the predictions are compared with what the real runs gave, per bridge type:
quantiles, the two-sample Kolmogorov-Smirnov statistic of download time and
downtime against its 1 % critical value, and outcome shares.
"""
from __future__ import annotations

import math

from bridge_emu.campaign.homes import Home, draw_home, offer_kind, premises_of
from bridge_emu.campaign.spec import CampaignError, CampaignSpec

MIN_SAMPLES = 2
REPLICATES = 20
KS_C_ALPHA = 1.628          # c(alpha) for alpha = 0.01
OUTCOME_TOLERANCE = 0.10    # outcome shares may differ by this much (or three binomial standard errors)


def strata(spec: CampaignSpec) -> list[dict]:
    """The calibration runs, as the draws each one fixes."""
    out = []
    configs = [(name, p) for name, w, p in spec.population if w > 0]
    classes = [c.name for c in spec.classes if c.weight > 0]
    plain = {"faulty_type": None, "incompatible_type": None, "battery": "good"}
    for name, _ in configs:
        for cls in classes:
            out.append(dict(plain, config=name, cls=cls))
    types = {}
    for name, p in sorted(configs, key=lambda c: -next(w for n, w, _ in spec.population if n == c[0])):
        for b in p.bridges:
            types.setdefault(b.type, name)     # the heaviest configuration that has the type
    for kind, share in (("faulty_type", spec.faulty_share), ("incompatible_type", spec.incompatible_share)):
        if share > 0:
            for t, name in sorted(types.items()):
                for cls in classes:
                    out.append(dict(plain, config=name, cls=cls, **{kind: t}))
    if spec.b3_low_share > 0:
        for name, p in configs:
            if any(b.type == "B3" for b in p.bridges):
                for cls in classes:
                    out.append(dict(plain, config=name, cls=cls, battery="low"))
    return [dict(s, personality=hub) for hub in spec.hubs for s in out for _ in range(spec.calibration_runs)]


def calibration_homes(spec: CampaignSpec) -> list[Home]:
    return [draw_home(spec, i, "calibration", force) for i, force in enumerate(strata(spec))]


def _keys(hub: str, rtype: str, kind: str, cls: str, battery: str) -> tuple:
    b = battery if rtype == "B3" else "-"
    return (f"{hub}|{rtype}|{kind}|{cls}|{b}", f"{hub}|{rtype}|{kind}|{cls}", f"{hub}|{rtype}|{kind}")


class FastModel:
    """Buckets of measured records, resampled. The records are kept once, in
    `table`; a bucket lists indices into it, and a fast home is a tuple of such
    indices (small to send back from a worker)."""

    def __init__(self, table: list, buckets: dict[str, list[int]]):
        self.table = table
        self.buckets = buckets

    @classmethod
    def calibrate(cls, runs: list[tuple[Home, tuple]]) -> FastModel:
        table: list = []
        buckets: dict[str, list[int]] = {}
        for home, records in runs:
            for rec in records:
                table.append(rec)
                for key in _keys(home.personality, rec[1], rec[2], home.cls, home.battery):
                    buckets.setdefault(key, []).append(len(table) - 1)
        return cls(table, buckets)

    def draw_index(self, hub: str, rtype: str, kind: str, cls: str, battery: str, rng) -> int:
        keys = _keys(hub, rtype, kind, cls, battery)
        for key in keys:
            found = self.buckets.get(key)
            if found and len(found) >= MIN_SAMPLES:
                break
        else:
            found = self.buckets.get(keys[-1])
            if not found:
                raise CampaignError(f"the fast model has no calibration for a {rtype} offered {kind!r} "
                                    f"by a {hub} hub")
        return found[rng.randrange(len(found))]

    def home_indices(self, spec: CampaignSpec, home: Home, rng) -> tuple[int, ...]:
        p = premises_of(spec)[home.config]
        return tuple(self.draw_index(home.personality, b.type, offer_kind(home, b.name), home.cls, home.battery,
                                     rng) for b in p.bridges)

    def records(self, names: list[str], indices: tuple[int, ...]) -> tuple:
        return tuple((name,) + self.table[k][1:] for name, k in zip(names, indices))

    def home(self, spec: CampaignSpec, home: Home, rng) -> tuple:
        names = [b.name for b in premises_of(spec)[home.config].bridges]
        return self.records(names, self.home_indices(spec, home, rng))

    def summary(self) -> dict:
        """Per bucket: how many records, and the quantiles of download time."""
        out = {}
        for key in sorted(self.buckets):
            dl = sorted(self.table[k][5] for k in self.buckets[key])
            out[key] = {"records": len(dl), "download_s_p50": _q(dl, 0.5), "download_s_p90": _q(dl, 0.9)}
        return out


def _q(sorted_values: list, q: float):
    if not sorted_values:
        return None
    i = (len(sorted_values) - 1) * q
    lo, hi = math.floor(i), math.ceil(i)
    return round(sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (i - lo), 3)


def ks_statistic(a: list[float], b: list[float]) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the
    empirical distribution functions (ties stepped together)."""
    a, b = sorted(a), sorted(b)
    i = j = 0
    d = 0.0
    while i < len(a) and j < len(b):
        x = min(a[i], b[j])
        while i < len(a) and a[i] == x:
            i += 1
        while j < len(b) and b[j] == x:
            j += 1
        d = max(d, abs(i / len(a) - j / len(b)))
    return round(d, 4)


def ks_critical(n: int, m: int) -> float:
    return round(KS_C_ALPHA * math.sqrt((n + m) / (n * m)), 4)


def check(spec: CampaignSpec, model: FastModel, held_out: list[tuple[Home, tuple]], rng_for) -> dict:
    """The fast model against held-out full-fidelity homes, per bridge type."""
    real: dict[str, list] = {}
    pred: dict[str, list] = {}
    for home, records in held_out:
        for rec in records:
            real.setdefault(rec[1], []).append(rec)
        rng = rng_for(spec.seed, "check", home.index)
        for _ in range(REPLICATES):
            for rec in model.home(spec, home, rng):
                pred.setdefault(rec[1], []).append(rec)
    per_type = {}
    ok = True
    for rtype in sorted(real):
        r, p = real[rtype], pred[rtype]
        entry = {"held_out_bridges": len(r), "predictions": len(p)}
        for field, i in (("download_s", 5), ("downtime_s", 6)):
            rv, pv = sorted(x[i] for x in r), sorted(x[i] for x in p)
            ks, crit = ks_statistic(rv, pv), ks_critical(len(rv), len(pv))
            entry[field] = {"full_p10_p50_p90": [_q(rv, q) for q in (0.1, 0.5, 0.9)],
                            "fast_p10_p50_p90": [_q(pv, q) for q in (0.1, 0.5, 0.9)],
                            "ks": ks, "ks_critical_1pct": crit, "ok": ks <= crit}
            ok &= ks <= crit
        outcomes = sorted({x[3] for x in r} | {x[3] for x in p})
        shares = {}
        for o in outcomes:
            fr = sum(x[3] == o for x in r) / len(r)
            fp = sum(x[3] == o for x in p) / len(p)
            tol = max(OUTCOME_TOLERANCE, 3 * math.sqrt(max(fp * (1 - fp), 1e-9) / len(r)))
            shares[o] = {"full": round(fr, 4), "fast": round(fp, 4), "tolerance": round(tol, 4),
                         "ok": abs(fr - fp) <= tol}
            ok &= abs(fr - fp) <= tol
        entry["outcome_shares"] = shares
        per_type[rtype] = entry
    return {"method": f"held-out full-fidelity homes (the campaign's own sample, not used in calibration) against "
                      f"{REPLICATES} fast-model predictions each; two-sample KS at alpha 0.01, outcome shares within "
                      f"max({OUTCOME_TOLERANCE}, 3 standard errors)",
            "held_out_homes": len(held_out), "ok": bool(ok and held_out), "per_type": per_type}
