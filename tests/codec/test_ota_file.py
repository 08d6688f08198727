"""The ZigBee OTA file codec (bridge_emu.codec.ota_file): the public GBCS vectors,
files we build against zigpy's parser, exact round trips, mutation fuzzing of
both readers, and one test per tolerant-reader anomaly kind."""
from __future__ import annotations

import pathlib
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from zigpy.ota.image import OTAImageHeader, parse_ota_image

from bridge_emu.codec import ota_file as of
from bridge_emu.codec.ota_file import (
    ANOMALY_KINDS,
    BodyKind,
    GbcsBody,
    GenericBody,
    OtaFile,
    OtaFileError,
    OtaHeader,
    SubElement,
    gbcs_file_name,
    manufacturer_image_hash,
    read_strict,
    read_tolerant,
)
from bridge_emu.errors import BridgeEmuError
from bridge_emu.keys import load_public_key
from bridge_emu.tools.signing import build_gbcs_file, read_signed, verify_supplier_signature
from support.paths import VECTORS

SUPPLIER_CERT = "supplier-90b3d51f30010000-digitalSignature.pem"
DUIS_HASH = "7542f475e3f12eae887d81e32c46d313741d67076b13caec2f82e00ba5e1bb36"

SUPPLIER = ec.derive_private_key(0x5EED_0F_5_0991, ec.SECP256R1())
OTHER = ec.derive_private_key(0xBAD, ec.SECP256R1())
IMAGE = bytes(range(256)) * 2 + b"manufacturer image"


@pytest.fixture(scope="module")
def vectors() -> pathlib.Path:
    return VECTORS


def gbcs_file(image: bytes = IMAGE, key=SUPPLIER, **kw) -> OtaFile:
    args = dict(manufacturer=0x121D, image_type=0x0000, file_version=0x01020304,
                min_hardware_version=0x0100, max_hardware_version=0x01FF,
                header_string="bridge-emu B1")
    args.update(kw)
    return build_gbcs_file(image, key, **args)


GBCS_SIGNED = gbcs_file().build()
GBCS_UNSIGNED = gbcs_file(key=None, image_type=0x0084).build()
GENERIC = OtaFile(OtaHeader(manufacturer=0x1234, image_type=0x0001, file_version=7,
                            header_string="hello"),
                  GenericBody([SubElement(0x0000, b"A" * 10), SubElement(0xF001, b"B" * 5)])
                  ).build()


# ------------------------------------------------------------ DUIS vectors


def test_duis_11_1_header_and_body(vectors):
    data = (vectors / "duis-11.1-update-firmware.bin").read_bytes()
    ota = read_strict(data, BodyKind.GBCS)
    h = ota.header
    assert (h.manufacturer, h.image_type, h.file_version) == (0x121D, 0x0000, 0xACDCACDC)
    assert (h.field_control, h.header_length, h.stack_version) == (0x0004, 60, 0x0002)
    assert (h.min_hardware_version, h.max_hardware_version) == (0x1111, 0x1211)
    assert h.total_image_size == len(data) == 361
    assert h.text == "I am a GFI ESME[] firmware image"
    body = ota.body
    assert len(body.manufacturer_image) == 235
    assert (body.force_replace, body.signature_marker, len(body.signature)) == (0, 0x40, 64)
    assert manufacturer_image_hash(ota).hex() == DUIS_HASH
    assert gbcs_file_name(ota) == "121D-0000-ACDCACDC-7542f475.zigbee"
    lay = ota.layout()
    assert (lay.manufacturer_image, lay.signature.offset, lay.signature.end) == \
        (of.Span(60, 235), 297, 361)
    assert ota.build() == data
    insp = read_tolerant(data)
    assert insp.body_kind is BodyKind.GBCS and insp.file == ota
    assert insp.kinds == ["header_string_unterminated"] and not insp.off_spec


