"""What the factory does to a new device before it ships."""
from __future__ import annotations

import hashlib

from bridge_emu.codec import ota_file as ota
from bridge_emu.core.device import Device
from bridge_emu.core.flash import cached_base
from bridge_emu.emulator.profiles import BODIES


def factory_program(device: Device, ota_bytes: bytes, body: str = "gbcs") -> None:
    """The factory writes the current firmware (an OTA file of the device's
    body, BridgeProfile.body): the same download path, marked
    permanent, booted and confirmed; then the device is reset and boots it
    (the end-of-line test), and ships running it.

    Every device of one (config, provisioned keys, firmware) leaves the line
    with the same flash, so an in-memory device is programmed once per such
    key: later ones become copy-on-write copies of the first one's flash
    (Flash.adopt), and all of them then reset and boot as the first did. Their
    contents, counters and erase counts are those the programming leaves."""
    flash = device.flash
    if flash.path is not None or flash.base is None:
        _program(device, ota_bytes, body)
    else:
        key = ("factory", flash.digest(), body, hashlib.sha256(ota_bytes).digest())
        def make() -> bytes:
            _program(device, ota_bytes, body)
            return flash.snapshot()

        base = cached_base(key, make)
        flash.adopt(base)       # the first one too: its written pages become the shared base's
    device.reopen()
    device.boot()


def _program(device: Device, ota_bytes: bytes, body: str) -> None:
    device.stage(ota_bytes, image_offset=image_offset(ota_bytes, body), permanent=True)
    device.reopen()
    device.boot()
    device.confirm()


def image_offset(ota_bytes: bytes, body: str) -> int:
    """Where the bootable image starts in an OTA file a device of `body` takes
    (read strictly: OtaFileError for anything off-spec). A plain ZigBee body
    must carry the upgrade image as its first sub-element, which is where the
    device places it (BridgeProfile.image_offset)."""
    f = ota.read_strict(ota_bytes, ota.BodyKind.GBCS if body == "gbcs" else ota.BodyKind.GENERIC)
    n = f.header.header_length
    if body != "gbcs":
        first = f.body.elements[0].tag if f.body.elements else None
        if first != ota.TAG_UPGRADE_IMAGE:
            raise ota.OtaFileError(n, "a plain ZigBee body must start with the upgrade image (tag 0x0000), "
                                      f"not {'nothing' if first is None else f'tag 0x{first:04X}'}", "body")
    return n + BODIES[body]
