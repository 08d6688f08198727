"""The NOR flash model and the OTP fuses (native/src/be_flash.c, native/src/be_otp.c).

Through bridge_emu.core.flash.Flash (Flash.in_memory) and raw core calls: erased
state, program-is-AND, sector erase on mixed geometries, write alignment and
ranges (32-bit overflow included), exact counters and the timing model,
power-cut injection (tear none / prefix / bits) on writes and erases, a
random-operation comparison against a pure-Python NOR model, geometry
validation, and the OTP security counter and key slots (torn writes included).
"""
from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.flash import DeviceConfig, DeviceFileError, Flash, Geometry, Layout, Region
from bridge_emu.errors import FlashError, PowerCut
from bridge_emu.keys import generate_key, public_key_der

pytestmark = pytest.mark.native

OK = lib.BE_OK
CUT = lib.BE_ERR_POWER_CUT
ALIGN = lib.BE_ERR_ALIGN
RANGE = lib.BE_ERR_RANGE
GEOMETRY = lib.BE_ERR_GEOMETRY
NOT_SECTOR = lib.BE_ERR_NOT_SECTOR
OTP_FULL = lib.BE_ERR_OTP_FULL

# Flash ignores the layout; DeviceConfig needs one.
DUMMY_LAYOUT = Layout("bank-switch", (0, 256), ((1024, 1024), (2048, 1024)))

# Three runs of different sector sizes, each with its own erase time; a small
# page so that page-crossing writes are easy to make.
MIXED_REGIONS = (Region(4, 256, 1_100), Region(2, 1024, 3_300), Region(3, 4096, 9_900))
PAGE = 64
PAGE_US = 7


def mixed(align: int = 4) -> Geometry:
    return Geometry(MIXED_REGIONS, write_align=align, page_size=PAGE, page_program_us=PAGE_US)


def make(geo: Geometry | None = None) -> Flash:
    return Flash.in_memory(DeviceConfig(geo or mixed(), DUMMY_LAYOUT))


def w(f: Flash, addr: int, data: bytes) -> int:
    return lib.be_flash_write(f.ctx, addr, data, len(data))


def e(f: Flash, addr: int) -> int:
    return lib.be_flash_erase(f.ctx, addr)


def r(f: Flash, addr: int, n: int) -> tuple[int, bytes]:
    buf = ffi.new("uint8_t[]", max(n, 1))
    rc = lib.be_flash_read(f.ctx, addr, buf, n)
    return rc, bytes(ffi.buffer(buf, n))


def region_erase_us(geo: Geometry, addr: int) -> int:
    base = 0
    for reg in geo.regions:
        base += reg.count * reg.size
        if addr < base:
            return reg.erase_us
    raise ValueError(addr)


def pages(addr: int, n: int, page: int = PAGE) -> int:
    return (addr + n + page - 1) // page - addr // page


def rand_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# ------------------------------------------------------------ basic NOR rules


def test_fresh_flash_reads_erased_with_zero_counters():
    f = make()
    size = f.geometry.size
    assert f.contents() == b"\xff" * size
    assert f.otp_contents() == b"\xff" * 1024
    assert set(f.stats.values()) == {0}
    assert f.erase_counts() == [0] * f.geometry.n_sectors
    assert f.read(0, size) == b"\xff" * size
    assert lib.be_flash_is_erased(f.ctx, 0, size) == 1


def test_program_is_and_and_erase_restores():
    f = make()
    f.write(256, b"\x0f" * 16)
    f.write(256, b"\xf0" * 16)
    assert f.read(256, 16) == b"\x00" * 16
    # arbitrary patterns: the result is the AND of everything programmed since the erase
    a, b = rand_bytes(64, 1), rand_bytes(64, 2)
    f.write(512, a)
    f.write(512, b)
    assert f.read(512, 64) == bytes(x & y for x, y in zip(a, b))
    # programming 0xFF changes nothing; programming never sets a bit
    f.write(512, b"\xff" * 64)
    assert f.read(512, 64) == bytes(x & y for x, y in zip(a, b))
    assert lib.be_flash_is_erased(f.ctx, 256, 16) == 0
    f.erase(256)
    assert f.read(256, 256) == b"\xff" * 256
    assert f.read(512, 64) == bytes(x & y for x, y in zip(a, b))  # the next sector is untouched
    f.erase(512)
    assert f.contents() == b"\xff" * f.geometry.size


