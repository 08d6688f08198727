"""ZigBee OTA upgrade files (ZCL OTA cluster) and their GB smart-metering (GBCS) form.

A file is header ‖ body, all integers little-endian (layout in
docs/zigbee-ota.md):

    header: magic 0x0BEEF11E, header_version 0x0100, header_length,
            field_control, manufacturer, image_type, file_version,
            stack_version, header_string (32 bytes), total_image_size,
            then the optional fields field_control selects, in this order:
            0x1 security_credential_version u8, 0x2 upgrade_file_destination
            (EUI64), 0x4 min_hardware_version u16, max_hardware_version u16.
    body:   GENERIC        sub-elements {tag u16, length u32, data}
            GBCS           manufacturer image ‖ force_replace u8 ‖ 0x40
                           ‖ 64-byte ECDSA P-256 r‖s over the manufacturer image
                           (GBCS 11.2.2-11.2.4, the SR 11.1 route)
            GBCS_UNSIGNED  manufacturer image only (the SR 11.4 PPMID route)

The file does not say which body it carries, so a reader is told (BodyKind), or
for the tolerant reader guesses with BodyKind.AUTO:
    1. GENERIC if the body reads as a chain of sub-elements ending exactly at
       total_image_size (a truncated file may end inside the chain);
    2. else GBCS if the body holds at least one byte, then 66 more whose second
       (65th from the end of the image) is 0x40;
    3. else GBCS_UNSIGNED (the body as one opaque image).
A GBCS manufacturer image that happens to be a valid sub-element chain, or an
unsigned one with 0x40 65 bytes from its end, is misread by this rule: devices
and tools that know the route should say so.

Two readers share one set of checks (`_Reader`):
    read_strict   what an emulated bridge uses: the first off-spec finding
                  raises OtaFileError(offset, reason, kind);
    read_tolerant for files from the wild: records every finding as an Anomaly
                  and reads on; raises only when no header can be read.
Some findings are notes, not faults (a 32-character header string with no NUL,
a reserved sub-element tag, which ZCL clients skip): the strict reader accepts them.

build() writes exactly what the dataclasses hold (declared lengths included),
so build(read(b)) == b for every file either reader accepts, and the tolerant
reader's result rebuilds the bytes it read (without any wrapper or trailing
bytes). Offsets in OtaLayout are from the file's first byte (the magic);
offsets in errors and anomalies are into the reader's input.
"""
from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from construct import Bytes, Const, ConstructError, If, Int8ul, Int16ul, Int32ul, Int64ul, Struct, this

from bridge_emu.errors import BridgeEmuError

OTA_MAGIC = 0x0BEEF11E
HEADER_VERSION = 0x0100
STACK_ZIGBEE_PRO = 0x0002
HEADER_STRING_SIZE = 32

FC_SECURITY_CREDENTIAL_VERSION = 0x0001
FC_DEVICE_SPECIFIC_FILE = 0x0002
FC_HARDWARE_VERSIONS = 0x0004
FC_KNOWN = 0x0007

TAG_UPGRADE_IMAGE = 0x0000
TAG_ECDSA_SIGNATURE_SUITE1 = 0x0001
TAG_ECDSA_CERTIFICATE_SUITE1 = 0x0002
TAG_IMAGE_INTEGRITY_CODE = 0x0003
TAG_PICTURE_DATA = 0x0004
TAG_ECDSA_SIGNATURE_SUITE2 = 0x0005
TAG_ECDSA_CERTIFICATE_SUITE2 = 0x0006
TAG_MANUFACTURER_FIRST = 0xF000     # 0xF000-0xFFFF: manufacturer specific

GBCS_FIELD_CONTROL = FC_HARDWARE_VERSIONS
GBCS_SIGNATURE_MARKER = 0x40
GBCS_SIGNATURE_SIZE = 64

# ------------------------------------------------------------ wire formats

