"""be_ota_verify (native/src/be_ota.c): a downloaded ZigBee OTA file checked in C
from the emulated flash, as a bridge does before "Firmware Verification
Successful" (alert 0x8F72).

The public DUIS 11.1 image verifies with the public test supplier's
certificate and gives the known manufacturer image hash; every single flipped
byte of its manufacturer image or signature is refused; identity checks
(manufacturer, image type, hardware version range) each have their code; the
unsigned 11.4 image is refused as unsigned. Generic files (built here with
struct) with a right / wrong / vendor-variant tag-0x0003 integrity code. And
random headers and lengths, truncated and overlong, against a Python model of
the checks, with the file placed where a read past its range would either
fail (end of flash) or see garbage (middle of flash).
"""
from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_aes_mmo import mmo_reference

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.errors import error_for
from bridge_emu.core.flash import DeviceConfig, Flash, Geometry, Layout
from bridge_emu.core.host_crypto import HostCrypto
from bridge_emu.core.ota_verify import aes_mmo, supplier_key_der, verify_ota_in_flash
from bridge_emu.errors import ImageError, PowerCut
from bridge_emu.keys import KeyFileError
from support.paths import VECTORS

pytestmark = pytest.mark.native


UPDATE_11_1 = VECTORS / "duis-11.1-update-firmware.bin"
PPMID_11_4 = VECTORS / "duis-11.4-update-ppmid-firmware.bin"
SUPPLIER_PEM = VECTORS / "supplier-90b3d51f30010000-digitalSignature.pem"
MI_HASH_11_1 = "7542f475e3f12eae887d81e32c46d313741d67076b13caec2f82e00ba5e1bb36"

MAGIC = 0x0BEEF11E
SECTOR = 4096
N_SECTORS = 16
FLASH_SIZE = SECTOR * N_SECTORS
FILE_ADDR = 0x2000
GFI = dict(manufacturer=0x121D, image_type=0x0000, hw_version=0x1111)

OTA_CODES = {n: getattr(lib, n) for n in dir(lib) if n.startswith("BE_ERR_OTA_")}
TEST_KEY = ec.derive_private_key(0x5EED, ec.SECP256R1())


def name(rc: int) -> str:
    return ffi.string(lib.be_err_name(rc)).decode()


def new_flash() -> Flash:
    geo = Geometry.uniform(SECTOR, N_SECTORS)
    return Flash.in_memory(DeviceConfig(geo, Layout.simple(geo, "bank-switch")))


