"""`bridge-emu image index FOLDER`: the index of a folder of a user's own OTA files."""
from __future__ import annotations

import json
import shutil

from bridge_emu import cli
from bridge_emu.premises.images import ImageSet
from support.paths import IMAGES


def test_image_index_writes_the_index_and_reports_what_it_skipped(capsys, tmp_path):
    shutil.copy(ImageSet(IMAGES).file("B4", "next"), tmp_path)
    (tmp_path / "readme.txt").write_text("hello")
    assert cli.main(["image", "index", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == f"{tmp_path / 'ota-index.json'}: 1 OTA files indexed, 1 skipped"
    assert err.count("\n") == 1 and "skipped" in err and "readme.txt" in err
    [entry] = json.loads((tmp_path / "ota-index.json").read_text())["images"]
    assert entry["manufacturer"] == "0xbee0" and entry["image_type"] == "0x0b04"
    assert (tmp_path / "readme.txt").read_text() == "hello"


def test_image_index_refuses_an_index_it_did_not_write_unless_forced(capsys, tmp_path):
    shutil.copy(ImageSet(IMAGES).file("B4", "next"), tmp_path)
    (tmp_path / "ota-index.json").write_text("[]\n")
    assert cli.main(["image", "index", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--force" in err and "ota-index.json" in err
    assert (tmp_path / "ota-index.json").read_text() == "[]\n"
    assert cli.main(["image", "index", str(tmp_path), "--force"]) == 0
    assert json.loads((tmp_path / "ota-index.json").read_text())["written_by"] == "bridge-emu image index"


def test_image_index_of_no_folder_is_one_line(capsys, tmp_path):
    assert cli.main(["image", "index", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere: not a folder" in err