def test_duis_11_1_signature_and_every_flipped_byte(vectors):
    data = (vectors / "duis-11.1-update-firmware.bin").read_bytes()
    cert_pem = (vectors / SUPPLIER_CERT).read_bytes()
    pub_pem = x509.load_pem_x509_certificate(cert_pem).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ota = read_signed(data, vectors / SUPPLIER_CERT)
    assert verify_supplier_signature(ota, cert_pem)
    assert verify_supplier_signature(ota, pub_pem)
    assert verify_supplier_signature(ota, pub_pem.decode())
    assert not verify_supplier_signature(ota, OTHER.public_key())
    key = load_public_key(cert_pem)
    lay = ota.layout()
    for region in (lay.manufacturer_image, lay.signature):
        for i in range(region.offset, region.end):
            bad = bytearray(data)
            bad[i] ^= 0xFF
            parsed = read_strict(bytes(bad), BodyKind.GBCS)
            assert not verify_supplier_signature(parsed, key), f"flip at {i} still verifies"
    with pytest.raises(OtaFileError) as e:
        read_signed(data, OTHER.public_key())
    assert (e.value.kind, e.value.offset) == ("gbcs_signature", 297)


def test_duis_11_4_is_unsigned(vectors):
    data = (vectors / "duis-11.4-update-ppmid-firmware.bin").read_bytes()
    ota = read_strict(data, BodyKind.GBCS_UNSIGNED)
    assert ota.header.image_type == 0x0084 and ota.header.total_image_size == len(data) == 295
    assert not ota.body.signed and ota.body_kind is BodyKind.GBCS_UNSIGNED
    assert len(ota.body.manufacturer_image) == 235
    assert not verify_supplier_signature(ota, vectors / SUPPLIER_CERT)
    assert ota.build() == data
    insp = read_tolerant(data)
    assert insp.body_kind is BodyKind.GBCS_UNSIGNED and not insp.off_spec
    # Read as signed, the last 66 bytes are text: refused, and said why.
    with pytest.raises(OtaFileError) as e:
        read_strict(data, BodyKind.GBCS)
    assert e.value.kind in ("gbcs_force_replace", "gbcs_marker")


# ---------------------------------------------------------- GBCS building


def test_gbcs_builder_header_signature_and_determinism():
    ota = gbcs_file()
    assert ota.build() == GBCS_SIGNED == gbcs_file().build()     # deterministic signing
    parsed = read_signed(GBCS_SIGNED, SUPPLIER.public_key())
    h = parsed.header
    assert (h.field_control, h.header_length, h.stack_version) == (0x0004, 60, 0x0002)
    assert h.total_image_size == 60 + len(IMAGE) + 66 == len(GBCS_SIGNED)
    assert parsed.body.manufacturer_image == IMAGE and parsed == read_strict(GBCS_SIGNED, "gbcs")
    assert gbcs_file(force_replace=True).body.force_replace == 1
    assert gbcs_file_name(parsed) == \
        f"121D-0000-01020304-{manufacturer_image_hash(IMAGE).hex()[:8]}.zigbee"
    unsigned = read_strict(GBCS_UNSIGNED, BodyKind.GBCS_UNSIGNED)
    assert unsigned.body == GbcsBody(IMAGE) and len(GBCS_UNSIGNED) == 60 + len(IMAGE)
    with pytest.raises(OtaFileError):
        gbcs_file(b"")


def test_zigpy_reads_our_gbcs_headers():
    # zigpy's parse_ota_image expects sub-elements, which a GBCS body does not
    # have; its header parser must agree with ours.
    for data in (GBCS_SIGNED, GBCS_UNSIGNED):
        zh, rest = OTAImageHeader.deserialize(data)
        assert_zigpy_header(zh, read_tolerant(data).file.header)
        assert len(rest) == len(data) - 60


def assert_zigpy_header(zh, h: OtaHeader) -> None:
    assert zh.upgrade_file_id == of.OTA_MAGIC
    assert (zh.header_version, zh.header_length, int(zh.field_control)) == \
        (h.header_version, h.header_length, h.field_control)
    assert (zh.manufacturer_id, zh.image_type, zh.file_version, zh.stack_version) == \
        (h.manufacturer, h.image_type, h.file_version, h.stack_version)
    assert bytes(zh.header_string) == h.header_string and zh.image_size == h.total_image_size
    assert zh.security_credential_version == h.security_credential_version
    if h.upgrade_file_destination is None:
        assert zh.upgrade_file_destination is None
    else:
        assert zh.upgrade_file_destination.serialize() == \
            h.upgrade_file_destination.to_bytes(8, "little")
    assert zh.minimum_hardware_version == h.min_hardware_version
    assert zh.maximum_hardware_version == h.max_hardware_version


# -------------------------------------------------- generic files, hypothesis

u8, u16 = st.integers(0, 0xFF), st.integers(0, 0xFFFF)
u32, u64 = st.integers(0, 0xFFFFFFFF), st.integers(0, 2**64 - 1)
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=32)


