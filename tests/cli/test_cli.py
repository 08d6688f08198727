"""The main job and the run/state commands, as a user runs them."""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import pytest

from bridge_emu import cli

pytestmark = pytest.mark.native


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_demo_runs_every_bridge_type_through_the_flow(capsys, tmp_path):
    rc, out, _ = run(capsys, "demo", "--dir", tmp_path / "demo", "--json")
    report = json.loads(out)
    assert rc == 0 and report["settled"]
    rows = {(b["premises"], b["bridge"]): b for b in report["bridges"]}
    assert {b["type"] for b in rows.values()} == {"B1", "B2", "B3", "B4"}
    assert len({p for p, _ in rows}) == 2 and sorted(len([1 for p, _ in rows if p == q]) for q in
                                                      {p for p, _ in rows}) == [2, 3]
    faulty = [b for b in rows.values() if b["offered"].startswith("faulty")]
    assert len(faulty) == 1 and faulty[0]["outcome"] == "rolled back"
    assert faulty[0]["version_after"] == faulty[0]["version_before"]
    for b in rows.values():
        if b is not faulty[0]:
            assert b["outcome"] == "upgraded" and b["version_after"].startswith("1.1.0")
            assert b["alerts"][:2] == ["0x8F72", "0x8F43"]
        assert b["blocks"] > 0 and b["download_s"] > 0 and b["downtime_s"] > 0
    b3 = next(b for b in rows.values() if b["type"] == "B3")
    assert b3["resumed_from"] and b3["energy_mJ"] > 0 and b3["polls"] > 0
    # the devices are left for inspection
    rc, out, _ = run(capsys, "state", tmp_path / "demo", "--json")
    states = json.loads(out)
    assert rc == 0 and len(states) == 5
    for s in states:
        assert s["state"]["state"] == "confirmed" and s["events_total"] > 0
        assert any(e["event"] in ("joined", "confirmed") for e in s["events"])


def test_demo_refuses_to_wipe_a_directory_it_did_not_make(capsys, tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    rc, _, err = run(capsys, "demo", "--dir", tmp_path)
    assert rc == 2 and "refusing to overwrite" in err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_run_builtin_and_file_premises(capsys, tmp_path):
    rc, out, _ = run(capsys, "run", "ihd", "--no-dir", "--json")
    assert rc == 0 and [b["type"] for b in json.loads(out)["bridges"]] == ["B1", "B4"]
    f = tmp_path / "mine.toml"
    f.write_text('name = "mine"\n[hub]\npersonality = "zigpy"\nactivation = "none"\n'
                 '[[bridge]]\nname = "b1"\ntype = "B1"\noffer = "none"\n'
                 '[[bridge]]\nname = "x"\ntype = "B2"\nparent = "b1"\noffer = "next"\n')
    rc, out, _ = run(capsys, "run", f, "--no-dir", "--json")
    report = json.loads(out)
    assert rc == 0 and report["bridges"][1]["outcome"] == "upgraded"


def test_run_reports_bad_premises_and_unsettled_runs(capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\n[[bridge]]\nname = "b1"\ntype = "B1"\n[[bridge]]\nname = "x"\ntype = "B9"\n'
                   'parent = "b1"\n')
    rc, _, err = run(capsys, "run", bad, "--no-dir")
    assert rc == 2 and "B9" in err and "Traceback" not in err
    rc, _, err = run(capsys, "run", tmp_path / "missing.toml", "--no-dir")
    assert rc == 2 and "missing.toml" in err
    rc, out, _ = run(capsys, "run", "gsme-battery", "--no-dir", "--json", "--limit", 30)
    assert rc == 1 and not json.loads(out)["settled"]


def test_state_of_nothing_is_a_clear_error(capsys, tmp_path):
    rc, _, err = run(capsys, "state", tmp_path)
    assert rc == 2 and "no device here" in err


def test_demo_command_prints_tables(tmp_path):
    exe = pathlib.Path(sys.executable).parent / "bridge-emu"
    r = subprocess.run([str(exe), "demo", "--dir", str(tmp_path / "d")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "premises gsme-battery" in r.stdout and "premises both-apart-mains" in r.stdout
    assert "rolled back" in r.stdout and "upgraded" in r.stdout