OTA_FIXED_HEADER = Struct(
    "magic" / Const(OTA_MAGIC, Int32ul),
    "header_version" / Int16ul,
    "header_length" / Int16ul,
    "field_control" / Int16ul,
    "manufacturer" / Int16ul,
    "image_type" / Int16ul,
    "file_version" / Int32ul,
    "stack_version" / Int16ul,
    "header_string" / Bytes(HEADER_STRING_SIZE),
    "total_image_size" / Int32ul,
)
# The optional header fields in wire order: (name, field_control bit, format).
OPTIONAL_FIELDS = (
    ("security_credential_version", FC_SECURITY_CREDENTIAL_VERSION, Int8ul),
    ("upgrade_file_destination", FC_DEVICE_SPECIFIC_FILE, Int64ul),
    ("min_hardware_version", FC_HARDWARE_VERSIONS, Int16ul),
    ("max_hardware_version", FC_HARDWARE_VERSIONS, Int16ul),
)
OTA_HEADER = Struct(*OTA_FIXED_HEADER.subcons,
                    *(name / If(this.field_control & bit, fmt)
                      for name, bit, fmt in OPTIONAL_FIELDS))
SUB_ELEMENT_HEADER = Struct("tag" / Int16ul, "length" / Int32ul)
GBCS_TRAILER = Struct(
    "force_replace" / Int8ul,
    "signature_marker" / Int8ul,
    "signature" / Bytes(GBCS_SIGNATURE_SIZE),   # r ‖ s, 32 bytes each, big-endian
)

FIXED_HEADER_SIZE = OTA_FIXED_HEADER.sizeof()          # 56
SUB_ELEMENT_HEADER_SIZE = SUB_ELEMENT_HEADER.sizeof()  # 6
GBCS_TRAILER_SIZE = GBCS_TRAILER.sizeof()              # 66


def _offsets(fmt: Struct) -> dict[str, tuple[int, int]]:
    out, pos = {}, 0
    for sub in fmt.subcons:
        out[sub.name] = (pos, sub.sizeof())
        pos += sub.sizeof()
    return out


FIXED_FIELDS = _offsets(OTA_FIXED_HEADER)           # name -> (offset, size)
_TRAILER_FIELDS = _offsets(GBCS_TRAILER)


def fixed_field(prefix: bytes, name: str) -> int:
    """One field of the fixed header read from a file's first bytes (enough of
    them to hold it), without parsing the rest: what a client needs while the
    header is still arriving block by block."""
    offset, size = FIXED_FIELDS[name]
    return int.from_bytes(prefix[offset:offset + size], "little")


def header_size(field_control: int) -> int:
    """Bytes of header the fields selected by field_control take (56 bare, 60 with hw versions)."""
    return FIXED_HEADER_SIZE + sum(fmt.sizeof() for _, bit, fmt in OPTIONAL_FIELDS
                                   if field_control & bit)


def is_defined_tag(tag: int) -> bool:
    """A tag ZCL defines (0x0000-0x0006) or leaves to manufacturers (0xF000-0xFFFF)."""
    return tag <= TAG_ECDSA_CERTIFICATE_SUITE2 or tag >= TAG_MANUFACTURER_FIRST


# ------------------------------------------------------------------ errors

#: What the readers report, by kind. Notes (legal, accepted by the strict
#: reader) are marked; everything else is off-spec.
ANOMALY_KINDS = {
    "prefix": "bytes before the magic (a vendor wrapper: IKEA, Legrand length prefix)",
    "header_version": "header_version is not 0x0100",
    "field_control_reserved": "field_control sets bits ZCL reserves",
    "header_string_not_ascii": "a header string byte before its NUL is not printable ASCII",
    "header_string_unterminated": "note: a 32-character header string, no NUL",
    "header_string_padding": "a non-NUL byte after the header string's NUL",
    "hardware_versions_inverted": "min hardware version above max",
    "header_length_mismatch": "header_length differs from the fields field_control selects",
    "total_size_mismatch": "total_image_size is smaller than the header",
    "truncated": "the data ends before total_image_size",
    "trailing_data": "bytes after total_image_size",
    "sub_element_partial_header": "bytes too few for a sub-element header at the body's end",
    "unknown_tag": "note: a reserved sub-element tag (0x0007-0xEFFF), kept as it is",
    "sub_element_overrun": "a sub-element's length runs past total_image_size",
    "gbcs_header": "a GBCS file without field_control 0x0004 or stack_version 0x0002",
    "gbcs_empty_image": "a GBCS body with no manufacturer image",
    "gbcs_trailer_missing": "a signed GBCS body too short (or cut) for its 66-byte trailer",
    "gbcs_force_replace": "force_replace is neither 0 nor 1",
    "gbcs_marker": "the byte before the GBCS signature is not 0x40",
}
#: Kinds only OtaFileError carries: nothing readable, or refused on purpose.
ERROR_KINDS = {
    "magic": "no OTA magic (strict: not at offset 0)",
    "header_truncated": "the data ends inside the header",
    "gbcs_signature": "strict reader with verify_with: the supplier signature does not verify",
    "build": "the fields given cannot be encoded",
}