@st.composite
def headers(draw, header_string=printable) -> OtaHeader:
    fc = draw(st.integers(0, 7))
    hw = sorted((draw(u16), draw(u16)))
    return OtaHeader(
        manufacturer=draw(u16), image_type=draw(u16), file_version=draw(u32),
        stack_version=draw(u16), header_string=draw(header_string),
        security_credential_version=draw(u8) if fc & 1 else None,
        upgrade_file_destination=draw(u64) if fc & 2 else None,
        min_hardware_version=hw[0] if fc & 4 else None,
        max_hardware_version=hw[1] if fc & 4 else None)


elements = st.lists(st.builds(SubElement, tag=u16, data=st.binary(max_size=48)), max_size=5)


@given(headers(), elements)
def test_generic_round_trip(header, els):
    data = OtaFile(header, GenericBody(els)).build()
    ota = read_strict(data, BodyKind.GENERIC)
    assert ota.build() == data
    assert [(e.tag, e.data) for e in ota.body.elements] == [(e.tag, e.data) for e in els]
    h = ota.header
    for name in ("manufacturer", "image_type", "file_version", "stack_version", "header_string",
                 "security_credential_version", "upgrade_file_destination",
                 "min_hardware_version", "max_hardware_version"):
        assert getattr(h, name) == getattr(header, name), name
    assert h.header_length == of.header_size(h.field_control) and h.total_image_size == len(data)
    # Every span of the layout holds what it names.
    lay = ota.layout()
    for name, span in lay.fields.items():
        value = of.OTA_MAGIC if name == "magic" else getattr(h, name)
        raw = value if isinstance(value, bytes) else value.to_bytes(span.length, "little")
        assert span.of(data) == raw, name
    for e, span in zip(els, lay.elements):
        assert span.data.of(data) == e.data
        assert span.header.of(data) == struct.pack("<HI", e.tag, len(e.data))
    assert lay.body.end == len(data)
    insp = read_tolerant(data)
    assert insp.body_kind is BodyKind.GENERIC and insp.file == ota and not insp.off_spec
    assert set(insp.kinds) <= {"header_string_unterminated", "unknown_tag"}


@given(headers(header_string=st.binary(min_size=32, max_size=32)), elements)
def test_tolerant_round_trip_any_header_string(header, els):
    data = OtaFile(header, GenericBody(els)).build()
    assert read_tolerant(data, BodyKind.GENERIC).file.build() == data


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(headers(), elements)
def test_zigpy_parses_our_generic_files(header, els):
    assume(header.manufacturer != 4107)     # zigpy tries Hue's own format first for these
    data = OtaFile(header, GenericBody(els)).build()
    image, rest = parse_ota_image(data)
    assert rest == b""
    assert_zigpy_header(image.header, read_strict(data, "generic").header)
    assert [(int(e.tag_id), bytes(e.data)) for e in image.subelements] == \
        [(e.tag, e.data) for e in els]


# ------------------------------------------------------------- mutations

mutation = st.tuples(st.sampled_from(["flip", "truncate", "insert", "delete"]),
                     st.integers(0, 1 << 12), st.binary(min_size=1, max_size=6))


def mutate(data: bytes, ops) -> bytes:
    out = bytearray(data)
    for op, where, blob in ops:
        i = where % (len(out) + 1)
        if op == "flip" and i < len(out):
            out[i] ^= blob[0] or 0x01
        elif op == "truncate":
            del out[i:]
        elif op == "insert":
            out[i:i] = blob
        elif op == "delete":
            del out[i:i + len(blob)]
    return bytes(out)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([GENERIC, GBCS_SIGNED, GBCS_UNSIGNED]),
       st.lists(mutation, min_size=1, max_size=4))
