"""The C core's SHA-256 (native/src/be_sha256.c): FIPS 180-4 vectors, both
implementations against hashlib on random inputs and random update splits,
and the run-time choice of implementation."""
import hashlib
import pathlib
import platform

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_emu.core._ffi import ffi, lib

pytestmark = pytest.mark.native

PORTABLE = lib.BE_SHA_PORTABLE
SHANI = lib.BE_SHA_X86_SHANI
AUTO = lib.BE_SHA_AUTO

# FIPS 180-4 / NIST CSRC example values.
EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
ABC = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
MSG448 = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
MSG448_DIGEST = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
MSG896 = (b"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
          b"ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu")
MSG896_DIGEST = "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"
MILLION_A = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"


def _impl_or_skip(impl: int) -> int:
    if impl == SHANI and lib.be_sha256_best_impl() != SHANI:
        pytest.skip("CPU lacks the x86 SHA extensions (be_sha256_best_impl() says portable)")
    return impl


IMPLS = [pytest.param(PORTABLE, id="portable"), pytest.param(SHANI, id="shani")]


def _new(impl: int):
    ctx = ffi.new("be_sha256_t *")
    got = lib.be_sha256_init(ctx, impl)
    assert got == impl, f"asked for {impl}, init chose {got}"
    assert ctx.impl == impl
    return ctx


def _update(ctx, data) -> None:
    if len(data):
        lib.be_sha256_update(ctx, ffi.from_buffer(data), len(data))
    else:
        lib.be_sha256_update(ctx, ffi.NULL, 0)


def _final(ctx) -> str:
    out = ffi.new("uint8_t[32]")
    lib.be_sha256_final(ctx, out)
    return bytes(out).hex()


def _hash(impl: int, data: bytes, pieces: list[int] | None = None) -> str:
    ctx = _new(impl)
    view = memoryview(data)
    pos = 0
    for n in pieces or []:
        _update(ctx, view[pos:pos + n])
        pos += n
    _update(ctx, view[pos:])
    return _final(ctx)


def _oneshot(data: bytes) -> str:
    out = ffi.new("uint8_t[32]")
    buf = ffi.from_buffer(data) if data else ffi.NULL
    lib.be_sha256(buf, len(data), out)
    return bytes(out).hex()


# ------------------------------------------------------------ FIPS vectors

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("msg, digest", [
    pytest.param(b"", EMPTY, id="empty"),
    pytest.param(b"abc", ABC, id="abc"),
    pytest.param(MSG448, MSG448_DIGEST, id="448-bit"),
    pytest.param(MSG896, MSG896_DIGEST, id="896-bit"),
])
def test_fips_vectors(impl, msg, digest):
    impl = _impl_or_skip(impl)
    assert len(msg) * 8 in (0, 24, 448, 896)
    assert _hash(impl, msg) == digest
    # The same message a byte at a time.
    assert _hash(impl, msg, [1] * len(msg)) == digest


@pytest.mark.parametrize("msg, digest", [(b"", EMPTY), (b"abc", ABC), (MSG448, MSG448_DIGEST)],
                         ids=["empty", "abc", "448-bit"])
def test_fips_vectors_oneshot(msg, digest):
    assert _oneshot(msg) == digest


@pytest.mark.parametrize("impl", IMPLS)
def test_million_a_streamed_in_odd_pieces(impl):
    impl = _impl_or_skip(impl)
    data = b"a" * 1_000_000
    ctx = _new(impl)
    view = memoryview(data)
    sizes = [1, 3, 63, 65, 127, 997, 4099, 7, 64]
    pos = i = 0
    while pos < len(data):
        n = min(sizes[i % len(sizes)], len(data) - pos)
        _update(ctx, view[pos:pos + n])
        pos += n
        i += 1
    assert ctx.total == 1_000_000
    assert _final(ctx) == MILLION_A


@pytest.mark.parametrize("impl", IMPLS)
def test_padding_boundaries(impl):
    """Lengths around the 55/56/64-byte padding edges, whole and split."""
    impl = _impl_or_skip(impl)
    for n in [0, 1, 55, 56, 57, 63, 64, 65, 111, 119, 120, 127, 128, 129, 191, 192, 193]:
        data = bytes((7 * i + n) & 0xFF for i in range(n))
        want = hashlib.sha256(data).hexdigest()
        assert _hash(impl, data) == want, n
        assert _hash(impl, data, [n // 2]) == want, n


# ------------------------------------------- properties against hashlib

_PROPS = settings(max_examples=150, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def _message_and_splits(draw):
    data = draw(st.binary(min_size=0, max_size=6 * 1024))
    cuts = draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=12))
    cuts = sorted(cuts)
    pieces = [b - a for a, b in zip([0] + cuts, cuts)]  # zero-length pieces included
    return data, pieces


@pytest.mark.parametrize("impl", IMPLS)
@_PROPS
@given(case=_message_and_splits())
def test_matches_hashlib_random_splits(impl, case):
    impl = _impl_or_skip(impl)
    data, pieces = case
    assert _hash(impl, data, pieces) == hashlib.sha256(data).hexdigest()


@_PROPS
@given(data=st.binary(min_size=0, max_size=6 * 1024))
def test_oneshot_matches_hashlib(data):
    assert _oneshot(data) == hashlib.sha256(data).hexdigest()


# ------------------------------------------------- implementation choice

def _cpu_flags() -> set[str] | None:
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_best_impl_is_concrete():
    assert lib.be_sha256_best_impl() in (PORTABLE, SHANI)


def test_auto_chooses_shani_when_cpu_has_it():
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        pytest.skip("not an x86 CPU")
    flags = _cpu_flags()
    if flags is None:
        pytest.skip("no /proc/cpuinfo flags to compare cpuid against")
    has = {"sha_ni", "sse4_1", "ssse3"} <= flags
    want = SHANI if has else PORTABLE
    assert lib.be_sha256_best_impl() == want
    ctx = ffi.new("be_sha256_t *")
    assert lib.be_sha256_init(ctx, AUTO) == want
    assert ctx.impl == want
    if not has:
        pytest.skip("CPU lacks sha_ni: AUTO correctly chose portable")


def test_requested_impl_falls_back_to_portable():
    best = lib.be_sha256_best_impl()
    ctx = ffi.new("be_sha256_t *")
    assert lib.be_sha256_init(ctx, SHANI) == best
    assert ctx.impl == best
    assert lib.be_sha256_init(ctx, PORTABLE) == PORTABLE
    assert ctx.impl == PORTABLE
    # An unknown value is treated as a request for plain C.
    assert lib.be_sha256_init(ctx, 99) == PORTABLE
    assert ctx.impl == PORTABLE


def test_init_resets_a_used_context():
    ctx = _new(PORTABLE)
    _update(ctx, b"x" * 100)
    assert lib.be_sha256_init(ctx, PORTABLE) == PORTABLE
    assert ctx.total == 0 and ctx.buf_len == 0
    _update(ctx, b"abc")
    assert _final(ctx) == ABC
