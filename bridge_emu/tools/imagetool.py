"""Firmware files: build, inspect and verify GB smart-metering OTA files.

A file is a ZigBee OTA header and a GBCS Upgrade Image (Manufacturer Image ||
force_replace || 0x40 || supplier signature); the Manufacturer Image is the
manufacturer's own bootable (MCUboot-format) image whose payload is the
emulated firmware. Verification runs the same C code an emulated bridge runs
on download completion (the file is placed in an emulated flash and read
through the flash model), so the tool and the devices cannot disagree.
"""
from __future__ import annotations

import hashlib
import os
import pathlib
import stat
import sys
from dataclasses import dataclass, field

from bridge_emu.codec import firmware, mcuboot
from bridge_emu.codec import ota_file as ota
from bridge_emu.core.device import Device
from bridge_emu.core.image_check import flash_holding, validate_image
from bridge_emu.core.ota_verify import verify_ota_in_flash
from bridge_emu.emulator.profiles import profile
from bridge_emu.errors import BridgeEmuError, CoreError, ImageError, ImageFormatError
from bridge_emu.tools import signing

HEADER_STRING = "bridge-emu {type} {version}"


@dataclass(frozen=True)
class BuildSpec:
    """What `bridge-emu image build` makes; None fields come from the bridge type's profile."""

    bridge_type: str
    version: str
    security_counter: int = 1
    manufacturer: int | None = None
    image_type: int | None = None
    hw_range: tuple[int, int] | None = None
    payload_size: int | None = None
    build_id: str = ""
    behaviour: dict = field(default_factory=dict)  # fails_self_test, crashes_at_boot, never_rejoins


def build(spec: BuildSpec, manufacturer_key, supplier_key) -> tuple[str, bytes]:
    """(GBCS file name, file bytes). Deterministic: same spec and keys, same bytes.
    Refuses what the bridge type could not take (a hardware range upside down,
    a file larger than its download slot)."""
    prof = profile(spec.bridge_type)
    if spec.hw_range is not None and spec.hw_range[0] > spec.hw_range[1]:
        raise BridgeEmuError(f"--hw-min 0x{spec.hw_range[0]:04X} is above --hw-max 0x{spec.hw_range[1]:04X}")
    if spec.payload_size is not None and spec.payload_size < firmware.MANIFEST_SIZE:
        raise BridgeEmuError(f"--payload-size {spec.payload_size}: the emulated firmware needs at least "
                             f"{firmware.MANIFEST_SIZE} bytes (its manifest)")
    manifest = firmware.FirmwareManifest(prof.bridge_type, spec.version, spec.build_id, **spec.behaviour)
    bootable = signing.build_bootable(manifest, prof.payload_size if spec.payload_size is None else spec.payload_size,
                                       manufacturer_key, spec.security_counter)
    lo, hi = spec.hw_range or prof.hw_range
    f = signing.build_gbcs_file(
        bootable, supplier_key,
        manufacturer=prof.manufacturer if spec.manufacturer is None else spec.manufacturer,
        image_type=prof.image_type if spec.image_type is None else spec.image_type,
        file_version=firmware.file_version(spec.version), min_hardware_version=lo, max_hardware_version=hi,
        header_string=HEADER_STRING.format(type=prof.bridge_type, version=spec.version))
    data = f.build()
    _fits(prof, data, len(data) - len(f.body.build()))
    return ota.gbcs_file_name(f), data


@dataclass(frozen=True)
class SignSpec:
    """What `bridge-emu image sign` makes of a user's raw firmware binary: an
    MCUboot image as `imgtool sign` makes it, and optionally a GBCS OTA file of it."""

    version: str
    security_counter: int | None = None
    header_size: int = mcuboot.DEFAULT_HEADER_SIZE
    pad_header: bool = False          # False: the binary starts with header_size zero bytes (imgtool's rule)
    slot_size: int | None = None
    pad_sig: bool = False
    # the GBCS OTA file (ota=True)
    ota: bool = False
    manufacturer: int | None = None
    image_type: int | None = None
    hw_range: tuple[int, int] = (0x0000, 0xFFFF)
    header_string: str = ""
    body: str = "gbcs"                # or "zigbee": a plain ZigBee OTA file, no supplier signature


