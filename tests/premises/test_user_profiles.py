"""A user's own device as a premises profile: their keys (`keys generate`), their raw
firmware signed with `image sign --ota` under their manufacturer code and image type,
and a `[profile.NAME]` that gives the bridge their identity, swap mode and flash
geometry. The bridge is programmed at the factory with their 1.0.0, downloads their
1.1.0 from the hub, verifies it with their supplier key, boots it through their
bootloader key and confirms; the flash file holds their geometry. What the profile
cannot be is refused on one line naming the field."""
from __future__ import annotations

import json
import os
import re

import pytest

from bridge_emu import cli
from bridge_emu.core.device import Device
from bridge_emu.emulator.zigbee_node import NodeIdentity
from bridge_emu.premises.schema import PremisesError, load_premises, parse_premises
from support.paths import ROOT

pytestmark = pytest.mark.native

def readme_premises() -> str:
    """The README's profile premises, so what it shows is what is tested."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- example: profile-premises .*?-->\n```toml\n(.*?)```", text, re.S)
    assert found, "README has no profile-premises example"
    return found.group(1)


PREMISES = readme_premises()


def cli_run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def acme(tmp_path, capsys):
    """The user's folder: their keys and two signed versions of their raw firmware."""
    assert cli_run(capsys, "keys", "generate", "--out", str(tmp_path / "keys"), "--prefix", "ACME")[0] == 0
    (tmp_path / "fw").mkdir()
    binary = tmp_path / "app.bin"
    binary.write_bytes(os.urandom(48 * 1024))
    for version, counter in (("1.0.0", 1), ("1.1.0", 2)):
        rc, out, err = cli_run(
            capsys, "image", "sign", str(binary), "--pad-header", "-v", version, "-s", str(counter),
            "-k", str(tmp_path / "keys/ACME-manufacturer-p256.key.pem"), "--ota",
            "--supplier-key", str(tmp_path / "keys/ACME-supplier-p256.key.pem"),
            "--manufacturer", "0x1234", "--image-type", "0x0042", "--hw-min", "0x0100", "--hw-max", "0x01FF",
            "-o", str(tmp_path / f"fw/acme-{version}.zigbee"))
        assert rc == 0, err
    return tmp_path


def write_premises(folder, offer="fw/acme-1.1.0.zigbee", change=("", "")):
    path = folder / "acme.toml"
    text = PREMISES.replace('offer = "fw/acme-1.1.0.zigbee"', f'offer = "{offer}"')
    path.write_text(text.replace(*change) if change[0] else text)
    return path


def test_a_users_own_device_takes_its_own_firmware_and_keeps_its_own_geometry(acme, capsys):
    path = write_premises(acme)
    rc, out, err = cli_run(capsys, "run", str(path), "--dir", str(acme / "out"), "--json")
    assert rc == 0, err
    report = json.loads(out)
    display = next(b for b in report["bridges"] if b["bridge"] == "display")
    assert display["outcome"] == "upgraded"
    assert display["version_before"].startswith("1.0.0") and display["version_after"].startswith("1.1.0")
    assert display["type"] == "B4"
    # the flash file is the profile's part, laid out for bank-switch, and says whose device it is
    device = Device.open(acme / "out/acme-site/display/flash.bemu")
    try:
        assert device.config.geometry.regions[0].size == 8192 and device.config.geometry.n_sectors == 40
        assert device.config.geometry.write_align == 8 and device.config.layout.mode == "bank-switch"
        assert device.config.notes["profile"] == "acme"
    finally:
        device.close()


