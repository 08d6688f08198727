"""The GBCS checks a bridge makes on the image in its download slot
(docs/gbcs-firmware.md): the verification after a download, which decides
between alerts 0x8F72 and 0x8F1C, and the CS06 Activate Firmware checks
(an image held, and its hash the one the command names)."""
from __future__ import annotations

import hashlib

from bridge_emu.codec import gbcs
from bridge_emu.core.device import Device
from bridge_emu.core.ota_verify import verify_ota_in_flash
from bridge_emu.emulator.profiles import BridgeProfile
from bridge_emu.errors import ImageError


def verify_slot(device: Device, profile: BridgeProfile, supplier_key, size: int) -> bytes:
    """Verify the OTA file of `size` bytes in the download slot, in C, as the bridge
    would before it reports Firmware Verification Successful; returns the
    manufacturer image hash (a plain ZigBee body: SHA-256 of its upgrade image,
    the bootable image itself, as GBCS's is). Raises ImageError for anything the
    bridge refuses."""
    addr = device.download_addr()
    header_length = device.flash.read(addr + 6, 2)   # after the magic and header version
    r = verify_ota_in_flash(device.flash, addr, size, manufacturer=profile.manufacturer,
                            image_type=profile.image_type, hw_version=profile.hw_version,
                            body="gbcs" if profile.body == "gbcs" else "generic", supplier_key=supplier_key,
                            image_at=profile.image_offset(int.from_bytes(header_length, "little")))
    if r.manufacturer_image_hash is not None:
        return r.manufacturer_image_hash
    return hashlib.sha256(device.flash.read(addr + r.image_offset, r.image_length)).digest()


def held_image_hash(device: Device, profile: BridgeProfile, supplier_key) -> bytes | None:
    """The hash of the image the slot holds, computed now (GBCS: 'hash it,
    compare'), or None if it holds none a verification would pass (a partial
    download fails it)."""
    size = device.download_size
    if size is None:
        return None
    try:
        return verify_slot(device, profile, supplier_key, size)
    except ImageError:
        return None


def activation_refusal(held: bytes | None, wanted: bytes | None) -> gbcs.Outcome | None:
    """Why an activation cannot go ahead, or None if the held image may be
    marked pending. `wanted` None: the self-activating route names no hash."""
    if held is None:
        return gbcs.Outcome.NO_IMAGE_HELD
    if wanted is not None and wanted != held:
        return gbcs.Outcome.HASH_MISMATCH
    return None