def sign_firmware(binary: bytes, spec: SignSpec, manufacturer_key, supplier_key=None) -> tuple[str | None, bytes]:
    """(the GBCS file name or None, the bytes): the signed MCUboot image, or with
    spec.ota the GBCS OTA file around it, signed by the supplier key (spec.body
    "zigbee": a plain ZigBee OTA file around it, with its AES-MMO integrity code)."""
    if spec.pad_header:
        payload = binary
    else:
        head = binary[:spec.header_size]
        if len(head) < spec.header_size or any(head):
            raise BridgeEmuError(f"the binary does not start with {spec.header_size:#x} zero bytes for the "
                                 "MCUboot header; --pad-header adds them (as imgtool's does)")
        payload = binary[spec.header_size:]
    if not payload:
        raise BridgeEmuError("the binary has no firmware after the header")
    try:
        image = signing.sign_image(payload, manufacturer_key, version=spec.version, header_size=spec.header_size,
                                   security_counter=spec.security_counter, slot_size=spec.slot_size,
                                   header_pad=0xFF if spec.pad_header else 0x00, pad_sig=spec.pad_sig)
    except (ImageFormatError, ValueError) as e:
        raise BridgeEmuError(f"cannot sign it: {e}") from None
    if not spec.ota:
        return None, image
    if spec.manufacturer is None or spec.image_type is None:
        raise BridgeEmuError("an OTA file needs --manufacturer and --image-type")
    lo, hi = spec.hw_range
    if lo > hi:
        raise BridgeEmuError(f"--hw-min 0x{lo:04X} is above --hw-max 0x{hi:04X}")
    if spec.body == "zigbee":
        f = signing.build_zigbee_file(image, manufacturer=spec.manufacturer, image_type=spec.image_type,
                                      file_version=firmware.file_version(spec.version), min_hardware_version=lo,
                                      max_hardware_version=hi, header_string=spec.header_string)
        return None, f.build()
    f = signing.build_gbcs_file(image, supplier_key, manufacturer=spec.manufacturer, image_type=spec.image_type,
                                file_version=firmware.file_version(spec.version), min_hardware_version=lo,
                                max_hardware_version=hi, header_string=spec.header_string)
    return ota.gbcs_file_name(f), f.build()


def _fits(prof, data: bytes, image_offset: int) -> None:
    """The file fits the bridge type's download slot, as its boot core decides
    (a factory-fresh device of the type is asked to begin the download)."""
    dev = Device.create(None, prof.geometry, prof.layout())
    try:
        dev.begin_download(len(data), image_offset)
    except CoreError as e:
        raise BridgeEmuError(f"a {len(data)}-byte file does not fit a {prof.bridge_type}'s download slot "
                             f"({e}); a smaller --payload-size would") from None
    finally:
        dev.close()


# ------------------------------------------------------------------ inspect

FILE_SUFFIXES = (".zigbee", ".ota", ".bin")


MAX_FILE_SIZE = 64 << 20     # an OTA file is read whole; a bound keeps /dev/zero or a 2 GB file out of memory
STDIN = "-"


def image_files(paths) -> tuple[list[str], list[str]]:
    """The files named ("-" is stdin), with folders expanded to the OTA files in
    them (FILE_SUFFIXES), in order; and a complaint for each folder without any."""
    files, empty = [], []
    for name in map(str, paths):
        p = pathlib.Path(name)
        if name != STDIN and p.is_dir():
            found = sorted(str(q) for q in p.rglob("*") if q.is_file() and q.suffix in FILE_SUFFIXES)
            if not found:
                empty.append(f"{p}: no OTA files in this folder (looked for {', '.join(FILE_SUFFIXES)})")
            files.extend(found)
        else:
            files.append(name)
    return files, empty


