"""The index of a folder of a user's own OTA files (bridge_emu.tools.imageset.index_folder)."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from bridge_emu.errors import BridgeEmuError
from bridge_emu.premises.images import ImageSet
from bridge_emu.tools.imageset import USER_INDEX, index_folder
from support.paths import IMAGES


@pytest.fixture
def folder(tmp_path):
    images = ImageSet(IMAGES)
    (tmp_path / "fw" / "b4").mkdir(parents=True)
    for t, role in (("B4", "current"), ("B4", "next")):
        shutil.copy(images.file(t, role), tmp_path / "fw" / "b4")
    shutil.copy(images.file("B2", "next"), tmp_path / "fw")
    (tmp_path / "fw" / "notes.txt").write_text("not firmware")
    (tmp_path / "fw" / ".hidden.zigbee").write_bytes(b"left out")
    return tmp_path / "fw"


def test_it_lists_every_ota_file_and_touches_nothing_else(folder):
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
    index, skipped = index_folder(folder)
    assert [e["image_type"] for e in index["images"]] == ["0x0b02", "0x0b04", "0x0b04"]
    assert {e["file_version"] for e in index["images"] if e["image_type"] == "0x0b04"} == {"0x01000000", "0x01010000"}
    assert [name for name, _ in skipped] == ["notes.txt"]          # reported, left out; the hidden file not read
    assert json.loads((folder / USER_INDEX).read_text()) == index
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*")
             if p.is_file() and p.name != USER_INDEX}
    assert after == before
    assert sorted(p.name for p in folder.iterdir()) == sorted([*(p.name for p in before if p.parent == folder),
                                                               "b4", USER_INDEX])   # no temp file left behind


def test_it_replaces_its_own_index_and_refuses_one_it_did_not_write(folder):
    index_folder(folder)
    (folder / "b4" / next(p.name for p in (folder / "b4").iterdir())).unlink()
    again, _ = index_folder(folder)                                 # its own: replaced, no --force needed
    assert len(again["images"]) == 2
    (folder / USER_INDEX).write_text('{"mine": true}\n')
    with pytest.raises(BridgeEmuError, match="not written by bridge-emu image index; --force"):
        index_folder(folder)
    assert (folder / USER_INDEX).read_text() == '{"mine": true}\n'  # nothing already stored is lost
    forced, _ = index_folder(folder, force=True)
    assert forced == again


def test_a_failed_write_leaves_the_old_index(folder, monkeypatch):
    index_folder(folder)
    old = (folder / USER_INDEX).read_bytes()
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError):
        index_folder(folder)
    assert (folder / USER_INDEX).read_bytes() == old
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_not_a_folder_is_one_line(tmp_path):
    with pytest.raises(BridgeEmuError, match="not a folder of OTA files"):
        index_folder(tmp_path / "nowhere")