def test_the_users_device_refuses_a_file_its_supplier_did_not_sign(acme, capsys):
    # the same firmware signed by another supplier (the bundled test PKI's key)
    from bridge_emu.premises.images import DEFAULT_IMAGES
    rc, _, err = cli_run(
        capsys, "image", "sign", str(acme / "app.bin"), "--pad-header", "-v", "1.2.0", "-s", "3",
        "-k", str(acme / "keys/ACME-manufacturer-p256.key.pem"), "--ota",
        "--supplier-key", str(DEFAULT_IMAGES / "keys/TEST-ONLY-supplier-p256.key.pem"),
        "--manufacturer", "0x1234", "--image-type", "0x0042", "-o", str(acme / "fw/other.zigbee"))
    assert rc == 0, err
    path = write_premises(acme, offer="fw/other.zigbee")
    rc, out, _ = cli_run(capsys, "run", str(path), "--no-dir", "--json")
    display = next(b for b in json.loads(out)["bridges"] if b["bridge"] == "display")
    assert display["outcome"] == "refused" and display["version_after"].startswith("1.0.0")
    assert "0x8F1C" in display["alerts"]


def test_the_profile_is_what_the_bridge_tells_a_coordinator(acme):
    spec = load_premises(write_premises(acme))
    b = next(b for b in spec.bridges if b.name == "display")
    assert b.type == "B4" and b.profile.name == "acme"
    identity = NodeIdentity(0x00124B0000000001, 2, b.model)
    assert identity.node_descriptor()["manufacturer_code"] == 0x1234
    assert identity.model == "ACME-IHD-1"


@pytest.mark.parametrize("change, message", [
    (('base = "B4"', ''), "acme.base: missing"),
    (('base = "B4"', 'base = "B9"'), "unknown bridge type 'B9'"),
    (('mode = "bank-switch"', 'mode = "copy-swop"'), "mode 'copy-swop' is not copy-swap or bank-switch"),
    (('manufacturer = 0x1234', 'manufacturer = 0xFFFF'), "profile.acme.manufacturer: 65535 is outside"),
    (('hw_version = 0x0101', 'hw_verison = 0x0101'), "acme.hw_verison: unknown key (did you mean 'hw_version'?)"),
    (('model = "ACME-IHD-1"', 'model = "ACME-IN-HOME-DISPLAY-WITH-A-LONG-NAME"'), "is not up to 32 ASCII"),
    (('sectors = 40', 'sectors = 3'), "profile.acme.geometry.sectors: 3 is outside 4..65536"),
    (('sectors = 40, write_align = 8', 'sectors = 40, write_align = 8, sector_size = 4096'), "not valid TOML"),
    (('ecc = true', 'ecc = 1'), "geometry.ecc: expected true or false, got an integer"),
    (('factory = "fw/acme-1.0.0.zigbee"', 'factory = "fw/missing.zigbee"'), "profile.acme.factory:"),
    (('supplier_key = "keys/ACME-supplier-p256.cert.pem"', 'supplier_key = "fw/acme-1.0.0.zigbee"'),
     "profile.acme.supplier_key:"),
])
def test_a_profile_it_cannot_be_is_refused_naming_the_field(acme, change, message):
    with pytest.raises(PremisesError) as e:
        load_premises(write_premises(acme, change=change))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_a_bridge_naming_a_missing_or_mismatched_profile_is_refused(acme):
    text = write_premises(acme).read_text()
    for bad, message in ((text.replace('profile = "acme"', 'profile = "acne"'), "no [profile.acne]"),
                         (text.replace('profile = "acme"', 'profile = "acme"\ntype = "B2"'),
                          "profile 'acme' stands in for a B4"),
                         (text.replace('offer = "fw/acme-1.1.0.zigbee"', 'offer = "next"'),
                          "'next' is the bundled B4 image, which profile 'acme'")):
        with pytest.raises(PremisesError) as e:
            parse_premises(bad, "acme.toml", acme)
        assert message in str(e.value)