class OtaFileError(BridgeEmuError):
    """An OTA file is malformed, or a file cannot be built from the given fields.

    `offset` is where in the reader's input the fault is (None when building),
    `reason` says what is wrong, `kind` names the check (the Anomaly kinds).
    """

    def __init__(self, offset: int | None, reason: str, kind: str = "malformed"):
        self.offset = offset
        self.reason = reason
        self.kind = kind
        where = "building" if offset is None else f"offset {offset} ({offset:#x})"
        super().__init__(f"OTA file, {where}: {reason} [{kind}]")


# ------------------------------------------------------------ data classes


@dataclass(frozen=True)
class OtaHeader:
    """The OTA header. Optional fields are None when absent.

    field_control, header_length and total_image_size None mean "work it out
    when building": field_control from which optional fields are set, the
    lengths from what is present. The readers always fill them in with what the
    file says, so an off-spec file read tolerantly rebuilds as it was.
    """
    manufacturer: int
    image_type: int
    file_version: int
    stack_version: int = STACK_ZIGBEE_PRO
    header_string: bytes = bytes(HEADER_STRING_SIZE)   # str is ASCII-encoded; NUL-padded to 32
    security_credential_version: int | None = None
    upgrade_file_destination: int | None = None        # EUI64 as an integer (u64 on the wire)
    min_hardware_version: int | None = None
    max_hardware_version: int | None = None
    field_control: int | None = None
    header_length: int | None = None
    total_image_size: int | None = None
    header_version: int = HEADER_VERSION
    extra: bytes = b""      # header bytes past the known fields (tolerant reader only)

    def __post_init__(self) -> None:
        text = self.header_string
        if isinstance(text, str):
            try:
                text = text.encode("ascii")
            except UnicodeEncodeError:
                raise OtaFileError(None, f"header string {self.header_string!r} is not ASCII",
                                   "build") from None
        text = bytes(text)
        if len(text) > HEADER_STRING_SIZE:
            raise OtaFileError(None, f"header string of {len(text)} bytes exceeds "
                                     f"{HEADER_STRING_SIZE}", "build")
        object.__setattr__(self, "header_string", text.ljust(HEADER_STRING_SIZE, b"\0"))
        object.__setattr__(self, "extra", bytes(self.extra))

    @property
    def text(self) -> str:
        """The header string up to its first NUL, non-ASCII bytes escaped."""
        return self.header_string.split(b"\0", 1)[0].decode("ascii", "backslashreplace")

    def effective_field_control(self) -> int:
        """The field_control to write; raises OtaFileError if it disagrees with the fields set."""
        derived = 0
        for name, bit, _ in OPTIONAL_FIELDS:
            if getattr(self, name) is not None:
                derived |= bit
        fc = derived if self.field_control is None else self.field_control
        for name, bit, _ in OPTIONAL_FIELDS:
            present = getattr(self, name) is not None
            if bool(fc & bit) != present:
                raise OtaFileError(None, f"{name} is {'set' if present else 'missing'} but "
                                         f"field_control {fc:#06x} bit {bit:#x} is "
                                         f"{'clear' if present else 'set'}", "build")
        return fc

    def build(self, body_size: int) -> bytes:
        """The header bytes, for a body of body_size bytes."""
        fc = self.effective_field_control()
        size = header_size(fc) + len(self.extra)
        values = {name: getattr(self, name) for name in FIXED_FIELDS if name != "magic"}
        values.update({name: getattr(self, name) for name, _, _ in OPTIONAL_FIELDS})
        values.update(
            field_control=fc,
            header_length=size if self.header_length is None else self.header_length,
            total_image_size=(size + body_size if self.total_image_size is None
                              else self.total_image_size))
        return _build(OTA_HEADER, values, "header") + self.extra


