"""AES-128 and the ZigBee AES-MMO hash in C (native/src/be_aes.c).

AES-128 against cryptography's AES-ECB; AES-MMO against a plain Python
reference built on that AES, one-shot and streamed in random chunks, over
random lengths including both sides of the 2^16-bit padding switch; and the
public vector of zigbee-ota.md.
"""
from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.ota_verify import aes_mmo

pytestmark = pytest.mark.native

BOUNDARY = 1 << 13      # bytes: 2^16 bits, where the padding changes


def aes_ecb(key: bytes, block: bytes) -> bytes:
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor().update(block)


def c_aes(key: bytes, block: bytes) -> bytes:
    ctx = ffi.new("be_aes128_t *")
    lib.be_aes128_init(ctx, key)
    out = ffi.new("uint8_t[16]")
    lib.be_aes128_encrypt(ctx, block, out)
    return bytes(out)


def mmo_reference(data: bytes) -> bytes:
    """ZigBee spec B.6, written out: pad, then h = AES_h(m) xor m per block."""
    bits = 8 * len(data)
    padded = bytearray(data) + b"\x80"
    if bits < 1 << 16:
        while len(padded) % 16 != 14:
            padded.append(0)
        padded += struct.pack(">H", bits)
    else:
        assert bits < 1 << 32
        while len(padded) % 16 != 10:
            padded.append(0)
        padded += struct.pack(">I", bits) + b"\x00\x00"
    assert len(padded) % 16 == 0
    h = bytes(16)
    for i in range(0, len(padded), 16):
        m = bytes(padded[i:i + 16])
        h = bytes(a ^ b for a, b in zip(aes_ecb(h, m), m))
    return h


def c_mmo_streamed(data: bytes, cuts: list[int]) -> bytes:
    ctx = ffi.new("be_mmo_t *")
    lib.be_mmo_init(ctx)
    prev = 0
    for cut in sorted(set(c for c in cuts if 0 <= c <= len(data))) + [len(data)]:
        chunk = data[prev:cut]
        lib.be_mmo_update(ctx, chunk, len(chunk))
        prev = cut
    out = ffi.new("uint8_t[16]")
    assert lib.be_mmo_final(ctx, out) == lib.BE_OK
    return bytes(out)


# ------------------------------------------------------------------ AES-128

def test_aes_fips197_appendix_b():
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    pt = bytes.fromhex("3243f6a8885a308d313198a2e0370734")
    assert c_aes(key, pt).hex() == "3925841d02dc09fbdc118597196a0b32"


def test_aes_fips197_appendix_c1():
    key = bytes(range(16))
    pt = bytes.fromhex("00112233445566778899aabbccddeeff")
    assert c_aes(key, pt).hex() == "69c4e0d86a7b0430d8cdb78070b4c55a"


@settings(max_examples=300, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), block=st.binary(min_size=16, max_size=16))
def test_aes_matches_cryptography(key, block):
    assert c_aes(key, block) == aes_ecb(key, block)


def test_aes_in_place():
    key, block = bytes(range(16, 32)), bytes(range(16))
    ctx = ffi.new("be_aes128_t *")
    lib.be_aes128_init(ctx, key)
    buf = ffi.new("uint8_t[16]", block)
    lib.be_aes128_encrypt(ctx, buf, buf)
    assert bytes(buf) == aes_ecb(key, block)


# ------------------------------------------------------------------ AES-MMO

def test_mmo_public_vector():
    data = bytes.fromhex("83FED3407A939723A5C639B26916D505C3B5")
    assert aes_mmo(data).hex() == "66b6900981e1ee3ca4206b6b861c02bb"
    assert mmo_reference(data).hex() == "66b6900981e1ee3ca4206b6b861c02bb"


def test_mmo_every_short_length():
    """0..48 bytes: every padding position, incl. the ones needing a second block."""
    base = bytes((i * 37 + 11) & 0xFF for i in range(48))
    for n in range(len(base) + 1):
        assert aes_mmo(base[:n]) == mmo_reference(base[:n]), n


def test_mmo_boundary_every_length():
    """Every length from 2^16 bits - 40 bytes to + 40 bytes, one-shot."""
    base = bytes((i * 131 + 7) & 0xFF for i in range(BOUNDARY + 40))
    for n in range(BOUNDARY - 40, BOUNDARY + 41):
        assert aes_mmo(base[:n]) == mmo_reference(base[:n]), n


lengths = st.one_of(
    st.integers(0, 200),
    st.integers(BOUNDARY - 48, BOUNDARY + 48),
    st.integers(0, 3 * BOUNDARY),
)


@settings(max_examples=60, deadline=None)
@given(data=st.data(), n=lengths, seed=st.integers(0, 255))
def test_mmo_random_lengths_streamed(data, n, seed):
    msg = bytes((i * 167 + seed) & 0xFF for i in range(n))
    cuts = data.draw(st.lists(st.integers(0, max(n, 0)), max_size=12))
    ref = mmo_reference(msg)
    assert aes_mmo(msg) == ref
    assert c_mmo_streamed(msg, cuts) == ref


@settings(max_examples=100, deadline=None)
@given(msg=st.binary(max_size=100), cuts=st.lists(st.integers(0, 100), max_size=10))
def test_mmo_random_bytes_streamed(msg, cuts):
    ref = mmo_reference(msg)
    assert aes_mmo(msg) == ref
    assert c_mmo_streamed(msg, cuts) == ref


def test_mmo_final_resets_context():
    ctx = ffi.new("be_mmo_t *")
    lib.be_mmo_init(ctx)
    lib.be_mmo_update(ctx, b"abc", 3)
    out = ffi.new("uint8_t[16]")
    assert lib.be_mmo_final(ctx, out) == lib.BE_OK
    assert bytes(out) == mmo_reference(b"abc")
    assert ctx.total == 0 and ctx.buf_len == 0 and bytes(ctx.h) == bytes(16)


def test_mmo_too_long_is_refused():
    """2^32 bits or more has no padding: BE_ERR_RANGE (checked without hashing 512 MiB)."""
    ctx = ffi.new("be_mmo_t *")
    lib.be_mmo_init(ctx)
    ctx.total = 1 << 29
    out = ffi.new("uint8_t[16]", b"\x55" * 16)
    assert lib.be_mmo_final(ctx, out) == lib.BE_ERR_RANGE
    assert bytes(out) == bytes(16)
    ctx.total = (1 << 29) - 1       # 2^32 - 8 bits: the largest message that pads
    assert lib.be_mmo_final(ctx, out) == lib.BE_OK
