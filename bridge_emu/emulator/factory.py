"""What the factory does to a new device before it ships."""
from __future__ import annotations

import hashlib

from bridge_emu.codec import ota_file as ota
from bridge_emu.core.device import Device
from bridge_emu.core.flash import cached_base


def factory_program(device: Device, ota_bytes: bytes) -> None:
    """The factory writes the current firmware: the same download path, marked
    permanent, booted and confirmed; then the device is reset and boots it
    (the end-of-line test), and ships running it.

    Every device of one (config, provisioned keys, firmware) leaves the line
    with the same flash, so an in-memory device is programmed once per such
    key: later ones become copy-on-write copies of the first one's flash
    (Flash.adopt), and all of them then reset and boot as the first did. Their
    contents, counters and erase counts are those the programming leaves."""
    flash = device.flash
    if flash.path is not None or flash.base is None:
        _program(device, ota_bytes)
    else:
        key = ("factory", flash.digest(), hashlib.sha256(ota_bytes).digest())
        def make() -> bytes:
            _program(device, ota_bytes)
            return flash.snapshot()

        base = cached_base(key, make)
        flash.adopt(base)       # the first one too: its written pages become the shared base's
    device.reopen()
    device.boot()


def _program(device: Device, ota_bytes: bytes) -> None:
    header = ota.read_strict(ota_bytes, ota.BodyKind.GBCS).header
    device.stage(ota_bytes, image_offset=header.header_length, permanent=True)
    device.reopen()
    device.boot()
    device.confirm()