def read_file(name: str, limit: int = MAX_FILE_SIZE, stdin=None) -> bytes:
    """The bytes of a file ("-": stdin), at most `limit` of them: anything longer
    (a huge file, a device such as /dev/zero) is refused after reading no more
    than limit + 1 bytes. Raises BridgeEmuError naming the file."""
    try:
        if name == STDIN:
            data = (stdin or sys.stdin.buffer).read(limit + 1)
        else:
            with open(name, "rb") as f:
                st = os.fstat(f.fileno())
                if stat.S_ISREG(st.st_mode) and st.st_size > limit:
                    raise BridgeEmuError(f"{name}: {st.st_size} bytes, more than the {limit} read at most "
                                         "(--max-size); skipped")
                data = f.read(limit + 1)
    except OSError as e:
        raise BridgeEmuError(f"{name}: cannot read ({e.strerror})") from None
    if len(data) > limit:
        raise BridgeEmuError(f"{name}: more than the {limit} bytes read at most (--max-size); skipped")
    return data



def _spans(layout) -> dict:
    def span(s: ota.Span) -> dict:
        return {"offset": s.offset, "length": s.length}

    out = {name: span(v) for name, v in vars(layout).items() if isinstance(v, ota.Span)}
    out["fields"] = {name: span(v) for name, v in layout.fields.items()}
    out["elements"] = [{name: span(v) if isinstance(v, ota.Span) else v for name, v in vars(e).items()}
                       for e in layout.elements]
    return out


def is_mcuboot(data: bytes) -> bool:
    """A bare MCUboot image (imgtool's output), not an OTA file: it starts with the image magic."""
    return len(data) >= 4 and int.from_bytes(data[:4], "little") == mcuboot.IMAGE_MAGIC


def inspect(data: bytes, *, supplier_key=None, manufacturer_key=None) -> dict:
    """Everything about a file (an OTA file, or a bare MCUboot image), as JSON-ready
    data. Raises OtaFileError (ImageFormatError for an MCUboot image) only when
    nothing sensible can be read."""
    if is_mcuboot(data):
        inner = _inner(data, strict=True)
        out = {"format": "mcuboot", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
               "image": inner, "signatures": {}}
        if manufacturer_key is not None:
            out["signatures"]["manufacturer"] = _image_signature_ok(data, manufacturer_key)
        return out
    insp = ota.read_tolerant(data)
    f = insp.file
    h = f.header
    out: dict = {
        "format": "zigbee-ota",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "header": {
            "header_version": h.header_version, "header_length": h.header_length,
            "field_control": h.field_control, "manufacturer": h.manufacturer,
            "image_type": h.image_type, "file_version": h.file_version,
            "stack_version": h.stack_version, "header_string": h.text,
            "total_image_size": h.total_image_size,
            "security_credential_version": h.security_credential_version,
            "upgrade_file_destination": (f"{h.upgrade_file_destination:016x}"
                                         if h.upgrade_file_destination is not None else None),
            "min_hardware_version": h.min_hardware_version,
            "max_hardware_version": h.max_hardware_version,
        },
        "file_start": insp.start,
        "body_kind": insp.body_kind.name.lower(),
        "anomalies": [{"kind": a.kind, "offset": a.offset, "message": a.message} for a in insp.anomalies],
        "off_spec": insp.off_spec,
        "layout": _spans(f.layout()),
        "signatures": {},
    }
    body = f.body
    if isinstance(body, ota.GbcsBody):
        out["gbcs"] = {
            "manufacturer_image_size": len(body.manufacturer_image),
            "manufacturer_image_hash": ota.manufacturer_image_hash(body).hex(),
            "force_replace": body.force_replace,
            "signed": body.signed,
            "suggested_name": ota.gbcs_file_name(f),
        }
        out["inner_image"] = _inner(body.manufacturer_image)
        if supplier_key is not None:
            file_bytes = data[insp.start:len(data) - len(insp.trailing)]
            out["signatures"]["supplier"] = body.signed and _supplier_signature_ok(file_bytes, h, supplier_key)
        if manufacturer_key is not None:
            out["signatures"]["manufacturer"] = _image_signature_ok(body.manufacturer_image, manufacturer_key)
    else:
        out["generic"] = {"elements": [{"tag": e.tag, "length": len(e.data)} for e in body.elements],
                          "integrity": _integrity(data[insp.start:len(data) - len(insp.trailing)], h)}
    return out