@dataclass(frozen=True)
class SubElement:
    """One sub-element of a generic body. `length` None means len(data); the
    readers set it to what the file declares (which differs from len(data) only
    in a truncated or overrunning file read tolerantly)."""
    tag: int
    data: bytes
    length: int | None = None

    def build(self) -> bytes:
        length = len(self.data) if self.length is None else self.length
        return _build(SUB_ELEMENT_HEADER, dict(tag=self.tag, length=length),
                      "sub-element header") + bytes(self.data)


@dataclass(frozen=True)
class GenericBody:
    """A ZCL body: sub-elements in file order, unknown and vendor tags kept as they are."""
    elements: tuple[SubElement, ...] = ()
    tail: bytes = b""       # bytes too few for a sub-element header (tolerant reader only)

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", tuple(self.elements))

    def build(self) -> bytes:
        return b"".join(e.build() for e in self.elements) + bytes(self.tail)

    def find(self, tag: int) -> list[SubElement]:
        return [e for e in self.elements if e.tag == tag]


@dataclass(frozen=True)
class GbcsBody:
    """A GBCS upgrade image. signature None is the unsigned SR 11.4 (PPMID) form,
    which has no trailer (force_replace and signature_marker then mean nothing)."""
    manufacturer_image: bytes
    signature: bytes | None = None      # raw r ‖ s, 64 bytes
    force_replace: int = 0              # read by the Communications Hub only
    signature_marker: int = GBCS_SIGNATURE_MARKER

    @property
    def signed(self) -> bool:
        return self.signature is not None

    def build(self) -> bytes:
        image = bytes(self.manufacturer_image)
        if self.signature is None:
            return image
        if len(self.signature) != GBCS_SIGNATURE_SIZE:
            raise OtaFileError(None, f"GBCS signature of {len(self.signature)} bytes, "
                                     f"want {GBCS_SIGNATURE_SIZE}", "build")
        return image + _build(GBCS_TRAILER, dict(force_replace=self.force_replace,
                                                 signature_marker=self.signature_marker,
                                                 signature=bytes(self.signature)),
                              "GBCS trailer")


Body = GenericBody | GbcsBody


class BodyKind(enum.Enum):
    GENERIC = "generic"
    GBCS = "gbcs"
    GBCS_UNSIGNED = "gbcs-unsigned"
    AUTO = "auto"           # tolerant reader only: the rule in the module docstring


@dataclass(frozen=True)
class Span:
    offset: int
    length: int

    @property
    def end(self) -> int:
        return self.offset + self.length

    def of(self, data: bytes) -> bytes:
        return bytes(data[self.offset:self.end])


@dataclass(frozen=True)
class ElementSpan:
    tag: int
    header: Span            # tag + length
    data: Span


@dataclass(frozen=True)
class OtaLayout:
    """Where every part of a file is, from its first byte (the magic)."""
    header: Span
    fields: dict[str, Span]             # every header field present, by name ("extra" if any)
    body: Span
    elements: tuple[ElementSpan, ...] = ()      # generic body
    tail: Span | None = None
    manufacturer_image: Span | None = None      # GBCS body
    force_replace: Span | None = None
    signature_marker: Span | None = None
    signature: Span | None = None


