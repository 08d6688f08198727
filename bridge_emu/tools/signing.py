"""Signing: the manufacturer's MCUboot/imgtool images and the supplier's GBCS
Upgrade Images, with Python reference checks of both (the devices and
`bridge-emu image verify`/`info` check in C, through bridge_emu.core).

The codecs below only lay bytes out; keys and signature primitives live in
bridge_emu.keys."""
from __future__ import annotations

import hashlib
from collections.abc import Iterable

from cryptography.hazmat.primitives.asymmetric import ec

from bridge_emu.codec.firmware import FirmwareManifest, firmware_payload
from bridge_emu.codec.mcuboot import (
    DEFAULT_HEADER_SIZE,
    TLV_ECDSA_SIG,
    TLV_KEYHASH,
    TLV_SHA256,
    ParsedImage,
    VersionLike,
    image_format_error,
    parse_image,
    signed_region,
    tlv_area,
)
from bridge_emu.codec.ota_file import (
    GBCS_FIELD_CONTROL,
    STACK_ZIGBEE_PRO,
    SUB_ELEMENT_HEADER_SIZE,
    TAG_IMAGE_INTEGRITY_CODE,
    TAG_UPGRADE_IMAGE,
    BodyKind,
    GbcsBody,
    GenericBody,
    OtaFile,
    OtaFileError,
    OtaHeader,
    SubElement,
    read_strict,
)
from bridge_emu.core.ota_verify import aes_mmo
from bridge_emu.errors import ImageFormatError
from bridge_emu.keys import (
    PublicKeyLike,
    key_hash,
    load_public_key,
    public_key_der,
    require_p256,
    sign_digest,
    sign_raw,
    strip_der_padding,
    verify_digest_der,
    verify_raw,
)

# ------------------------------------------------------------------ MCUboot

# The most the OTP anti-rollback counter can hold (be.h BE_OTP_COUNTER_MAX; a
# test holds the two equal). A higher counter could never be confirmed.
OTP_COUNTER_MAX = 2048


def sign_image(payload: bytes, key: ec.EllipticCurvePrivateKey | None, *,
               version: VersionLike = "0.0.0", header_size: int = DEFAULT_HEADER_SIZE,
               security_counter: int | None = None, load_addr: int = 0, flags: int = 0,
               header_pad: int = 0xFF, slot_size: int | None = None,
               protected_tlvs: Iterable[tuple[int, bytes]] = (),
               extra_tlvs: Iterable[tuple[int, bytes]] = (), pad_sig: bool = False) -> bytes:
    """A complete image: signed region, then TLVs SHA256, KEYHASH, ECDSA_SIG, extra_tlvs.

    pad_sig pads the DER signature with zeros to 72 bytes, as `imgtool
    --pad-sig` does, so the image's size does not depend on the signature.

    key None gives an unsigned image (SHA256 only). header_pad 0xFF is what
    `imgtool --pad-header` writes (its erased value); 0x00 is what imgtool
    expects when the input already starts with a zeroed header. slot_size, if
    given, must hold the whole image.
    """
    region = signed_region(payload, version=version, header_size=header_size,
                           security_counter=security_counter, load_addr=load_addr, flags=flags,
                           header_pad=header_pad, protected_tlvs=protected_tlvs)
    digest = hashlib.sha256(region).digest()
    tlvs: list[tuple[int, bytes]] = [(TLV_SHA256, digest)]
    if key is not None:
        require_p256(key, "signing key")
        tlvs.append((TLV_KEYHASH, key_hash(key)))
        sig = sign_digest(key, digest)
        tlvs.append((TLV_ECDSA_SIG, sig.ljust(72, b"\0") if pad_sig else sig))
    tlvs.extend(extra_tlvs)
    image = region + tlv_area(tlvs)
    if slot_size is not None and len(image) > slot_size:
        raise ImageFormatError(f"image of {len(image)} bytes does not fit a {slot_size}-byte slot")
    return image


def verify_image(data: bytes, public_keys: Iterable[PublicKeyLike], *,
                 min_security_counter: int = 0, slot_size: int | None = None) -> ParsedImage:
    """A Python model of be_image_validate (same checks, same order, same reasons).

    Returns the parsed image, or raises ImageFormatError with `reason` set to the
    be_err_t name the C core gives.
    """
    img = parse_image(data, slot_size, check_flags=True)
    if img.sha256 is None:
        raise image_format_error("NO_HASH", "no SHA256 TLV")
    digest = img.digest()
    if digest != img.sha256:
        raise image_format_error("HASH", "SHA-256 of header, payload and protected TLVs does not match")
    pairs = img.signatures
    if not pairs:
        raise image_format_error("NO_SIG", "no ECDSA_SIG TLV")
    keys = {key_hash(k): load_public_key(public_key_der(k)) for k in public_keys}
    bad = unknown = False
    for kh, sig in pairs:
        if kh is None:
            continue
        pub = keys.get(kh)
        if pub is None:
            unknown = True
            continue
        if not verify_digest_der(pub, digest, strip_der_padding(sig)):
            bad = True
            continue
        break
    else:
        if bad:
            raise image_format_error("SIG", "signature does not verify")
        if unknown:
            raise image_format_error("KEY_UNKNOWN", "image signed by a key that is not trusted")
        raise image_format_error("NO_KEYHASH", "signature without a KEYHASH TLV")
    if (img.security_counter or 0) < min_security_counter:
        raise image_format_error("ROLLBACK", f"security counter {img.security_counter or 0} "
                                f"below {min_security_counter}")
    if (img.security_counter or 0) > OTP_COUNTER_MAX:
        raise image_format_error("COUNTER", f"security counter {img.security_counter} above {OTP_COUNTER_MAX}, "
                                 "what the OTP counter can hold")
    return img


