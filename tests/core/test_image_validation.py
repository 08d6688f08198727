"""be_image_validate (native/src/be_image.c) on images in the emulated flash.

Images signed by the real `imgtool sign` validate; the project's own images
validate; every defect maps to its own be_err_t; any single-byte change is
refused; random header and TLV-area lengths never make the core read past the
slot (the slot ends where the flash ends, so such a read would surface as
BE_ERR_RANGE, and `make sanitize` runs this under ASan/UBSan). Throughout, the
C result is compared with the Python model bridge_emu.codec.mcuboot.verify_image.
Also the host crypto backend (bridge_emu.core.host_crypto) behind the core's callback.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import struct
import subprocess
import sys
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_emu import keys
from bridge_emu.codec import mcuboot as mb
from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.host_crypto import HostCrypto, make_trust, verify_digest
from bridge_emu.errors import ImageFormatError
from bridge_emu.tools import signing
from support.flash import SECTOR, TestFlash

pytestmark = pytest.mark.native

IMGTOOL = str(pathlib.Path(sys.executable).with_name("imgtool"))
N_SECTORS = 48
FLASH_END = N_SECTORS * SECTOR
SLOT_ADDR = 0x10000
SLOT_SIZE = 0x20000           # as `imgtool sign --slot-size 0x20000`; ends at the flash's end
assert SLOT_ADDR + SLOT_SIZE == FLASH_END

IMG_ERRORS = range(lib.BE_ERR_IMG_UNSUPPORTED, lib.BE_ERR_IMG_MAGIC + 1)
PAYLOAD = bytes((i * 7 + 3) & 0xFF for i in range(1500))

# Fixed keys so that hypothesis examples replay identically across runs.
KA = ec.derive_private_key(0xA11CE, ec.SECP256R1())
KB = ec.derive_private_key(0xB0B, ec.SECP256R1())
KC = ec.derive_private_key(0xC0FFEE, ec.SECP256R1())

CRYPTO = HostCrypto()


def name(rc: int) -> str:
    return ffi.string(lib.be_err_name(rc)).decode()


def validate(image: bytes, keys=(KA,), *, min_counter: int = 0, slot_size: int = SLOT_SIZE,
             addr: int | None = None, trust=None, flash: TestFlash | None = None):
    """Program image at the slot (whole slot erased first) and validate it in C.

    The slot ends at the end of the flash unless addr is given. Returns
    (be_err_t name, info, flash).
    """
    flash = flash or TestFlash(N_SECTORS)
    if addr is None:
        addr = FLASH_END - slot_size
    if slot_size:
        flash.erase_range(addr, slot_size)
        flash.program(addr, image[:slot_size], erase=False)
    if trust is None:
        trust = make_trust(keys, min_counter, crypto=CRYPTO)
    info = ffi.new("be_image_info_t *")
    rc = lib.be_image_validate(flash.f, addr, slot_size, trust, info)
    return name(rc), info, flash


def model(flash: TestFlash, addr: int, slot_size: int, keys=(KA,), min_counter: int = 0) -> str:
    """What the Python model says about the same slot contents."""
    data = bytes(flash.mem[addr:addr + slot_size])
    try:
        signing.verify_image(data, keys, min_security_counter=min_counter, slot_size=slot_size)
    except ImageFormatError as e:
        return e.reason
    return "BE_OK"


def build(key=KA, *, counter: int | None = 7, payload: bytes = PAYLOAD, version="1.2.3+4",
          header_size: int = 0x200, flags: int = 0, prot=(), tlvs=None) -> bytes:
    """An image whose unprotected TLVs are tlvs(digest) (default SHA256, KEYHASH, ECDSA_SIG)."""
    region = mb.signed_region(payload, version=version, header_size=header_size,
                              security_counter=counter, flags=flags, protected_tlvs=prot)
    digest = hashlib.sha256(region).digest()
    if tlvs is None:
        entries = [(mb.TLV_SHA256, digest), (mb.TLV_KEYHASH, keys.key_hash(key)),
                   (mb.TLV_ECDSA_SIG, keys.sign_digest(key, digest))]
    else:
        entries = tlvs(digest)
    return region + mb.tlv_area(entries)


def put16(image: bytes, off: int, value: int) -> bytes:
    b = bytearray(image)
    struct.pack_into("<H", b, off, value)
    return bytes(b)


def put32(image: bytes, off: int, value: int) -> bytes:
    b = bytearray(image)
    struct.pack_into("<I", b, off, value)
    return bytes(b)


def tlv_off(image: bytes) -> int:
    p = mb.parse_image(image)
    return p.hdr_size + p.img_size + p.protect_tlv_size


GOOD = build()


# ------------------------------------------------------------ imgtool images

@pytest.fixture(scope="session")
def imgtool_images(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgtool")

    def run(*args):
        subprocess.run([IMGTOOL, *map(str, args)], check=True, capture_output=True, cwd=d)

    run("keygen", "-k", "k.pem", "-t", "ecdsa-p256")
    (d / "in.bin").write_bytes(os.urandom(3000))
    common = ["--key", "k.pem", "--header-size", "0x200", "--pad-header", "--align", "4",
              "--version", "1.2.3+4", "--slot-size", "0x20000"]
    run("sign", *common, "--security-counter", "7", "in.bin", "signed.bin")
    run("sign", *common, "in.bin", "nocounter.bin")
    run("sign", *common, "--security-counter", "7", "--pad-sig", "in.bin", "padsig.bin")
    return SimpleNamespace(
        dir=d, key=keys.load_private_key(d / "k.pem"), payload=(d / "in.bin").read_bytes(),
        signed=(d / "signed.bin").read_bytes(), nocounter=(d / "nocounter.bin").read_bytes(),
        padsig=(d / "padsig.bin").read_bytes())


def test_imgtool_signed_image_validates(imgtool_images):
    img = imgtool_images.signed
    rc, info, flash = validate(img, [imgtool_images.key], min_counter=7)
    assert rc == "BE_OK"
    assert (info.ver_major, info.ver_minor, info.ver_revision, info.ver_build) == (1, 2, 3, 4)
    assert info.hdr_size == 0x200 and info.img_size == 3000 and info.flags == 0
    assert info.protect_tlv_size == 12 and info.has_security_counter == 1
    assert info.security_counter == 7
    assert info.total_size == len(img)
    assert info.tlv_size == len(img) - tlv_off(img)
    assert bytes(info.hash) == mb.parse_image(img).sha256 == mb.parse_image(img).digest()
    assert info.key_index == 0
    # read through the flash model, in chunks, no more than about the image once
    assert flash.stats.reads > len(img) // 256
    assert len(img) - info.tlv_size <= flash.stats.bytes_read <= 2 * len(img)


def test_imgtool_images_other_variants(imgtool_images):
    k = imgtool_images.key
    rc, info, _ = validate(imgtool_images.nocounter, [k])
    assert rc == "BE_OK" and info.has_security_counter == 0 and info.security_counter == 0
    assert validate(imgtool_images.nocounter, [k], min_counter=1)[0] == "BE_ERR_IMG_ROLLBACK"
    assert validate(imgtool_images.padsig, [k])[0] == "BE_OK"   # DER zero-padded to 72
    assert len(mb.parse_image(imgtool_images.padsig).signatures[0][1]) == 72
    assert validate(imgtool_images.signed, [KA, KB, k])[1].key_index == 2
    assert validate(imgtool_images.signed, [KA, KB])[0] == "BE_ERR_IMG_KEY_UNKNOWN"
    assert validate(imgtool_images.signed, [k], min_counter=8)[0] == "BE_ERR_IMG_ROLLBACK"


def test_imgtool_and_project_images_hash_the_same(imgtool_images):
    ours = signing.sign_image(imgtool_images.payload, imgtool_images.key, version="1.2.3+4",
                         security_counter=7)
    theirs = mb.parse_image(imgtool_images.signed)
    assert mb.parse_image(ours).signed == theirs.signed
    assert bytes(validate(ours, [imgtool_images.key])[1].hash) == bytes(
        validate(imgtool_images.signed, [imgtool_images.key])[1].hash)


# ------------------------------------------------------------ project images

@pytest.mark.parametrize("header_size,counter,version", [
    (0x200, 7, "1.2.3+4"), (32, None, "0.0.0"), (0x20, 0, "255.255.65535+4294967295"),
    (0x1000, 2048, "2.0"),   # the most the OTP counter holds (test_counter_capacity)
])
def test_project_images_validate(header_size, counter, version):
    img = signing.sign_image(PAYLOAD, KA, version=version, header_size=header_size,
                        security_counter=counter)
    rc, info, _ = validate(img, [KB, KA], min_counter=counter or 0)
    assert rc == "BE_OK"
    assert info.key_index == 1 and info.hdr_size == header_size
    assert info.security_counter == (counter or 0)
    v = mb.ImageVersion.parse(version)
    assert (info.ver_major, info.ver_minor, info.ver_revision, info.ver_build) == (
        v.major, v.minor, v.revision, v.build)


def test_image_at_unaligned_addresses_and_with_trailing_data():
    img = GOOD + b"\x00" * 100   # bytes after the TLV area (a trailer) are not the image's
    for addr in (0, 0x1000, 0x2004):
        assert validate(img, addr=addr, slot_size=0x3000)[0] == "BE_OK"
    assert validate(GOOD, slot_size=len(GOOD))[0] == "BE_OK"   # exactly fills the slot


def test_pic_flag_is_accepted():
    assert validate(build(flags=mb.IMAGE_F_PIC))[0] == "BE_OK"


# ------------------------------------------------------------ error mapping

def test_wrong_key_is_key_unknown():
    assert validate(GOOD, [KB, KC])[0] == "BE_ERR_IMG_KEY_UNKNOWN"
    assert validate(GOOD, [])[0] == "BE_ERR_IMG_KEY_UNKNOWN"


def test_signature_from_another_key_is_sig():
    img = build(tlvs=lambda d: [(mb.TLV_SHA256, d), (mb.TLV_KEYHASH, keys.key_hash(KA)),
                                (mb.TLV_ECDSA_SIG, keys.sign_digest(KB, d))])
    assert validate(img, [KA, KB])[0] == "BE_ERR_IMG_SIG"


def test_missing_signature_is_no_sig():
    assert validate(signing.sign_image(PAYLOAD, None, security_counter=1))[0] == "BE_ERR_IMG_NO_SIG"
    img = build(tlvs=lambda d: [(mb.TLV_SHA256, d), (mb.TLV_KEYHASH, keys.key_hash(KA))])
    assert validate(img)[0] == "BE_ERR_IMG_NO_SIG"


def test_signature_without_keyhash():
    img = build(tlvs=lambda d: [(mb.TLV_SHA256, d), (mb.TLV_ECDSA_SIG, keys.sign_digest(KA, d))])
    assert validate(img)[0] == "BE_ERR_IMG_NO_KEYHASH"
    # a KEYHASH after its signature does not count (MCUboot pairs KEYHASH, then signature)
    img = build(tlvs=lambda d: [(mb.TLV_SHA256, d), (mb.TLV_ECDSA_SIG, keys.sign_digest(KA, d)),
                                (mb.TLV_KEYHASH, keys.key_hash(KA))])
    assert validate(img)[0] == "BE_ERR_IMG_NO_KEYHASH"


def test_missing_hash_is_no_hash():
    img = build(tlvs=lambda d: [(mb.TLV_KEYHASH, keys.key_hash(KA)),
                                (mb.TLV_ECDSA_SIG, keys.sign_digest(KA, d))])
    assert validate(img)[0] == "BE_ERR_IMG_NO_HASH"


def test_multiple_signatures_first_that_verifies_wins():
    def two(first, second):
        return lambda d: [(mb.TLV_SHA256, d),
                          (mb.TLV_KEYHASH, keys.key_hash(first[0])),
                          (mb.TLV_ECDSA_SIG, keys.sign_digest(first[1], d)),
                          (mb.TLV_KEYHASH, keys.key_hash(second[0])),
                          (mb.TLV_ECDSA_SIG, keys.sign_digest(second[1], d))]
    img = build(tlvs=two((KC, KC), (KA, KA)))       # unknown key, then a good one
    rc, info, _ = validate(img, [KB, KA])
    assert rc == "BE_OK" and info.key_index == 1
    img = build(tlvs=two((KB, KC), (KA, KA)))       # a bad signature, then a good one
    assert validate(img, [KA, KB])[0] == "BE_OK"
    img = build(tlvs=two((KB, KC), (KC, KC)))       # bad signature beats unknown key
    assert validate(img, [KA, KB])[0] == "BE_ERR_IMG_SIG"


def test_rollback():
    assert validate(GOOD, min_counter=7)[0] == "BE_OK"
    rc, info, _ = validate(GOOD, min_counter=8)
    assert rc == "BE_ERR_IMG_ROLLBACK" and info.security_counter == 7
    assert validate(build(counter=None), min_counter=1)[0] == "BE_ERR_IMG_ROLLBACK"


def test_image_larger_than_slot_is_too_big():
    total = len(GOOD)
    for slot in (total - 1, total - 40, tlv_off(GOOD) + 3, 0x200 + 10, 33, 32):
        assert validate(GOOD, slot_size=slot)[0] == "BE_ERR_IMG_TOO_BIG", slot
    assert validate(GOOD, slot_size=31)[0] == "BE_ERR_IMG_TOO_BIG"
    assert validate(GOOD, slot_size=0)[0] == "BE_ERR_IMG_TOO_BIG"
    # header claiming a huge payload: 64-bit sums, no wrap-around
    for img_size in (0x7FFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF - 0x200 + 1):
        assert validate(put32(GOOD, 12, img_size))[0] == "BE_ERR_IMG_TOO_BIG"
    huge_area = put16(GOOD, tlv_off(GOOD) + 2, 0xFFFF)
    assert validate(huge_area, slot_size=len(GOOD) + 100)[0] == "BE_ERR_IMG_TOO_BIG"


def test_truncated_tlv():
    t = tlv_off(GOOD)
    area = mb.parse_image(GOOD).tlv_size
    sig = [x for x in mb.parse_image(GOOD).tlvs if x.type == mb.TLV_ECDSA_SIG][0]
    sig_len = len(sig.data)
    cases = {
        "entry longer than its area": put16(GOOD, sig.offset + 2, sig_len + 1),
        "area cuts the last entry": put16(GOOD, t + 2, area - 1),
        "area cuts an entry header": put16(GOOD, t + 2, area - sig_len - 2),
        "area shorter than its info": put16(GOOD, t + 2, 3),
        "protected entry past its area": put16(GOOD, 0x200 + len(PAYLOAD) + 4 + 2, 5),
    }
    for why, img in cases.items():
        assert validate(img)[0] == "BE_ERR_IMG_TLV_TRUNCATED", why


def test_inconsistent_tlv_areas_overlap():
    prot_off = 0x200 + len(PAYLOAD)
    no_prot = build(counter=None)
    cases = {
        "header hides the protected area": put16(GOOD, 10, 0),
        "header says more than the area": put16(GOOD, 10, 16),
        "header says less than the area": put16(GOOD, 10, 8),
        "area says more than the header": put16(GOOD, prot_off + 2, 16),
        "header claims an absent protected area": put16(no_prot, 10, 8),
    }
    for why, img in cases.items():
        assert validate(img)[0] == "BE_ERR_IMG_TLV_OVERLAP", why


def test_tlv_magic():
    assert validate(put16(GOOD, tlv_off(GOOD), 0x1234))[0] == "BE_ERR_IMG_TLV_MAGIC"
    assert validate(put16(GOOD, 0x200 + len(PAYLOAD), 0xFFFF))[0] == "BE_ERR_IMG_TLV_MAGIC"


def test_bad_tlvs():
    def with_tlvs(extra):
        return build(tlvs=lambda d: [(mb.TLV_SHA256, d), *extra(d),
                                     (mb.TLV_KEYHASH, keys.key_hash(KA)),
                                     (mb.TLV_ECDSA_SIG, keys.sign_digest(KA, d))])
    cases = {
        "short SHA256": build(tlvs=lambda d: [(mb.TLV_SHA256, d[:31])]),
        "two SHA256": with_tlvs(lambda d: [(mb.TLV_SHA256, d)]),
        "long KEYHASH": with_tlvs(lambda d: [(mb.TLV_KEYHASH, bytes(33))]),
        "long signature": with_tlvs(lambda d: [(mb.TLV_ECDSA_SIG, bytes(73))]),
        "short signature": with_tlvs(lambda d: [(mb.TLV_ECDSA_SIG, bytes(7))]),
        "two SEC_CNT": build(prot=[(mb.TLV_SEC_CNT, b"\x01\0\0\0")]),
        "SEC_CNT of 8 bytes": build(counter=None, prot=[(mb.TLV_SEC_CNT, bytes(8))]),
    }
    for why, img in cases.items():
        assert validate(img)[0] == "BE_ERR_IMG_TLV_BAD", why


def test_unknown_tlvs_are_skipped():
    img = build(prot=[(0x40, bytes(12)), (0xA0, b"vendor")],
                tlvs=lambda d: [(0x70, b"x" * 5), (mb.TLV_SHA256, d),
                                (mb.TLV_KEYHASH, keys.key_hash(KA)),
                                (mb.TLV_ECDSA_SIG, keys.sign_digest(KA, d)), (0xFFFF, b"")])
    assert validate(img)[0] == "BE_OK"


def test_security_counter_must_be_protected():
    img = build(counter=None, tlvs=lambda d: [(mb.TLV_SHA256, d), (mb.TLV_SEC_CNT, b"\x09\0\0\0"),
                                              (mb.TLV_KEYHASH, keys.key_hash(KA)),
                                              (mb.TLV_ECDSA_SIG, keys.sign_digest(KA, d))])
    assert validate(img)[0] == "BE_ERR_IMG_TLV_UNPROTECTED"


def test_header_errors():
    assert validate(put32(GOOD, 0, 0x96F3B83C))[0] == "BE_ERR_IMG_MAGIC"
    assert validate(b"\xff" * 64)[0] == "BE_ERR_IMG_MAGIC"
    assert validate(b"")[0] == "BE_ERR_IMG_MAGIC"         # erased slot
    for hdr in (0, 16, 31):
        assert validate(put16(GOOD, 8, hdr))[0] == "BE_ERR_IMG_HEADER"
    for prot in (1, 2, 3):
        assert validate(put16(GOOD, 10, prot))[0] == "BE_ERR_IMG_HEADER"


@pytest.mark.parametrize("flag", [mb.IMAGE_F_ENCRYPTED_AES128, mb.IMAGE_F_ENCRYPTED_AES256,
                                  mb.IMAGE_F_NON_BOOTABLE, mb.IMAGE_F_RAM_LOAD,
                                  mb.IMAGE_F_ROM_FIXED, mb.IMAGE_F_COMPRESSED_LZMA2,
                                  mb.IMAGE_F_COMPRESSED_ARM_THUMB, 0x2, 0x80000000])
def test_unsupported_flags(flag):
    assert validate(build(flags=flag))[0] == "BE_ERR_IMG_UNSUPPORTED"   # properly signed
    assert validate(put32(GOOD, 16, flag))[0] == "BE_ERR_IMG_UNSUPPORTED"


def test_hash_mismatch_and_info_kept_on_failure():
    bad = bytearray(GOOD)
    bad[0x200 + 5] ^= 1
    rc, info, _ = validate(bytes(bad))
    assert rc == "BE_ERR_IMG_HASH"
    assert info.img_size == len(PAYLOAD) and info.ver_revision == 3 and info.security_counter == 7
    assert bytes(info.hash) == hashlib.sha256(bytes(bad[:tlv_off(GOOD)])).digest()


def test_crypto_backend_missing_or_failing():
    trust = make_trust([KA], crypto=CRYPTO)
    trust.crypto.ecdsa_p256_verify = ffi.NULL
    assert validate(GOOD, trust=trust)[0] == "BE_ERR_CRYPTO"
    assert validate(signing.sign_image(PAYLOAD, None), trust=trust)[0] == "BE_ERR_IMG_NO_SIG"
    # a provisioned "key" the backend cannot load: the exception becomes BE_ERR_CRYPTO
    junk = b"\x30\x03\x02\x01\x01"
    img = build(tlvs=lambda d: [(mb.TLV_SHA256, d), (mb.TLV_KEYHASH, hashlib.sha256(junk).digest()),
                                (mb.TLV_ECDSA_SIG, keys.sign_digest(KA, d))])
    counting = HostCrypto()
    assert validate(img, trust=make_trust([junk], crypto=counting))[0] == "BE_ERR_CRYPTO"
    assert counting.calls == 1 and counting.failed == 1
    # a P-384 key is refused by the backend, not trusted
    p384 = ec.generate_private_key(ec.SECP384R1())
    img = build(tlvs=lambda d: [(mb.TLV_SHA256, d), (mb.TLV_KEYHASH, keys.key_hash(p384)),
                                (mb.TLV_ECDSA_SIG, keys.sign_digest(KA, d))])
    assert validate(img, trust=make_trust([p384], crypto=counting))[0] == "BE_ERR_CRYPTO"


def test_bad_arguments():
    flash = TestFlash(N_SECTORS)
    trust = make_trust([KA], crypto=CRYPTO)
    info = ffi.new("be_image_info_t *")
    assert lib.be_image_validate(ffi.NULL, 0, SLOT_SIZE, trust, info) == lib.BE_ERR_ARG
    assert lib.be_image_validate(flash.f, 0, SLOT_SIZE, ffi.NULL, info) == lib.BE_ERR_ARG
    trust.n_keys = 5
    assert lib.be_image_validate(flash.f, 0, SLOT_SIZE, trust, info) == lib.BE_ERR_ARG
    trust.n_keys = 1
    trust.key_len[0] = 129
    assert lib.be_image_validate(flash.f, 0, SLOT_SIZE, trust, info) == lib.BE_ERR_ARG
    trust = make_trust([KA], crypto=CRYPTO)
    assert lib.be_image_validate(flash.f, SLOT_ADDR + 4, SLOT_SIZE, trust, info) == lib.BE_ERR_RANGE
    assert lib.be_image_validate(flash.f, 0xFFFFFFFF, 2, trust, info) == lib.BE_ERR_RANGE
    flash.program(SLOT_ADDR, GOOD)
    assert lib.be_image_validate(flash.f, SLOT_ADDR, SLOT_SIZE, trust, ffi.NULL) == lib.BE_OK


def test_version_cmp():
    def info(*v):
        i = ffi.new("be_image_info_t *")
        i.ver_major, i.ver_minor, i.ver_revision, i.ver_build = v
        return i
    order = [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 1, 0), (0, 0, 65535, 0xFFFFFFFF), (0, 1, 0, 0),
             (1, 0, 0, 0), (1, 2, 3, 4), (1, 2, 3, 5), (255, 255, 65535, 0xFFFFFFFF)]
    for i, a in enumerate(order):
        for j, b in enumerate(order):
            c = lib.be_image_version_cmp(info(*a), info(*b))
            assert (c > 0) - (c < 0) == (i > j) - (i < j), (a, b)
    assert lib.be_image_version_cmp(ffi.NULL, info(0, 0, 0, 0)) < 0
    assert lib.be_image_version_cmp(ffi.NULL, ffi.NULL) == 0


# ------------------------------------------------------------ properties

SIGNED_END = tlv_off(GOOD)
SIG_TLV = [x for x in mb.parse_image(GOOD).tlvs if x.type == mb.TLV_ECDSA_SIG][0]
SIG_DATA = range(SIG_TLV.offset + 4, SIG_TLV.offset + 4 + len(SIG_TLV.data))

# header, header padding, payload, protected TLVs, the signature; then anywhere in the image
positions = st.one_of(st.integers(0, 31), st.integers(32, 0x1FF), st.integers(0x200, SIGNED_END - 1),
                      st.sampled_from(SIG_DATA), st.integers(0, len(GOOD) - 1))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pos=positions, xor=st.integers(1, 255))
def test_any_single_byte_change_is_refused(pos, xor):
    bad = bytearray(GOOD)
    bad[pos] ^= xor
    rc, _, flash = validate(bytes(bad))
    assert rc.startswith("BE_ERR_IMG_"), (pos, xor, rc)
    assert rc == model(flash, SLOT_ADDR, SLOT_SIZE), (pos, xor)


def near(value: int, bits: int):
    top = (1 << bits) - 1
    return st.one_of(st.integers(0, top),
                     st.integers(max(0, value - 8), min(top, value + 8)),
                     st.sampled_from([0, 1, 2, 3, 4, 5, 31, 32, 33, top - 3, top - 1, top]))


PROT_OFF = 0x200 + len(PAYLOAD)
TLV_SIZE = mb.parse_image(GOOD).tlv_size


FIELDS = {   # name: (offset, struct format, strategy)
    "hdr_size": (8, "<H", near(0x200, 16)),
    "protect_tlv_size": (10, "<H", near(12, 16)),
    "img_size": (12, "<I", near(len(PAYLOAD), 32)),
    "flags": (16, "<I", st.sampled_from([1, 2, 4, 0x20, 0xFFFFFFFF])),
    "protected area length": (PROT_OFF + 2, "<H", near(12, 16)),
    "area length": (SIGNED_END + 2, "<H", near(TLV_SIZE, 16)),
}
ENTRY_FIELDS = [x.offset for x in mb.parse_image(GOOD).tlvs]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.sampled_from(sorted(FIELDS) + ["entry type", "entry length"]),
                        min_size=1, max_size=3, unique=True),
       slot=st.one_of(st.just(len(GOOD)), st.integers(0, len(GOOD) + 64)), data=st.data())
def test_random_lengths_never_read_past_the_slot(changes, slot, data):
    """Some of the header's sizes and flags, the TLV areas' lengths, one TLV entry's type
    or length replaced by random or boundary values; the slot ends where the flash ends."""
    b = bytearray(GOOD)
    for what in changes:
        if what in FIELDS:
            off, fmt, values = FIELDS[what]
        else:
            entry = data.draw(st.sampled_from(ENTRY_FIELDS))
            off, fmt, values = entry + (2 if what == "entry length" else 0), "<H", near(40, 16)
        struct.pack_into(fmt, b, off, data.draw(values, label=what))
    rc, _, flash = validate(bytes(b), slot_size=slot)
    assert rc != "BE_ERR_RANGE"
    assert rc.startswith("BE_ERR_IMG_") or rc == "BE_OK", rc
    assert rc == model(flash, FLASH_END - slot, slot)


@settings(max_examples=60, deadline=None)
@given(body=st.binary(min_size=28, max_size=700), hdr=st.integers(0, 80), prot=st.integers(0, 64),
       img=st.integers(0, 700), slot=st.integers(32, 800))
def test_garbage_after_a_valid_magic_never_crashes(body, hdr, prot, img, slot):
    b = bytearray(struct.pack("<I", mb.IMAGE_MAGIC) + body)
    struct.pack_into("<HHII", b, 8, hdr, prot, img, 0)
    rc, _, flash = validate(bytes(b), slot_size=slot)
    assert rc.startswith("BE_ERR_IMG_"), rc
    assert rc == model(flash, FLASH_END - slot, slot)


RIGHT_LEN = {mb.TLV_KEYHASH: 32, mb.TLV_SHA256: 32, mb.TLV_ECDSA_SIG: 71, mb.TLV_SEC_CNT: 4}


@st.composite
def structured_images(draw):
    """Header, payload and TLV areas of plausible but random structure: real or junk
    hashes, key hashes, signatures and counters, entries dropped, added or moved,
    lengths mostly right and sometimes off."""
    payload = draw(st.binary(max_size=64))
    hdr = draw(st.sampled_from([32, 40, 64]))
    signer = draw(st.sampled_from([KA, KA, KB]))
    named = draw(st.sampled_from([KA, KA, KC]))
    prot = draw(st.lists(st.sampled_from([mb.TLV_SEC_CNT] * 3 + [0x40, mb.TLV_KEYHASH]), max_size=3))
    unprot = [mb.TLV_SHA256, mb.TLV_KEYHASH, mb.TLV_ECDSA_SIG]
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(["drop", "add", "swap"]))
        i = draw(st.integers(0, max(0, len(unprot) - 1)))
        if op == "drop" and unprot:
            del unprot[i]
        elif op == "add":
            unprot.insert(i, draw(st.sampled_from([*RIGHT_LEN, 0xA0])))
        elif op == "swap" and len(unprot) > 1:
            unprot[i - 1], unprot[i] = unprot[i], unprot[i - 1]

    def area(types, magic, digest):
        body = b""
        for t in types:
            kind = draw(st.sampled_from(["real"] * 4 + ["junk"] * 2 + ["odd"]))
            if kind == "odd" or t not in RIGHT_LEN:
                data = draw(st.binary(max_size=80))
            elif kind == "junk":
                data = draw(st.binary(min_size=RIGHT_LEN[t], max_size=RIGHT_LEN[t]))
            elif t == mb.TLV_SHA256:
                data = digest if digest is not None else bytes(32)
            elif t == mb.TLV_KEYHASH:
                data = keys.key_hash(named)
            elif t == mb.TLV_ECDSA_SIG:
                data = keys.sign_digest(signer, digest if digest is not None else bytes(32))
            else:
                data = struct.pack("<I", draw(st.sampled_from([0, 1, 0xFFFF, 0x10000])))
            delta = draw(st.sampled_from([0] * 12 + [-1, 1, 3]))
            body += struct.pack("<HH", t, max(0, len(data) + delta)) + data
        length = len(body) + 4 + draw(st.sampled_from([0] * 12 + [-1, 1, 4]))
        return struct.pack("<HH", magic, max(0, length)) + body

    prot_area = area(prot, mb.TLV_PROT_INFO_MAGIC, None) if prot else b""
    header = mb.image_header(img_size=len(payload), hdr_size=hdr,
                             protect_tlv_size=len(prot_area))
    region = header + bytes(hdr - 32) + payload + prot_area
    return region + area(unprot, mb.TLV_INFO_MAGIC, hashlib.sha256(region).digest())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(img=structured_images(), min_counter=st.sampled_from([0, 1, 0x10000]),
       extra=st.integers(0, 8))
def test_structured_garbage_agrees_with_the_model(img, min_counter, extra):
    slot = len(img) + extra
    rc, _, flash = validate(img, [KA, KB], min_counter=min_counter, slot_size=slot)
    assert rc != "BE_ERR_RANGE"
    assert rc == model(flash, FLASH_END - slot, slot, [KA, KB], min_counter)


@settings(max_examples=40, deadline=None)
@given(payload=st.binary(max_size=3000), counter=st.one_of(st.none(), st.integers(0, 2**32 - 1)),
       header_size=st.sampled_from([32, 0x80, 0x200]), min_counter=st.integers(0, 2**32 - 1))
def test_project_images_agree_with_the_model(payload, counter, header_size, min_counter):
    img = signing.sign_image(payload, KB, header_size=header_size, security_counter=counter)
    rc, info, flash = validate(img, [KA, KB], min_counter=min_counter)
    c = counter or 0
    want = ("BE_ERR_IMG_ROLLBACK" if c < min_counter else
            "BE_ERR_IMG_COUNTER" if c > signing.OTP_COUNTER_MAX else "BE_OK")
    assert rc == want == model(flash, SLOT_ADDR, SLOT_SIZE, [KA, KB], min_counter)
    assert info.total_size == len(img) and info.key_index == 1


# ------------------------------------------------------------ host backend

def test_host_backend_decisions():
    digest = hashlib.sha256(b"msg").digest()
    der_key = keys.public_key_der(KA)
    sig = keys.sign_digest(KA, digest)
    r, s = decode_dss_signature(sig)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    assert verify_digest(der_key, digest, sig, lib.BE_SIG_DER) == lib.BE_OK
    assert verify_digest(der_key, digest, sig + b"\0\0", lib.BE_SIG_DER) == lib.BE_OK  # --pad-sig
    assert verify_digest(der_key, digest, sig + b"\0\1", lib.BE_SIG_DER) == lib.BE_ERR_IMG_SIG
    assert verify_digest(der_key, digest, raw, lib.BE_SIG_RAW) == lib.BE_OK
    assert verify_digest(der_key, digest, raw[:63], lib.BE_SIG_RAW) == lib.BE_ERR_IMG_SIG
    assert verify_digest(der_key, bytes(32), sig, lib.BE_SIG_DER) == lib.BE_ERR_IMG_SIG
    assert verify_digest(keys.public_key_der(KB), digest, sig, lib.BE_SIG_DER) == lib.BE_ERR_IMG_SIG
    assert verify_digest(der_key, digest, b"garbage", lib.BE_SIG_DER) == lib.BE_ERR_IMG_SIG
    assert verify_digest(der_key, digest, sig, 7) == lib.BE_ERR_CRYPTO
    with pytest.raises(ValueError):
        verify_digest(b"not a key", digest, sig, lib.BE_SIG_DER)


def test_callback_through_the_c_function_pointer():
    hc = HostCrypto()
    c = hc.crypto
    digest = hashlib.sha256(b"x").digest()
    key = keys.public_key_der(KA)
    sig = keys.sign_digest(KA, digest)
    r, s = decode_dss_signature(sig)
    raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    call = c.ecdsa_p256_verify
    assert call(c.user, key, len(key), digest, sig, len(sig), lib.BE_SIG_DER) == lib.BE_OK
    assert call(c.user, key, len(key), digest, raw, 64, lib.BE_SIG_RAW) == lib.BE_OK
    assert call(c.user, key, len(key), digest, sig, len(sig) - 1, lib.BE_SIG_DER) == lib.BE_ERR_IMG_SIG
    assert call(c.user, b"\x01\x02", 2, digest, sig, len(sig), lib.BE_SIG_DER) == lib.BE_ERR_CRYPTO
    assert call(c.user, ffi.NULL, 0, digest, sig, len(sig), 0) == lib.BE_ERR_CRYPTO
    assert call(ffi.NULL, key, len(key), digest, sig, len(sig), 0) == lib.BE_OK   # no owner
    assert (hc.calls, hc.ok, hc.bad, hc.failed) == (5, 2, 1, 2)


def test_trust_builder():
    hc = HostCrypto()
    t = hc.trust([KA, keys.public_key_der(KB), KC.public_key()], min_security_counter=9)
    assert t.n_keys == 3 and t.min_security_counter == 9
    for i, k in enumerate((KA, KB, KC)):
        der = keys.public_key_der(k)
        assert t.key_len[i] == len(der) == 91
        assert bytes(t.key[i])[:len(der)] == der
        assert bytes(t.key_hash[i]) == hashlib.sha256(der).digest() == keys.key_hash(k)
    assert t.crypto.ecdsa_p256_verify == lib.be_py_ecdsa_verify
    assert t.crypto.user == hc.crypto.user
    with pytest.raises(ValueError):
        make_trust([KA] * 5)
    with pytest.raises(ValueError):
        make_trust([b"\0" * 129])