def place(flash: Flash, addr: int, data: bytes, before: bytes = b"", after: bytes = b"") -> None:
    """Erase what [addr - len(before), addr + len(data) + len(after)) touches and
    write before || data || after there (widened to the write alignment with 0xFF)."""
    align = flash.geometry.write_align
    start = addr - len(before)
    lo = start - start % align
    blob = b"\xff" * (start - lo) + before + data + after
    blob += b"\xff" * (-len(blob) % align)
    for s in range(lo // SECTOR, (lo + max(len(blob), 1) - 1) // SECTOR + 1):
        flash.erase(s * SECTOR)
    if blob:
        flash.write(lo, blob)


@pytest.fixture(scope="module")
def flash() -> Flash:
    return new_flash()


@pytest.fixture(scope="module")
def supplier_pem() -> bytes:
    return SUPPLIER_PEM.read_bytes()


@pytest.fixture(scope="module")
def image_11_1() -> bytes:
    return UPDATE_11_1.read_bytes()


def verify(flash, data: bytes, *, addr: int = FILE_ADDR, length: int | None = None, **kw):
    place(flash, addr, data)
    args = dict(GFI, body="gbcs", supplier_key=SUPPLIER_PEM.read_bytes())
    args.update(kw)
    return verify_ota_in_flash(flash, addr, len(data) if length is None else length, **args)


def refused(flash, data: bytes, **kw) -> str:
    with pytest.raises(ImageError) as ei:
        verify(flash, data, **kw)
    return ei.value.name


# -------------------------------------------------------- file builders

def ota_header(*, manufacturer=0x121D, image_type=0, file_version=1, field_control=4,
               hw=(0x1111, 0x1211), header_version=0x0100, header_length=None, stack=2,
               string=b"bridge-emu test", total=0, credential=1, dest=bytes(8)) -> bytes:
    opt = b""
    if field_control & 1:
        opt += bytes([credential])
    if field_control & 2:
        opt += dest
    if field_control & 4:
        opt += struct.pack("<HH", *hw)
    if header_length is None:
        header_length = 56 + len(opt)
    hdr = struct.pack("<IHHHHHIH32sI", MAGIC, header_version, header_length, field_control,
                      manufacturer, image_type, file_version, stack, string.ljust(32, b"\0"),
                      total) + opt
    return hdr + b"\0" * max(0, header_length - len(hdr))


def set_total(data: bytes, total: int | None = None) -> bytes:
    return data[:52] + struct.pack("<I", len(data) if total is None else total) + data[56:]


def sub(tag: int, data: bytes, length: int | None = None) -> bytes:
    return struct.pack("<HI", tag, len(data) if length is None else length) + data


def raw_sig(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    r, s = decode_dss_signature(key.sign(message, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def gbcs_file(mi: bytes, *, key=TEST_KEY, force_replace=0, **hdr) -> bytes:
    head = ota_header(**hdr)
    return set_total(head + mi + bytes([force_replace, 0x40]) + raw_sig(key, mi))


def generic_file(elements: list[bytes], *, mic: str | None = "standard", **hdr) -> bytes:
    """Header + elements (+ a tag 0x0003 with the AES-MMO of everything before it:
    "standard", "vendor" (incl. its tag header), "wrong" or None for no tag)."""
    head = ota_header(**hdr)
    body = b"".join(elements)
    if mic is None:
        return set_total(head + body)
    data = set_total(head + body + sub(3, bytes(16)))
    prefix = data[:-16] if mic == "vendor" else data[:-22]
    code = mmo_reference(prefix)
    if mic == "wrong":
        code = bytes([code[0] ^ 1]) + code[1:]
    return data[:-16] + code


# ---------------------------------------------------------------- model

def model(file: bytes, *, manufacturer: int, image_type: int, hw_version: int, body: str,
          pub: ec.EllipticCurvePublicKey | None) -> tuple[str, dict]:
    """The checks of be_ota.c, in its order, over exactly the given bytes."""
    n = len(file)
    if n < 4:
        return "BE_ERR_OTA_SIZE", {}
    if struct.unpack_from("<I", file)[0] != MAGIC:
        return "BE_ERR_OTA_MAGIC", {}
    if n < 56:
        return "BE_ERR_OTA_SIZE", {}
    hv, hl, fc, mf, it, fv, sv = struct.unpack_from("<HHHHHIH", file, 4)
    total = struct.unpack_from("<I", file, 52)[0]
    info = dict(header_version=hv, header_length=hl, field_control=fc, manufacturer=mf,
                image_type=it, file_version=fv, stack_version=sv)
    if hv != 0x0100:
        return "BE_ERR_OTA_HEADER", info
    if total != n:
        return "BE_ERR_OTA_SIZE", info
    n_opt = (1 if fc & 1 else 0) + (8 if fc & 2 else 0) + (4 if fc & 4 else 0)
    if hl < 56 + n_opt or hl > n:
        return "BE_ERR_OTA_HEADER", info
    p = 56 + (1 if fc & 1 else 0) + (8 if fc & 2 else 0)
    lo = hi = None
    if fc & 4:
        lo, hi = struct.unpack_from("<HH", file, p)
        if lo > hi:
            return "BE_ERR_OTA_HEADER", info
    if mf != manufacturer:
        return "BE_ERR_OTA_MANUFACTURER", info
    if it != image_type:
        return "BE_ERR_OTA_IMAGE_TYPE", info
    if lo is not None and not lo <= hw_version <= hi:
        return "BE_ERR_OTA_HW_VERSION", info
    if body == "gbcs":
        if n - hl < 66:
            return "BE_ERR_OTA_NO_SIG", info
        fr, mark = file[n - 66], file[n - 65]
        if mark != 0x40 or fr > 1:
            return "BE_ERR_OTA_NO_SIG", info
        mi = file[hl:n - 66]
        if not mi:
            return "BE_ERR_OTA_BODY", info
        sig = file[n - 64:]
        info.update(image_offset=hl, image_length=len(mi), force_replace=bool(fr))
        try:
            pub.verify(encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                            int.from_bytes(sig[32:], "big")),
                       mi, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "BE_ERR_OTA_SIG", info
        return "BE_OK", info
    off, elements, image, mic = hl, 0, None, None
    while off < n:
        if n - off < 6:
            return "BE_ERR_OTA_BODY", info
        tag, ln = struct.unpack_from("<HI", file, off)
        if ln > n - off - 6:
            return "BE_ERR_OTA_BODY", info
        elements += 1
        if tag == 0 and image is None:
            image = (off + 6, ln)
        elif tag == 3:
            if mic is not None or ln != 16:
                return "BE_ERR_OTA_BODY", info
            mic = (off, file[off + 6:off + 22])
        off += 6 + ln
    info.update(elements=elements, image_offset=image[0] if image else 0,
                image_length=image[1] if image else 0)
    if mic is None:
        info["integrity"] = "none"
        return "BE_OK", info
    if mmo_reference(file[:mic[0]]) == mic[1]:
        info["integrity"] = "standard"
    elif mmo_reference(file[:mic[0] + 6]) == mic[1]:
        info["integrity"] = "with-tag-header"
    else:
        return "BE_ERR_OTA_INTEGRITY", info
    info["integrity_offset"] = mic[0]
    return "BE_OK", info


# ------------------------------------------------------- the DUIS vectors

def test_vector_11_1_verifies(flash, image_11_1, supplier_pem):
    assert len(image_11_1) == 361
    res = verify(flash, image_11_1, supplier_key=supplier_pem)
    assert res.manufacturer_image_hash.hex() == MI_HASH_11_1
    assert res.signature_checked
    assert (res.manufacturer, res.image_type, res.file_version) == (0x121D, 0x0000, 0xACDCACDC)
    assert (res.hw_min, res.hw_max) == (0x1111, 0x1211)
    assert (res.header_version, res.header_length, res.field_control) == (0x0100, 60, 4)
    assert res.stack_version == 2 and res.total_image_size == 361
    assert (res.image_offset, res.image_length, res.force_replace) == (60, 235, False)
    assert res.header_string.startswith(b"I am a GFI ESME")
    assert res.integrity == "none" and res.integrity_code is None


@pytest.mark.parametrize("form", ["pem", "pem-str", "der-cert", "cert", "der-spki", "key"])
def test_vector_11_1_supplier_key_forms(flash, image_11_1, supplier_pem, form):
    cert = x509.load_pem_x509_certificate(supplier_pem)
    pub = cert.public_key()
    key = {
        "pem": supplier_pem,
        "pem-str": supplier_pem.decode(),
        "der-cert": cert.public_bytes(serialization.Encoding.DER),
        "cert": cert,
        "der-spki": supplier_key_der(pub),
        "key": pub,
    }[form]
    res = verify(flash, image_11_1, supplier_key=key)
    assert res.manufacturer_image_hash.hex() == MI_HASH_11_1


def test_vector_11_1_every_flipped_byte_refused(flash, image_11_1, supplier_pem):
    """Every byte of the manufacturer image [60, 295) and of the signature [297, 361),
    flipped two ways: all refused with BE_ERR_OTA_SIG."""
    positions = list(range(60, 295)) + list(range(297, 361))
    assert len(positions) == 235 + 64
    crypto = HostCrypto()
    for pos in positions:
        for mask in (0xFF, 1 << (pos % 8)):
            bad = bytearray(image_11_1)
            bad[pos] ^= mask
            assert refused(flash, bytes(bad), supplier_key=supplier_pem, crypto=crypto) \
                == "BE_ERR_OTA_SIG", (pos, mask)
    assert crypto.calls == crypto.bad == 2 * len(positions)


def test_vector_11_1_trailer(flash, image_11_1, supplier_pem):
    bad = bytearray(image_11_1)
    bad[296] = 0x41                     # the 0x40 in front of the signature
    assert refused(flash, bytes(bad)) == "BE_ERR_OTA_NO_SIG"
    bad = bytearray(image_11_1)
    bad[295] = 0x02                     # force_replace is a boolean
    assert refused(flash, bytes(bad)) == "BE_ERR_OTA_NO_SIG"
    # force_replace is for the CH only and outside the signature: 1 still verifies
    good = bytearray(image_11_1)
    good[295] = 0x01
    res = verify(flash, bytes(good))
    assert res.force_replace is True and res.manufacturer_image_hash.hex() == MI_HASH_11_1


def test_vector_11_1_identity(flash, image_11_1):
    assert refused(flash, image_11_1, manufacturer=0x121E) == "BE_ERR_OTA_MANUFACTURER"
    assert refused(flash, image_11_1, manufacturer=0xFFFF) == "BE_ERR_OTA_MANUFACTURER"
    assert refused(flash, image_11_1, image_type=0x0084) == "BE_ERR_OTA_IMAGE_TYPE"
    assert refused(flash, image_11_1, hw_version=0x1110) == "BE_ERR_OTA_HW_VERSION"
    assert refused(flash, image_11_1, hw_version=0x1212) == "BE_ERR_OTA_HW_VERSION"
    assert refused(flash, image_11_1, hw_version=0) == "BE_ERR_OTA_HW_VERSION"
    for hw in (0x1111, 0x1180, 0x1211):
        assert verify(flash, image_11_1, hw_version=hw).signature_checked


def test_vector_11_1_wrong_supplier(flash, image_11_1):
    assert refused(flash, image_11_1, supplier_key=TEST_KEY.public_key()) == "BE_ERR_OTA_SIG"


def test_vector_11_1_size_mismatch(flash, image_11_1):
    assert refused(flash, image_11_1, length=360) == "BE_ERR_OTA_SIZE"
    assert refused(flash, image_11_1 + b"\0", length=362) == "BE_ERR_OTA_SIZE"
    assert refused(flash, image_11_1, length=40) == "BE_ERR_OTA_SIZE"


def test_vector_11_4_unsigned(flash):
    data = PPMID_11_4.read_bytes()
    assert len(data) == 295
    assert refused(flash, data, image_type=0x0084) == "BE_ERR_OTA_NO_SIG"
    # the identity checks come first
    assert refused(flash, data, image_type=0x0000) == "BE_ERR_OTA_IMAGE_TYPE"
    # as a generic ZCL file its body is not sub-elements
    assert refused(flash, data, image_type=0x0084, body="generic") == "BE_ERR_OTA_BODY"


def test_vector_11_1_read_only_within_range():
    """The file as the last bytes of the flash: any read past it would fail."""
    f = new_flash()
    data = UPDATE_11_1.read_bytes()
    res = verify(f, data, addr=FLASH_SIZE - len(data))
    assert res.manufacturer_image_hash.hex() == MI_HASH_11_1


# ---------------------------------------------------------- generic files

IMAGE = bytes((i * 29 + 5) & 0xFF for i in range(700))


def test_generic_integrity_standard(flash):
    data = generic_file([sub(0, IMAGE)])
    res = verify(flash, data, body="generic")
    assert res.integrity == "standard" and not res.signature_checked
    assert res.integrity_offset == 60 + 6 + len(IMAGE)
    assert res.integrity_code == aes_mmo(data[:res.integrity_offset]) == data[-16:]
    assert (res.image_offset, res.image_length, res.elements) == (66, len(IMAGE), 2)
    assert res.manufacturer_image_hash is None and res.force_replace is None


def test_generic_integrity_vendor_variant(flash):
    data = generic_file([sub(0, IMAGE), sub(0xF000, b"vendor")], mic="vendor")
    res = verify(flash, data, body="generic")
    assert res.integrity == "with-tag-header"
    assert res.integrity_code == aes_mmo(data[:-16])


def test_generic_integrity_wrong(flash):
    assert refused(flash, generic_file([sub(0, IMAGE)], mic="wrong"), body="generic") \
        == "BE_ERR_OTA_INTEGRITY"
    good = generic_file([sub(0, IMAGE)])
    for pos in (0x14, 60, 66, 66 + 350, 60 + 6 + len(IMAGE) - 1, len(good) - 1):
        bad = bytearray(good)
        bad[pos] ^= 0x10
        assert refused(flash, bytes(bad), body="generic") == "BE_ERR_OTA_INTEGRITY", pos


def test_generic_without_integrity_code(flash):
    res = verify(flash, generic_file([sub(0, IMAGE)], mic=None), body="generic")
    assert res.integrity == "none" and res.integrity_offset is None and res.elements == 1


def test_generic_trailing_elements_and_optional_fields(flash):
    """All three optional header fields; a sub-element after the integrity code."""
    dest = bytes(range(1, 9))
    head_kw = dict(field_control=7, credential=3, dest=dest, hw=(0, 0xFFF0))
    head = ota_header(**head_kw)
    body = sub(0xF001, b"x" * 10) + sub(0, IMAGE)
    mic_off = len(head) + len(body)
    tail = sub(0xF002, b"after")
    data = set_total(head + body + sub(3, bytes(16)) + tail)
    code = mmo_reference(data[:mic_off])
    data = data[:mic_off + 6] + code + data[mic_off + 22:]
    res = verify(flash, data, body="generic", hw_version=0x1234)
    assert (res.security_credential_version, res.destination) == (3, dest)
    assert (res.hw_min, res.hw_max, res.header_length) == (0, 0xFFF0, 56 + 13)
    assert (res.integrity, res.integrity_offset, res.elements) == ("standard", mic_off, 4)
    assert res.image_offset == len(head) + 16 + 6


def test_generic_body_errors(flash):
    cases = {
        "truncated element": set_total(ota_header() + sub(0, IMAGE, len(IMAGE) + 1)),
        "short element header": set_total(ota_header() + sub(0, IMAGE) + b"\x00\x00\x01"),
        "huge length": set_total(ota_header() + sub(0, IMAGE, 0xFFFFFFFF)),
        "mic too long": set_total(ota_header() + sub(3, bytes(17))),
        "mic too short": set_total(ota_header() + sub(3, bytes(15))),
    }
    for what, data in cases.items():
        assert refused(flash, data, body="generic") == "BE_ERR_OTA_BODY", what
    once = generic_file([sub(0, IMAGE)])
    twice = set_total(once + sub(3, once[-16:]))
    assert refused(flash, twice, body="generic") == "BE_ERR_OTA_BODY"


def test_header_errors(flash):
    mi = b"manufacturer image"
    assert verify(flash, gbcs_file(mi), supplier_key=TEST_KEY.public_key()).signature_checked
    cases = {
        "BE_ERR_OTA_MAGIC": b"\x1f" + gbcs_file(mi)[1:],
        "BE_ERR_OTA_HEADER": gbcs_file(mi, header_version=0x0200),
        "BE_ERR_OTA_SIZE": set_total(gbcs_file(mi), 1000),
    }
    for code, data in cases.items():
        assert refused(flash, data, supplier_key=TEST_KEY.public_key()) == code
    head = ota_header(hw=(0x2000, 0x1000))
    assert refused(flash, set_total(head + sub(0, b"x")), body="generic") == "BE_ERR_OTA_HEADER"
    head = ota_header(header_length=59)                     # the hw range needs 60
    assert refused(flash, set_total(head + sub(0, b"x")), body="generic") == "BE_ERR_OTA_HEADER"
    head = ota_header(header_length=200)
    assert refused(flash, set_total(head[:100]), body="generic") == "BE_ERR_OTA_HEADER"
    assert refused(flash, b"\x1e\xf1\xee") == "BE_ERR_OTA_SIZE"
    assert refused(flash, b"") == "BE_ERR_OTA_SIZE"
    # a GBCS body with nothing before its trailer
    assert refused(flash, gbcs_file(b""), supplier_key=TEST_KEY.public_key()) == "BE_ERR_OTA_BODY"


# ----------------------------------------------------------- C directly

def c_verify(flash, addr, length, body=lib.BE_OTA_BODY_GBCS, key=b"k", crypto=None):
    exp = ffi.new("be_ota_expect_t *", {"manufacturer": 0x121D, "image_type": 0,
                                        "hw_version": 0x1111, "body": body})
    info = ffi.new("be_ota_info_t *")
    k = ffi.new("uint8_t[]", key) if key else ffi.NULL
    rc = lib.be_ota_verify(flash.ctx, addr, length, exp, crypto if crypto else ffi.NULL, k,
                           len(key) if key else 0, info)
    return rc, info


def test_c_arguments(flash, image_11_1):
    place(flash, FILE_ADDR, image_11_1)
    assert c_verify(flash, FILE_ADDR, 361, key=b"")[0] == lib.BE_ERR_ARG
    assert c_verify(flash, FILE_ADDR, 361, body=0)[0] == lib.BE_ERR_ARG
    assert c_verify(flash, FILE_ADDR, 361, body=3)[0] == lib.BE_ERR_ARG
    assert c_verify(flash, FLASH_SIZE - 100, 101)[0] == lib.BE_ERR_RANGE
    assert c_verify(flash, 0xFFFFFFFF, 0xFFFFFFFF)[0] == lib.BE_ERR_RANGE
    exp = ffi.new("be_ota_expect_t *", {"body": lib.BE_OTA_BODY_GENERIC})
    assert lib.be_ota_verify(ffi.NULL, 0, 0, exp, ffi.NULL, ffi.NULL, 0, ffi.NULL) == lib.BE_ERR_ARG
    assert lib.be_ota_verify(flash.ctx, 0, 0, ffi.NULL, ffi.NULL, ffi.NULL, 0, ffi.NULL) \
        == lib.BE_ERR_ARG
    # generic needs neither crypto nor key; info may be NULL
    data = generic_file([sub(0, b"img")])
    place(flash, FILE_ADDR, data)
    assert lib.be_ota_verify(flash.ctx, FILE_ADDR, len(data), ffi.new(
        "be_ota_expect_t *", {"manufacturer": 0x121D, "hw_version": 0x1111,
                              "body": lib.BE_OTA_BODY_GENERIC}),
        ffi.NULL, ffi.NULL, 0, ffi.NULL) == lib.BE_OK


def test_c_missing_or_failing_crypto(flash, image_11_1):
    """No verifier: BE_ERR_CRYPTO, after the hash is computed; a key the host
    cannot load: BE_ERR_CRYPTO too (not a signature failure)."""
    place(flash, FILE_ADDR, image_11_1)
    rc, info = c_verify(flash, FILE_ADDR, 361)
    assert rc == lib.BE_ERR_CRYPTO
    assert bytes(info.image_hash).hex() == MI_HASH_11_1 and info.sig_checked == 0
    rc, info = c_verify(flash, FILE_ADDR, 361, key=b"not a key", crypto=HostCrypto().crypto)
    assert rc == lib.BE_ERR_CRYPTO
    with pytest.raises(ImageError) as ei:
        verify_ota_in_flash(flash, FILE_ADDR, 361, **GFI, supplier_key=supplier_key_der(
            TEST_KEY.public_key()), crypto=HostCrypto())
    assert ei.value.name == "BE_ERR_OTA_SIG"


def test_c_power_cut_read_error(image_11_1):
    f = new_flash()
    place(f, FILE_ADDR, image_11_1)
    f.arm_cut(1)
    with pytest.raises(PowerCut):
        f.erase(0)
    assert c_verify(f, FILE_ADDR, 361, crypto=HostCrypto().crypto)[0] == lib.BE_ERR_POWER_CUT


def test_error_codes_named_and_mapped():
    assert set(OTA_CODES.values()) == set(range(-49, -39))
    for n, code in OTA_CODES.items():
        assert name(code) == n
        assert ffi.string(lib.be_err_text(code)).decode() != "unknown error code"
        assert isinstance(error_for(code), ImageError)
        assert error_for(code).name == n


def test_python_argument_checks(flash, image_11_1):
    with pytest.raises(ValueError):
        verify_ota_in_flash(flash, FILE_ADDR, 361, **GFI, body="zcl")
    with pytest.raises(ValueError):
        verify_ota_in_flash(flash, FILE_ADDR, 361, **GFI, body="gbcs")
    with pytest.raises(ValueError):
        verify_ota_in_flash(flash, FILE_ADDR, 361, manufacturer=0x10000, image_type=0,
                            hw_version=0, body="generic")
    with pytest.raises(TypeError):
        verify_ota_in_flash(object(), FILE_ADDR, 361, **GFI, body="generic")
    with pytest.raises(KeyFileError):
        supplier_key_der(ec.generate_private_key(ec.SECP384R1()).public_key())


def test_flash_ctx_cdata_accepted(flash, image_11_1, supplier_pem):
    place(flash, FILE_ADDR, image_11_1)
    res = verify_ota_in_flash(flash.ctx, FILE_ADDR, 361, **GFI, supplier_key=supplier_pem)
    assert res.manufacturer_image_hash.hex() == MI_HASH_11_1


# ----------------------------------------- random headers and lengths

WANT = dict(manufacturer=0x121D, image_type=0x0042, hw_version=0x0200)


def mostly(draw, good, bad, in_ten: int = 8):
    """good in about in_ten of ten draws, else a draw from bad."""
    return good if draw(st.integers(0, 9)) < in_ten else draw(bad)


@st.composite
def ota_files(draw):
    """A file that is mostly well-formed, with a few random defects, then
    downloaded exactly, truncated or with extra bytes."""
    body = draw(st.sampled_from(["gbcs", "generic"]))
    fc = mostly(draw, draw(st.sampled_from([0, 1, 2, 4, 5, 6, 7, 8, 0x8004])),
                st.integers(0, 0xFFFF))
    lo = mostly(draw, draw(st.sampled_from([0, 0x100, 0x200])), st.sampled_from([0x201, 0xFFFF]))
    hi = mostly(draw, draw(st.sampled_from([0x200, 0x300, 0xFFFF])), st.sampled_from([0, 0x1FF]))
    n_opt = (1 if fc & 1 else 0) + (8 if fc & 2 else 0) + (4 if fc & 4 else 0)
    hl = mostly(draw, 56 + n_opt, st.one_of(st.integers(56 + n_opt, 56 + n_opt + 8),
                                            st.integers(0, 0xFFFF)), 7)
    head = ota_header(
        manufacturer=mostly(draw, WANT["manufacturer"], st.integers(0, 0xFFFF), 9),
        image_type=mostly(draw, WANT["image_type"], st.integers(0, 0xFFFF), 9),
        field_control=fc, hw=(lo, hi), header_length=hl,
        header_version=mostly(draw, 0x0100, st.integers(0, 0xFFFF), 9),
        file_version=draw(st.integers(0, 0xFFFFFFFF)), stack=draw(st.integers(0, 0xFFFF)),
        credential=draw(st.integers(0, 255)), dest=draw(st.binary(min_size=8, max_size=8)))
    head = head[:56 + n_opt + 8]  # header_length may be short of its fields, or far beyond
    if draw(st.integers(0, 19)) == 7:
        head = draw(st.binary(min_size=4, max_size=4)) + head[4:]
    if body == "gbcs":
        mi = draw(st.binary(max_size=80))
        fr = mostly(draw, draw(st.sampled_from([0, 1])), st.integers(2, 255), 9)
        mark = mostly(draw, 0x40, st.integers(0, 255), 9)
        sig = raw_sig(TEST_KEY, mi) if draw(st.integers(0, 3)) else \
            draw(st.binary(min_size=64, max_size=64))
        rest = mi + bytes([fr, mark]) + sig
        tail = mostly(draw, "full", st.sampled_from(["no-trailer", "cut"]))
        if tail == "no-trailer":
            rest = mi
        elif tail == "cut":
            rest = rest[:draw(st.integers(0, len(rest)))]
        data = head + rest
    else:
        tags = draw(st.lists(st.sampled_from([0, 0, 3, 0xF000, 0x0001]), max_size=3))
        if draw(st.integers(0, 9)) < 6:     # mostly one integrity code, anywhere
            tags.insert(draw(st.integers(0, len(tags))), 3)
        elements = []
        for tag in tags:
            payload = draw(st.binary(max_size=40)) if tag != 3 else bytes(16)
            length = mostly(draw, len(payload), st.one_of(st.integers(0, 64),
                                                          st.just(0xFFFFFFFF)), 9)
            elements.append((tag, payload, length))
        data = head + b"".join(sub(t, p, ln) for t, p, ln in elements)
        if draw(st.integers(0, 9)) == 5:
            data += draw(st.binary(min_size=1, max_size=7))      # stray bytes after the elements
    data = set_total(data, mostly(draw, None, st.integers(0, 0xFFFFFFFF), 9)) \
        if len(data) >= 56 else data
    if body == "generic" and len(data) >= 56:
        # the first tag-0x0003 element gets the right code (standard or vendor), mostly
        variant = draw(st.sampled_from(["standard", "standard", "vendor", "leave"]))
        off = hl if hl >= 56 else len(data)
        while variant != "leave" and off + 6 <= len(data):
            tag, ln = struct.unpack_from("<HI", data, off)
            if tag == 3 and ln == 16 and off + 22 <= len(data):
                code = mmo_reference(data[:off + (6 if variant == "vendor" else 0)])
                data = data[:off + 6] + code + data[off + 22:]
                break
            off += 6 + ln
    # the downloaded length: the file, a truncation of it, or more than it
    how = mostly(draw, "exact", st.sampled_from(["truncated", "overlong"]), 8)
    if how == "truncated":
        data = data[:draw(st.integers(0, len(data)))]
    elif how == "overlong":
        data = data + draw(st.binary(min_size=1, max_size=20))
    return body, data


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(case=ota_files(), where=st.sampled_from(["end", "middle"]),
       garbage=st.binary(min_size=1, max_size=64))
def test_random_files_match_model(flash, case, where, garbage):
    """C agrees with the model on the bytes of [addr, addr + length) alone; placed
    at the flash's end a read past the range would surface as BE_ERR_RANGE, placed
    in the middle it would see garbage the model never sees."""
    body, data = case
    pub = TEST_KEY.public_key()
    if where == "end":
        addr = FLASH_SIZE - len(data)
        place(flash, addr, data, before=garbage[:min(len(garbage), addr)])
    else:
        addr = FILE_ADDR + len(garbage) % 4
        place(flash, addr, data, before=garbage, after=garbage[::-1] * 4)
    want, info = model(data, **WANT, body=body, pub=pub)
    event(f"{body}: {want} {info.get('integrity', '')}".rstrip())
    try:
        res = verify_ota_in_flash(flash, addr, len(data), **WANT, body=body, supplier_key=pub)
    except ImageError as e:
        assert e.name == want, (e.name, want, info)
        return
    assert want == "BE_OK", (want, info)
    for k, v in info.items():
        assert getattr(res, k) == v, k
    assert res.total_image_size == len(data)
    if body == "gbcs":
        assert res.signature_checked
        assert res.manufacturer_image_hash == hashlib.sha256(
            data[res.image_offset:res.image_offset + res.image_length]).digest()
