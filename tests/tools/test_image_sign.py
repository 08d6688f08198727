"""`bridge-emu image sign`: a user's raw firmware binary to an MCUboot image that
is imgtool's for the same inputs (the signed region byte for byte, the same TLVs;
ECDSA signatures differ run to run), and on to a GBCS OTA file that
`image verify` accepts and `image extract` takes apart again."""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from bridge_emu.cli import main
from bridge_emu.codec.mcuboot import parse_image
from bridge_emu.keys import key_paths
from support.paths import KEYS

IMGTOOL = shutil.which("imgtool", path=str(pathlib.Path(sys.executable).parent))
MANUFACTURER = key_paths(KEYS, "manufacturer")
SUPPLIER = key_paths(KEYS, "supplier")
FIRMWARE = bytes((i * 37 + 11) & 0xFF for i in range(7000))


def imgtool(*args) -> subprocess.CompletedProcess:
    return subprocess.run([IMGTOOL, *map(str, args)], capture_output=True, text=True)


def sign(tmp_path, binary: bytes, *args, name="out.bin") -> bytes:
    src = tmp_path / "fw.bin"
    src.write_bytes(binary)
    assert main(["image", "sign", str(src), "-o", str(tmp_path / name), "-k", str(MANUFACTURER.private),
                 *map(str, args)]) == 0
    return (tmp_path / name).read_bytes()


@pytest.mark.parametrize("pad_header", [True, False])
def test_the_image_is_imgtools_for_the_same_inputs(tmp_path, pad_header):
    binary = FIRMWARE if pad_header else bytes(0x200) + FIRMWARE
    opts = ["--version", "3.1.4+15", "-s", "12", "-H", "0x200"] + (["--pad-header"] if pad_header else [])
    ours = parse_image(sign(tmp_path, binary, *opts))
    r = imgtool("sign", "-k", MANUFACTURER.private, "-S", "0x20000", *opts, tmp_path / "fw.bin", tmp_path / "ref.bin")
    assert r.returncode == 0, r.stderr
    ref = parse_image((tmp_path / "ref.bin").read_bytes())
    assert ours.signed == ref.signed                                   # header, payload, protected TLVs
    assert [(t.type, t.protected) for t in ours.tlvs] == [(t.type, t.protected) for t in ref.tlvs]
    assert ours.sha256 == ref.sha256 and ours.payload == FIRMWARE
    r = imgtool("verify", "-k", MANUFACTURER.public, tmp_path / "out.bin")
    assert r.returncode == 0 and "3.1.4+15" in r.stdout, r.stdout + r.stderr


def test_an_ota_file_of_it_verifies_and_comes_apart_again(tmp_path, capsys):
    image = sign(tmp_path, FIRMWARE, "-v", "2.0.1", "-s", "3", "--pad-header", name="image.bin")
    data = sign(tmp_path, FIRMWARE, "-v", "2.0.1", "-s", "3", "--pad-header", "--ota", "--supplier-key",
                SUPPLIER.private, "--manufacturer", "0x1234", "--image-type", "0x0042", "--hw-min", "2",
                "--hw-max", "5", "--header-string", "my bridge", name="fw.zigbee")
    assert "GBCS name 1234-0042-02000001-" in capsys.readouterr().out
    ota = tmp_path / "fw.zigbee"
    assert main(["image", "verify", str(ota), "--supplier-cert", str(SUPPLIER.certificate),
                 "--manufacturer-key", str(MANUFACTURER.public)]) == 0
    capsys.readouterr()
    assert main(["image", "info", "--json", str(ota)]) == 0
    [info] = json.loads(capsys.readouterr().out)
    h = info["header"]
    assert (h["manufacturer"], h["image_type"], h["file_version"]) == (0x1234, 0x0042, 0x02000001)
    assert (h["min_hardware_version"], h["max_hardware_version"], h["header_string"]) == (2, 5, "my bridge")
    assert info["inner_image"]["version"] == "2.0.1+0" and info["inner_image"]["security_counter"] == 3
    assert main(["image", "extract", str(ota), "-o", str(tmp_path / "back.bin")]) == 0
    back = (tmp_path / "back.bin").read_bytes()
    assert parse_image(back).signed == parse_image(image).signed and len(data) > len(back)


@pytest.mark.parametrize(("args", "says"), [
    ([], "does not start with 0x200 zero bytes"),
    (["--pad-header", "--ota"], "--ota needs --supplier-key"),
    (["--pad-header", "--manufacturer", "1"], "add --ota"),
    (["--pad-header", "--ota", "--supplier-key", "SUP", "--manufacturer", "1"], "--manufacturer and --image-type"),
    (["--pad-header", "--ota", "--supplier-key", "SUP", "--manufacturer", "1", "--image-type", "2",
      "--hw-min", "9", "--hw-max", "1"], "above --hw-max"),
    (["--pad-header", "--hw-min", "1"], "go together"),
    (["--pad-header", "-S", "0x100"], "does not fit"),
    (["--pad-header", "-s", "0x100000000"], "security counter"),
    (["--pad-header", "-o", "IN"], "is the input file"),
    (["--pad-header", "-k", "PUB"], "--key"),
])
def test_bad_requests_are_one_line_and_write_nothing(tmp_path, capsys, args, says):
    src = tmp_path / "fw.bin"
    src.write_bytes(FIRMWARE)
    swap = {"SUP": str(SUPPLIER.private), "IN": str(src), "PUB": str(MANUFACTURER.public)}
    base = ["image", "sign", str(src), "-v", "1.0.0"]
    if "-o" not in args:
        base += ["-o", str(tmp_path / "out.bin")]
    if "-k" not in args:
        base += ["-k", str(MANUFACTURER.private)]
    rc = main(base + [swap.get(a, a) for a in args])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and says in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fw.bin"] and src.read_bytes() == FIRMWARE
