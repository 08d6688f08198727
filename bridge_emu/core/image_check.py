"""The C checks a bridge runs, for tools that hold an image or a file as
bytes: it is placed in an emulated flash and read through the flash model, so
`bridge-emu image info`/`verify` and the devices cannot disagree."""
from __future__ import annotations

from collections.abc import Iterable

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.device import ImageInfo
from bridge_emu.core.errors import check
from bridge_emu.core.flash import DeviceConfig, Flash, Geometry, Layout
from bridge_emu.core.host_crypto import make_trust
from bridge_emu.keys import PublicKeyLike

SECTOR = 4096


def flash_holding(data: bytes) -> Flash:
    """An in-memory flash with data written at address 0."""
    sectors = max(4, -(-len(data) // SECTOR) + 2)
    g = Geometry.uniform(SECTOR, sectors, write_align=1)
    flash = Flash.in_memory(DeviceConfig(g, Layout.simple(g, "bank-switch")))
    flash.write(0, data)
    return flash


def validate_image(flash: Flash, addr: int, length: int, public_keys: Iterable[PublicKeyLike],
                   min_security_counter: int = 0) -> ImageInfo:
    """be_image_validate of the MCUboot image at addr (length bytes available):
    its info, or ImageError naming the first check that failed."""
    trust = make_trust(list(public_keys), min_security_counter)
    info = ffi.new("be_image_info_t *")
    check(lib.be_image_validate(flash.ctx, addr, length, trust, info), "bootable image")
    return ImageInfo.from_c(info)