def test_a_factory_image_the_profiles_bootloader_cannot_take_is_one_line(acme, capsys):
    # factory = the bundled B4 image: signed by another manufacturer key than the profile's
    from bridge_emu.premises.images import DEFAULT_IMAGES, ImageSet
    bundled = ImageSet(DEFAULT_IMAGES).file("B4", "current")
    change = ('factory = "fw/acme-1.0.0.zigbee"', f'factory = "{bundled}"')
    rc, _, err = cli_run(capsys, "run", str(write_premises(acme, change=change)), "--no-dir")
    assert rc != 0 and "cannot program it as display's factory image" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_flash_file_of_a_users_device_has_its_geometry_and_runs_its_factory_image(acme, monkeypatch):
    from bridge_emu.testing import flash_file
    monkeypatch.chdir(acme)
    device = flash_file(acme / "own.bemu", "B2", profile={
        "manufacturer": 0x1234, "image_type": 0x0042, "geometry": {"sector_size": 4096, "sectors": 96},
        "manufacturer_key": "keys/ACME-manufacturer-p256.pub.pem", "factory": "fw/acme-1.0.0.zigbee"})
    try:
        assert device.config.geometry.n_sectors == 96 and device.config.layout.mode == "bank-switch"
        assert device.config.notes == {"type": "B2", "profile": "own"}
        from bridge_emu.codec.mcuboot import parse_image
        assert str(parse_image(device.running_image()).version) == "1.0.0+0"
    finally:
        device.close()


def test_a_hub_override_is_checked_as_a_premises_hub_table_is(acme, monkeypatch):
    from bridge_emu.testing import Premises
    monkeypatch.chdir(acme)
    spec = load_premises(write_premises(acme))
    with pytest.raises(PremisesError, match=r"hub\.signing_key: .*missing\.pem"):
        Premises(spec, hub={"signing_key": "keys/missing.pem"})
    with pytest.raises(PremisesError, match=r"hub\.personalty: unknown key \(did you mean 'personality'\?\)"):
        Premises(spec, hub={"personalty": "zigpy"})
    site = Premises(spec, hub={"signing_key": "keys/ACME-supplier-p256.key.pem", "personality": "zigpy"})
    try:
        assert site.run_until_settled() and site.outcome("display") == "upgraded"
    finally:
        site.close()


def test_a_geometry_too_small_for_its_layout_or_its_factory_image_is_refused(acme, capsys):
    from bridge_emu.core.flash import Geometry
    from bridge_emu.emulator.profiles import ProfileError, custom_profile
    with pytest.raises(ProfileError, match="profile tiny: 5 sectors are too few for a copy-swap layout"):
        custom_profile("tiny", "B4", geometry=Geometry.uniform(4096, 5))
    # bank-switch on 8 sectors of 8 KiB: 24 KiB banks, and the factory file is some 49 KiB
    rc, _, err = cli_run(capsys, "run", str(write_premises(acme, change=("sectors = 40", "sectors = 8"))), "--no-dir")
    assert rc != 0 and "cannot program it as display's factory image" in err and len(err.strip().splitlines()) == 1


@pytest.fixture
def plain(acme, capsys):
    """The same firmware as plain ZigBee OTA files (`image sign --ota --body zigbee`): no
    supplier signature, the image as tag 0x0000 and its AES-MMO integrity code."""
    for version, counter in (("1.0.0", 1), ("1.1.0", 2)):
        rc, out, err = cli_run(
            capsys, "image", "sign", str(acme / "app.bin"), "--pad-header", "-v", version, "-s", str(counter),
            "-k", str(acme / "keys/ACME-manufacturer-p256.key.pem"), "--ota", "--body", "zigbee",
            "--manufacturer", "0x1234", "--image-type", "0x0042", "--hw-min", "0x0100", "--hw-max", "0x01FF",
            "-o", str(acme / f"fw/plain-{version}.zigbee"))
        assert rc == 0, err
    return acme


def plain_premises(folder, offer="fw/plain-1.1.0.zigbee"):
    return write_premises(folder, offer=offer, change=(
        'factory = "fw/acme-1.0.0.zigbee"', 'factory = "fw/plain-1.0.0.zigbee"\nbody = "zigbee"'))


