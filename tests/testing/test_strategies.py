"""bridge_emu.strategies used as a user's property tests would use them: every
strategy draws what it says (files that verify, documents that parse, layouts a
device takes), and the fault schedules drive the power-cut property of the whole
emulator: whatever cuts land in a download, a bridge ends upgraded, never bricked."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_emu import strategies as bs
from bridge_emu.codec import zcl
from bridge_emu.codec.ota_file import OtaFileError, read_tolerant
from bridge_emu.core.device import Device
from bridge_emu.core.image_check import flash_holding, validate_image
from bridge_emu.keys import key_paths, load_public_key
from bridge_emu.premises.schema import parse_document
from bridge_emu.testing import one_bridge
from bridge_emu.tools.imagetool import verify
from support.paths import KEYS

pytestmark = pytest.mark.native

SOME = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANUFACTURER = load_public_key(key_paths(KEYS, "manufacturer").public)
SUPPLIER = load_public_key(key_paths(KEYS, "supplier").certificate)


@SOME
@given(bs.zcl_frame_sequences(max_size=5))
def test_frames_encode_and_decode_back(frames):
    for frame in frames:
        assert zcl.decode(zcl.encode(frame), None) == frame


@SOME
@given(bs.mcuboot_images())
def test_mcuboot_images_validate_in_the_boot_core(image):
    info = validate_image(flash_holding(image.data), 0, len(image.data), [MANUFACTURER])
    assert info.security_counter == (image.security_counter or 0)
    assert str(info.version).startswith(image.version.split("+")[0])


@SOME
@given(bs.ota_files())
def test_ota_files_verify_as_a_bridge_of_their_type_checks_them(file):
    verdict = verify(file.data, supplier_key=SUPPLIER, manufacturer_key=MANUFACTURER)
    assert verdict.valid, (file.spec, verdict.reasons)


@SOME
@given(st.data())
def test_a_mutated_file_is_read_or_refused_cleanly_and_a_changed_header_never_verifies(data):
    file = data.draw(bs.ota_files(bridge_type="B4", max_payload=512))
    m = data.draw(bs.ota_file_mutations(file.data))
    try:
        read_tolerant(m.data)
    except OtaFileError:
        pass                                  # refused with the project's own error, nothing else
    try:
        valid = verify(m.data, supplier_key=SUPPLIER, manufacturer_key=MANUFACTURER).valid
    except OtaFileError:
        valid = False                        # unreadable: refused
    if m.what.startswith(("total_image_size", "magic", "truncated")) or (
            m.what.startswith("bit") and int(m.what.split()[-1]) >= 60):
        # its size no longer matches, or a bit of the signed Manufacturer Image or the signature changed
        assert not valid, m.what


@SOME
@given(bs.flash_configs(max_sectors=24), bs.mcuboot_images(max_payload=256))
def test_flash_configs_make_devices_that_take_an_image(config, image):
    geometry, layout = config
    device = Device.create(None, geometry, layout, keys=[MANUFACTURER])
    try:
        assert device.state.state == "none" and device.config.layout == layout
        device.stage(image.data, permanent=True)
        device.reopen()
        assert device.boot().confirmed is not None and device.running_image() == image.data
    finally:
        device.close()


@SOME
@given(bs.premises_documents())
def test_premises_documents_parse(doc):
    spec = parse_document(doc, "drawn")
    assert 2 <= len(spec.bridges) <= 3 and spec.bridges[0].type == "B1"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bs.fault_schedules(max_cuts=3, max_time_s=60.0, max_op=400))
def test_whatever_cuts_land_in_a_download_the_bridge_ends_upgraded(schedule):
    site = one_bridge("B4")
    try:
        assert site.run_with_faults("b4", schedule), site.report()
        assert site.outcome("b4") == "upgraded", site.report()
        assert site.version("b4").startswith("1.1.0")
    finally:
        site.close()


@settings(max_examples=6, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_drawn_profile_takes_a_file_drawn_for_it_over_the_air(tmp_path, data):
    """A user's device of any drawn identity, swap mode and geometry, factory-programmed
    with its base type's bundled image (1.0.0, security counter 1), downloads a file drawn
    for its profile (a newer version, counter 1 or above, well-behaved firmware), verifies,
    activates, boots and confirms it."""
    table = data.draw(bs.bridge_profiles())
    file = data.draw(bs.ota_files(profile=table, min_version=(1, 1, 0), behaviours=False,
                                   min_counter=1, max_payload=2048))
    path = tmp_path / f"{table['manufacturer']:04X}-{table['image_type']:04X}-{len(file.data)}.zigbee"
    path.write_bytes(file.data)
    site = one_bridge(table["base"], offer=str(path), profile=table)
    try:
        assert site.run_until_settled(), site.report()
        name = table["base"].lower()
        assert site.outcome(name) == "upgraded", (table, site.report())
        device = site.bridge(name).device
        assert device.config.geometry.n_sectors == table["geometry"]["sectors"]
        assert device.config.layout.mode == table["mode"]
    finally:
        site.close()
