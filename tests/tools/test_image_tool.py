"""`bridge-emu keys` / `bridge-emu image` and the committed image set."""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from bridge_emu import cli
from bridge_emu.codec import ota_file as ota
from bridge_emu.codec.firmware import manifest_from_image
from bridge_emu.keys import key_paths
from bridge_emu.tools import imageset, signing
from support.paths import IMAGES, VECTORS

pytestmark = pytest.mark.native


KEYS = IMAGES / "keys"
SUPPLIER_CERT = str(key_paths(KEYS, "supplier").certificate)
SUPPLIER_PUB = str(key_paths(KEYS, "supplier").public)
MANUFACTURER_PUB = str(key_paths(KEYS, "manufacturer").public)
INDEX = json.loads((IMAGES / "index.json").read_text())


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_make_images_rebuilds_every_file_byte_for_byte(tmp_path):
    shutil.copytree(KEYS, tmp_path / "keys")
    index = imageset.rebuild(tmp_path)
    assert index == INDEX
    assert (tmp_path / "index.json").read_bytes() == (IMAGES / "index.json").read_bytes()
    for entry in index.values():
        assert (tmp_path / entry["file"]).read_bytes() == (IMAGES / entry["file"]).read_bytes(), entry["file"]
    committed = sorted(p.relative_to(IMAGES) for p in IMAGES.glob("B*/*.zigbee"))
    assert committed == sorted(pathlib.Path(e["file"]) for e in index.values())


@pytest.mark.parametrize("key", sorted(INDEX))
def test_committed_images_verify_and_say_what_they_are(capsys, key):
    entry = INDEX[key]
    path = IMAGES / entry["file"]
    rc, out, _ = run(capsys, "image", "verify", path, "--supplier-cert", SUPPLIER_CERT,
                     "--manufacturer-key", MANUFACTURER_PUB, "--json")
    assert rc == 0 and json.loads(out)["valid"]
    rc, out, _ = run(capsys, "image", "info", path, "--json", "--supplier-key", SUPPLIER_PUB,
                     "--manufacturer-key", MANUFACTURER_PUB)
    (info,) = json.loads(out)
    assert rc == 0 and info["anomalies"] == [] and not info["off_spec"]
    assert info["signatures"] == {"supplier": True, "manufacturer": True}
    bridge_type, role = key.split("/")
    fw = info["inner_image"]["firmware"]
    assert fw["bridge_type"] == bridge_type and fw["version"].startswith(entry["version"])
    assert info["inner_image"]["security_counter"] == entry["security_counter"]
    assert any(fw[k] for k in ("fails_self_test", "crashes_at_boot", "never_rejoins")) == (role == "faulty")
    assert path.name == info["gbcs"]["suggested_name"]


def test_committed_images_parse_with_zigpy_headers():
    from zigpy.ota.image import OTAImageHeader

    for entry in INDEX.values():
        data = (IMAGES / entry["file"]).read_bytes()
        zh, _ = OTAImageHeader.deserialize(data)
        ours = ota.read_strict(data, ota.BodyKind.GBCS).header
        assert (zh.manufacturer_id, zh.image_type, zh.file_version, zh.image_size) == (
            ours.manufacturer, ours.image_type, ours.file_version, ours.total_image_size)
        assert (zh.minimum_hardware_version, zh.maximum_hardware_version) == (
            ours.min_hardware_version, ours.max_hardware_version)