def build_bootable(manifest: FirmwareManifest, payload_size: int,
                   key: ec.EllipticCurvePrivateKey | None, security_counter: int | None, *,
                   header_size: int = DEFAULT_HEADER_SIZE, slot_size: int | None = None,
                   header_pad: int = 0xFF) -> bytes:
    """A signed MCUboot image of the firmware (version from the manifest).
    Deterministic: the same inputs give the same bytes. A security counter the
    devices' OTP cannot hold is refused here, as the bootloader would refuse it."""
    if security_counter is not None and not 0 <= security_counter <= OTP_COUNTER_MAX:
        raise image_format_error("COUNTER", f"security counter {security_counter} is outside 0..{OTP_COUNTER_MAX}, "
                                 "what the OTP anti-rollback counter can hold")
    return sign_image(firmware_payload(manifest, payload_size), key,
                      version=manifest.version, header_size=header_size,
                      security_counter=security_counter, slot_size=slot_size,
                      header_pad=header_pad)


# --------------------------------------------------------------------- GBCS


def sign_manufacturer_image(image: bytes, key: ec.EllipticCurvePrivateKey) -> bytes:
    """The GBCS supplier signature: ECDSA P-256, SHA-256, raw r ‖ s; deterministic
    (RFC 6979) so a build is reproducible."""
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ImageFormatError("supplier signing key is not an ECDSA P-256 private key")
    return sign_raw(key, image)


def verify_supplier_signature(source: OtaFile | GbcsBody, key) -> bool:
    """The reference check of a GBCS supplier signature (pure Python). False for
    a body with no signature."""
    body = source.body if isinstance(source, OtaFile) else source
    if not isinstance(body, GbcsBody) or body.signature is None:
        return False
    return verify_raw(load_public_key(key), body.manufacturer_image, body.signature)


def read_signed(data: bytes, supplier_key) -> OtaFile:
    """read_strict of a GBCS file whose supplier signature must verify with
    supplier_key (certificate or public key, any form bridge_emu.keys loads);
    a signature that does not verify raises OtaFileError kind "gbcs_signature"."""
    key = load_public_key(supplier_key)
    ota = read_strict(data, BodyKind.GBCS)
    if not verify_supplier_signature(ota, key):
        raise OtaFileError(ota.layout().signature.offset,
                           "the supplier signature does not verify over the manufacturer image",
                           "gbcs_signature")
    return ota


def build_gbcs_file(manufacturer_image: bytes, supplier_key: ec.EllipticCurvePrivateKey | None,
                    *, manufacturer: int, image_type: int, file_version: int,
                    min_hardware_version: int, max_hardware_version: int,
                    header_string: str | bytes = "", force_replace: bool = False) -> OtaFile:
    """A GBCS OTA file: 60-byte header (field_control 0x0004, stack_version 0x0002)
    then the manufacturer image and, with a supplier key, force_replace ‖ 0x40 ‖
    the supplier signature. supplier_key None gives the unsigned SR 11.4 form."""
    image = bytes(manufacturer_image)
    if not image:
        raise OtaFileError(None, "a GBCS file needs a manufacturer image", "build")
    header = OtaHeader(manufacturer=manufacturer, image_type=image_type,
                       file_version=file_version, stack_version=STACK_ZIGBEE_PRO,
                       header_string=header_string, field_control=GBCS_FIELD_CONTROL,
                       min_hardware_version=min_hardware_version,
                       max_hardware_version=max_hardware_version)
    if supplier_key is None:
        return OtaFile(header, GbcsBody(image))
    return OtaFile(header, GbcsBody(image, sign_manufacturer_image(image, supplier_key),
                                    force_replace=int(force_replace)))


# --------------------------------------------------------------- plain ZigBee

def build_zigbee_file(upgrade_image: bytes, *, manufacturer: int, image_type: int, file_version: int,
                      min_hardware_version: int | None = None, max_hardware_version: int | None = None,
                      header_string: str | bytes = "", integrity: bool = True) -> OtaFile:
    """A plain ZigBee OTA file: the header (a hardware range only if given), the
    upgrade image as the first sub-element (tag 0x0000), and with integrity an
    image integrity code (tag 0x0003): the AES-MMO of every byte before that
    sub-element, computed in C. No signature: a device of this body trusts
    only its bootloader's check of the image."""
    image = bytes(upgrade_image)
    if not image:
        raise OtaFileError(None, "a ZigBee OTA file needs an upgrade image", "build")
    ranged = min_hardware_version is not None
    header = OtaHeader(manufacturer=manufacturer, image_type=image_type, file_version=file_version,
                       stack_version=STACK_ZIGBEE_PRO, header_string=header_string,
                       field_control=GBCS_FIELD_CONTROL if ranged else 0,
                       min_hardware_version=min_hardware_version if ranged else None,
                       max_hardware_version=max_hardware_version if ranged else None)
    elements = [SubElement(TAG_UPGRADE_IMAGE, image)]
    if integrity:
        placeholder = OtaFile(header, GenericBody((*elements, SubElement(TAG_IMAGE_INTEGRITY_CODE, bytes(16)))))
        covered = placeholder.build()[:-(SUB_ELEMENT_HEADER_SIZE + 16)]
        elements.append(SubElement(TAG_IMAGE_INTEGRITY_CODE, aes_mmo(covered)))
    return OtaFile(header, GenericBody(tuple(elements)))
