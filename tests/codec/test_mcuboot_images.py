"""The project's own MCUboot image builder, signer and parser (bridge_emu.codec.mcuboot),
checked against the real imgtool: imgtool verifies what we sign, we parse what
imgtool signs, builds are byte-reproducible, malformed input raises
ImageFormatError. Pure Python: the C validator is tested in test_image_validation.py."""
from __future__ import annotations

import hashlib
import pathlib
import struct
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge_emu import keys
from bridge_emu.codec import mcuboot as mb
from bridge_emu.errors import BridgeEmuError, ImageFormatError
from bridge_emu.tools import signing

IMGTOOL = str(pathlib.Path(sys.executable).with_name("imgtool"))
KA = ec.derive_private_key(0xA11CE, ec.SECP256R1())
KB = ec.derive_private_key(0xB0B, ec.SECP256R1())
PAYLOAD = bytes(range(256)) * 6


def imgtool(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([IMGTOOL, *map(str, args)], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    keys.save_key(KA, d / "a.pem")
    keys.save_key(KB, d / "b.pem")
    return d


@pytest.fixture(scope="module")
def imgtool_signed(tmp_path_factory):
    """imgtool's own key and image, for the other direction."""
    d = tmp_path_factory.mktemp("imgtool")
    assert imgtool("keygen", "-k", "k.pem", "-t", "ecdsa-p256", cwd=d).returncode == 0
    (d / "in.bin").write_bytes(PAYLOAD)
    r = imgtool("sign", "--key", "k.pem", "--header-size", "0x200", "--pad-header", "--align", "4",
                "--version", "1.2.3+4", "--slot-size", "0x20000", "--security-counter", "7",
                "in.bin", "out.bin", cwd=d)
    assert r.returncode == 0, r.stderr
    return keys.load_private_key(d / "k.pem"), (d / "out.bin").read_bytes()


@pytest.mark.parametrize("kwargs", [
    dict(version="1.2.3+4", security_counter=7),
    dict(version="0.0.0", header_size=32),
    dict(version="255.255.65535+4294967295", header_size=0x400, security_counter=0xFFFFFFFF),
    dict(version="3.1", header_size=0x200, header_pad=0x00),
])
def test_imgtool_verifies_our_images(keydir, tmp_path, kwargs):
    img = signing.sign_image(PAYLOAD, KA, **kwargs)
    f = tmp_path / "img.bin"
    f.write_bytes(img)
    r = imgtool("verify", "-k", keydir / "a.pem", f)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "correctly validated" in r.stdout
    v = mb.ImageVersion.parse(kwargs["version"])
    assert f"Image version: {v}" in r.stdout
    assert hashlib.sha256(img[:len(mb.parse_image(img).signed)]).hexdigest() in r.stdout
    r = imgtool("verify", "-k", keydir / "b.pem", f)           # wrong key
    assert r.returncode != 0


def test_imgtool_refuses_our_image_when_tampered(keydir, tmp_path):
    img = bytearray(signing.sign_image(PAYLOAD, KA, version="1.0.0", security_counter=3))
    img[0x200 + 10] ^= 0x40
    (tmp_path / "bad.bin").write_bytes(img)
    assert imgtool("verify", "-k", keydir / "a.pem", tmp_path / "bad.bin").returncode != 0


def test_imgtool_image_parses_and_matches_ours(imgtool_signed):
    key, theirs = imgtool_signed
    p = mb.parse_image(theirs)
    assert (p.hdr_size, p.img_size, p.protect_tlv_size, p.flags) == (0x200, len(PAYLOAD), 12, 0)
    assert p.version == mb.ImageVersion(1, 2, 3, 4) and str(p.version) == "1.2.3+4"
    assert p.security_counter == 7 and p.total_size == len(theirs)
    assert p.payload == PAYLOAD
    assert [t.type for t in p.tlvs] == [mb.TLV_SEC_CNT, mb.TLV_SHA256, mb.TLV_KEYHASH,
                                        mb.TLV_ECDSA_SIG]
    assert p.signatures[0][0] == keys.key_hash(key)
    assert signing.verify_image(theirs, [key], min_security_counter=7) == p
    ours = signing.sign_image(PAYLOAD, key, version="1.2.3+4", security_counter=7)
    q = mb.parse_image(ours)
    assert q.signed == p.signed                # same bytes hashed: header, padding, payload, SEC_CNT
    assert q.sha256 == p.sha256 and q.first(mb.TLV_KEYHASH) == p.first(mb.TLV_KEYHASH)
    n = len(p.signed)
    assert ours[n + 4:n + 4 + 72] == theirs[n + 4:n + 4 + 72]     # SHA256 and KEYHASH entries
    assert ours[n:n + 2] == theirs[n:n + 2] == b"\x07\x69"       # only the signature differs


def test_imgtool_keygen_key_loads(imgtool_signed):
    key, _ = imgtool_signed
    assert isinstance(key.curve, ec.SECP256R1)
    assert len(keys.public_key_der(key)) == 91


def test_builds_are_byte_reproducible():
    a = signing.sign_image(PAYLOAD, KA, version="1.2.3+4", security_counter=7)
    b = signing.sign_image(PAYLOAD, KA, version="1.2.3+4", security_counter=7)
    assert a == b
    assert signing.sign_image(PAYLOAD, KA, version="1.2.3+5", security_counter=7) != a
    assert signing.sign_image(PAYLOAD, KB, version="1.2.3+4", security_counter=7) != a


def test_layout_of_a_signed_image():
    img = signing.sign_image(PAYLOAD, KA, version="1.2.3+4", security_counter=7)
    magic, load, hdr, prot, size, flags, ma, mi, rev, build, pad = struct.unpack_from(
        "<IIHHIIBBHII", img)
    assert (magic, load, hdr, prot, size, flags, pad) == (0x96F3B83D, 0, 0x200, 12, len(PAYLOAD),
                                                          0, 0)
    assert (ma, mi, rev, build) == (1, 2, 3, 4)
    assert img[32:0x200] == b"\xff" * (0x200 - 32)    # as imgtool --pad-header
    assert img[0x200:0x200 + len(PAYLOAD)] == PAYLOAD
    off = 0x200 + len(PAYLOAD)
    assert img[off:off + 12] == struct.pack("<HHHHI", 0x6908, 12, 0x50, 4, 7)
    off += 12
    assert struct.unpack_from("<HH", img, off) == (0x6907, len(img) - off)
    digest = hashlib.sha256(img[:off]).digest()
    assert img[off + 4:off + 8 + 32] == struct.pack("<HH", 0x10, 32) + digest
    assert img[off + 40:off + 44 + 32] == struct.pack("<HH", 0x01, 32) + keys.key_hash(KA)
    assert struct.unpack_from("<H", img, off + 76)[0] == 0x22
    zero = signing.sign_image(PAYLOAD, KA, header_pad=0)
    assert zero[32:0x200] == bytes(0x200 - 32)


def test_unsigned_image_and_slot_limit():
    img = signing.sign_image(PAYLOAD, None)
    p = mb.parse_image(img)
    assert [t.type for t in p.tlvs] == [mb.TLV_SHA256] and p.protect_tlv_size == 0
    assert p.sha256 == p.digest()
    with pytest.raises(ImageFormatError) as e:
        signing.verify_image(img, [KA])
    assert e.value.reason == "BE_ERR_IMG_NO_SIG"
    with pytest.raises(ImageFormatError):
        signing.sign_image(PAYLOAD, KA, slot_size=len(PAYLOAD))
    assert len(signing.sign_image(PAYLOAD, KA, slot_size=0x20000)) < 0x20000


@settings(max_examples=30, deadline=None)
@given(payload=st.binary(max_size=2000),
       version=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 65535),
                         st.integers(0, 2**32 - 1)),
       counter=st.one_of(st.none(), st.integers(0, signing.OTP_COUNTER_MAX)),  # above: tests/core/test_counter_capacity
       header_size=st.sampled_from([32, 0x100, 0x200]), load_addr=st.integers(0, 2**32 - 1))
