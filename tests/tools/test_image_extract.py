"""`bridge-emu image extract` and `image info` on a bare MCUboot image: the parts
of a firmware file a user takes out (checked with imgtool, the reference), and
imgtool's own signed images read back."""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

from bridge_emu.cli import main
from bridge_emu.codec.ota_file import GenericBody, OtaFile, OtaHeader, SubElement
from bridge_emu.keys import key_paths
from bridge_emu.premises.images import ImageSet
from support.paths import IMAGES, KEYS

IMGTOOL = shutil.which("imgtool", path=str(pathlib.Path(sys.executable).parent))
MANUFACTURER = key_paths(KEYS, "manufacturer")
NEXT = ImageSet(IMAGES).file("B4", "next")


def imgtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([IMGTOOL, *map(str, args)], capture_output=True, text=True)


def extract(tmp_path, source, part=None, name="out.bin") -> bytes:
    out = tmp_path / name
    args = ["image", "extract", str(source), "-o", str(out)] + (["--part", part] if part else [])
    assert main(args) == 0
    return out.read_bytes()


def generic_file(*elements) -> bytes:
    return OtaFile(OtaHeader(manufacturer=0x1234, image_type=0x0001, file_version=7, header_string="plain"),
                   GenericBody([SubElement(t, d) for t, d in elements])).build()


def test_the_bootable_image_of_an_ota_file_is_what_imgtool_verifies(tmp_path):
    boot = extract(tmp_path, NEXT)
    r = imgtool("verify", "-k", MANUFACTURER.public, tmp_path / "out.bin")
    assert r.returncode == 0 and "1.1.0" in r.stdout, r.stdout + r.stderr
    assert boot == extract(tmp_path, NEXT, "manufacturer-image", "m.bin")   # GBCS: the same bytes


def test_a_vendor_wrapper_and_trailing_bytes_are_stripped(tmp_path):
    wrapped = tmp_path / "wrapped.ota"
    wrapped.write_bytes(b"VENDOR-HEADER\x00\x01" + NEXT.read_bytes() + b"padding")
    assert extract(tmp_path, wrapped, "ota") == NEXT.read_bytes()


def test_a_plain_zigbee_file_gives_its_upgrade_image_element(tmp_path, capsys):
    plain = tmp_path / "plain.ota"
    plain.write_bytes(generic_file((0x0000, b"firmware bytes"), (0xF001, b"vendor")))
    assert extract(tmp_path, plain, "manufacturer-image") == b"firmware bytes"
    assert main(["image", "extract", str(plain), "-o", str(tmp_path / "b.bin")]) == 2   # not MCUboot
    assert "not an MCUboot image" in capsys.readouterr().err
    two = tmp_path / "two.ota"
    two.write_bytes(generic_file((0x0000, b"a"), (0x0000, b"b")))
    assert main(["image", "extract", str(two), "-o", str(tmp_path / "c.bin"), "--part", "manufacturer-image"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 Upgrade Image sub-elements" in err
    assert not (tmp_path / "c.bin").exists()


def test_image_info_reads_a_bare_mcuboot_image_made_by_imgtool(tmp_path, capsys):
    (tmp_path / "fw.bin").write_bytes(bytes(range(256)) * 20)
    r = imgtool("sign", "-k", MANUFACTURER.private, "--header-size", "0x200", "--pad-header", "--slot-size",
                "0x20000", "--version", "2.3.4+5", "-s", "9", tmp_path / "fw.bin", tmp_path / "fw.signed")
    assert r.returncode == 0, r.stderr
    assert main(["image", "info", "--json", "--manufacturer-key", str(MANUFACTURER.public),
                 str(tmp_path / "fw.signed")]) == 0
    [info] = json.loads(capsys.readouterr().out)
    assert info["format"] == "mcuboot" and info["signatures"] == {"manufacturer": True}
    image = info["image"]
    assert image["version"] == "2.3.4+5" and image["security_counter"] == 9 and image["payload_size"] == 5120
    assert image["hash_ok"] and image["trailing_bytes"] == 0
    assert extract(tmp_path, tmp_path / "fw.signed") == (tmp_path / "fw.signed").read_bytes()


def test_bad_requests_are_one_line_and_write_nothing(tmp_path, capsys):
    copy = tmp_path / "in.zigbee"
    copy.write_bytes(NEXT.read_bytes())
    for args, says in ((["-o", str(copy)], "is the input file"),
                       (["-o", str(tmp_path)], "a folder"),
                       (["-o", str(tmp_path / "x"), "--part", "nonsense"], "invalid choice")):
        assert main(["image", "extract", str(copy), *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
    assert copy.read_bytes() == NEXT.read_bytes()
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x3d\xb8\xf3\x96" + b"\x00" * 40)          # MCUboot magic, nothing sensible after
    assert main(["image", "extract", str(junk), "-o", str(tmp_path / "y")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.zigbee", "junk.bin"]