@dataclass(frozen=True)
class OtaFile:
    header: OtaHeader
    body: Body

    @property
    def body_kind(self) -> BodyKind:
        if isinstance(self.body, GenericBody):
            return BodyKind.GENERIC
        return BodyKind.GBCS if self.body.signed else BodyKind.GBCS_UNSIGNED

    def build(self) -> bytes:
        body = self.body.build()
        return self.header.build(len(body)) + body

    def layout(self) -> OtaLayout:
        fields, pos = {}, 0
        for name, (offset, size) in FIXED_FIELDS.items():
            fields[name] = Span(offset, size)
            pos = offset + size
        fc = self.header.effective_field_control()
        for name, bit, fmt in OPTIONAL_FIELDS:
            if fc & bit:
                fields[name] = Span(pos, fmt.sizeof())
                pos += fmt.sizeof()
        if self.header.extra:
            fields["extra"] = Span(pos, len(self.header.extra))
            pos += len(self.header.extra)
        header = Span(0, pos)
        body = self.body
        if isinstance(body, GenericBody):
            elements = []
            for e in body.elements:
                elements.append(ElementSpan(e.tag, Span(pos, SUB_ELEMENT_HEADER_SIZE),
                                            Span(pos + SUB_ELEMENT_HEADER_SIZE, len(e.data))))
                pos += SUB_ELEMENT_HEADER_SIZE + len(e.data)
            tail = Span(pos, len(body.tail)) if body.tail else None
            return OtaLayout(header, fields, Span(header.end, pos + len(body.tail) - header.end),
                             elements=tuple(elements), tail=tail)
        image = Span(pos, len(body.manufacturer_image))
        if not body.signed:
            return OtaLayout(header, fields, image, manufacturer_image=image)
        trailer = {name: Span(image.end + off, size)
                   for name, (off, size) in _TRAILER_FIELDS.items()}
        return OtaLayout(header, fields, Span(pos, image.length + GBCS_TRAILER_SIZE),
                         manufacturer_image=image, **trailer)


@dataclass(frozen=True)
class Anomaly:
    """One finding of the tolerant reader. off_spec False marks a note: legal,
    but worth telling (the strict reader accepts it)."""
    kind: str
    offset: int             # into the reader's input
    message: str
    off_spec: bool = True


@dataclass(frozen=True)
class Inspection:
    """What the tolerant reader found. file.layout() offsets + start = input offsets."""
    file: OtaFile
    anomalies: tuple[Anomaly, ...]
    start: int              # input offset of the magic
    prefix: bytes           # input bytes before the magic (a vendor wrapper)
    trailing: bytes         # input bytes after the file

    @property
    def body_kind(self) -> BodyKind:
        return self.file.body_kind

    @property
    def off_spec(self) -> bool:
        """True if the strict reader would refuse the file (for this body kind)."""
        return any(a.off_spec for a in self.anomalies)

    @property
    def kinds(self) -> list[str]:
        return [a.kind for a in self.anomalies]


def _build(fmt: Struct, values: dict, what: str) -> bytes:
    try:
        return fmt.build(values)
    except ConstructError as e:
        raise OtaFileError(None, f"cannot encode the {what}: {e}".replace("\n", " "),
                           "build") from None


# ------------------------------------------------------------------ readers

_MAGIC_BYTES = OTA_MAGIC.to_bytes(4, "little")
_HEADER_VERSION_BYTES = HEADER_VERSION.to_bytes(2, "little")


