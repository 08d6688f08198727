"""What lets a campaign reach a million homes: shards come back as a few bytes
per home and are copied into one compact Fleet, so the result does not depend
on how the homes were cut into shards; the million-home example is the
national one, bigger."""
from __future__ import annotations

import dataclasses
import pathlib

from bridge_emu.campaign import load_campaign, runner
from bridge_emu.campaign.clock import simulate
from bridge_emu.campaign.fleet import FIELDS, WIDTH, Fleet
from bridge_emu.campaign.model import FastModel

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "campaigns"


def _rec(name, rtype, download_s):
    return (name, rtype, "next", "upgraded", "", download_s, 5.0, 1, 0.0, 1.0, False, 0.0)


def _model() -> FastModel:
    table = [_rec("b1", "B1", 50.0), _rec("b1", "B1", 70.0), _rec("b2", "B2", 60.0), _rec("b4", "B4", 40.0)]
    return FastModel(table, {"gbcs-ch|B1|next": [0, 1], "gbcs-ch|B2|next": [2, 2], "gbcs-ch|B4|next": [3, 3]})


def _fleet(spec, model, cuts) -> Fleet:
    fleet = Fleet(spec)
    for lo, hi in cuts:
        fleet.put(runner.fast_task(spec, model.table, model.buckets, lo, hi))
    return fleet


def test_the_fleet_and_the_campaign_do_not_depend_on_the_shards(tiny, monkeypatch):
    spec = load_campaign(tiny(homes=2000, faulty=0.0))
    model = _model()
    whole = _fleet(spec, model, [(0, spec.homes)])
    monkeypatch.setattr(runner, "FAST_SHARD", 200)
    monkeypatch.setattr(runner, "MIN_SHARD", 40)
    cuts = runner.shards(spec.homes, 2)
    assert cuts[0] == (0, 200) and cuts[-1][1] == spec.homes and len(cuts) > 4
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))                  # contiguous, no home twice
    sizes = [hi - lo for lo, hi in cuts]
    assert sizes == sorted(sizes, reverse=True) and min(sizes[:-1]) == 40          # smaller towards the end
    parts = _fleet(spec, model, reversed(cuts))                                # in any order they arrive
    assert parts.arrays == whole.arrays
    assert simulate(spec, parts, model.table, model) == simulate(spec, whole, model.table, model)
    # a few bytes a home, whatever the campaign's size
    per_home = sum(a.itemsize * per for a, per in ((whole.arrays[f], FIELDS[f][1]) for f in FIELDS))
    assert sum(a.itemsize * len(a) for a in whole.arrays.values()) == per_home * spec.homes
    assert per_home == 4 + 2 * 8 + WIDTH * 4


def test_the_million_home_example_is_the_national_one_bigger():
    million, national = load_campaign(EXAMPLES / "million.toml"), load_campaign(EXAMPLES / "national.toml")
    assert million.homes == 1_000_000
    assert dataclasses.replace(million, name=national.name, homes=national.homes) == national
