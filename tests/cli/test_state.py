"""`bridge-emu state`: looking at devices is read-only, and what is damaged on
disk (a torn event log, a corrupt device header) gives a clear answer, never a
traceback."""
from __future__ import annotations

import hashlib
import json
import os
import pathlib
import struct

import pytest

from bridge_emu import cli
from bridge_emu.core.device import Device
from bridge_emu.emulator.factory import factory_program
from bridge_emu.emulator.profiles import profile
from bridge_emu.premises.images import ImageSet
from support.paths import IMAGES

pytestmark = pytest.mark.native


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def digest(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def images() -> ImageSet:
    return ImageSet(IMAGES)


def make_device(images: ImageSet, folder: pathlib.Path, bridge_type: str = "B2", *, partial: int = 0
                ) -> pathlib.Path:
    """A booted device in folder/flash.bemu; partial: bytes of a next image left downloading."""
    folder.mkdir(parents=True, exist_ok=True)
    prof = profile(bridge_type)
    path = folder / "flash.bemu"
    dev = Device.create(path, prof.geometry, prof.layout(), keys=[images.manufacturer_key])
    factory_program(dev, images.file(bridge_type, "current").read_bytes())
    dev.boot()
    if partial:
        blob = images.file(bridge_type, "next").read_bytes()
        dev.begin_download(len(blob), 0)
        dev.write_download(0, blob[:partial])
    dev.close()
    return path


def test_looking_at_a_device_never_changes_its_flash_file(capsys, images, tmp_path):
    path = make_device(images, tmp_path / "b2", partial=4096)
    before, mtime = digest(path), path.stat().st_mtime_ns
    for argv in (("state", path), ("state", path, "--json"), ("state", tmp_path)):
        rc, out, err = run(capsys, *argv)
        assert rc == 0 and err == ""
    assert digest(path) == before and path.stat().st_mtime_ns == mtime


def test_a_device_on_read_only_media_can_be_looked_at(capsys, images, tmp_path):
    path = make_device(images, tmp_path / "b2")
    os.chmod(path, 0o444)
    os.chmod(path.parent, 0o555)
    try:
        rc, out, err = run(capsys, "state", path, "--json")
        (out,) = json.loads(out)
    finally:
        os.chmod(path.parent, 0o755)
        os.chmod(path, 0o644)
    assert rc == 0 and out["state"]["state"] == "confirmed"


def test_a_partial_download_is_shown_as_one(capsys, images, tmp_path):
    # B2's flash is ECC: a download resumes at the start of the sector it stopped
    # in (8 KiB sectors), so more than two sectors are in
    path = make_device(images, tmp_path / "b2", partial=20000)
    size = len(images.file("B2", "next").read_bytes())
    rc, out, _ = run(capsys, "state", path, "--json")
    (report,) = json.loads(out)
    (slot,) = [s for s in report["slots"] if "download" in s]
    assert rc == 0 and report["state"]["state"] == "downloading"
    assert slot["download"]["of"] == size and slot["download"]["bytes"] == 16384 and slot["image"] is None
    rc, out, _ = run(capsys, "state", path)
    assert f"partial download, {slot['download']['bytes']} of {size} bytes" in out


@pytest.mark.parametrize("tail, unreadable", [
    (b'{"t": 9.5, "event": "joi', 1),                          # a kill in mid-append
    (b'\xff\xfe not text\n', 1),                               # bytes that are not UTF-8
    (b'{"event": "joined"}\n', 0),                             # a record without "t"
    (b'[1, 2]\n"just a string"\n', 2),                         # JSON, but not records
])
def test_a_damaged_event_log_shows_what_it_can(capsys, images, tmp_path, tail, unreadable):
    path = make_device(images, tmp_path / "b2")
    log = path.parent / "events.jsonl"
    log.write_bytes(b'{"t": 1.0, "bridge": "b2", "event": "boot"}\n' + tail)
    rc, out, err = run(capsys, "state", path.parent, "--json")
    (report,) = json.loads(out)
    assert rc == 0 and err == ""
    assert report["events"][0]["event"] == "boot" and report["events_unreadable"] == unreadable
    assert report["events_total"] == 1 + tail.count(b"\n") + (not tail.endswith(b"\n"))
    rc, out, err = run(capsys, "state", path.parent)
    assert rc == 0 and err == "" and "boot" in out
    if unreadable:
        assert f"({unreadable} unreadable lines skipped)" in out


def rewrite_config(path: pathlib.Path, change) -> None:
    data = bytearray(path.read_bytes())
    (n,) = struct.unpack_from("<I", data, 8)
    cfg = json.loads(data[12:12 + n])
    change(cfg)
    meta = json.dumps(cfg).encode()
    data[8:12] = struct.pack("<I", len(meta))
    data[12:12 + max(n, len(meta))] = meta.ljust(max(n, len(meta)), b" ")
    path.write_bytes(bytes(data))


def set_in(*keys_and_value):
    *keys, value = keys_and_value

    def change(cfg):
        node = cfg
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return change


@pytest.mark.parametrize("change, culprit", [
    (set_in("geometry", "regions", 0, "count", -1), "geometry.regions[0].count"),
    (set_in("geometry", "page_size", 0), "geometry.page_size"),
    (set_in("geometry", "page_size", -256), "geometry.page_size"),
    (set_in("layout", "slots", 0, 0, -4096), "layout.slots[0] address"),
    (set_in("layout", "slots", 1, 1, 1 << 40), "layout.slots[1] size"),
    (set_in("layout", "max_attempts", 0), "layout.max_attempts"),
    (set_in("layout", "max_attempts", 1 << 33), "layout.max_attempts"),
    (set_in("geometry", "regions", 0, "size", "4096"), "geometry.regions[0].size"),
    (set_in("geometry", "write_align", 3), "geometry.write_align"),
    (set_in("layout", "mode", "swap-scratch"), "layout.mode"),
    (set_in("layout", "allow_downgrade", "yes"), "layout.allow_downgrade"),
    (set_in("geometry", "regions", "many"), "unreadable device config"),
    (set_in("layout", "log", [0]), "unreadable device config"),
])
def test_a_device_file_with_an_impossible_config_is_one_clear_line(capsys, images, tmp_path, change, culprit):
    path = make_device(images, tmp_path / "b2")
    rewrite_config(path, change)
    before = digest(path)
    rc, out, err = run(capsys, "state", path)
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert str(path) in err and culprit in err
    assert digest(path) == before
    with pytest.raises(Exception) as e:
        Device.open(path)
    assert type(e.value).__name__ == "DeviceFileError"
