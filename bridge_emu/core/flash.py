"""Flash geometry, slot layout, and the device flash file.

A device's whole persistent state is one buffer: a bytearray in memory, or a
memory-mapped file on disk (the "flash file"). It holds, at fixed offsets:

    0       magic b"BEMUDEV1", u32 length, JSON config (geometry, layout, notes)
    4096    be_flash_stats_t (8 x u64): lifetime operation counters
    4160    u32 erase count per sector
    ...     OTP area (1 KiB, bits only clear), page-aligned
    ...     the NOR flash array itself, page-aligned

Only the C flash model writes the counters, OTP and flash after creation, so
killing the process that holds the mapping is a real power cut: the file holds
exactly what the flash held, including a half-done memcpy.

In memory, a device's buffer is a private copy-on-write mapping of a shared,
sealed base image (a Base): a factory-fresh chip of its config, or a
factory-programmed one (emulator/factory.py). Its pages are shared with every
other device of that base until the C model writes one, so a device costs
the memory of the pages it has written, and no device sees another's writes.
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import mmap
import os
import pathlib
import struct
from dataclasses import dataclass, field

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.errors import check
from bridge_emu.errors import BridgeEmuError

MAGIC = b"BEMUDEV1"
PAGE = 4096
STATS_OFF = PAGE
STATS_SIZE = 64
COUNTS_OFF = STATS_OFF + STATS_SIZE
OTP_SIZE = 1024

TEAR = {"none": lib.BE_TEAR_NONE, "prefix": lib.BE_TEAR_PREFIX, "bits": lib.BE_TEAR_BITS}
MODES = {"copy-swap": lib.BE_MODE_COPY_SWAP, "bank-switch": lib.BE_MODE_BANK_SWITCH}


class DeviceFileError(BridgeEmuError):
    """A flash file is missing, truncated, or not a bridge-emu device."""


def _align(v: int, a: int = PAGE) -> int:
    return (v + a - 1) // a * a


@dataclass(frozen=True)
class Region:
    """A run of `count` equal sectors of `size` bytes, each erased in `erase_us`."""

    count: int
    size: int
    erase_us: int


@dataclass(frozen=True)
class Geometry:
    """NOR flash geometry and timing model.

    Default timing is a typical 4 KiB-sector serial NOR (W25Q-class datasheet
    typicals): 45 ms per 4 KiB sector erase, 0.7 ms per 256-byte page program.
    """

    regions: tuple[Region, ...]
    write_align: int = 4
    page_size: int = 256
    page_program_us: int = 700
    ecc: bool = False       # ECC flash (internal flash, align 8/16): a write unit is programmed once per erase

    @classmethod
    def uniform(cls, sector_size: int, count: int, *, erase_us: int | None = None, **kw) -> Geometry:
        if erase_us is None:
            erase_us = 45_000 * max(1, sector_size // 4096)
        return cls((Region(count, sector_size, erase_us),), **kw)

    @property
    def size(self) -> int:
        return sum(r.count * r.size for r in self.regions)

    @property
    def n_sectors(self) -> int:
        return sum(r.count for r in self.regions)

    def sectors(self) -> list[tuple[int, int]]:
        """(start, size) of every sector."""
        out, addr = [], 0
        for r in self.regions:
            for _ in range(r.count):
                out.append((addr, r.size))
                addr += r.size
        return out

    def to_c(self):
        g = ffi.new("be_geometry_t *")
        if not 1 <= len(self.regions) <= 8:
            raise DeviceFileError(f"a geometry has 1 to 8 regions, not {len(self.regions)}")
        g.n_regions = len(self.regions)
        for i, r in enumerate(self.regions):
            g.region[i].count, g.region[i].size, g.region[i].erase_us = r.count, r.size, r.erase_us
        g.write_align = self.write_align
        g.page_size = self.page_size
        g.page_program_us = self.page_program_us
        g.ecc = int(bool(self.ecc))
        return g

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Geometry:
        d = dict(d)
        d["regions"] = tuple(Region(**r) for r in d["regions"])
        return cls(**d)


@dataclass(frozen=True)
class Layout:
    """Where the state log, plan area and the two slots live in the flash."""

    mode: str                      # "copy-swap" or "bank-switch"
    log: tuple[int, int]           # addresses of the two state-log sectors
    slots: tuple[tuple[int, int], tuple[int, int]]  # (addr, size) of slot 0 and 1
    plan: tuple[int, int] = (0, 0)  # copy-swap: (addr, size) of the plan area
    max_attempts: int = 1
    allow_downgrade: bool = False

    @classmethod
    def simple(cls, geometry: Geometry, mode: str, **kw) -> Layout:
        """Log in sectors 0-1; copy-swap: plan area in the next sector(s), as
        many as a plan for a full slot needs; the rest split between the slots
        (copy-swap: the secondary gets one more sector)."""
        secs = geometry.sectors()
        sizes = {s for _, s in secs}
        if len(sizes) != 1:
            raise DeviceFileError("Layout.simple needs a uniform geometry; give the layout explicitly")
        sec = secs[0][1]
        if mode == "copy-swap":
            plan = 1
            while True:
                n = (len(secs) - 2 - plan - 1) // 2
                if n < 1:
                    raise DeviceFileError(f"{len(secs)} sectors are too few for a copy-swap layout")
                if 32 + _align(16 * n, 32) <= plan * sec:
                    break
                plan += 1
            base = (2 + plan) * sec
            return cls(mode, (0, sec), ((base, n * sec), (base + n * sec, (n + 1) * sec)),
                       plan=(2 * sec, plan * sec), **kw)
        if mode == "bank-switch":
            n = (len(secs) - 2) // 2
            base = 2 * sec
            return cls(mode, (0, sec), ((base, n * sec), (base + n * sec, n * sec)), **kw)
        raise DeviceFileError(f"unknown mode {mode!r}; expected one of {sorted(MODES)}")

    def to_c(self):
        if self.mode not in MODES:
            raise DeviceFileError(f"unknown mode {self.mode!r}; expected one of {sorted(MODES)}")
        c = ffi.new("be_layout_t *")
        c.mode = MODES[self.mode]
        c.log_addr = list(self.log)
        c.plan_addr, c.plan_size = self.plan
        c.slot_addr = [self.slots[0][0], self.slots[1][0]]
        c.slot_size = [self.slots[0][1], self.slots[1][1]]
        c.max_attempts = self.max_attempts
        c.options = lib.BE_OPT_ALLOW_DOWNGRADE if self.allow_downgrade else 0
        return c

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> Layout:
        d = dict(d)
        d["log"] = tuple(d["log"])
        d["slots"] = tuple(tuple(s) for s in d["slots"])
        d["plan"] = tuple(d["plan"])
        return cls(**d)


@dataclass(frozen=True)
class DeviceConfig:
    geometry: Geometry
    layout: Layout
    notes: dict = field(default_factory=dict)  # free-form (profile name, ...)

    def to_json(self) -> dict:
        return {"geometry": self.geometry.to_json(), "layout": self.layout.to_json(), "notes": self.notes}

    @classmethod
    def from_json(cls, d: dict) -> DeviceConfig:
        return cls(Geometry.from_json(d["geometry"]), Layout.from_json(d["layout"]), d.get("notes", {}))


MAX_FLASH = 1 << 30           # a device file's flash array: 1 GiB at most
_U32 = (1 << 32) - 1


def check_config(config: DeviceConfig, where: str) -> None:
    """Refuse a configuration no device can have (a hand-edited or corrupt file
    header): every count, size, time and address a whole number in range, the
    areas inside the flash. Raises DeviceFileError naming the field."""
    def number(name: str, v, lo: int = 0, hi: int = _U32) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise DeviceFileError(f"{where}: device config {name} = {v!r}, expected a whole number {lo}..{hi}")
        return v

    g, lay = config.geometry, config.layout
    if not isinstance(g.regions, tuple) or not 1 <= len(g.regions) <= 8:
        raise DeviceFileError(f"{where}: device config geometry.regions: 1 to 8 regions expected")
    for i, r in enumerate(g.regions):
        number(f"geometry.regions[{i}].count", r.count, 1, 1 << 20)
        number(f"geometry.regions[{i}].size", r.size, 1, MAX_FLASH)
        number(f"geometry.regions[{i}].erase_us", r.erase_us)
    align = number("geometry.write_align", g.write_align, 1, 256)
    if align & (align - 1):
        raise DeviceFileError(f"{where}: device config geometry.write_align = {align}, expected a power of two")
    number("geometry.page_size", g.page_size, 1, MAX_FLASH)
    if not isinstance(g.ecc, bool):
        raise DeviceFileError(f"{where}: device config geometry.ecc = {g.ecc!r}, expected true or false")
    number("geometry.page_program_us", g.page_program_us)
    if g.size > MAX_FLASH:
        raise DeviceFileError(f"{where}: device config geometry: {g.size} bytes of flash, at most {MAX_FLASH}")
    if lay.mode not in MODES:
        raise DeviceFileError(f"{where}: device config layout.mode = {lay.mode!r}, expected one of {sorted(MODES)}")
    areas = {"layout.log[0]": (lay.log[0], 1), "layout.log[1]": (lay.log[1], 1),
             "layout.slots[0]": lay.slots[0], "layout.slots[1]": lay.slots[1], "layout.plan": lay.plan}
    for name, (addr, size) in areas.items():
        number(f"{name} address", addr)
        number(f"{name} size", size)
        if addr + size > g.size:
            raise DeviceFileError(f"{where}: device config {name} ends at 0x{addr + size:x}, "
                                  f"past the {g.size}-byte flash")
    number("layout.max_attempts", lay.max_attempts, 1, 255)
    if not isinstance(lay.allow_downgrade, bool):
        raise DeviceFileError(f"{where}: device config layout.allow_downgrade = {lay.allow_downgrade!r}, "
                              "expected true or false")


class Base:
    """A read-only device image that in-memory devices map copy-on-write.

    Held in an anonymous memory file (memfd), sealed against writes, growth and
    shrinking once filled: no process can change it, so every device mapped
    over it starts from exactly these bytes, and what a device writes stays in
    its own private pages (mmap MAP_PRIVATE)."""

    def __init__(self, data):
        self.size = len(data)
        self.digest = hashlib.sha256(data).digest()
        fd = os.memfd_create("bridge-emu-base", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            view, done = memoryview(data), 0
            while done < self.size:
                done += os.write(fd, view[done:])
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SHRINK
                        | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def map(self) -> mmap.mmap:
        """A private copy-on-write view of the base: writes stay in it."""
        return mmap.mmap(self._fd, self.size, flags=mmap.MAP_PRIVATE,
                         prot=mmap.PROT_READ | mmap.PROT_WRITE)

    def read(self) -> bytes:
        """The base's bytes, read from its memory file."""
        return os.pread(self._fd, self.size, 0)

    def __del__(self):
        fd, self._fd = getattr(self, "_fd", None), None
        if fd is not None:
            os.close(fd)         # mappings made from it stay valid


