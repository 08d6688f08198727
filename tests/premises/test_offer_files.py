"""Bring your own firmware (issue 10, part 1): `offer = "PATH"` in a premises, an
OTA file or a folder of them, relative to the premises file. Used as a user
would: a raw binary signed with `bridge-emu image sign --ota`, then
`bridge-emu run` from another folder. The bridge runs firmware that is not the
emulator's own as well-behaved firmware of its MCUboot version; an image that is
not the bridge's to take ends its update as "declined", one that fails the
bridge's checks (download verification, or the bootloader's at activation) as
"refused"."""
from __future__ import annotations

import json
import os
import pathlib

import pytest

from bridge_emu import cli
from bridge_emu.emulator.profiles import profile
from bridge_emu.keys import generate, key_paths
from support.paths import KEYS

pytestmark = pytest.mark.native

MANUFACTURER, SUPPLIER = key_paths(KEYS, "manufacturer"), key_paths(KEYS, "supplier")
B4 = profile("B4")

PREMISES = """
name = "byo"
[[bridge]]
name = "b1"
type = "B1"
offer = "none"
[[bridge]]
name = "b4"
type = "B4"
parent = "b1"
offer = "{offer}"
link = {{ loss = 0.0 }}
"""


def signed(path: pathlib.Path, version: str, *, manufacturer: int = B4.manufacturer, image_type: int = B4.image_type,
           key: pathlib.Path = MANUFACTURER.private, counter: int = 2) -> pathlib.Path:
    """A user's firmware binary, signed and wrapped as the README shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".bin")
    raw.write_bytes(bytes((i * 131 + len(version)) & 0xFF for i in range(20_000)))
    lo, hi = B4.hw_range
    assert cli.main(["image", "sign", str(raw), "-o", str(path), "-k", str(key), "-v", version, "-s", str(counter),
                     "--pad-header", "--ota", "--supplier-key", str(SUPPLIER.private), "--manufacturer",
                     hex(manufacturer), "--image-type", hex(image_type), "--hw-min", hex(lo), "--hw-max",
                     hex(hi)]) == 0
    raw.unlink()
    return path


def run(capsys, tmp_path: pathlib.Path, offer: str) -> tuple[int, dict, list[dict]]:
    site = tmp_path / "site"
    site.mkdir(exist_ok=True)
    (site / "byo.toml").write_text(PREMISES.format(offer=offer))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    capsys.readouterr()
    cwd = os.getcwd()
    os.chdir(work)                       # relative offers are the premises file's, not the current folder's
    try:
        rc = cli.main(["run", str(site / "byo.toml"), "--json", "--dir", "out", "--limit", "7200"])
    finally:
        os.chdir(cwd)
    report = json.loads(capsys.readouterr().out)
    b4 = next(b for b in report["bridges"] if b["bridge"] == "b4")
    events = [json.loads(line) for line in (work / "out" / "byo" / "b4" / "events.jsonl").open()]
    return rc, b4, events


def test_a_users_own_signed_file_is_taken_activated_and_confirmed(capsys, tmp_path):
    signed(tmp_path / "site" / "fw" / "mine.zigbee", "2.0.0")
    rc, b4, events = run(capsys, tmp_path, "fw/mine.zigbee")
    assert rc == 0 and b4["outcome"] == "upgraded", b4
    assert b4["version_after"] == "2.0.0+0" and b4["offered"] == "fw/mine.zigbee 0x02000000"
    assert [e["version"] for e in events if e["event"] == "confirmed"] == ["2.0.0+0"]


def test_from_a_folder_the_hub_offers_the_newest_that_fits(capsys, tmp_path):
    folder = tmp_path / "site" / "releases"
    signed(folder / "a.zigbee", "1.5.0")
    signed(folder / "b.zigbee", "3.0.0", image_type=0x0B01)          # a B1's: not for the B4
    signed(folder / "c.zigbee", "2.1.0")
    (folder / "README.txt").write_text("release notes, not an OTA file\n")
    rc, b4, _ = run(capsys, tmp_path, "releases")
    assert rc == 0 and b4["outcome"] == "upgraded" and b4["version_after"] == "2.1.0+0", b4
    assert sorted(p.name for p in folder.iterdir()) == ["README.txt", "a.zigbee", "b.zigbee", "c.zigbee"]


def test_a_file_for_another_device_is_declined(capsys, tmp_path):
    signed(tmp_path / "site" / "other.zigbee", "2.0.0", manufacturer=0x1234)
    rc, b4, events = run(capsys, tmp_path, "other.zigbee")
    assert rc == 0 and b4["outcome"] == "declined" and b4["version_after"] == "1.0.0+0"
    assert {e["reason"] for e in events if e["event"] == "offer_declined"} == {"another manufacturer"}


def test_a_file_signed_by_an_unknown_manufacturer_key_is_refused(capsys, tmp_path):
    stranger = generate(tmp_path / "stranger", "x")["manufacturer"].private
    signed(tmp_path / "site" / "forged.zigbee", "2.0.0", key=stranger)
    rc, b4, events = run(capsys, tmp_path, "forged.zigbee")
    assert rc == 0 and b4["outcome"] == "refused" and b4["version_after"] == "1.0.0+0", b4
    # the supplier's signature holds, so the download verifies (0x8F72); the bootloader's check of the
    # manufacturer's signature refuses to mark it for boot, and the CS06 answers ACTIVATION_FAILURE
    assert [e["error"] for e in events if e["event"] == "activation_refused"][:1] == ["BE_ERR_IMG_KEY_UNKNOWN"]
    assert "0x8F72" in b4["alerts"]


def test_a_folder_with_nothing_that_fits_offers_nothing(capsys, tmp_path):
    signed(tmp_path / "site" / "b1-only" / "x.zigbee", "2.0.0", image_type=0x0B01)
    rc, b4, _ = run(capsys, tmp_path, "b1-only")
    assert rc == 0 and b4["outcome"] == "no update" and b4["offered"] == "b1-only: nothing fits"


@pytest.mark.parametrize(("offer", "says"), [
    ("missing.zigbee", "is neither one of next, faulty, none nor an OTA file or folder"),
    ("empty", "empty folder"),
    ("junk.zigbee", "not an OTA file the hub can serve"),
    ("junkdir", "no OTA file the hub can serve in this folder"),
])
def test_a_bad_offer_is_refused_in_one_line(capsys, tmp_path, offer, says):
    site = tmp_path / "site"
    (site / "empty").mkdir(parents=True)
    (site / "junk.zigbee").write_bytes(b"not an ota file")
    (site / "junkdir").mkdir()
    (site / "junkdir" / "x.bin").write_bytes(b"\x00" * 100)
    (site / "byo.toml").write_text(PREMISES.format(offer=offer))
    capsys.readouterr()
    rc = cli.main(["run", str(site / "byo.toml"), "--no-dir"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and says in err, err


def index(folder: pathlib.Path) -> None:
    assert cli.main(["image", "index", str(folder)]) == 0


def test_an_indexed_folder_offers_what_its_index_lists(capsys, tmp_path):
    folder = tmp_path / "site" / "releases"
    signed(folder / "a.zigbee", "1.5.0")
    signed(folder / "c.zigbee", "2.1.0")
    index(folder)
    signed(folder / "d.zigbee", "4.0.0")           # dropped in after the index: not in the image set
    rc, b4, _ = run(capsys, tmp_path, "releases")
    assert rc == 0 and b4["outcome"] == "upgraded" and b4["version_after"] == "2.1.0+0", b4
    index(folder)                                   # indexed again, the newer file is offered
    (tmp_path / "again").mkdir()
    rc, b4, _ = run(capsys, tmp_path / "again", "../../site/releases")
    assert rc == 0 and b4["version_after"] == "4.0.0+0", b4


def test_an_index_of_another_tool_leaves_the_folder_a_plain_folder(capsys, tmp_path):
    folder = tmp_path / "site" / "releases"
    signed(folder / "a.zigbee", "1.5.0")
    (folder / "ota-index.json").write_text('{"images": ["whatever another tool writes"]}')
    rc, b4, _ = run(capsys, tmp_path, "releases")
    assert rc == 0 and b4["version_after"] == "1.5.0+0", b4
    assert (folder / "ota-index.json").read_text() == '{"images": ["whatever another tool writes"]}'


@pytest.mark.parametrize(("spoil", "says"), [
    ("replace", "is not the file indexed there (its SHA-256 differs)"),
    ("delete", "is listed but missing"),
    ("escape", "is not a path inside the folder"),
    ("garbage", "not a readable index"),
])
def test_an_index_that_no_longer_matches_its_folder_is_one_line(capsys, tmp_path, spoil, says):
    folder = tmp_path / "site" / "releases"
    signed(folder / "a.zigbee", "1.5.0")
    signed(folder / "c.zigbee", "2.1.0")
    index(folder)
    target = folder / "ota-index.json"
    if spoil == "replace":
        signed(folder / "c.zigbee", "2.2.0")        # the same name, another image
    elif spoil == "delete":
        (folder / "a.zigbee").unlink()
    elif spoil == "escape":
        doc = json.loads(target.read_text())
        doc["images"][0]["file"] = "../byo.toml"
        target.write_text(json.dumps(doc))
    else:
        target.write_text('{"written_by": "bridge-emu image index", ')
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (tmp_path / "site" / "byo.toml").write_text(PREMISES.format(offer="releases"))
    capsys.readouterr()
    rc = cli.main(["run", str(tmp_path / "site" / "byo.toml"), "--no-dir"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and says in err and "ota-index.json" in err, err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before     # nothing in the folder touched
