"""What a person sees of a run: each bridge's timeline in virtual time, and
progress that shows what happened (a finished download stays full)."""
from __future__ import annotations

import json

import pytest

from bridge_emu import cli
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.session import Session, demo_premises
from support.paths import IMAGES

pytestmark = pytest.mark.native


@pytest.fixture(scope="module")
def demo_rows():
    session = Session.open(demo_premises(), images_dir=ImageSet(IMAGES), run_dir=None)
    try:
        assert session.run()
        yield session, {(r["premises"], r["bridge"]): r for r in session.rows()}
    finally:
        session.close()


def steps(row) -> list[str]:
    return [e["step"] for e in row["timeline"]]


def in_order(seq: list[str], wanted: list[str]) -> bool:
    it = iter(seq)
    return all(any(s == w for s in it) for w in wanted)


def test_the_cut_and_resumed_bridge_tells_its_whole_update(demo_rows):
    _, rows = demo_rows
    b3 = rows[("gsme-battery", "b3")]
    assert in_order(steps(b3), ["boot", "joined", "download", "power cut", "boot", "resume", "verify", "alert",
                                "CS06", "activation", "reset", "install", "joined", "confirm"])
    resume = next(e for e in b3["timeline"] if e["step"] == "resume")
    download = next(e for e in b3["timeline"] if e["step"] == "download")
    size = download["detail"].split()[0]
    assert resume["detail"] == f"at byte {b3['resumed_from'][0]} of {size}"
    times = [e["t"] for e in b3["timeline"]]
    assert times == sorted(times) and times[-1] > times[0]


def test_the_rolled_back_bridge_shows_the_trial_failing_and_the_revert(demo_rows):
    _, rows = demo_rows
    b4 = rows[("both-apart-mains", "b4")]
    assert in_order(steps(b4), ["install", "self-test", "reset", "revert", "joined"])
    install = next(e for e in b4["timeline"] if e["step"] == "install")
    revert = next(e for e in b4["timeline"] if e["step"] == "revert")
    assert install["detail"].startswith("1.1.1") and revert["detail"].startswith("1.0.0")


def test_a_finished_download_shows_full(demo_rows):
    session, rows = demo_rows
    for run in session.runs:
        for s in run.slots:
            done, size = run.progress(s)
            assert size > 0 and done == size == s.bridge.record.download_bytes


def test_the_timeline_is_in_the_json_and_the_terminal(capsys, tmp_path):
    assert cli.main(["run", "gsme-mains", "--no-dir", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    for b in report["bridges"]:
        assert steps(b)[0] == "boot" and "confirm" in steps(b)
        assert all(set(e) == {"t", "step", "detail"} for e in b["timeline"])
    assert cli.main(["run", "gsme-mains", "--no-dir"]) == 0
    out = capsys.readouterr().out
    assert "timeline gsme-mains/b2 (B2)" in out and "install" in out and "virtual" in out
