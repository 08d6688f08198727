"""`run --seed N` and `run --seeds A-B`: the network's seed chosen by the user,
and a sweep of seeds with a summary of what every bridge ended as."""
from __future__ import annotations

import json

import pytest

from bridge_emu import cli

pytestmark = pytest.mark.native


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def event_times(capsys, seed: int) -> list:
    rc, out, _ = run(capsys, "run", "both-apart-battery", "--no-dir", "--seed", seed, "--json")
    assert rc == 0
    return [(b["bridge"], b["download_s"], b["downtime_s"]) for b in json.loads(out)["bridges"]]


def test_a_seed_gives_the_same_run_every_time_and_seeds_differ(capsys):
    assert event_times(capsys, 7) == event_times(capsys, 7)
    assert event_times(capsys, 7) != event_times(capsys, 8)


def test_a_sweep_runs_once_per_seed_and_counts_every_outcome(capsys):
    rc, out, _ = run(capsys, "run", "gsme-battery", "both-apart-mains", "--seeds", "1-3,9", "--json")
    result = json.loads(out)
    assert rc == 0 and result["settled"] and result["seeds"] == [1, 2, 3, 9]
    assert [r["seed"] for r in result["runs"]] == [1, 2, 3, 9]
    assert len(result["summary"]) == 5
    for entry in result["summary"]:
        assert entry["outcomes"] == {"upgraded": 4} and entry["unsettled"] == []
    rc, out, _ = run(capsys, "run", "gsme-battery", "--seeds", "4-5")
    assert rc == 0 and "seed 4: settled" in out and "seed 5: settled" in out and "upgraded 2" in out


def test_a_sweep_names_the_seeds_that_did_not_settle_and_where_they_stalled(capsys, tmp_path):
    p = tmp_path / "lossy.toml"
    p.write_text('name = "lossy"\n[[bridge]]\nname = "b1"\ntype = "B1"\n'
                 '[[bridge]]\nname = "b2"\ntype = "B2"\nparent = "b1"\nlink = { loss = 0.5 }\n')
    rc, out, _ = run(capsys, "run", p, "--seeds", "1-2", "--limit", "600", "--json")
    result = json.loads(out)
    (b2,) = [e for e in result["summary"] if e["bridge"] == "b2"]
    assert rc == 1 and not result["settled"]
    assert [u["seed"] for u in b2["unsettled"]] == [1, 2] and all(u["stalled"] for u in b2["unsettled"])
    rc, out, _ = run(capsys, "run", p, "--seeds", "1", "--limit", "600")
    assert rc == 1 and "seed 1: not settled" in out and "some runs did not settle" in out


@pytest.mark.parametrize("argv, culprit", [
    (["--seeds", "5-1"], "'5-1'"), (["--seeds", "x"], "not a number"), (["--seed", "-1"], "a seed is"),
    (["--seed", str(1 << 32)], "a seed is"), (["--seeds", "0-20000"], "at most 10000"),
    (["--seed", "1", "--seeds", "1-2"], "--seed and --seeds"),
])
def test_bad_seeds_are_one_line(capsys, argv, culprit):
    rc, out, err = run(capsys, "run", "gsme-mains", "--no-dir", *argv)
    assert rc == 2 and out == "" and err.count("\n") == 1 and culprit in err
