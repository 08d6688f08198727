"""An emulated device's boot core: slots, downloads, boot, confirm, fuses.

A thin layer over the C core (native/src/be_boot.c, be_download.c): every method is one core
call, and every failure raises one of bridge_emu.errors' types with a message
naming what failed and where.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.errors import check, error_for, error_name
from bridge_emu.core.flash import DeviceConfig, Flash, Geometry, Layout
from bridge_emu.core.host_crypto import HostCrypto, default_crypto
from bridge_emu.keys import PublicKeyLike, public_key_der

STATES = {
    lib.BE_ST_NONE: "none", lib.BE_ST_CONFIRMED: "confirmed", lib.BE_ST_DOWNLOADING: "downloading",
    lib.BE_ST_PENDING: "pending", lib.BE_ST_SWAPPING: "swapping", lib.BE_ST_TRIAL: "trial",
    lib.BE_ST_REVERTING: "reverting",
}
ACTIONS = {
    lib.BE_ACT_INSTALLED: "installed", lib.BE_ACT_RESUMED: "resumed", lib.BE_ACT_REVERTED: "reverted",
    lib.BE_ACT_REFUSED: "refused", lib.BE_ACT_COUNTER: "counter-raised", lib.BE_ACT_RESCUED: "rescued",
}
DOWNLOAD_CHUNK = 4096


@dataclass(frozen=True)
class ImageInfo:
    version: str            # "major.minor.revision+build"
    security_counter: int
    total_size: int
    hdr_size: int
    img_size: int
    sha256: bytes

    @classmethod
    def from_c(cls, i) -> ImageInfo:
        return cls(f"{i.ver_major}.{i.ver_minor}.{i.ver_revision}+{i.ver_build}",
                   int(i.security_counter), int(i.total_size), int(i.hdr_size), int(i.img_size),
                   bytes(ffi.buffer(i.hash, 32)))


@dataclass(frozen=True)
class BootResult:
    slot: int
    confirmed: bool
    image: ImageInfo
    actions: tuple[str, ...]
    refused: str | None     # error name of a refused pending image, if any
    busy_us: int            # flash-busy time of this boot (the downtime it adds)


@dataclass(frozen=True)
class StateRecord:
    state: str
    seq: int
    permanent: bool
    bank: int
    attempts: int


class Device:
    """The boot core of one emulated device, over its Flash."""

    def __init__(self, flash: Flash, crypto: HostCrypto | None = None):
        self.flash = flash
        self.config = flash.config
        self.crypto = crypto or default_crypto()
        self._layout = self.config.layout.to_c()
        self.ctx = ffi.new("be_device_t *")
        self.reopen()

    # -- construction -------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike | None, geometry: Geometry, layout: Layout,
               keys: list[PublicKeyLike] = (), notes: dict | None = None,
               crypto: HostCrypto | None = None) -> Device:
        """A factory-fresh device (erased flash) with `keys` provisioned in OTP.
        path None keeps the flash in memory (copy-on-write over a shared blank
        image of the config: Flash.in_memory)."""
        config = DeviceConfig(geometry, layout, notes or {})
        flash = Flash.in_memory(config) if path is None else Flash.create(path, config)
        for k in keys:
            der = public_key_der(k)
            check(lib.be_otp_add_key(flash.ctx, der, len(der)), "provision key")
        return cls(flash, crypto)

    @classmethod
    def open(cls, path: str | os.PathLike, crypto: HostCrypto | None = None, *, read_only: bool = False) -> Device:
        """read_only: to look at the device; nothing done to it reaches its file."""
        return cls(Flash.open(path, read_only=read_only), crypto)

    def reopen(self) -> None:
        """Read the state log again (what a reset does before the bootloader runs)."""
        check(lib.be_device_open(self.ctx, self.flash.ctx, self._layout, self.crypto.crypto),
              "open device")

    def power_cycle(self) -> None:
        """Power off and on: the chip loses any armed cut; RAM state is gone."""
        self.flash.power_on()
        self.reopen()

    def close(self) -> None:
        self.flash.close()

    # -- boot ---------------------------------------------------------------

    def boot(self) -> BootResult:
        res = ffi.new("be_boot_result_t *")
        check(lib.be_boot(self.ctx, res), "boot")
        return BootResult(
            slot=int(res.slot), confirmed=bool(res.confirmed), image=ImageInfo.from_c(res.image),
            actions=tuple(name for bit, name in ACTIONS.items() if res.actions & bit),
            refused=error_name(res.refused_err) if res.refused_err else None,
            busy_us=int(res.busy_us))

    def confirm(self) -> None:
        check(lib.be_confirm(self.ctx), "confirm")

    # -- downloads ----------------------------------------------------------

    def begin_download(self, size: int, image_offset: int = 0) -> None:
        check(lib.be_dl_begin(self.ctx, size, image_offset),
              f"begin download of {size} bytes (image at +{image_offset})")

    def write_download(self, offset: int, data: bytes) -> None:
        check(lib.be_dl_write(self.ctx, offset, data, len(data)),
              f"download write of {len(data)} bytes at offset {offset}")

    def read_download(self, offset: int, n: int) -> bytes:
        out = ffi.new("uint8_t[]", n)
        check(lib.be_dl_read(self.ctx, offset, out, n), f"download read of {n} bytes at offset {offset}")
        return bytes(ffi.buffer(out, n))

    def resume_offset(self) -> int:
        """Where a download would continue after a power cut (a query: nothing written)."""
        out = ffi.new("uint32_t *")
        check(lib.be_dl_resume_offset(self.ctx, out), "download resume offset")
        return int(out[0])

    def prepare_resume(self) -> int:
        """Continue a download after a power cut: its resume offset, with the flash
        made ready to take it (ECC flash: the sector it resumes in erased)."""
        out = ffi.new("uint32_t *")
        check(lib.be_dl_resume(self.ctx, out), "download resume")
        return int(out[0])

    def prepare_download(self, max_erases: int = 1) -> bool:
        """While a download is held and an image runs: erase up to max_erases
        sectors (0: only look) of the area the install will save the running
        image into (copy-swap, when the download slot has room past the blob),
        so that the boot that installs it has fewer erases to do. True while
        some of that area is not yet erased. The boot checks it again."""
        left = ffi.new("uint32_t *")
        check(lib.be_dl_prepare(self.ctx, max_erases, left), "prepare the install's save area")
        return bool(left[0])

    def mark_pending(self, permanent: bool = False) -> ImageInfo:
        info = ffi.new("be_image_info_t *")
        check(lib.be_mark_pending(self.ctx, int(permanent), info), "mark downloaded image pending")
        return ImageInfo.from_c(info)

    def download_addr(self) -> int:
        """Flash address of byte 0 of the download (its blob) in the download slot."""
        out = ffi.new("uint32_t *")
        check(lib.be_dl_addr(self.ctx, out), "download slot address")
        return int(out[0])

    @property
    def download_size(self) -> int | None:
        """Bytes of the download held (downloading or pending), else None."""
        return int(self._status().rec.size) if self.state.state in ("downloading", "pending") else None

    def discard_download(self) -> None:
        check(lib.be_dl_discard(self.ctx), "discard download")

    def stage(self, blob: bytes, *, image_offset: int = 0, permanent: bool = False) -> ImageInfo:
        """Download a whole blob and mark it pending (what a completed OTA does)."""
        self.begin_download(len(blob), image_offset)
        for off in range(0, len(blob), DOWNLOAD_CHUNK):
            self.write_download(off, blob[off:off + DOWNLOAD_CHUNK])
        return self.mark_pending(permanent)

    # -- inspection ---------------------------------------------------------

    def _status(self):
        """A copy of what the core lets a host know (be_device_status_t)."""
        st = ffi.new("be_device_status_t *")
        check(lib.be_device_status(self.ctx, st), "device status")
        return st

    @property
    def state(self) -> StateRecord:
        r = self._status().rec
        return StateRecord(STATES.get(r.state, f"unknown({r.state})"), int(r.seq),
                           bool(r.flags & lib.BE_F_PERMANENT), int(r.bank), int(r.attempts))

    @property
    def running_slot(self) -> int | None:
        st = self._status()
        return int(st.running_slot) if st.running else None

    def image_addr(self, slot: int) -> int:
        return int(self._status().image_addr[slot])

    def running_image(self) -> bytes:
        """The bytes of the image that runs (header to end of TLVs)."""
        st = self._status()
        if not st.running:
            raise error_for(lib.BE_ERR_STATE, "running image: the device has not booted")
        return self.flash.read(int(st.image_addr[st.running_slot]), int(st.run_info.total_size))

    def slot_image(self, slot: int) -> tuple[ImageInfo | None, str | None]:
        """(info, None) if the slot holds an image the bootloader would accept,
        else (header info or None, error name)."""
        info = ffi.new("be_image_info_t *")
        rc = lib.be_slot_validate(self.ctx, slot, info)
        if rc == 0:
            return ImageInfo.from_c(info), None
        name = error_name(rc)
        return (ImageInfo.from_c(info) if info.hdr_size else None), name

    @property
    def security_counter(self) -> int:
        out = ffi.new("uint32_t *")
        check(lib.be_otp_counter(self.flash.ctx, out), "read security counter")
        return int(out[0])

    @property
    def origin_counter(self) -> int:
        """The originator counter of the last firmware command accepted (0: none)."""
        return int(self._status().origin_counter)

    def accept_origin(self, counter: int) -> None:
        """Accept a command's originator counter, committed to flash before it
        returns; StateError BE_ERR_STALE for one not above the last."""
        if not 0 <= counter < 1 << 64:
            raise ValueError(f"originator counter {counter} is not a u64")
        check(lib.be_origin_accept(self.ctx, counter), "accept originator counter")

    @property
    def n_keys(self) -> int:
        return int(self._status().n_keys)