_COW = hasattr(os, "memfd_create") and hasattr(fcntl, "F_ADD_SEALS")
_BASES: dict[tuple, Base] = {}          # by key: ("blank", config JSON), the factory's keys, ...
MAX_BASES = 64                          # the least recently used is dropped beyond this (its devices keep it mapped)


def cached_base(key: tuple, make) -> Base:
    """The Base stored under key, made with make() (a buffer) if there is none."""
    base = _BASES.pop(key, None)
    if base is None:
        base = Base(make())
    _BASES[key] = base                  # most recently used last
    while len(_BASES) > MAX_BASES:
        del _BASES[next(iter(_BASES))]
    return base


def _offsets(geometry: Geometry) -> tuple[int, int, int]:
    otp_off = _align(COUNTS_OFF + 4 * geometry.n_sectors)
    flash_off = _align(otp_off + OTP_SIZE)
    return otp_off, flash_off, flash_off + geometry.size


class Flash:
    """A NOR flash chip with its OTP area and counters, over one buffer.

    `power_on()` (re)initialises the C model over the buffer: what a power
    cycle does to a chip (the fault injector is cleared; contents stay).
    """

    def __init__(self, buf, config: DeviceConfig, *, path: pathlib.Path | None = None, _file=None):
        self.config = config
        self.geometry = config.geometry
        self.path = path
        self._file = _file
        self.read_only = False
        self.base: Base | None = None   # in memory: the image it was mapped from
        self._buf = buf
        self._otp_off, self._flash_off, total = _offsets(self.geometry)
        if len(buf) < total:
            raise DeviceFileError(f"{path or 'buffer'}: {len(buf)} bytes, the geometry needs {total}")
        self._cbuf = ffi.from_buffer(buf)
        self.ctx = ffi.new("be_flash_t *")
        self.power_on()

    # -- creation ---------------------------------------------------------

    @staticmethod
    def _image(config: DeviceConfig) -> bytearray:
        otp_off, flash_off, total = _offsets(config.geometry)
        meta = json.dumps(config.to_json(), sort_keys=True).encode()
        if len(meta) > PAGE - 12:
            raise DeviceFileError("device config too large for the file header")
        buf = bytearray(total)
        buf[0:12] = MAGIC + struct.pack("<I", len(meta))
        buf[12:12 + len(meta)] = meta
        buf[otp_off:otp_off + OTP_SIZE] = b"\xff" * OTP_SIZE
        buf[flash_off:total] = b"\xff" * config.geometry.size  # a factory-fresh chip reads erased
        return buf

    @classmethod
    def in_memory(cls, config: DeviceConfig, base: Base | None = None) -> Flash:
        """A device kept in memory: factory-fresh (erased), or a copy of base.
        Copy-on-write over a shared base where the platform allows (Linux
        memfd), else a private bytearray; the two behave the same."""
        if base is None:
            if not _COW:
                return cls(cls._image(config), config)
            base = cached_base(("blank", json.dumps(config.to_json(), sort_keys=True)),
                               lambda: cls._image(config))
        if base.size != _offsets(config.geometry)[2]:
            raise DeviceFileError(f"a base of {base.size} bytes for a device of "
                                  f"{_offsets(config.geometry)[2]}")
        flash = cls(base.map() if _COW else bytearray(base.read()), config)
        flash.base = base
        return flash

    def digest(self) -> bytes:
        """SHA-256 of the whole persistent state (not through the model: no counters move)."""
        return hashlib.sha256(self._buf).digest()

    def adopt(self, base: Base) -> None:
        """Become a copy of base (an in-memory device only): what programming
        the chip to exactly that image would leave. Powers the chip on."""
        if self.path is not None:
            raise DeviceFileError(f"{self.path}: a device file is not rebased")
        if base.size != len(self._buf):
            raise DeviceFileError(f"a base of {base.size} bytes for a device of {len(self._buf)}")
        self._cbuf = None
        self._buf = base.map() if _COW else bytearray(base.read())
        self._cbuf = ffi.from_buffer(self._buf)
        self.base = base
        self.power_on()

    @classmethod
    def create(cls, path: str | os.PathLike, config: DeviceConfig) -> Flash:
        path = pathlib.Path(path)
        if path.exists():
            raise DeviceFileError(f"{path}: already exists; refusing to overwrite a device")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(cls._image(config))
        os.replace(tmp, path)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | os.PathLike, *, read_only: bool = False) -> Flash:
        """The device in the flash file at path. read_only: for looking at it: the
        file is only read (read-only media will do) and nothing the flash model
        does, its read counters included, ever reaches the file."""
        path = pathlib.Path(path)
        try:
            f = open(path, "rb" if read_only else "r+b")
        except OSError as e:
            raise DeviceFileError(f"{path}: cannot open device file ({e.strerror})") from None
        head = f.read(PAGE)
        if len(head) < 12:
            f.close()
            raise DeviceFileError(f"{path}: truncated ({len(head)} bytes; not even a header)")
        if head[:8] != MAGIC:
            f.close()
            raise DeviceFileError(f"{path}: not a bridge-emu device file (bad magic)")
        (n,) = struct.unpack_from("<I", head, 8)
        try:
            if n > PAGE - 12:
                raise ValueError(f"config length {n} overruns the header")
            config = DeviceConfig.from_json(json.loads(head[12:12 + n]))
            check_config(config, str(path))
        except DeviceFileError:
            f.close()
            raise
        except (ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError) as e:
            f.close()
            raise DeviceFileError(f"{path}: unreadable device config ({e})") from None
        size = os.fstat(f.fileno()).st_size
        total = _offsets(config.geometry)[2]
        if size < total:
            f.close()
            raise DeviceFileError(f"{path}: truncated ({size} bytes, expected {total})")
        if read_only:
            # a private copy-on-write mapping: writes stay in this process
            mm = mmap.mmap(f.fileno(), total, access=mmap.ACCESS_COPY)
        else:
            mm = mmap.mmap(f.fileno(), total)
        flash = cls(mm, config, path=path, _file=f)
        flash.read_only = read_only
        return flash

    def close(self) -> None:
        if self._file is not None:
            self._cbuf = None
            self.ctx = None
            if not self.read_only:
                self._buf.flush()
            self._buf.close()
            self._file.close()
            self._file = None

    # -- the chip -----------------------------------------------------------

    def power_on(self) -> None:
        n = self.geometry.n_sectors
        base = self._cbuf
        check(lib.be_flash_init(
            self.ctx, base + self._flash_off, self.geometry.size, self.geometry.to_c(),
            ffi.cast("uint32_t *", base + COUNTS_OFF), n,
            ffi.cast("be_flash_stats_t *", base + STATS_OFF),
            base + self._otp_off, OTP_SIZE), "flash geometry")

    def read(self, addr: int, n: int) -> bytes:
        out = ffi.new("uint8_t[]", n)
        check(lib.be_flash_read(self.ctx, addr, out, n), f"read {n} bytes at 0x{addr:x}")
        return bytes(ffi.buffer(out, n))

    def write(self, addr: int, data: bytes) -> None:
        check(lib.be_flash_write(self.ctx, addr, data, len(data)), f"write {len(data)} bytes at 0x{addr:x}")

    def erase(self, addr: int) -> None:
        check(lib.be_flash_erase(self.ctx, addr), f"erase sector at 0x{addr:x}")

    def arm_cut(self, n: int, tear: str = "none", seed: int = 0) -> None:
        """Cut power at the n-th write or erase from now (n >= 1)."""
        lib.be_flash_arm_cut(self.ctx, n, TEAR[tear], seed & 0xFFFFFFFF)

    def disarm(self) -> None:
        lib.be_flash_arm_cut(self.ctx, 0, 0, 0)

    def _fault(self):
        """A copy of the power-cut injector's state (be_fault_t)."""
        f = ffi.new("be_fault_t *")
        check(lib.be_flash_fault_status(self.ctx, f), "power-cut injector state")
        return f

    @property
    def ops_since_arm(self) -> int:
        return int(self._fault().ops)

    @property
    def cut(self) -> bool:
        return bool(self._fault().dead)

    @property
    def stats(self) -> dict[str, int]:
        s = ffi.new("be_flash_stats_t *")
        check(lib.be_flash_get_stats(self.ctx, s), "flash counters")
        return {k: int(getattr(s, k)) for k in
                ("writes", "erases", "bytes_written", "bytes_erased", "reads", "bytes_read",
                 "busy_us", "otp_writes")}

    def erase_counts(self) -> list[int]:
        return list(ffi.unpack(ffi.cast("uint32_t *", self._cbuf + COUNTS_OFF), self.geometry.n_sectors))

    def contents(self) -> bytes:
        """The flash array as it reads now (not through the model: no counters move)."""
        return bytes(self._buf[self._flash_off:self._flash_off + self.geometry.size])

    def otp_contents(self) -> bytes:
        return bytes(self._buf[self._otp_off:self._otp_off + OTP_SIZE])

    def snapshot(self) -> bytes:
        """The whole persistent state (config, counters, OTP, flash)."""
        return bytes(self._buf)

    def restore(self, snap: bytes) -> None:
        self._buf[:len(snap)] = snap
        self.power_on()