def test_inner_images_pass_imgtool_verify(tmp_path):
    imgtool = shutil.which("imgtool", path=str(pathlib.Path(sys.executable).parent))
    for entry in list(INDEX.values())[:3]:
        f = ota.read_strict((IMAGES / entry["file"]).read_bytes(), ota.BodyKind.GBCS)
        inner = tmp_path / "inner.bin"
        inner.write_bytes(f.body.manufacturer_image)
        r = subprocess.run([imgtool, "verify", "-k", str(key_paths(KEYS, "manufacturer").private), str(inner)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_keys_generate_writes_test_only_pairs_and_refuses_to_overwrite(capsys, tmp_path):
    rc, out, _ = run(capsys, "keys", "generate", "--out", tmp_path)
    assert rc == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 5 and all(n.startswith("TEST-ONLY-") for n in names)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    rc, _, err = run(capsys, "keys", "generate", "--out", tmp_path)
    assert rc == 2 and "refusing to overwrite" in err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    assert run(capsys, "keys", "generate", "--out", tmp_path, "--force")[0] == 0
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} != before


def test_image_build_with_options_and_fresh_keys(capsys, tmp_path):
    run(capsys, "keys", "generate", "--out", tmp_path / "k")
    m, s = key_paths(tmp_path / "k", "manufacturer"), key_paths(tmp_path / "k", "supplier")
    rc, out, _ = run(capsys, "image", "build", "--type", "B3", "--version", "2.3.4+5",
                     "--manufacturer-key", m.private, "--supplier-key", s.private, "--security-counter", 9,
                     "--manufacturer", "0x1234", "--image-type", "0x0042", "--hw-min", 1, "--hw-max", 2,
                     "--payload-size", 20000, "--build-id", "lab-7", "--never-rejoins", "-o", tmp_path / "out")
    assert rc == 0
    path = pathlib.Path(out.strip())
    assert path.name.startswith("1234-0042-02030004-") and path.suffix == ".zigbee"
    data = path.read_bytes()
    f = signing.read_signed(data, s.certificate)
    assert (f.header.min_hardware_version, f.header.max_hardware_version) == (1, 2)
    man = manifest_from_image(f.body.manufacturer_image)
    assert man.bridge_type == "B3" and man.never_rejoins and not man.fails_self_test and man.build_id == "lab-7"
    # same inputs, same bytes
    rc, out2, _ = run(capsys, "image", "build", "--type", "B3", "--version", "2.3.4+5",
                      "--manufacturer-key", m.private, "--supplier-key", s.private, "--security-counter", 9,
                      "--manufacturer", "0x1234", "--image-type", "0x0042", "--hw-min", 1, "--hw-max", 2,
                      "--payload-size", 20000, "--build-id", "lab-7", "--never-rejoins", "-o", tmp_path / "again")
    assert pathlib.Path(out2.strip()).read_bytes() == data


def test_verify_reports_every_reason_and_exit_codes(capsys, tmp_path):
    entry = INDEX["B2/next"]
    data = bytearray((IMAGES / entry["file"]).read_bytes())
    f = ota.read_strict(bytes(data), ota.BodyKind.GBCS)
    span = f.layout().manufacturer_image
    data[span.offset + 100] ^= 0x01  # inside the bootable image's payload
    bad = tmp_path / "bad.zigbee"
    bad.write_bytes(data)
    rc, out, _ = run(capsys, "image", "verify", bad, "--supplier-cert", SUPPLIER_CERT,
                     "--manufacturer-key", MANUFACTURER_PUB, "--json")
    report = json.loads(out)
    assert rc == 1 and not report["valid"]
    assert report["checks"]["supplier_signature"] == "BE_ERR_OTA_SIG"
    assert report["checks"]["manufacturer_signature"] == "BE_ERR_IMG_HASH"
    assert len(report["reasons"]) == 2
    # wrong hardware version for the file's range
    rc, out, _ = run(capsys, "image", "verify", IMAGES / entry["file"], "--supplier-cert", SUPPLIER_CERT,
                     "--hw-version", "0x0999", "--json")
    assert rc == 1 and json.loads(out)["checks"]["supplier_signature"] == "BE_ERR_OTA_HW_VERSION"
    # unreadable file, missing file, bad key file, missing argument: 2
    junk = tmp_path / "junk.zigbee"
    junk.write_bytes(b"\x00" * 300)
    assert run(capsys, "image", "verify", junk, "--supplier-cert", SUPPLIER_CERT)[0] == 2
    assert run(capsys, "image", "verify", tmp_path / "none", "--supplier-cert", SUPPLIER_CERT)[0] == 2
    rc, _, err = run(capsys, "image", "verify", IMAGES / entry["file"], "--supplier-cert", junk)
    assert rc == 2 and str(junk) in err
    assert run(capsys, "image", "verify", IMAGES / entry["file"])[0] == 2


def test_duis_vector_through_the_cli(capsys, tmp_path):
    cert = VECTORS / "supplier-90b3d51f30010000-digitalSignature.pem"
    vec = VECTORS / "duis-11.1-update-firmware.bin"
    assert run(capsys, "image", "verify", vec, "--supplier-cert", cert)[0] == 0
    data = bytearray(vec.read_bytes())
    data[60 + 10] ^= 0x80
    flipped = tmp_path / "flipped.bin"
    flipped.write_bytes(data)
    assert run(capsys, "image", "verify", flipped, "--supplier-cert", cert)[0] == 1
    rc, out, _ = run(capsys, "image", "info", VECTORS / "duis-11.4-update-ppmid-firmware.bin", "--json")
    assert rc == 0 and json.loads(out)[0]["gbcs"]["signed"] is False


def test_info_of_a_wrapped_file_reports_the_anomaly_and_a_folder_gives_a_list(capsys, tmp_path):
    data = (IMAGES / INDEX["B4/current"]["file"]).read_bytes()
    (tmp_path / "wrapped.zigbee").write_bytes(b"VENDOR-WRAPPER" + data)
    (tmp_path / "plain.zigbee").write_bytes(data)
    rc, out, _ = run(capsys, "image", "info", tmp_path, "--json")
    reports = {pathlib.Path(r["file"]).name: r for r in json.loads(out)}
    assert rc == 0
    assert [a["kind"] for a in reports["wrapped.zigbee"]["anomalies"]] == ["prefix"]
    assert reports["wrapped.zigbee"]["file_start"] == 14
    assert reports["plain.zigbee"]["anomalies"] == []


def test_the_installed_command_runs(tmp_path):
    exe = pathlib.Path(sys.executable).parent / "bridge-emu"
    r = subprocess.run([str(exe), "image", "info", str(IMAGES / INDEX["B1/current"]["file"])],
                       capture_output=True, text=True)
    assert r.returncode == 0 and "bridge-emu B1 1.0.0" in r.stdout
    r = subprocess.run([str(exe), "image", "info", str(tmp_path / "missing")], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