def test_a_plain_zigbee_device_takes_plain_files_checked_by_their_integrity_code_and_its_bootloader(plain, capsys):
    rc, out, err = cli_run(capsys, "image", "verify", str(plain / "fw/plain-1.1.0.zigbee"), "--json")
    verdict = json.loads(out)
    assert rc == 0 and verdict["valid"] and verdict["checks"]["body"] == "generic", (out, err)
    assert verdict["checks"]["integrity_code"]                       # tag 0x0003 present and matching
    rc, out, err = cli_run(capsys, "run", str(plain_premises(plain)), "--dir", str(plain / "out"), "--json")
    assert rc == 0, err
    display = next(b for b in json.loads(out)["bridges"] if b["bridge"] == "display")
    assert display["outcome"] == "upgraded", display
    assert display["version_before"].startswith("1.0.0") and display["version_after"].startswith("1.1.0")
    assert display["alerts"][:2] == ["0x8F72", "0x8F43"]      # the hub activated the image it reported
    # the hash it reported is that of the upgrade image: the MCUboot image that now runs, confirmed
    log = [json.loads(line) for line in (plain / "out/acme-site/display/events.jsonl").open()]
    verified = next(e for e in log if e["event"] == "verified")
    device = Device.open(plain / "out/acme-site/display/flash.bemu", read_only=True)
    try:
        import hashlib
        assert device.boot().confirmed            # read-only: the boot leaves the file as it is
        assert verified["hash"] == hashlib.sha256(device.running_image()).hexdigest()
    finally:
        device.close()


def test_a_plain_zigbee_device_refuses_a_gbcs_file_and_a_tampered_plain_one(plain, capsys):
    tampered = bytearray((plain / "fw/plain-1.1.0.zigbee").read_bytes())
    tampered[200] ^= 0x01                                           # inside the image: the AES-MMO no longer matches
    (plain / "fw/tampered.zigbee").write_bytes(bytes(tampered))
    for offer in ("fw/acme-1.1.0.zigbee", "fw/tampered.zigbee"):
        rc, out, err = cli_run(capsys, "run", str(plain_premises(plain, offer)), "--no-dir", "--json")
        display = next(b for b in json.loads(out)["bridges"] if b["bridge"] == "display")
        assert display["outcome"] == "refused" and display["version_after"].startswith("1.0.0"), (offer, display)
        assert "0x8F1C" in display["alerts"]


def test_a_gbcs_device_refuses_a_plain_file_and_a_plain_body_is_one_line_when_wrong(plain, capsys):
    rc, out, _ = cli_run(capsys, "run", str(write_premises(plain, offer="fw/plain-1.1.0.zigbee")), "--no-dir",
                         "--json")
    display = next(b for b in json.loads(out)["bridges"] if b["bridge"] == "display")
    assert display["outcome"] == "refused" and "0x8F1C" in display["alerts"]
    with pytest.raises(PremisesError, match=r"profile\.acme: profile acme: body 'zcl' is not gbcs or zigbee"):
        load_premises(write_premises(plain, change=('mode = "bank-switch"', 'mode = "bank-switch"\nbody = "zcl"')))
    # a GBCS factory file for a plain device: the factory cannot program it
    change = ('factory = "fw/acme-1.0.0.zigbee"', 'factory = "fw/acme-1.0.0.zigbee"\nbody = "zigbee"')
    rc, _, err = cli_run(capsys, "run", str(write_premises(plain, change=change)), "--no-dir")
    assert rc != 0 and "cannot program it as display's factory image" in err and len(err.strip().splitlines()) == 1


def test_image_sign_body_options_that_do_not_go_together_are_one_line(plain, capsys):
    base = ["image", "sign", str(plain / "app.bin"), "--pad-header", "-v", "1.2.0",
            "-k", str(plain / "keys/ACME-manufacturer-p256.key.pem"), "-o", str(plain / "x.zigbee")]
    for extra, says in ((["--body", "zigbee"], "--body is for the OTA file: add --ota"),
                        (["--ota", "--body", "zigbee", "--manufacturer", "1", "--image-type", "2",
                          "--supplier-key", str(plain / "keys/ACME-supplier-p256.key.pem")], "carries no supplier")):
        rc, _, err = cli_run(capsys, *base, *extra)
        assert rc == 2 and says in err and err.count("\n") == 1, err
    assert not (plain / "x.zigbee").exists()


