"""The emulated firmware (bridge_emu.codec.firmware): manifest encoding and its inverse,
deterministic payloads of the requested size, and bootable MCUboot images."""
from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from bridge_emu.codec import firmware as fw
from bridge_emu.codec import mcuboot as mb
from bridge_emu.codec.firmware import FirmwareManifest, ManifestError
from bridge_emu.tools import signing

KEY = ec.derive_private_key(0xF1A5, ec.SECP256R1())
BASE = FirmwareManifest("B2", "1.4.0+17", "g1a2b3c", fails_self_test=True)

manifests = st.builds(
    FirmwareManifest,
    bridge_type=st.sampled_from(fw.BRIDGE_TYPES),
    version=st.builds(mb.ImageVersion, st.integers(0, 0xFF), st.integers(0, 0xFF),
                      st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF)),
    build_id=st.text(st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=16),
    fails_self_test=st.booleans(), crashes_at_boot=st.booleans(), never_rejoins=st.booleans())


@given(manifests, st.integers(fw.MANIFEST_SIZE, 3000))
def test_manifest_round_trip_and_payload_size(m, size):
    payload = fw.firmware_payload(m, size)
    assert len(payload) == size
    assert payload[:fw.MANIFEST_SIZE] == m.encode()
    assert fw.parse_manifest(payload) == m
    assert fw.firmware_payload(m, size) == payload      # deterministic


def test_layout_and_fill():
    raw = BASE.encode()
    assert len(raw) == fw.MANIFEST_SIZE == 36
    magic, length, btype, flags = struct.unpack_from("<4sHBxI", raw)
    assert (magic, length, btype, flags) == (b"BEFW", 36, 2, fw.BEHAVIOUR_BITS["fails_self_test"])
    a = fw.firmware_payload(BASE, 1000)
    b = fw.firmware_payload(FirmwareManifest("B2", "1.4.0+17", "g1a2b3c"), 1000)
    assert a[36:] != b[36:]                 # the fill follows the manifest
    assert len(set(a[36:])) > 200           # and is not a constant pad
    assert fw.firmware_payload(BASE, 36) == raw


def test_extended_manifest_is_read_by_its_known_prefix():
    # A later format appends fields and says so in `length`.
    raw = bytearray(BASE.encode() + b"future fields")
    struct.pack_into("<H", raw, 4, len(raw))
    assert fw.parse_manifest(bytes(raw) + b"fill") == BASE


@pytest.mark.parametrize("payload, words", [
    (b"", "no firmware manifest"),
    (bytes(100), "no firmware manifest"),
    (BASE.encode()[:20], "truncated"),
    (BASE.encode()[:4] + b"\x10\x00" + BASE.encode()[6:], "length"),
    (BASE.encode()[:4] + b"\x00\x10" + BASE.encode()[6:], "length"),
    (BASE.encode()[:6] + b"\x05" + BASE.encode()[7:], "bridge type"),
    (BASE.encode()[:8] + b"\x00\x01\x00\x00" + BASE.encode()[12:], "behaviour bits"),
    (BASE.encode()[:20] + b"ab\0cd" + bytes(11), "build id"),
    (BASE.encode()[:20] + b"\xff" + bytes(15), "build id"),
])
def test_parse_errors_are_clear(payload, words):
    with pytest.raises(ManifestError, match=words):
        fw.parse_manifest(payload)


@pytest.mark.parametrize("kw", [
    dict(bridge_type="B5"), dict(version="1.2.3.4"), dict(version="256.0.0"),
    dict(build_id="x" * 17), dict(build_id="café"), dict(build_id="a\0b"),
    dict(never_rejoins=1),
])
def test_invalid_manifests_are_refused(kw):
    args = dict(bridge_type="B1", version="1.0.0")
    args.update(kw)
    with pytest.raises(ManifestError):
        FirmwareManifest(**args)


def test_payload_too_small():
    with pytest.raises(ManifestError, match="cannot hold"):
        fw.firmware_payload(BASE, fw.MANIFEST_SIZE - 1)


def test_build_bootable_is_deterministic_and_verifies():
    img = signing.build_bootable(BASE, 8192, KEY, 3)
    assert img == signing.build_bootable(BASE, 8192, KEY, 3)
    parsed = signing.verify_image(img, [KEY.public_key()], min_security_counter=3)
    assert str(parsed.version) == "1.4.0+17" and parsed.security_counter == 3
    assert parsed.img_size == 8192 and parsed.payload == fw.firmware_payload(BASE, 8192)
    assert fw.manifest_from_image(img) == BASE
    other = signing.build_bootable(FirmwareManifest("B2", "1.4.0+17", "g1a2b3d"), 8192, KEY, 3)
    assert other != img
    with pytest.raises(mb.ImageFormatError):
        signing.build_bootable(BASE, 8192, KEY, 3, slot_size=4096)
