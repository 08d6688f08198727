"""What a bridge checks when a ZigBee OTA download completes: a thin wrapper
over be_ota_verify (native/src/be_ota.c), which reads the file from the emulated
flash and does every check in C.

    result = verify_ota_in_flash(flash, addr, length, manufacturer=0x121D,
                                 image_type=0x0000, hw_version=0x1111,
                                 body="gbcs", supplier_key=supplier_cert_pem)
    result.manufacturer_image_hash   # the 32 bytes alert 0x8F72 carries

A refusal raises bridge_emu.errors.ImageError whose `.name` is the C error
name (BE_ERR_OTA_SIG, BE_ERR_OTA_HW_VERSION, ...). Also `aes_mmo(data)`, the
ZigBee AES-MMO hash computed by the C core.
"""
from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.errors import check, error_for
from bridge_emu.core.host_crypto import HostCrypto, default_crypto
from bridge_emu.keys import load_public_key

__all__ = ["OtaVerifyResult", "verify_ota_in_flash", "aes_mmo", "supplier_key_der", "BODIES",
           "INTEGRITY"]

BODIES = {"gbcs": lib.BE_OTA_BODY_GBCS, "generic": lib.BE_OTA_BODY_GENERIC}
INTEGRITY = {lib.BE_OTA_MMO_NONE: "none", lib.BE_OTA_MMO_STANDARD: "standard",
             lib.BE_OTA_MMO_WITH_TAG: "with-tag-header"}

SupplierKey = bytes | bytearray | str | x509.Certificate | ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class OtaVerifyResult:
    """A verified file's header and what the checks found (offsets from file byte 0)."""

    header_version: int
    header_length: int
    field_control: int
    manufacturer: int
    image_type: int
    file_version: int
    stack_version: int
    header_string: bytes            # 32 bytes as stored (not necessarily NUL-terminated)
    total_image_size: int
    security_credential_version: int | None
    destination: bytes | None       # EUI64 as stored (little-endian)
    hw_min: int | None
    hw_max: int | None
    body: str                       # "gbcs" or "generic"
    image_offset: int               # GBCS: manufacturer image; generic: first tag 0x0000 data
    image_length: int
    force_replace: bool | None      # GBCS only
    elements: int                   # generic: sub-elements walked
    signature_checked: bool         # GBCS: the supplier signature verified
    manufacturer_image_hash: bytes | None  # GBCS: SHA-256 of the manufacturer image
    integrity: str                  # "none", "standard" or "with-tag-header"
    integrity_offset: int | None    # offset of the tag 0x0003 sub-element
    integrity_code: bytes | None    # the AES-MMO that matched


def supplier_key_der(key: SupplierKey) -> bytes:
    """DER SubjectPublicKeyInfo of a supplier key in any form bridge_emu.keys.load_public_key takes."""
    return load_public_key(key).public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def _flash_ctx(flash):
    ctx = getattr(flash, "ctx", flash)
    if not isinstance(ctx, ffi.CData) or ffi.typeof(ctx) is not ffi.typeof("be_flash_t *"):
        raise TypeError("flash must be a bridge_emu.core.flash.Flash or a be_flash_t * cdata")
    return ctx


def _u16(name: str, v: int) -> int:
    if not 0 <= v <= 0xFFFF:
        raise ValueError(f"{name} must fit in 16 bits, got {v!r}")
    return v


def verify_ota_in_flash(flash, addr: int, length: int, *, manufacturer: int, image_type: int,
                        hw_version: int, body: str = "gbcs", supplier_key: SupplierKey | None = None,
                        crypto: HostCrypto | None = None, image_at: int | None = None) -> OtaVerifyResult:
    """Verify the OTA file at [addr, addr + length) of the flash in C.

    body "gbcs" needs supplier_key; "generic" ignores it. image_at: the offset
    in the file the bootable image must start at (where a device placed its
    download); a file whose image is elsewhere is refused as BE_ERR_OTA_BODY.
    Raises ImageError (name BE_ERR_OTA_* or BE_ERR_CRYPTO) when the file is
    refused, FlashError when the range lies outside the flash or a read fails.
    """
    if body not in BODIES:
        raise ValueError(f"body must be one of {sorted(BODIES)}, not {body!r}")
    if not (0 <= addr <= 0xFFFFFFFF and 0 <= length <= 0xFFFFFFFF):
        raise ValueError("addr and length must fit in 32 bits")
    ctx = _flash_ctx(flash)
    expect = ffi.new("be_ota_expect_t *")
    expect.manufacturer = _u16("manufacturer", manufacturer)
    expect.image_type = _u16("image_type", image_type)
    expect.hw_version = _u16("hw_version", hw_version)
    expect.body = BODIES[body]
    key = ffi.NULL
    key_len = 0
    if body == "gbcs":
        if supplier_key is None:
            raise ValueError("a GBCS body needs the supplier's public key (supplier_key)")
        der = supplier_key_der(supplier_key)
        key = ffi.new("uint8_t[]", der)
        key_len = len(der)
    crypto = crypto if crypto is not None else default_crypto()
    info = ffi.new("be_ota_info_t *")
    rc = lib.be_ota_verify(ctx, addr, length, expect, crypto.crypto, key, key_len, info)
    check(rc, f"OTA file of {length} bytes at 0x{addr:x}")
    if image_at is not None and info.image_off != image_at:
        raise error_for(lib.BE_ERR_OTA_BODY, f"OTA file of {length} bytes at 0x{addr:x}: its image starts at "
                                             f"+{info.image_off}, not at +{image_at} where the device placed it")

    fc = info.field_control
    gbcs = body == "gbcs"
    has_mic = info.integrity != lib.BE_OTA_MMO_NONE
    return OtaVerifyResult(
        header_version=info.header_version,
        header_length=info.header_length,
        field_control=fc,
        manufacturer=info.manufacturer,
        image_type=info.image_type,
        file_version=info.file_version,
        stack_version=info.stack_version,
        header_string=bytes(info.header_string),
        total_image_size=info.total_image_size,
        security_credential_version=info.security_credential_version if fc & 1 else None,
        destination=bytes(info.destination) if fc & 2 else None,
        hw_min=info.hw_min if fc & 4 else None,
        hw_max=info.hw_max if fc & 4 else None,
        body=body,
        image_offset=info.image_off,
        image_length=info.image_len,
        force_replace=bool(info.force_replace) if gbcs else None,
        elements=info.n_elements,
        signature_checked=bool(info.sig_checked),
        manufacturer_image_hash=bytes(info.image_hash) if gbcs else None,
        integrity=INTEGRITY[info.integrity],
        integrity_offset=info.integrity_off if has_mic else None,
        integrity_code=bytes(info.mmo) if has_mic else None,
    )


def aes_mmo(data: bytes) -> bytes:
    """ZigBee AES-MMO hash (16 bytes) of data, computed by the C core."""
    data = bytes(data)
    out = ffi.new("uint8_t[16]")
    check(lib.be_mmo(data, len(data), out), "AES-MMO")
    return bytes(out)