def test_build_parse_roundtrip(payload, version, counter, header_size, load_addr):
    v = mb.ImageVersion(*version)
    img = signing.sign_image(payload, KA, version=str(v), security_counter=counter,
                        header_size=header_size, load_addr=load_addr)
    p = signing.verify_image(img, [KB, KA], min_security_counter=counter or 0)
    assert p.version == v and p.payload == payload and p.hdr_size == header_size
    assert p.security_counter == counter and p.load_addr == load_addr
    assert p.total_size == len(img) and p.sha256 == p.digest()
    assert mb.parse_image(img + b"\xff" * 64) == p           # a slot's trailing bytes are ignored


def test_parse_errors_are_image_format_errors():
    good = signing.sign_image(PAYLOAD, KA, security_counter=7)
    t = 0x200 + len(PAYLOAD) + 12

    def put(off, fmt, value, img=good):
        b = bytearray(img)
        struct.pack_into(fmt, b, off, value)
        return bytes(b)

    cases = {
        "BE_ERR_IMG_TOO_BIG": [good[:20], good[:-1], put(12, "<I", 0xFFFFFFFF)],
        "BE_ERR_IMG_MAGIC": [b"\xff" * 64, put(0, "<I", 0)],
        "BE_ERR_IMG_HEADER": [put(8, "<H", 31), put(10, "<H", 2)],
        "BE_ERR_IMG_TLV_MAGIC": [put(t, "<H", 0x6906)],
        "BE_ERR_IMG_TLV_OVERLAP": [put(10, "<H", 0), put(10, "<H", 16)],
        "BE_ERR_IMG_TLV_TRUNCATED": [put(t + 2, "<H", 2), put(t + 2, "<H", len(good) - t - 1)],
        "BE_ERR_IMG_TLV_BAD": [put(t + 6, "<H", 31) + b"\0"],
    }
    for reason, images in cases.items():
        for img in images:
            with pytest.raises(ImageFormatError) as e:
                mb.parse_image(img)
            assert e.value.reason == reason
            assert isinstance(e.value, BridgeEmuError)
    with pytest.raises(ImageFormatError):
        mb.parse_image(good, slot_size=len(good) - 1)