def test_a_plain_zigbee_device_cut_mid_download_resumes_where_its_flash_says(plain, capsys):
    path = plain_premises(plain)
    path.write_text(path.read_text().replace('profile = "acme"', 'profile = "acme"\npower_cut = { at_fraction = 0.5 }'))
    rc, out, err = cli_run(capsys, "run", str(path), "--no-dir", "--json")
    assert rc == 0, err
    display = next(b for b in json.loads(out)["bridges"] if b["bridge"] == "display")
    assert display["outcome"] == "upgraded" and display["version_after"].startswith("1.1.0"), display
    assert display["resumed_from"] and all(r > 0 for r in display["resumed_from"])   # the image offset held too


# An STM32F4-like internal flash of 1 MiB: four 16 KiB sectors, one of 64 KiB, seven of 128 KiB.
UNIFORM = 'geometry = { sector_size = 8192, sectors = 40, write_align = 8, ecc = true }'
MIXED = ('geometry = { write_align = 16, ecc = true, regions = [\n'
         '    { count = 4, sector_size = 16384, erase_us = 250000 },\n'
         '    { count = 1, sector_size = 65536, erase_us = 500000 },\n'
         '    { count = 7, sector_size = 131072, erase_us = 1000000 } ] }')


def mixed(s0: int, a1: int, s1: int, plan: str = "", log: str = "[0, 16384]") -> str:
    return MIXED + f"\nlayout = {{ log = {log}, slots = [[131072, {s0}], [{a1}, {s1}]]{plan} }}"


@pytest.mark.parametrize("mode, slots, plan", [
    ("bank-switch", (393216, 524288, 393216), ""),
    ("copy-swap", (393216, 524288, 524288), ", plan = [32768, 16384]"),
])
def test_a_device_of_mixed_sectors_with_its_layout_given_updates_on_that_part(acme, capsys, mode, slots, plan):
    s0, a1, s1 = slots
    text = write_premises(acme, change=(UNIFORM, mixed(s0, a1, s1, plan))).read_text()
    path = acme / "mixed.toml"
    path.write_text(text.replace('mode = "bank-switch"', f'mode = "{mode}"'))
    rc, out, err = cli_run(capsys, "run", str(path), "--dir", str(acme / "out"), "--json")
    assert rc == 0, err
    display = next(b for b in json.loads(out)["bridges"] if b["bridge"] == "display")
    assert display["outcome"] == "upgraded" and display["version_after"].startswith("1.1.0"), display
    device = Device.open(acme / "out/acme-site/display/flash.bemu", read_only=True)
    try:
        g, lay = device.config.geometry, device.config.layout
        assert [(r.count, r.size) for r in g.regions] == [(4, 16384), (1, 65536), (7, 131072)]
        assert lay.mode == mode and lay.slots == ((131072, s0), (a1, s1))
        from bridge_emu.codec.mcuboot import parse_image
        assert device.boot().confirmed and str(parse_image(device.running_image()).version) == "1.1.0+0"
        assert mode == "bank-switch" or device.running_slot == 0        # copy-swap runs from the primary
    finally:
        device.close()


@pytest.mark.parametrize("geometry, message", [
    (MIXED, "give the layout explicitly"),
    (mixed(393216, 458752, 393216), "BE_ERR_GEOMETRY"),                   # slot 1 starts mid-sector
    (mixed(393216, 524288, 393216, log="[0]"), "layout.log: 1 entries, want 2"),
    (MIXED.replace("count = 1,", "count = 1, sectors = 2,"), "regions[1].sectors: unknown key"),
    (MIXED.replace("{ write_align", "{ sector_size = 4096, write_align"),
     "geometry.sector_size: goes in each of regions"),
])
def test_a_mixed_part_it_cannot_lay_out_is_one_line_naming_the_field(acme, geometry, message):
    with pytest.raises(PremisesError) as e:
        load_premises(write_premises(acme, change=(UNIFORM, geometry)))
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)
