"""`run`/`demo` --dir (issue 8, part 3): a re-run clears only what bridge-emu
wrote there; a folder it did not make, or a file in its place, is one line on
stderr and exit status 2, with nothing touched."""
from __future__ import annotations

import pytest

from bridge_emu.cli import main


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_rerun_keeps_what_the_user_put_in_the_folder(capsys, tmp_path):
    d = tmp_path / "out"
    assert run(capsys, "run", "ihd", "--dir", d, "--json")[0] == 0
    flash = d / "ihd" / "b1" / "flash.bemu"
    assert flash.is_file()
    mine = [d / "notes.txt", d / "ihd" / "mine.csv", d / "ihd" / "b1" / "scope.log"]
    for f in mine:
        f.write_text("the user's")
    events_before = (d / "ihd" / "b1" / "events.jsonl").read_text()
    assert run(capsys, "run", "ihd", "--dir", d, "--json")[0] == 0
    assert all(f.read_text() == "the user's" for f in mine)
    # the device files are the new run's, not the old ones appended to
    assert (d / "ihd" / "b1" / "events.jsonl").read_text().count('"boot"') == events_before.count('"boot"')


@pytest.mark.parametrize("case", ["not ours", "a file", "under a file"])
def test_folders_we_must_not_use_are_one_line(capsys, tmp_path, case):
    target = tmp_path / "out"
    if case == "not ours":
        target.mkdir()
        (target / "thesis.tex").write_text("keep")
    elif case == "a file":
        target.write_text("keep")
    else:
        (tmp_path / "f").write_text("keep")
        target = tmp_path / "f" / "out"
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    rc, out, err = run(capsys, "run", "ihd", "--dir", target, "--json")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("bridge-emu: error: ") and str(target) in err, err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("limit", ["0", "-5", "nan", "inf", "soon"])
def test_limit_must_be_finite_and_positive(capsys, limit):
    rc, out, err = run(capsys, "run", "ihd", "--no-dir", "--limit", limit)
    assert rc == 2 and out == "" and f"--limit: {limit!r}" in err and "Traceback" not in err


def test_version(capsys):
    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and out.startswith("bridge-emu ") and out.split()[1][0].isdigit()