def test_verify_image_reasons():
    good = signing.sign_image(PAYLOAD, KA, security_counter=7)
    assert signing.verify_image(good, [KA], min_security_counter=7).security_counter == 7
    for trusted, floor, reason in [([KB], 0, "BE_ERR_IMG_KEY_UNKNOWN"),
                                ([KA], 8, "BE_ERR_IMG_ROLLBACK")]:
        with pytest.raises(ImageFormatError) as e:
            signing.verify_image(good, trusted, min_security_counter=floor)
        assert e.value.reason == reason
    bad = bytearray(good)
    bad[100] ^= 1
    with pytest.raises(ImageFormatError) as e:
        signing.verify_image(bytes(bad), [KA])
    assert e.value.reason == "BE_ERR_IMG_HASH"
    with pytest.raises(ImageFormatError) as e:
        signing.verify_image(signing.sign_image(PAYLOAD, KA, flags=mb.IMAGE_F_ENCRYPTED_AES128), [KA])
    assert e.value.reason == "BE_ERR_IMG_UNSUPPORTED"


def test_versions():
    assert mb.ImageVersion.parse("1.2.3+4") == mb.ImageVersion(1, 2, 3, 4)
    assert mb.ImageVersion.parse("1") == mb.ImageVersion(1, 0, 0, 0)
    assert mb.ImageVersion.parse("1.2") == mb.ImageVersion(1, 2)
    assert mb.ImageVersion.parse("1.2+9") == mb.ImageVersion(1, 2, 0, 9)
    assert str(mb.ImageVersion(1, 2, 3, 4)) == "1.2.3+4"
    assert mb.ImageVersion(1, 2, 3, 4) < mb.ImageVersion(1, 2, 4, 0) < mb.ImageVersion(1, 3)
    for bad in ["", "a.b", "1.2.3.4", "256.0.0", "0.0.65536", "0.0.0+4294967296", "-1", "1..2"]:
        with pytest.raises(ImageFormatError):
            mb.ImageVersion.parse(bad)


def test_keys(tmp_path):
    k = keys.generate_key()
    keys.save_key(k, tmp_path / "k.pem")
    assert (tmp_path / "k.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    k2 = keys.load_private_key(tmp_path / "k.pem")
    assert keys.public_key_der(k2) == keys.public_key_der(k)
    assert keys.load_public_key(tmp_path / "k.pem").public_numbers() == k.public_key().public_numbers()
    assert keys.load_public_key(keys.public_key_der(k)).public_numbers() == k.public_key().public_numbers()
    enc = keys.private_key_pem(k, b"pw")
    assert keys.key_hash(keys.load_private_key(enc, b"pw")) == keys.key_hash(k)
    assert keys.key_hash(k) == hashlib.sha256(keys.public_key_der(k)).digest()
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ImageFormatError):
        keys.load_private_key(keys.private_key_pem(p384))
    with pytest.raises(ImageFormatError):
        keys.load_private_key(b"not a pem")
    with pytest.raises(ImageFormatError):
        signing.sign_image(PAYLOAD, p384)