class _Reader:
    """The checks both readers make. Strict: the first off-spec finding raises.
    Tolerant: findings are recorded and reading goes on. Either way, a file with
    no readable header raises."""

    def __init__(self, data: bytes, strict: bool):
        self.data = data
        self.strict = strict
        self.anomalies: list[Anomaly] = []

    def finding(self, kind: str, offset: int, message: str, off_spec: bool = True) -> None:
        assert kind in ANOMALY_KINDS, kind
        if self.strict:
            if off_spec:
                raise OtaFileError(offset, message, kind)
            return
        self.anomalies.append(Anomaly(kind, offset, message, off_spec))

    # -- header

    def find_magic(self) -> int:
        data = self.data
        if self.strict:
            if data[:4] != _MAGIC_BYTES:
                found = data[:4].hex() or "nothing"
                raise OtaFileError(0, f"file starts with {found}, not the OTA magic 1ef1ee0b",
                                   "magic")
            return 0
        first = data.find(_MAGIC_BYTES)
        if first < 0:
            raise OtaFileError(0, "no OTA magic 0x0BEEF11E anywhere in the data", "magic")
        # A wrapper may hold the magic's bytes by chance: prefer the first
        # occurrence that the header version follows.
        start, pos = first, first
        while pos >= 0:
            if data[pos + 4:pos + 6] == _HEADER_VERSION_BYTES:
                start = pos
                break
            pos = data.find(_MAGIC_BYTES, pos + 1)
        if start:
            hint = ""
            if data.startswith(b"NGIS"):
                hint = " (an IKEA wrapper)"
            elif start == 4:
                hint = " (a 4-byte length prefix, as Legrand files have)"
            self.finding("prefix", 0, f"{start} bytes before the OTA magic{hint}")
        return start

    def check_header_string(self, text: bytes, offset: int) -> None:
        nul = text.find(0)
        content = text if nul < 0 else text[:nul]
        for i, b in enumerate(content):
            if not 0x20 <= b <= 0x7E:
                self.finding("header_string_not_ascii", offset + i,
                             f"header string byte {b:#04x} at position {i} is not printable ASCII")
                break
        if nul < 0:
            self.finding("header_string_unterminated", offset,
                         "header string fills all 32 bytes with no NUL (allowed: the field is "
                         "fixed-size)", off_spec=False)
        else:
            junk = next((i for i in range(nul, len(text)) if text[i]), None)
            if junk is not None:
                self.finding("header_string_padding", offset + junk,
                             f"header string byte {text[junk]:#04x} after its NUL terminator")

    def read(self, kind: BodyKind) -> tuple[OtaFile, int, int]:
        """The file, the input offset of its magic and the input offset where it ends."""
        data = self.data
        start = self.find_magic()
        at = {name: start + off for name, (off, _) in FIXED_FIELDS.items()}
        if len(data) - start < FIXED_HEADER_SIZE:
            raise OtaFileError(len(data), f"file ends {len(data) - start} bytes into the "
                                          f"{FIXED_HEADER_SIZE}-byte header", "header_truncated")
        fixed = OTA_FIXED_HEADER.parse(data[start:start + FIXED_HEADER_SIZE])
        fc = fixed.field_control
        if fixed.header_version != HEADER_VERSION:
            self.finding("header_version", at["header_version"],
                         f"header_version {fixed.header_version:#06x}, want {HEADER_VERSION:#06x}")
        if fc & ~FC_KNOWN:
            self.finding("field_control_reserved", at["field_control"],
                         f"field_control {fc:#06x} sets reserved bits {fc & ~FC_KNOWN:#06x}")
        fields_size = header_size(fc)
        if len(data) - start < fields_size:
            raise OtaFileError(len(data), f"file ends {len(data) - start} bytes into the "
                                          f"{fields_size}-byte header field_control {fc:#06x} "
                                          f"selects", "header_truncated")
        hdr = OTA_HEADER.parse(data[start:start + fields_size])
        self.check_header_string(fixed.header_string, at["header_string"])
        if fc & FC_HARDWARE_VERSIONS and hdr.min_hardware_version > hdr.max_hardware_version:
            self.finding("hardware_versions_inverted", start + header_size(fc) - 4,
                         f"min hardware version {hdr.min_hardware_version:#06x} above max "
                         f"{hdr.max_hardware_version:#06x}")

        fields_end = start + fields_size
        declared_end = start + fixed.total_image_size
        body_start = fields_end
        if fixed.header_length != fields_size:
            self.finding("header_length_mismatch", at["header_length"],
                         f"header_length {fixed.header_length}, but the fields field_control "
                         f"{fc:#06x} selects take {fields_size} bytes")
            # Longer: keep the unknown bytes as header, if the file holds them.
            limit = min(len(data), declared_end) if declared_end >= fields_end else len(data)
            if fields_size < fixed.header_length <= limit - start:
                body_start = start + fixed.header_length

        if declared_end < body_start:
            self.finding("total_size_mismatch", at["total_image_size"],
                         f"total_image_size {fixed.total_image_size} is less than the "
                         f"{body_start - start}-byte header")
            body_end = image_end = len(data)
        else:
            body_end = declared_end     # where the body should end
            image_end = min(declared_end, len(data))
            if declared_end > len(data):
                self.finding("truncated", len(data),
                             f"file ends after {len(data) - start} bytes; total_image_size "
                             f"says {fixed.total_image_size}")
            elif declared_end < len(data):
                self.finding("trailing_data", declared_end,
                             f"{len(data) - declared_end} bytes after total_image_size "
                             f"{fixed.total_image_size}")

        if kind is BodyKind.AUTO:
            kind = self.guess_kind(body_start, body_end, image_end)
        if kind is BodyKind.GENERIC:
            body = self.read_generic(body_start, body_end, image_end)
        else:
            if fc != GBCS_FIELD_CONTROL:
                self.finding("gbcs_header", at["field_control"],
                             f"GBCS files have field_control {GBCS_FIELD_CONTROL:#06x} "
                             f"(hardware versions), found {fc:#06x}")
            if fixed.stack_version != STACK_ZIGBEE_PRO:
                self.finding("gbcs_header", at["stack_version"],
                             f"GBCS files have stack_version {STACK_ZIGBEE_PRO:#06x}, found "
                             f"{fixed.stack_version:#06x}")
            body = self.read_gbcs(body_start, body_end, image_end, kind is BodyKind.GBCS)

        header = OtaHeader(
            manufacturer=fixed.manufacturer, image_type=fixed.image_type,
            file_version=fixed.file_version, stack_version=fixed.stack_version,
            header_string=fixed.header_string,
            **{name: hdr[name] for name, _, _ in OPTIONAL_FIELDS},
            field_control=fc, header_length=fixed.header_length,
            total_image_size=fixed.total_image_size, header_version=fixed.header_version,
            extra=data[fields_end:body_start])
        return OtaFile(header, body), start, image_end

    # -- bodies

    def guess_kind(self, body_start: int, body_end: int, image_end: int) -> BodyKind:
        if self.chain_fits(body_start, body_end, image_end):
            return BodyKind.GENERIC
        marker_at = body_end - GBCS_TRAILER_SIZE + 1
        if (body_end - body_start > GBCS_TRAILER_SIZE and image_end == body_end
                and self.data[marker_at] == GBCS_SIGNATURE_MARKER):
            return BodyKind.GBCS
        return BodyKind.GBCS_UNSIGNED

    def chain_fits(self, body_start: int, body_end: int, image_end: int) -> bool:
        """Whether the body reads as sub-elements ending exactly at body_end (or
        at the end of a truncated file, as far as it goes)."""
        pos = body_start
        while pos < body_end:
            if pos + SUB_ELEMENT_HEADER_SIZE > image_end:
                return image_end < body_end
            h = SUB_ELEMENT_HEADER.parse(self.data[pos:pos + SUB_ELEMENT_HEADER_SIZE])
            pos += SUB_ELEMENT_HEADER_SIZE + h.length
        return pos == body_end

    def read_generic(self, body_start: int, body_end: int, image_end: int) -> GenericBody:
        data, pos = self.data, body_start
        elements: list[SubElement] = []
        tail = b""
        while pos < image_end:
            if image_end - pos < SUB_ELEMENT_HEADER_SIZE:
                self.finding("sub_element_partial_header", pos,
                             f"{image_end - pos} bytes left, too few for a "
                             f"{SUB_ELEMENT_HEADER_SIZE}-byte sub-element header")
                tail = data[pos:image_end]
                break
            h = SUB_ELEMENT_HEADER.parse(data[pos:pos + SUB_ELEMENT_HEADER_SIZE])
            if not is_defined_tag(h.tag):
                self.finding("unknown_tag", pos, f"sub-element tag {h.tag:#06x} is reserved "
                                                 "(kept as it is)", off_spec=False)
            data_start = pos + SUB_ELEMENT_HEADER_SIZE
            if data_start + h.length > body_end:
                self.finding("sub_element_overrun", pos,
                             f"sub-element {h.tag:#06x} declares {h.length} bytes, "
                             f"{body_end - data_start} are left in the image")
            stop = min(data_start + h.length, image_end)
            elements.append(SubElement(h.tag, data[data_start:stop], h.length))
            pos = stop
        return GenericBody(tuple(elements), tail)

    def read_gbcs(self, body_start: int, body_end: int, image_end: int,
                  signed: bool) -> GbcsBody:
        data = self.data
        size = body_end - body_start
        if not signed:
            if size == 0:
                self.finding("gbcs_empty_image", body_start, "no manufacturer image")
            return GbcsBody(data[body_start:image_end])
        if size < GBCS_TRAILER_SIZE:
            self.finding("gbcs_trailer_missing", body_start,
                         f"a {size}-byte body cannot hold the {GBCS_TRAILER_SIZE}-byte signature "
                         "trailer (force_replace, 0x40, signature); read as unsigned")
            return GbcsBody(data[body_start:image_end])
        trailer_at = body_end - GBCS_TRAILER_SIZE
        if size == GBCS_TRAILER_SIZE:
            self.finding("gbcs_empty_image", body_start,
                         "no manufacturer image before the signature trailer")
        if image_end < body_end:
            self.finding("gbcs_trailer_missing", trailer_at,
                         f"the file ends before the signature trailer at {trailer_at}; "
                         "read as unsigned")
            return GbcsBody(data[body_start:image_end])
        t = GBCS_TRAILER.parse(data[trailer_at:body_end])
        if t.force_replace not in (0, 1):
            self.finding("gbcs_force_replace", trailer_at,
                         f"force_replace {t.force_replace:#04x}, want 0 or 1")
        if t.signature_marker != GBCS_SIGNATURE_MARKER:
            self.finding("gbcs_marker", trailer_at + 1,
                         f"byte {t.signature_marker:#04x} before the signature, want "
                         f"{GBCS_SIGNATURE_MARKER:#04x}")
        return GbcsBody(data[body_start:trailer_at], t.signature, t.force_replace,
                        t.signature_marker)


