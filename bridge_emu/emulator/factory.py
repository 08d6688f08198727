"""What the factory does to a new device before it ships."""
from __future__ import annotations

from bridge_emu.codec import ota_file as ota
from bridge_emu.core.device import Device


def factory_program(device: Device, ota_bytes: bytes) -> None:
    """The factory writes the current firmware: the same download path, marked permanent."""
    header = ota.read_strict(ota_bytes, ota.BodyKind.GBCS).header
    device.stage(ota_bytes, image_offset=header.header_length, permanent=True)
    device.reopen()
    device.boot()
    device.confirm()
