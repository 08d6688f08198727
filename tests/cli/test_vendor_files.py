"""Plain (non-GBCS) ZigBee OTA files, as vendors ship them: `image verify FILE`
checks their AES-MMO image integrity code (tag 0x0003) with no key, and
`image info` shows it."""
from __future__ import annotations

import json

import pytest

from bridge_emu import cli
from bridge_emu.codec import ota_file as ota
from bridge_emu.core.ota_verify import aes_mmo
from support.paths import IMAGES

pytestmark = pytest.mark.native

IMAGE = bytes(range(256)) * 40


def vendor_file(mic: str | None = "standard") -> bytes:
    """A plain OTA file with an upgrade image (tag 0x0000) and, unless mic is None, an
    integrity code over everything before it ("standard"), or a wrong one ("wrong")."""
    header = ota.OtaHeader(manufacturer=0x117C, image_type=0x2101, file_version=0x01020304,
                           header_string="vendor firmware")
    elements = [ota.SubElement(ota.TAG_UPGRADE_IMAGE, IMAGE)]
    if mic is None:
        return ota.OtaFile(header, ota.GenericBody(elements)).build()
    data = ota.OtaFile(header, ota.GenericBody(elements + [ota.SubElement(ota.TAG_IMAGE_INTEGRITY_CODE,
                                                                           bytes(16))])).build()
    code = aes_mmo(data[:-22])
    if mic == "wrong":
        code = bytes([code[0] ^ 0x80]) + code[1:]
    return data[:-16] + code


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_verify_checks_a_vendor_files_integrity_code_without_a_key(capsys, tmp_path):
    f = tmp_path / "vendor.ota"
    data = vendor_file()
    f.write_bytes(data)
    rc, out, err = run(capsys, "image", "verify", f, "--json")
    v = json.loads(out)
    assert rc == 0 and v["valid"] and err == ""
    assert v["checks"]["integrity"] == "standard" and v["checks"]["integrity_code"] == data[-16:].hex()
    rc, out, _ = run(capsys, "image", "verify", f)
    assert rc == 0 and out.startswith(f"{f}: valid")


def test_verify_refuses_a_wrong_integrity_code(capsys, tmp_path):
    f = tmp_path / "vendor.ota"
    f.write_bytes(vendor_file("wrong"))
    rc, out, _ = run(capsys, "image", "verify", f, "--json")
    v = json.loads(out)
    assert rc == 1 and not v["valid"] and v["checks"]["integrity"] == "BE_ERR_OTA_INTEGRITY"
    assert any(r.startswith("integrity: ") for r in v["reasons"])


def test_a_vendor_file_without_an_integrity_code_is_valid_and_says_so(capsys, tmp_path):
    f = tmp_path / "vendor.ota"
    f.write_bytes(vendor_file(None))
    rc, out, _ = run(capsys, "image", "verify", f, "--json")
    v = json.loads(out)
    assert rc == 0 and v["valid"] and v["checks"]["integrity"] == "none" and v["checks"]["integrity_code"] is None


@pytest.mark.parametrize("mic, shown", [("standard", "matches"), ("wrong", "BE_ERR_OTA_INTEGRITY"),
                                        (None, "none in the file")])
def test_info_shows_the_integrity_code(capsys, tmp_path, mic, shown):
    f = tmp_path / "vendor.ota"
    data = vendor_file(mic)
    f.write_bytes(data)
    rc, out, _ = run(capsys, "image", "info", f, "--json")
    integrity = json.loads(out)[0]["generic"]["integrity"]
    assert rc == 0 and integrity["present"] == (mic is not None)
    if mic == "standard":
        assert integrity["ok"] and integrity["code"] == data[-16:].hex()
    rc, out, _ = run(capsys, "image", "info", f)
    assert rc == 0 and shown in out.replace("\n", " ")


def test_a_gbcs_file_still_needs_the_supplier_key(capsys):
    gbcs_file = next(IMAGES.glob("B2/*.zigbee"))
    rc, out, err = run(capsys, "image", "verify", gbcs_file)
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert str(gbcs_file) in err and "--supplier-cert or --supplier-key" in err