def read_strict(data: bytes, body: BodyKind | str) -> OtaFile:
    """Read a file as an emulated bridge does: anything off-spec raises OtaFileError.

    body is the kind the device expects (not AUTO: a device knows its route).
    The supplier signature is checked by bridge_emu.tools.signing.read_signed
    (in Python) or by the device's C core.
    """
    kind = BodyKind(body)
    if kind is BodyKind.AUTO:
        raise ValueError("read_strict needs the body kind the device expects, not AUTO")
    ota, _, _ = _Reader(bytes(data), strict=True).read(kind)
    return ota


def read_tolerant(data: bytes, body: BodyKind | str = BodyKind.AUTO) -> Inspection:
    """Read a file from the wild: every finding becomes an Anomaly. Raises
    OtaFileError only with no magic anywhere or no complete header after it."""
    data = bytes(data)
    reader = _Reader(data, strict=False)
    ota, start, end = reader.read(BodyKind(body))
    return Inspection(ota, tuple(reader.anomalies), start, data[:start], data[end:])


# -------------------------------------------------------------------- GBCS

def manufacturer_image_hash(source: bytes | GbcsBody | OtaFile) -> bytes:
    """SHA-256 of the manufacturer image: what CS06 activation names and alert 0x8F72 reports."""
    if isinstance(source, OtaFile):
        source = source.body
    if isinstance(source, GenericBody):
        raise TypeError("a generic ZCL body has no GBCS manufacturer image")
    if isinstance(source, GbcsBody):
        source = source.manufacturer_image
    return hashlib.sha256(bytes(source)).digest()


def gbcs_file_name(ota: OtaFile) -> str:
    """MMMM-TTTT-VVVVVVVV-<hash>.zigbee: manufacturer, image type and file version in
    upper-case hex (as in ZCL's own example name), then the first 8 hex digits
    (lower case, as hexdigest) of the manufacturer image hash. gbcs-firmware.md
    names the pattern but not the hash's length; 8 digits tell images apart in
    a directory while the full hash stays in the file."""
    h = ota.header
    digest = manufacturer_image_hash(ota).hex()[:8]
    return f"{h.manufacturer:04X}-{h.image_type:04X}-{h.file_version:08X}-{digest}.zigbee"