def _integrity(file_bytes: bytes, header) -> dict:
    """The AES-MMO image integrity code (tag 0x0003) of a plain ZigBee OTA file,
    checked in C as a device would: which form matched, the code, or why it fails."""
    try:
        r = verify_ota_in_flash(flash_holding(file_bytes), 0, len(file_bytes), manufacturer=header.manufacturer,
                                image_type=header.image_type, hw_version=header.min_hardware_version or 0,
                                body="generic")
    except ImageError as e:
        return {"present": True, "ok": False, "error": e.name, "detail": str(e)}
    if r.integrity == "none":
        return {"present": False, "ok": None}
    return {"present": True, "ok": True, "form": r.integrity, "offset": r.integrity_offset,
            "code": r.integrity_code.hex()}


def _inner(image: bytes, strict: bool = False) -> dict:
    try:
        p = mcuboot.parse_image(image)
    except ImageFormatError as e:
        if strict:
            raise
        return {"format": "unknown", "error": str(e)}
    out = {
        "format": "mcuboot", "version": str(p.version), "header_size": p.hdr_size,
        "payload_size": p.img_size, "security_counter": p.security_counter,
        "sha256": p.sha256.hex() if p.sha256 else None,
        "tlvs": [{"type": t.type, "length": len(t.data), "protected": t.protected} for t in p.tlvs],
        "total_size": p.total_size, "trailing_bytes": len(image) - p.total_size,
        "hash_ok": p.sha256 == p.digest(),
    }
    try:
        m = firmware.manifest_from_image(image)
        out["firmware"] = {"bridge_type": m.bridge_type, "version": str(m.version), "build_id": m.build_id,
                           "fails_self_test": m.fails_self_test, "crashes_at_boot": m.crashes_at_boot,
                           "never_rejoins": m.never_rejoins}
    except BridgeEmuError as e:
        out["firmware"] = {"error": str(e)}
    return out


def _supplier_signature_ok(data: bytes, header, key) -> bool:
    """Whether the file passes a bridge's supplier-signature verification (in C), against its own identity."""
    try:
        verify_ota_in_flash(flash_holding(data), 0, len(data), manufacturer=header.manufacturer,
                            image_type=header.image_type, hw_version=header.min_hardware_version or 0,
                            body="gbcs", supplier_key=key)
    except ImageError:
        return False
    return True


def _image_signature_ok(image: bytes, key) -> bool:
    """Whether the bootable image validates with key, as the bootloader checks it (in C)."""
    try:
        validate_image(flash_holding(image), 0, len(image), [key])
    except ImageError:
        return False
    return True


# ------------------------------------------------------------------- extract

PARTS = ("bootable", "manufacturer-image", "ota")


def extract(data: bytes, part: str = "bootable") -> bytes:
    """One part of a firmware file:
    ota: the OTA file itself, a vendor wrapper before its magic and bytes after it dropped;
    manufacturer-image: its GBCS Manufacturer Image, or a plain ZigBee file's Upgrade Image
    sub-element (tag 0x0000);
    bootable: the MCUboot image inside (the Manufacturer Image, checked; a bare MCUboot
    image gives itself, trimmed to its TLV area)."""
    if part not in PARTS:
        raise BridgeEmuError(f"part {part!r}: want one of {', '.join(PARTS)}")
    if is_mcuboot(data):
        if part != "bootable":
            raise BridgeEmuError(f"a bare MCUboot image has no {part}; only the bootable image")
        return data[:mcuboot.parse_image(data).total_size]
    insp = ota.read_tolerant(data)
    file_bytes = data[insp.start:len(data) - len(insp.trailing)]
    if part == "ota":
        return file_bytes
    body = insp.file.body
    if isinstance(body, ota.GbcsBody):
        image = body.manufacturer_image
    else:
        found = body.find(ota.TAG_UPGRADE_IMAGE)
        if len(found) != 1:
            raise BridgeEmuError(f"the file has {len(found)} Upgrade Image sub-elements (tag 0x0000), "
                                 "not one: nothing unambiguous to extract")
        image = found[0].data
    if part == "manufacturer-image":
        return bytes(image)
    try:
        return bytes(image[:mcuboot.parse_image(image).total_size])
    except ImageFormatError as e:
        raise BridgeEmuError(f"the manufacturer image is not an MCUboot image ({e}); "
                             "--part manufacturer-image gives it as it is") from None


