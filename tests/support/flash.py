"""A raw emulated NOR flash for tests that call the C core directly."""
from __future__ import annotations

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.errors import check

SECTOR = 4096


class TestFlash:
    """An emulated NOR flash of uniform 4 KiB sectors (erased 0xFF) for tests.

    `mem` and `otp` are bytearrays shared with C (ffi.from_buffer), so tests
    can look at them directly; `f` is the `be_flash_t *` to pass to the core.
    """

    __test__ = False  # not a test class for pytest

    def __init__(self, n_sectors: int = 64, write_align: int = 4, otp_size: int = 1024):
        self.n_sectors = n_sectors
        self.size = n_sectors * SECTOR
        self.mem = bytearray(b"\xff" * self.size)
        self.otp = bytearray(b"\xff" * otp_size)
        self.geo = ffi.new("be_geometry_t *")
        self.geo.n_regions = 1
        self.geo.region[0] = {"count": n_sectors, "size": SECTOR, "erase_us": 45000}
        self.geo.write_align = write_align
        self.geo.page_size = 256
        self.geo.page_program_us = 700
        self.erase_counts = ffi.new("uint32_t[]", n_sectors)
        self.stats = ffi.new("be_flash_stats_t *")
        self._mem_c = ffi.from_buffer("uint8_t[]", self.mem)
        self._otp_c = ffi.from_buffer("uint8_t[]", self.otp)
        self.f = ffi.new("be_flash_t *")
        check(lib.be_flash_init(self.f, self._mem_c, self.size, self.geo, self.erase_counts,
                                n_sectors, self.stats, self._otp_c, otp_size), "be_flash_init")

    def erase_range(self, addr: int, length: int) -> None:
        """Erase every sector touching [addr, addr + length)."""
        first = addr // SECTOR
        last = (addr + max(length, 1) - 1) // SECTOR
        for s in range(first, last + 1):
            check(lib.be_flash_erase(self.f, s * SECTOR), "be_flash_erase")

    def program(self, addr: int, data: bytes, erase: bool = True) -> None:
        """Write data at any address through the flash model: the write is widened to
        the write alignment with 0xFF (which leaves erased bytes as they are). The
        sectors it touches are erased first unless erase is False."""
        align = self.geo.write_align
        start = addr - addr % align
        blob = b"\xff" * (addr - start) + bytes(data)
        blob += b"\xff" * ((-len(blob)) % align)
        if not blob:
            return
        if erase:
            self.erase_range(start, len(blob))
        check(lib.be_flash_write(self.f, start, blob, len(blob)), "be_flash_write")