def test_mutations_raise_only_ota_file_error(base, ops):
    data = mutate(base, ops)
    for kind in (BodyKind.GENERIC, BodyKind.GBCS, BodyKind.GBCS_UNSIGNED):
        try:
            ota = read_strict(data, kind)
        except OtaFileError as e:
            assert e.kind in ANOMALY_KINDS or e.kind in of.ERROR_KINDS
        else:
            assert ota.build() == data
    for kind in BodyKind:
        try:
            insp = read_tolerant(data, kind)
        except OtaFileError as e:
            assert e.kind in ("magic", "header_truncated")
            continue
        # The tolerant reading rebuilds exactly the bytes it read.
        assert insp.file.build() == data[insp.start:len(data) - len(insp.trailing)]
        assert insp.prefix == data[:insp.start]
        assert all(a.kind in ANOMALY_KINDS for a in insp.anomalies)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_strict_verify_never_accepts_a_changed_image_or_signature(ops):
    data = mutate(GBCS_SIGNED, ops)
    try:
        ota = read_signed(data, SUPPLIER.public_key())
    except OtaFileError:
        return
    assert ota.body.manufacturer_image == IMAGE
    assert ota.body.signature == gbcs_file().body.signature
    assert verify_supplier_signature(ota, SUPPLIER)


# ------------------------------------------------ tolerant reader anomalies


def patch(data: bytes, offset: int, raw: bytes) -> bytes:
    return data[:offset] + raw + data[offset + len(raw):]


def generic(header_kw=None, els=None, tail=b"") -> bytes:
    kw = dict(manufacturer=0x1234, image_type=1, file_version=7, header_string="hello")
    kw.update(header_kw or {})
    els = [SubElement(0, b"A" * 10), SubElement(0xF001, b"B" * 5)] if els is None else els
    return OtaFile(OtaHeader(**kw), GenericBody(els, tail)).build()


TRAILER_AT = len(GBCS_SIGNED) - 66

# kind -> (input, body kind, offset reported)
ANOMALY_CASES = {
    "prefix": (b"\x00\x01\x02" + GENERIC, BodyKind.AUTO, 0),
    "header_version": (patch(GENERIC, 4, b"\x00\x02"), BodyKind.AUTO, 4),
    "field_control_reserved": (patch(GENERIC, 8, b"\x08\x00"), BodyKind.AUTO, 8),
    "header_string_not_ascii": (generic(dict(header_string=b"caf\xe9")), BodyKind.AUTO, 23),
    "header_string_unterminated": (generic(dict(header_string="X" * 32)), BodyKind.AUTO, 20),
    "header_string_padding": (generic(dict(header_string=b"ab\0c")), BodyKind.AUTO, 23),
    "hardware_versions_inverted": (generic(dict(min_hardware_version=0x200,
                                                max_hardware_version=0x100)), BodyKind.AUTO, 56),
    "header_length_mismatch": (generic(dict(header_length=60, extra=b"\xAA\xBB\xCC\xDD")),
                               BodyKind.AUTO, 6),
    "total_size_mismatch": (generic(dict(total_image_size=10)), BodyKind.AUTO, 52),
    "truncated": (GENERIC[:-3], BodyKind.AUTO, len(GENERIC) - 3),
    "trailing_data": (GENERIC + b"junk", BodyKind.AUTO, len(GENERIC)),
    "sub_element_partial_header": (generic(tail=b"\x01\x02\x03"), BodyKind.GENERIC, len(GENERIC)),
    "unknown_tag": (generic(els=[SubElement(0, b"A"), SubElement(0x0100, b"C")]),
                    BodyKind.AUTO, 56 + 7),
    "sub_element_overrun": (generic(els=[SubElement(0, b"A" * 10, length=100)]),
                            BodyKind.GENERIC, 56),
    "gbcs_header": (patch(GBCS_SIGNED, 18, b"\x01\x00"), BodyKind.AUTO, 18),
    "gbcs_empty_image": (OtaFile(gbcs_file().header, GbcsBody(b"")).build(),
                         BodyKind.GBCS_UNSIGNED, 60),
    "gbcs_trailer_missing": (gbcs_file(b"short", key=None).build(), BodyKind.GBCS, 60),
    "gbcs_force_replace": (patch(GBCS_SIGNED, TRAILER_AT, b"\x02"), BodyKind.AUTO, TRAILER_AT),
    "gbcs_marker": (patch(GBCS_SIGNED, TRAILER_AT + 1, b"\x41"), BodyKind.GBCS, TRAILER_AT + 1),
}


def test_every_anomaly_kind_has_a_case():
    assert set(ANOMALY_CASES) == set(ANOMALY_KINDS)