# ------------------------------------------------------------------- verify


@dataclass
class Verdict:
    valid: bool
    reasons: list[str]              # every reason the file is refused
    checks: dict                    # what was checked and how it went


def verify(data: bytes, *, supplier_key=None, manufacturer_key=None, hw_version: int | None = None) -> Verdict:
    """What a device checks on download completion, in C, plus the strict
    reading of the file: every reason it fails, not just the first.

    A GBCS upgrade image is checked against the supplier's key (it must be
    given); a plain ZigBee OTA file, such as a vendor's, by its AES-MMO image
    integrity code (tag 0x0003), which needs no key."""
    reasons: list[str] = []
    checks: dict = {}
    insp = ota.read_tolerant(data)
    h = insp.file.header
    if not isinstance(insp.file.body, ota.GbcsBody):
        return _verify_generic(data, insp, hw_version)
    if supplier_key is None:
        raise BridgeEmuError("a GBCS upgrade image: checking its supplier signature needs "
                             "--supplier-cert or --supplier-key")
    try:
        ota.read_strict(data, ota.BodyKind.GBCS)
        checks["format"] = "ok"
    except ota.OtaFileError as e:
        reasons.append(f"format: {e}")
        checks["format"] = str(e)
    # the device's expectations are the file's own identity; a hardware
    # version, if given, is checked against the file's range
    hw = hw_version if hw_version is not None else (h.min_hardware_version or 0)
    flash = flash_holding(data[insp.start:])
    try:
        r = verify_ota_in_flash(flash, 0, len(data) - insp.start, manufacturer=h.manufacturer,
                                image_type=h.image_type, hw_version=hw, body="gbcs",
                                supplier_key=supplier_key)
        checks["supplier_signature"] = "ok"
        checks["manufacturer_image_hash"] = r.manufacturer_image_hash.hex()
        image_at, image_len = r.image_offset, r.image_length
    except ImageError as e:
        reasons.append(f"supplier: {e}")
        checks["supplier_signature"] = e.name
        image_at = image_len = None
        if isinstance(insp.file.body, ota.GbcsBody):
            span = insp.file.layout().manufacturer_image
            image_at, image_len = span.offset, span.length
    if manufacturer_key is not None and image_at is not None:
        try:
            validate_image(flash, image_at, image_len, [manufacturer_key])
            checks["manufacturer_signature"] = "ok"
        except ImageError as e:
            reasons.append(f"manufacturer: {e}")
            checks["manufacturer_signature"] = e.name
    return Verdict(not reasons, reasons, checks)


def _verify_generic(data: bytes, insp, hw_version: int | None) -> Verdict:
    reasons: list[str] = []
    checks: dict = {"body": "generic"}
    try:
        ota.read_strict(data, ota.BodyKind.GENERIC)
        checks["format"] = "ok"
    except ota.OtaFileError as e:
        reasons.append(f"format: {e}")
        checks["format"] = str(e)
    h = insp.file.header
    file_bytes = data[insp.start:]
    hw = hw_version if hw_version is not None else (h.min_hardware_version or 0)
    try:
        r = verify_ota_in_flash(flash_holding(file_bytes), 0, len(file_bytes), manufacturer=h.manufacturer,
                                image_type=h.image_type, hw_version=hw, body="generic")
        checks["integrity"] = r.integrity
        if r.integrity == "none":
            checks["integrity_code"] = None     # nothing to check: valid as far as a device can tell
        else:
            checks["integrity_code"] = r.integrity_code.hex()
            checks["integrity_offset"] = r.integrity_offset
    except ImageError as e:
        reasons.append(f"{'integrity' if e.name == 'BE_ERR_OTA_INTEGRITY' else 'body'}: {e}")
        checks["integrity"] = e.name
    return Verdict(not reasons, reasons, checks)