def test_erase_only_at_sector_starts_and_exactly_that_sector():
    g = mixed(align=4)
    f = make(g)
    size = g.size
    for start, ssize in g.sectors():
        for off in (4, ssize // 2, ssize - 4):
            assert e(f, start + off) == NOT_SECTOR
    assert e(f, size) == RANGE
    assert e(f, 0xFFFFFFFF) == RANGE
    assert f.stats["erases"] == 0 and f.erase_counts() == [0] * g.n_sectors
    with pytest.raises(FlashError) as ei:
        f.erase(260)
    assert ei.value.name == "BE_ERR_NOT_SECTOR"
    for i, (start, ssize) in enumerate(g.sectors()):
        f.write(0, b"\x00" * size)
        assert e(f, start) == OK
        want = b"\x00" * start + b"\xff" * ssize + b"\x00" * (size - start - ssize)
        assert f.contents() == want, f"erasing sector {i} at {start:#x} ({ssize} bytes)"
    assert f.erase_counts() == [1] * g.n_sectors


@pytest.mark.parametrize("align", [1, 2, 4, 8, 16])
def test_write_alignment(align):
    g = Geometry.uniform(4096, 4, write_align=align, page_size=256)
    f = make(g)
    data = bytes(range(1, 65))
    for addr in (0, align, 5 * align, 4096 - align):
        assert w(f, addr, data[:align]) == OK
    assert w(f, 64 * align, data[:4 * align]) == OK
    before, stats = f.contents(), f.stats
    if align == 1:
        return  # everything is aligned to 1
    for addr, n in ((1, align), (align // 2, align), (align + 1, 2 * align),
                    (0, 1), (0, align + 1), (8 * align, align - 1), (8 * align, 3 * align // 2)):
        assert w(f, 12 * align + addr, data[:n]) == ALIGN, (addr, n)
    with pytest.raises(FlashError) as ei:
        f.write(align + 1, data[:align])
    assert ei.value.name == "BE_ERR_ALIGN"
    assert f.contents() == before and f.stats == stats


def test_out_of_range_writes_reads_and_erases_touch_nothing():
    g = mixed(align=4)
    f = make(g)
    size = g.size
    f.write(0, b"\x55" * 64)
    before, stats = f.contents(), f.stats
    assert w(f, 0xFFFFFFF0, b"\x00" * 0x20) == RANGE  # wraps to 0x10 in 32 bits
    assert w(f, size - 4, b"\x00" * 8) == RANGE
    assert w(f, size, b"\x00" * 4) == RANGE
    assert w(f, size + 4, b"") == RANGE
    assert w(f, size, b"") == OK  # an empty write at the very end is in range
    assert r(f, 0xFFFFFFF0, 0x20)[0] == RANGE
    assert r(f, size - 1, 2)[0] == RANGE
    assert lib.be_flash_is_erased(f.ctx, 16, 0xFFFFFFF8) == RANGE
    assert e(f, 0xFFFFFFF0) == RANGE
    assert f.contents() == before
    assert f.stats == stats
    with pytest.raises(FlashError) as ei:
        f.write(0xFFFFFFF0, b"\x00" * 0x20)
    assert ei.value.name == "BE_ERR_RANGE"
    assert r(f, size - 4, 4) == (OK, b"\xff" * 4)


# ------------------------------------------------------ counters and timing


def test_stats_erase_counts_and_timing_are_exact():
    g = mixed(align=4)
    f = make(g)
    sec = g.sectors()
    writes = [(0, 64), (60, 8), (100, 200), (256, 4), (1020, 8), (1024 + 63, 1)]
    exp = dict(writes=0, erases=0, bytes_written=0, bytes_erased=0, reads=0, bytes_read=0,
               busy_us=0, otp_writes=0)
    counts = [0] * g.n_sectors
    for addr, n in writes:
        n = (n + 3) // 4 * 4
        addr -= addr % 4
        f.write(addr, b"\x00" * n)
        exp["writes"] += 1
        exp["bytes_written"] += n
        exp["busy_us"] += pages(addr, n) * PAGE_US
    assert pages(100, 200) == 4 and pages(60, 8) == 2 and pages(0, 64) == 1
    for idx in (0, 3, 4, 5, 6, 8, 0, 6):
        start, size = sec[idx]
        f.erase(start)
        counts[idx] += 1
        exp["erases"] += 1
        exp["bytes_erased"] += size
        exp["busy_us"] += region_erase_us(g, start)
    f.read(10, 30)
    lib.be_flash_is_erased(f.ctx, 0, 100)
    exp["reads"] += 2
    exp["bytes_read"] += 130
    # refused operations count nothing
    assert w(f, 2, b"\x00" * 4) == ALIGN
    assert e(f, 4) == NOT_SECTOR
    assert w(f, g.size, b"\x00" * 4) == RANGE
    assert w(f, 0, b"") == OK  # empty: no program operation
    assert f.stats == exp
    assert f.erase_counts() == counts
    assert exp["busy_us"] == (1 + 2 + 4 + 1 + 2 + 1) * 7 + 3 * 1100 + 2 * 3300 + 3 * 9900
    # OTP writes are counted apart and cost page time
    assert lib.be_flash_otp_write(f.ctx, 0, b"\x00" * 8, 8) == OK
    exp["otp_writes"] += 1
    exp["busy_us"] += PAGE_US
    assert f.stats == exp


def test_default_geometry_timing():
    """The documented default: 45 ms per 4 KiB sector, 0.7 ms per 256-byte page."""
    f = make(Geometry.uniform(4096, 4))
    f.write(0, b"\x00" * 4096)  # 16 pages
    f.erase(4096)
    assert f.stats["busy_us"] == 16 * 700 + 45_000
    g8 = Geometry.uniform(8192, 2)
    assert g8.regions[0].erase_us == 90_000


# ------------------------------------------------------------- power cuts

SCRIPT = [("w", 0, 0x00, 16), ("e", 0), ("w", 1024, 0x3C, 64), ("w", 4, 0xA5, 8),
          ("e", 256), ("w", 2048 + 60, 0x0F, 8), ("e", 3072), ("w", 3072, 0x81, 32)]


def run_script(f: Flash, script) -> list[int]:
    out = []
    for op in script:
        if op[0] == "w":
            _, addr, byte, n = op
            out.append(w(f, addr, bytes([byte]) * n))
        else:
            out.append(e(f, op[1]))
    return out


def prepared() -> Flash:
    f = make()
    f.write(0, rand_bytes(f.geometry.size, 99))  # a non-trivial starting state
    return f


@pytest.mark.parametrize("n", range(1, len(SCRIPT) + 1))
def test_cut_with_no_tear_keeps_exactly_the_ops_before_it(n):
    ref = prepared()
    base = ref.contents()
    assert run_script(ref, SCRIPT[:n - 1]) == [OK] * (n - 1)
    expected, expected_stats, expected_counts = ref.contents(), ref.stats, ref.erase_counts()

    f = prepared()
    assert f.contents() == base
    f.arm_cut(n, "none", 12345)
    rcs = run_script(f, SCRIPT)
    assert rcs == [OK] * (n - 1) + [CUT] * (len(SCRIPT) - n + 1)
    assert f.cut
    # dead: everything fails, bad requests included, and nothing moves
    assert r(f, 0, 4)[0] == CUT
    assert lib.be_flash_is_erased(f.ctx, 0, 4) == CUT
    assert w(f, 0, b"\x00" * 4) == CUT and w(f, 1, b"\x00") == CUT and w(f, 1 << 30, b"\0" * 4) == CUT
    assert e(f, 0) == CUT and e(f, 3) == CUT
    otp = ffi.new("uint8_t[4]")
    assert lib.be_flash_otp_read(f.ctx, 0, otp, 4) == CUT
    assert lib.be_flash_otp_write(f.ctx, 0, b"\x00" * 4, 4) == CUT
    with pytest.raises(PowerCut):
        f.read(0, 4)
    assert f.contents() == expected
    assert f.otp_contents() == b"\xff" * 1024
    stats = f.stats
    assert {k: stats[k] for k in ("writes", "erases", "bytes_written", "bytes_erased", "busy_us")} == \
        {k: expected_stats[k] for k in ("writes", "erases", "bytes_written", "bytes_erased", "busy_us")}
    assert f.erase_counts() == expected_counts
    # power on: alive again, the injector cleared, contents as they were
    f.power_on()
    assert not f.cut
    assert f.contents() == expected
    assert run_script(f, SCRIPT) == [OK] * len(SCRIPT)


def test_refused_and_empty_requests_are_not_flash_operations():
    f = make()
    f.arm_cut(2)
    assert w(f, 2, b"\x00" * 4) == ALIGN
    assert e(f, 4) == NOT_SECTOR
    assert w(f, 0, b"") == OK
    assert f.ops_since_arm == 0
    assert w(f, 0, b"\x00" * 4) == OK  # op 1
    assert w(f, 4, b"\x00" * 4) == CUT  # op 2
    assert f.contents()[:8] == b"\x00" * 4 + b"\xff" * 4


def test_rearming_restarts_the_count_and_zero_disarms():
    f = make()
    f.arm_cut(3)
    assert w(f, 0, b"\x00" * 4) == OK
    f.arm_cut(2)
    assert w(f, 4, b"\x00" * 4) == OK
    assert w(f, 8, b"\x00" * 4) == CUT
    f.power_on()
    f.arm_cut(0)
    assert all(w(f, 16 + 4 * i, b"\x00" * 4) == OK for i in range(50))
    assert f.ops_since_arm == 50 and not f.cut
    f.arm_cut(1)
    f.disarm()
    assert w(f, 256, b"\x00" * 4) == OK


@pytest.mark.parametrize("seed", [0, 1, 63, 64, 65, 200, 255, 256, 1000, 0xDEADBEEF, 0xFFFFFFFF])
def test_torn_write_prefix_lands_exactly_seed_mod_len_bytes(seed):
    f = make()
    old = rand_bytes(256, 5)
    f.write(1024, old)
    data = rand_bytes(256, 6)
    s0 = f.stats
    f.arm_cut(1, "prefix", seed)
    assert w(f, 1024, data) == CUT
    assert f.cut
    f.power_on()
    k = seed % 256
    got = f.read(1024, 256)
    assert got[:k] == bytes(a & b for a, b in zip(old[:k], data[:k]))
    assert got[k:] == old[k:]
    # a torn program counts as one program operation of its requested size
    s1 = f.stats
    assert s1["writes"] == s0["writes"] + 1
    assert s1["bytes_written"] == s0["bytes_written"] + 256
    assert s1["busy_us"] == s0["busy_us"] + 4 * PAGE_US


def test_cut_with_no_tear_is_not_counted():
    f = make()
    f.write(0, b"\x00" * 4)
    s0, c0 = f.stats, f.erase_counts()
    f.arm_cut(1, "none")
    assert w(f, 4, b"\x00" * 4) == CUT
    f.power_on()
    f.arm_cut(1, "none")
    assert e(f, 0) == CUT
    f.power_on()
    assert f.stats == s0 and f.erase_counts() == c0
    assert f.contents()[:8] == b"\x00" * 4 + b"\xff" * 4


@pytest.mark.parametrize("seed", [0, 1, 2, 7, 12345, 0x80000000, 0xFFFFFFFF])
def test_torn_write_bits_land_a_subset_of_the_changes(seed):
    f = make()
    old = rand_bytes(4096, seed ^ 0x55)
    f.write(8192, old)
    data = rand_bytes(4096, seed ^ 0xAA)
    f.arm_cut(1, "bits", seed)
    assert w(f, 8192, data) == CUT
    f.power_on()
    got = f.read(8192, 4096)
    must = [a & b for a, b in zip(old, data)]
    for res, o, m in zip(got, old, must):
        assert res & ~o & 0xFF == 0  # never sets a bit
        assert res & m == m  # never clears a bit the write would keep
    changed = sum(bin(o ^ m).count("1") for o, m in zip(old, must))
    landed = sum(bin(o ^ res).count("1") for o, res in zip(old, got))
    assert 0 < landed < changed
    # the rest of the flash is untouched
    assert f.read(4096, 4096) == b"\xff" * 4096
    assert f.stats["writes"] == 2


def test_torn_write_bits_on_erased_flash_some_but_not_all():
    f = make()
    f.arm_cut(1, "bits", 77)
    assert w(f, 8192, b"\x00" * 4096) == CUT
    f.power_on()
    got = f.read(8192, 4096)
    zeros = sum(8 - bin(b).count("1") for b in got)
    assert 0 < zeros < 4096 * 8


@pytest.mark.parametrize("sector", [0, 3, 4, 5, 6, 8])
@pytest.mark.parametrize("seed", [0, 1, 100, 255, 256, 1023, 4097, 0xFFFFFFFF])
def test_torn_erase_prefix(sector, seed):
    g = mixed()
    f = make(g)
    f.write(0, b"\x00" * g.size)
    start, size = g.sectors()[sector]
    s0, c0 = f.stats, f.erase_counts()
    f.arm_cut(1, "prefix", seed)
    assert e(f, start) == CUT
    f.power_on()
    k = seed % size
    want = b"\x00" * start + b"\xff" * k + b"\x00" * (g.size - start - k)
    assert f.contents() == want
    s1, c1 = f.stats, f.erase_counts()
    assert c1[sector] == c0[sector] + 1 and sum(c1) == sum(c0) + 1
    assert s1["erases"] == s0["erases"] + 1
    assert s1["bytes_erased"] == s0["bytes_erased"] + size
    assert s1["busy_us"] == s0["busy_us"] + region_erase_us(g, start)
    assert region_erase_us(g, start) == {0: 1_100, 3: 1_100, 4: 3_300, 5: 3_300}.get(sector, 9_900)


@pytest.mark.parametrize("sector", [1, 4, 7])
@pytest.mark.parametrize("seed", [0, 3, 0xABCDEF])
def test_torn_erase_bits_only_sets_bits(sector, seed):
    g = mixed()
    f = make(g)
    old = rand_bytes(g.size, seed + sector)
    f.write(0, old)
    old = f.contents()
    start, size = g.sectors()[sector]
    f.arm_cut(1, "bits", seed)
    assert e(f, start) == CUT
    f.power_on()
    got = f.contents()
    assert got[:start] == old[:start] and got[start + size:] == old[start + size:]
    part = got[start:start + size]
    assert all(res & o == o for res, o in zip(part, old[start:start + size]))
    assert part != old[start:start + size]
    assert part != b"\xff" * size
    assert f.erase_counts()[sector] == 1


def test_torn_op_in_the_middle_of_a_sequence():
    """ops 1..n-1 land, op n is torn (a prefix), later ops fail."""
    f = prepared()
    ref = prepared()
    n = 3
    run_script(ref, SCRIPT[:n - 1])
    _, addr, byte, length = SCRIPT[n - 1]
    seed = 21
    k = seed % length
    old = ref.read(addr, length)
    f.arm_cut(n, "prefix", seed)
    assert run_script(f, SCRIPT) == [OK] * (n - 1) + [CUT] * (len(SCRIPT) - n + 1)
    f.power_on()
    want = bytearray(ref.contents())
    want[addr:addr + k] = bytes(o & byte for o in old[:k])
    assert f.contents() == bytes(want)


# ---------------------------------------------------- model-based comparison

MODEL_REGIONS = (Region(2, 64, 11), Region(1, 128, 13), Region(2, 256, 17))
MODEL_PAGE, MODEL_PAGE_US = 32, 3


class NorModel:
    """Pure-Python NOR flash with the core's documented contract."""

    def __init__(self, geo: Geometry):
        self.geo = geo
        self.size = geo.size
        self.mem = bytearray(b"\xff" * self.size)
        self.sectors = geo.sectors()
        self.counts = [0] * len(self.sectors)
        self.stats = dict(writes=0, erases=0, bytes_written=0, bytes_erased=0, reads=0,
                          bytes_read=0, busy_us=0, otp_writes=0)
        self.power_on()

    def power_on(self):
        self.cut_at, self.tear, self.seed, self.ops, self.dead = 0, "none", 0, 0, False

    def arm(self, n, tear, seed):
        self.cut_at, self.tear, self.seed, self.ops, self.dead = n, tear, seed, 0, False

    def _step(self) -> bool:
        self.ops += 1
        if self.cut_at and self.ops == self.cut_at:
            self.dead = True
            return True
        return False

    def write(self, addr, data):
        n = len(data)
        if self.dead:
            return CUT
        if addr + n > self.size:
            return RANGE
        a = self.geo.write_align
        if addr % a or n % a:
            return ALIGN
        if n == 0:
            return OK
        cut = self._step()
        if cut and self.tear == "none":
            return CUT
        land = self.seed % n if cut else n
        for i in range(land):
            self.mem[addr + i] &= data[i]
        self.stats["writes"] += 1
        self.stats["bytes_written"] += n
        self.stats["busy_us"] += pages(addr, n, self.geo.page_size) * self.geo.page_program_us
        return CUT if cut else OK

    def erase(self, addr):
        if self.dead:
            return CUT
        for idx, (start, size) in enumerate(self.sectors):  # noqa: B007  idx: the sector found
            if start <= addr < start + size:
                break
        else:
            return RANGE
        if start != addr:
            return NOT_SECTOR
        cut = self._step()
        if cut and self.tear == "none":
            return CUT
        land = self.seed % size if cut else size
        self.mem[start:start + land] = b"\xff" * land
        self.counts[idx] += 1
        self.stats["erases"] += 1
        self.stats["bytes_erased"] += size
        self.stats["busy_us"] += region_erase_us(self.geo, start)
        return CUT if cut else OK

    def read(self, addr, n):
        if self.dead:
            return CUT, None
        if addr + n > self.size:
            return RANGE, None
        self.stats["reads"] += 1
        self.stats["bytes_read"] += n
        return OK, bytes(self.mem[addr:addr + n])

    def is_erased(self, addr, n):
        rc, data = self.read(addr, n)
        return rc if rc else int(data == b"\xff" * n)


_MODEL_SIZE = sum(reg.count * reg.size for reg in MODEL_REGIONS)
_STARTS = [s for s, _ in Geometry(MODEL_REGIONS).sectors()]
ADDR = st.one_of(st.integers(0, _MODEL_SIZE + 40), st.sampled_from(_STARTS + [_MODEL_SIZE]),
                 st.integers(0xFFFFFF00, 0xFFFFFFFF))
U32 = st.integers(0, 2**32 - 1)
OPS = st.one_of(
    st.tuples(st.just("write"), ADDR, st.integers(0, 100), st.booleans(), U32),
    st.tuples(st.just("write"), st.sampled_from(_STARTS), st.integers(0, 300), st.just(True), U32),
    st.tuples(st.just("erase"), ADDR),
    st.tuples(st.just("read"), ADDR, st.integers(0, 100)),
    st.tuples(st.just("is_erased"), ADDR, st.integers(0, 100)),
    st.tuples(st.just("arm"), st.integers(1, 6), st.sampled_from(["none", "prefix"]), U32),
    st.tuples(st.just("power_on")),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(align=st.sampled_from([1, 2, 4, 8, 16]), ops=st.lists(OPS, max_size=40))
def test_random_operations_match_a_python_nor_model(align, ops):
    geo = Geometry(MODEL_REGIONS, write_align=align, page_size=MODEL_PAGE,
                   page_program_us=MODEL_PAGE_US)
    f = make(geo)
    m = NorModel(geo)
    for step, op in enumerate(ops):
        kind = op[0]
        if kind == "write":
            _, addr, n, snap, seed = op
            if snap:
                addr -= addr % align
                n -= n % align
            data = rand_bytes(n, seed)
            assert w(f, addr, data) == m.write(addr, data), (step, op)
        elif kind == "erase":
            assert e(f, op[1]) == m.erase(op[1]), (step, op)
        elif kind == "read":
            _, addr, n = op
            rc, data = r(f, addr, n)
            mrc, mdata = m.read(addr, n)
            assert rc == mrc, (step, op)
            if rc == OK:
                assert data == mdata, (step, op)
        elif kind == "is_erased":
            _, addr, n = op
            assert lib.be_flash_is_erased(f.ctx, addr, n) == m.is_erased(addr, n), (step, op)
        elif kind == "arm":
            _, n, tear, seed = op
            f.arm_cut(n, tear, seed)
            m.arm(n, tear, seed)
        else:
            f.power_on()
            m.power_on()
        assert f.cut == m.dead
        assert f.ops_since_arm == m.ops
    assert f.contents() == bytes(m.mem)
    assert f.stats == m.stats
    assert f.erase_counts() == m.counts


# ------------------------------------------------------ geometry validation


def raw_init(n_regions: int, regions, *, align: int = 4, page: int = 256, size: int | None = None,
             otp_size: int = 1024, n_counts: int = 64) -> int:
    g = ffi.new("be_geometry_t *")
    g.n_regions = n_regions
    for i, (count, ssize) in enumerate(regions[:8]):
        g.region[i].count, g.region[i].size, g.region[i].erase_us = count, ssize, 100
    g.write_align, g.page_size, g.page_program_us = align, page, 10
    if size is None:
        size = sum(c * s for c, s in regions[:8])
    mem = ffi.new("uint8_t[]", max(size, 1))
    counts = ffi.new("uint32_t[]", n_counts)
    stats = ffi.new("be_flash_stats_t *")
    otp = ffi.new("uint8_t[]", max(otp_size, 1))
    f = ffi.new("be_flash_t *")
    return lib.be_flash_init(f, mem, size, g, counts, n_counts, stats, otp, otp_size)


def test_geometry_validation_in_the_core():
    good = [(2, 256), (2, 1024)]
    assert raw_init(2, good) == OK
    assert raw_init(8, [(1, 256)] * 8) == OK
    assert raw_init(0, []) == GEOMETRY
    assert raw_init(9, [(1, 256)] * 8) == GEOMETRY
    assert raw_init(200, [(1, 256)] * 8) == GEOMETRY
    for bad_align in (0, 3, 5, 6, 12, 32):
        assert raw_init(2, good, align=bad_align) == GEOMETRY, bad_align
    for align in (1, 2, 4, 8, 16):
        assert raw_init(2, good, align=align) == OK
    assert raw_init(2, [(2, 256), (0, 1024)], size=512) == GEOMETRY  # zero-count region
    assert raw_init(2, [(2, 256), (2, 0)], size=512) == GEOMETRY  # zero-size sectors
    assert raw_init(2, [(2, 256), (2, 1026)]) == GEOMETRY  # sector not a multiple of the alignment
    assert raw_init(2, good, size=2 * 256 + 2 * 1024 - 256) == GEOMETRY  # size mismatch
    assert raw_init(2, good, size=2 * 256 + 2 * 1024 + 256) == GEOMETRY
    assert raw_init(2, good, page=0) == GEOMETRY
    assert raw_init(2, good, otp_size=1022) == GEOMETRY  # OTP not a multiple of the alignment
    assert raw_init(2, good, n_counts=3) == lib.BE_ERR_ARG  # fewer counters than sectors


def test_geometry_validation_through_flash():
    def attempt(geo):
        return Flash.in_memory(DeviceConfig(geo, DUMMY_LAYOUT))

    with pytest.raises(DeviceFileError, match="1 to 8 regions"):
        attempt(Geometry(()))
    with pytest.raises(DeviceFileError, match="1 to 8 regions"):
        attempt(Geometry(tuple(Region(1, 256, 10) for _ in range(9))))
    for geo in (Geometry.uniform(4096, 4, write_align=3),
                Geometry((Region(2, 4096, 1), Region(0, 4096, 1))),
                Geometry((Region(2, 4096, 1),), write_align=8, page_size=0),
                Geometry((Region(2, 4098, 1),), write_align=4)):
        with pytest.raises(FlashError) as ei:
            attempt(geo)
        assert ei.value.name == "BE_ERR_GEOMETRY"
        assert "flash geometry" in str(ei.value)
    assert attempt(Geometry(tuple(Region(1, 256, 10) for _ in range(8)))).geometry.size == 2048


# ------------------------------------------------------------------ OTP


def counter(f: Flash) -> int:
    out = ffi.new("uint32_t *")
    assert lib.be_otp_counter(f.ctx, out) == OK
    return int(out[0])


def bitmap(v: int) -> bytes:
    """The counter area holding exactly value v."""
    out = bytearray(b"\xff" * 256)
    for i in range(v):
        out[i // 8] &= ~(1 << (i % 8)) & 0xFF
    return bytes(out)


def test_counter_is_the_number_of_leading_cleared_bits():
    f = make()
    assert counter(f) == 0
    assert lib.be_flash_otp_write(f.ctx, 0, b"\xf0\xff\xff\xff", 4) == OK
    assert counter(f) == 4
    assert lib.be_flash_otp_write(f.ctx, 0, b"\x00\xfe\xff\x00", 4) == OK
    assert counter(f) == 9  # a set bit stops the count: the cleared byte 3 does not add
    assert lib.be_flash_otp_write(f.ctx, 0, b"\x00\x00\xfc\xff", 4) == OK
    assert counter(f) == 18
    assert lib.be_flash_otp_write(f.ctx, 0, b"\x00" * 256, 256) == OK
    assert counter(f) == 2048


@pytest.mark.parametrize("align", [1, 2, 4, 8, 16])
def test_raise_never_lowers_and_is_exact(align):
    f = make(Geometry.uniform(4096, 2, write_align=align))
    seen = 0
    for v in (1, 0, 5, 3, 5, 8, 9, 63, 64, 65, 200, 129, 1000, 1001, 2047, 2048, 100):
        w0 = f.stats["otp_writes"]
        assert lib.be_otp_raise(f.ctx, v) == OK
        assert f.stats["otp_writes"] == w0 + (1 if v > seen else 0)  # one write, or none
        seen = max(seen, v)
        assert counter(f) == seen
        otp = f.otp_contents()
        assert otp[:256] == bitmap(seen)
        assert otp[256:] == b"\xff" * 768  # key slots untouched
    assert f.contents() == b"\xff" * f.geometry.size  # the flash array is not the OTP


def test_raise_beyond_capacity_is_otp_full():
    f = make()
    assert lib.be_otp_raise(f.ctx, 2049) == OTP_FULL
    assert counter(f) == 0 and f.stats["otp_writes"] == 0
    assert lib.be_otp_raise(f.ctx, 0xFFFFFFFF) == OTP_FULL
    assert lib.be_otp_raise(f.ctx, 700) == OK
    assert lib.be_otp_raise(f.ctx, 2049) == OTP_FULL
    assert counter(f) == 700
    assert lib.be_otp_raise(f.ctx, 2048) == OK
    assert lib.be_otp_raise(f.ctx, 2049) == OTP_FULL
    assert counter(f) == 2048


@pytest.mark.parametrize("align", [1, 16])
@pytest.mark.parametrize("tear", ["bits", "prefix"])
def test_torn_raise_lands_between_old_and_target_and_a_second_raise_completes_it(tear, align):
    values = set()
    for seed in range(1, 40):
        f = make(Geometry.uniform(4096, 2, write_align=align))
        old, target = 13, 1500
        assert lib.be_otp_raise(f.ctx, old) == OK
        w0 = f.stats["otp_writes"]
        f.arm_cut(1, tear, seed * 2654435761)
        assert lib.be_otp_raise(f.ctx, target) == CUT
        f.power_on()
        assert f.stats["otp_writes"] == w0 + 1
        v = counter(f)
        assert old <= v <= target
        values.add(v)
        otp = f.otp_contents()
        assert otp[:old // 8] == b"\x00" * (old // 8)
        assert otp[(target + 7) // 8:] == b"\xff" * (1024 - (target + 7) // 8)  # nothing past the target
        assert lib.be_otp_raise(f.ctx, target) == OK
        assert counter(f) == target
        assert f.otp_contents()[:256] == bitmap(target)
    assert any(old < v < target for v in values)


def keys(n: int) -> list[bytes]:
    return [public_key_der(generate_key()) for _ in range(n)]


def load_trust(f: Flash):
    t = ffi.new("be_trust_t *")
    assert lib.be_otp_load_trust(f.ctx, t) == OK
    return [bytes(ffi.buffer(t.key[i], t.key_len[i])) for i in range(t.n_keys)], t


def slot(f: Flash, i: int) -> bytes:
    return f.otp_contents()[256 + 128 * i:256 + 128 * (i + 1)]


def test_four_key_slots():
    f = make()
    ks = keys(5)
    for i, k in enumerate(ks[:4]):
        assert lib.be_otp_add_key(f.ctx, k, len(k)) == OK
        got, t = load_trust(f)
        assert got == ks[:i + 1]
    got, t = load_trust(f)
    for i, k in enumerate(ks[:4]):
        assert bytes(t.key_hash[i]) == hashlib.sha256(k).digest()
    before = f.otp_contents()
    assert lib.be_otp_add_key(f.ctx, ks[4], len(ks[4])) == OTP_FULL
    assert f.otp_contents() == before
    assert load_trust(f)[0] == ks[:4]
    assert lib.be_otp_add_key(f.ctx, b"\x30" * 123, 123) == RANGE  # longer than a slot holds


@pytest.mark.parametrize("tear,seed", [("prefix", 1), ("prefix", 50), ("prefix", 123),
                                       ("bits", 1), ("bits", 0xC0FFEE)])
def test_torn_key_provisioning_is_not_a_key_and_the_next_uses_the_next_slot(tear, seed):
    f = make()
    a, b, c, d = keys(4)
    assert lib.be_otp_add_key(f.ctx, a, len(a)) == OK
    f.arm_cut(1, tear, seed)
    assert lib.be_otp_add_key(f.ctx, b, len(b)) == CUT
    f.power_on()
    assert slot(f, 1) != b"\xff" * 128  # something landed
    got, t = load_trust(f)
    assert got == [a] and t.n_keys == 1  # ... but it is not a key
    assert lib.be_otp_add_key(f.ctx, b, len(b)) == OK
    assert slot(f, 2)[2:2 + len(b)] == b
    assert load_trust(f)[0] == [a, b]
    assert lib.be_otp_add_key(f.ctx, c, len(c)) == OK
    assert lib.be_otp_add_key(f.ctx, d, len(d)) == OTP_FULL  # the torn slot is used up
    assert load_trust(f)[0] == [a, b, c]


def test_key_cut_before_anything_lands_leaves_the_slot_free():
    f = make()
    a, b = keys(2)
    f.arm_cut(1, "none")
    assert lib.be_otp_add_key(f.ctx, a, len(a)) == CUT
    f.power_on()
    assert f.otp_contents() == b"\xff" * 1024
    assert lib.be_otp_add_key(f.ctx, b, len(b)) == OK
    assert slot(f, 0)[2:2 + len(b)] == b
    assert load_trust(f)[0] == [b]
