"""What `bridge-emu campaign` writes: campaign.json, run.json and three PNG
plots in --out, nothing outside it, and nothing the user put there deleted."""
from __future__ import annotations

import json
import os
import pathlib
import struct

import pytest

from bridge_emu.campaign import CampaignError, load_campaign, run_to
from bridge_emu.campaign.outputs import MARKER, OUR_FILES, PLOTS
from bridge_emu.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def _tree(root: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() and not p.is_symlink() else b"<dir>")
            for p in sorted(root.rglob("*"))}


def test_the_command_writes_the_document_and_valid_pngs(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["campaign", str(tiny(homes=300, sample=1)), "--out", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "time to 90% upgraded" in shown and "fast model check" in shown and "wrote" in shown
    assert sorted(p.name for p in out.iterdir()) == sorted((MARKER,) + OUR_FILES)
    doc = json.loads((out / "campaign.json").read_text())
    assert set(doc["results"]["time_to_upgraded_h"]) == {"50%", "90%", "99%", "100%"}
    for name in PLOTS:
        data = (out / name).read_bytes()
        assert data[:8] == PNG and data[12:16] == b"IHDR"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 300 and height > 200
        assert data.endswith(b"IEND\xaeB`\x82")
    import matplotlib.image
    assert matplotlib.image.imread(out / "offline.png").shape[2] in (3, 4)


def test_json_on_stdout_with_progress_on_stderr(tiny, tmp_path, capsys):
    assert main(["campaign", str(tiny(homes=200, sample=1)), "--out", str(tmp_path / "o"), "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["campaign"]["homes"] == 200 and doc["run"]["engine"] == "local"


def test_nothing_is_written_outside_out_and_nothing_of_the_users_is_deleted(tiny, tmp_path):
    campaign = tiny(homes=200, sample=1)
    out = tmp_path / "out"
    (out / "mine").mkdir(parents=True)
    (out / "notes.txt").write_text("keep me")
    (out / "mine" / "data.csv").write_text("1,2,3")
    outside = tmp_path / "outside.json"
    outside.write_text("untouched")
    before = _tree(tmp_path)
    cwd = os.getcwd()
    os.chdir(tmp_path)           # nothing lands in the working folder either
    try:
        run_to(load_campaign(campaign), out)
        # a second run replaces its own files; a link planted under one of their names is
        # replaced, not followed out of the folder
        (out / "run.json").unlink()
        (out / "run.json").symlink_to(outside)
        run_to(load_campaign(campaign), out)
    finally:
        os.chdir(cwd)
    after = _tree(tmp_path)
    new = {k for k in after if k not in before}
    assert new == {f"out/{n}" for n in (MARKER,) + OUR_FILES}
    for k, v in before.items():
        assert after[k] == v, k      # the user's files, and the file outside, are as they were
    assert not (out / "run.json").is_symlink() and outside.read_text() == "untouched"


def test_a_file_of_ours_that_a_campaign_did_not_write_is_refused(tiny, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "campaign.json").write_text("the user's own")
    with pytest.raises(CampaignError, match="campaign.json: exists and no earlier campaign wrote it"):
        run_to(load_campaign(tiny(homes=100, sample=1)), out)
    assert (out / "campaign.json").read_text() == "the user's own"
    assert sorted(p.name for p in out.iterdir()) == ["campaign.json"]
    assert main(["campaign", str(tiny(homes=100, sample=1)), "--out", str(out)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_out_that_is_a_file_is_refused(tiny, tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(CampaignError, match="is a file, not a folder"):
        run_to(load_campaign(tiny(homes=100, sample=1)), tmp_path / "f")
    assert (tmp_path / "f").read_text() == "x"