@pytest.mark.parametrize("kind", sorted(ANOMALY_CASES))
def test_tolerant_anomaly(kind):
    data, body, offset = ANOMALY_CASES[kind]
    insp = read_tolerant(data, body)
    found = [a for a in insp.anomalies if a.kind == kind]
    assert [a.offset for a in found] == [offset], insp.anomalies
    assert insp.file.build() == data[insp.start:len(data) - len(insp.trailing)]
    note = not found[0].off_spec
    assert note == ANOMALY_KINDS[kind].startswith("note:")
    strict_kind = body if body is not BodyKind.AUTO else insp.body_kind
    if note:
        read_strict(data, strict_kind)      # notes are legal
        return
    # The strict reader refuses the same finding (a prefix: as a missing magic).
    with pytest.raises(OtaFileError) as e:
        read_strict(data, strict_kind)
    assert (e.value.kind, e.value.offset) == (("magic", 0) if kind == "prefix" else (kind, offset))


def test_tolerant_vendor_wrappers():
    legrand = struct.pack("<I", len(GENERIC)) + GENERIC + bytes(17)
    insp = read_tolerant(legrand)
    assert insp.start == 4 and insp.kinds == ["prefix", "trailing_data"]
    assert insp.trailing == bytes(17) and insp.file.build() == GENERIC
    assert "Legrand" in insp.anomalies[0].message
    ikea = b"NGIS" + bytes(20) + GENERIC
    insp = read_tolerant(ikea)
    assert insp.start == 24 and "IKEA" in insp.anomalies[0].message
    # A stray copy of the magic in the wrapper is passed over.
    stray = of.OTA_MAGIC.to_bytes(4, "little") + b"\xff\xff" + GENERIC
    assert read_tolerant(stray).start == 6


def test_tolerant_keeps_unknown_header_bytes_and_truncated_elements():
    data, _, _ = ANOMALY_CASES["header_length_mismatch"]
    insp = read_tolerant(data)
    assert insp.file.header.extra == b"\xAA\xBB\xCC\xDD"
    assert insp.file.layout().fields["extra"] == of.Span(56, 4)
    insp = read_tolerant(GENERIC[:-3])
    last = insp.file.body.elements[-1]
    assert (last.tag, last.data, last.length) == (0xF001, b"BB", 5)


@pytest.mark.parametrize("data, kind", [
    (b"", "magic"), (b"no magic here" * 10, "magic"),
    (of.OTA_MAGIC.to_bytes(4, "little") + b"\x00\x01" + bytes(10), "header_truncated"),
    (patch(GENERIC, 8, b"\x07\x00")[:60], "header_truncated"),
])
def test_tolerant_fails_only_without_a_header(data, kind):
    with pytest.raises(OtaFileError) as e:
        read_tolerant(data)
    assert e.value.kind == kind and isinstance(e.value, BridgeEmuError)


def test_strict_refusals_name_offset_and_reason():
    with pytest.raises(OtaFileError) as e:
        read_strict(b"\x00" + GENERIC, BodyKind.GENERIC)
    assert e.value.offset == 0 and "magic" in str(e.value)
    with pytest.raises(OtaFileError) as e:
        read_strict(GBCS_SIGNED[:-1], BodyKind.GBCS)
    assert (e.value.kind, e.value.offset) == ("truncated", len(GBCS_SIGNED) - 1)
    assert "total_image_size" in e.value.reason
    with pytest.raises(ValueError):
        read_strict(GENERIC, BodyKind.AUTO)


def test_auto_rule():
    assert read_tolerant(GENERIC).body_kind is BodyKind.GENERIC
    assert read_tolerant(GBCS_SIGNED).body_kind is BodyKind.GBCS
    assert read_tolerant(GBCS_UNSIGNED).body_kind is BodyKind.GBCS_UNSIGNED
    assert read_tolerant(GENERIC[:-3]).body_kind is BodyKind.GENERIC    # truncated chain
    # A truncated signed file has lost its trailer: read as unsigned.
    assert read_tolerant(GBCS_SIGNED[:-1]).body_kind is BodyKind.GBCS_UNSIGNED


@pytest.mark.parametrize("kw", [
    dict(min_hardware_version=1),                      # max missing
    dict(field_control=0x0004),                        # hw versions missing
    dict(field_control=0, security_credential_version=1),
    dict(manufacturer=0x10000),
    dict(header_string="x" * 33),
    dict(header_string="é"),
])
def test_build_refuses_inconsistent_fields(kw):
    args = dict(manufacturer=1, image_type=2, file_version=3)
    args.update(kw)
    with pytest.raises(OtaFileError) as e:
        OtaFile(OtaHeader(**args), GenericBody()).build()
    assert e.value.kind == "build" and e.value.offset is None
