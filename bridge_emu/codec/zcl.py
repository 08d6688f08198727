"""ZCL frames of the OTA Upgrade cluster (0x0019), as real bytes.

A frame is a ZCL header and one command (layout in
docs/zigbee-ota.md; all integers little-endian):

    header: frame_control u8  bits 0-1 frame type (0 global, 1 cluster-specific),
                              bit 2 manufacturer-specific, bit 3 direction
                              (0 client->server, 1 server->client), bit 4 disable
                              default response, bits 5-7 reserved
            [manufacturer u16 when bit 2 is set], tsn u8, command_id u8
    payload: the command's fields (the construct layouts below).

API
    encode(frame) -> bytes                  a Frame to its bytes
    decode(data, direction) -> Frame        bytes to a Frame; direction is the way
                                            the frame travels as the caller expects
                                            it (Direction, 0/1), or None to trust
                                            the header's direction bit
    Frame(header, command), Frame.of(command, tsn, ...)   builds the header
    ZclHeader                               the header, frozen dataclass
    cluster commands (frozen dataclasses, field names from the reference):
        server->client ImageNotify, QueryNextImageResponse, ImageBlockResponse
                       (SUCCESS), ImageBlockWait (WAIT_FOR_DATA), ImageBlockAbort
                       (status only: ABORT or any other status), UpgradeEndResponse,
                       QueryDeviceSpecificFileResponse
        client->server QueryNextImageRequest, ImageBlockRequest, ImagePageRequest,
                       UpgradeEndRequest, QueryDeviceSpecificFileRequest
    global commands (either direction): ReadAttributes, ReadAttributesResponse
        (of ReadAttributeRecord), DefaultResponse; default_response_to(header, status)
    constants: OTA_CLUSTER_ID, FrameType, Direction, Status, OtaCommand,
        GlobalCommand, AttributeId, DataType, ATTRIBUTE_TYPES, ImageUpgradeStatus,
        UpgradeActivationPolicy, UpgradeTimeoutPolicy, wildcards.
    ZclError(BridgeEmuError)                everything decode or encode refuses.

Representation. EUI64s are integers (the u64 little-endian on the wire, as in
ota_file). Control fields are not stored: field_control and payload_type are
worked out from which optional fields are set (None = absent), and are
properties. Statuses decode to Status members when known, else plain ints;
any status byte is accepted where the layout allows one (what a status means
is the caller's business, not the framing's).

Strictness. decode raises ZclError (never anything else, for any bytes) on:
a short header or payload, reserved frame-control bits, frame types 2-3, a
direction bit other than the one expected, reserved field_control bits,
payload_type > 3, an octet-string length past the end or 0xFF (ZCL's invalid
octet string, which zigpy refuses too), trailing bytes, an unsupported data
type in a Read Attributes Response, and commands it does not know.
One leniency, as lenient servers have: Image Block Request with field_control
bit 1 (minimum block period) set but the 2 bytes absent decodes with
minimum_block_period None and period_missing True; encode writes that form
back, so an emulated client can also send it (zigpy neither reads nor writes it).

Unknown commands raise ZclError, not an UnknownCommand object: the one thing a
device can do with one is answer a Default Response, and ZclError carries what
that needs, like any malformed command: `header` (when the header was readable)
and `status` (UNSUP_CLUSTER_COMMAND, UNSUP_GENERAL_COMMAND,
UNSUP_MANUF_CLUSTER_COMMAND, UNSUP_MANUF_GENERAL_COMMAND or MALFORMED_COMMAND;
None when no answer is due: unreadable header, wrong direction).
A manufacturer-specific cluster-specific frame is such an unknown command: its
command id is in the manufacturer's space, not the OTA cluster's. Global
commands may be manufacturer-specific (their attributes are).

Round trips. encode builds only what decode accepts: decode(encode(f)) == f
for every frame encode accepts, and encode(decode(b)) == b for every b decode
accepts (nothing is normalised away). Values out of range, optional fields
that disagree with a status, and headers that disagree with their command
(command id, frame type, direction of a cluster command) raise ZclError
(kind "encode").

Speed. Each layout has one definition: the construct Structs below, used
as they are (the reference codec, `_decode_reference`/`_encode_reference`,
which also finds the offset of every fault), compiled for the other commands,
and, for the hot path (Image Block Request / Response, the three forms), read
by struct with formats derived from the same construct fields (`_fmt`). The
fast paths handle well-formed frames only and hand anything else to the
reference codec; tests/test_zcl.py checks with hypothesis that they agree,
byte for byte and error for error.
"""
from __future__ import annotations

import enum
import functools
import operator
import struct
from dataclasses import dataclass, fields
from typing import ClassVar

from construct import (
    BitsInteger,
    BitStruct,
    Const,
    ConstError,
    ConstructError,
    ExprValidator,
    Flag,
    FormatField,
    GreedyBytes,
    GreedyRange,
    If,
    IfThenElse,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    Optional,
    Prefixed,
    Renamed,
    Select,
    Struct,
    Switch,
    Tell,
    Terminated,
    TerminatedError,
    ValidationError,
    obj_,
    this,
)

from bridge_emu.errors import BridgeEmuError

OTA_CLUSTER_ID = 0x0019

WILDCARD_MANUFACTURER = 0xFFFF
WILDCARD_IMAGE_TYPE = 0xFFFF
WILDCARD_FILE_VERSION = 0xFFFFFFFF
UPGRADE_TIME_WAIT = 0xFFFFFFFF      # Upgrade End Response: wait for a later command


class FrameType(enum.IntEnum):
    GLOBAL = 0
    CLUSTER = 1


class Direction(enum.IntEnum):
    CLIENT_TO_SERVER = 0
    SERVER_TO_CLIENT = 1


class Status(enum.IntEnum):
    """ZCL status codes (the OTA ones and those a ZCL device answers with)."""
    SUCCESS = 0x00
    FAILURE = 0x01
    NOT_AUTHORIZED = 0x7E
    RESERVED_FIELD_NOT_ZERO = 0x7F
    MALFORMED_COMMAND = 0x80
    UNSUP_CLUSTER_COMMAND = 0x81
    UNSUP_GENERAL_COMMAND = 0x82
    UNSUP_MANUF_CLUSTER_COMMAND = 0x83
    UNSUP_MANUF_GENERAL_COMMAND = 0x84
    INVALID_FIELD = 0x85
    UNSUPPORTED_ATTRIBUTE = 0x86
    INVALID_VALUE = 0x87
    READ_ONLY = 0x88
    INSUFFICIENT_SPACE = 0x89
    NOT_FOUND = 0x8B
    INVALID_DATA_TYPE = 0x8D
    WRITE_ONLY = 0x8F
    TIMEOUT = 0x94
    ABORT = 0x95
    INVALID_IMAGE = 0x96
    WAIT_FOR_DATA = 0x97
    NO_IMAGE_AVAILABLE = 0x98
    REQUIRE_MORE_IMAGE = 0x99
    NOTIFICATION_PENDING = 0x9A
    HARDWARE_FAILURE = 0xC0
    SOFTWARE_FAILURE = 0xC1


class OtaCommand(enum.IntEnum):
    """Cluster-specific command ids of the OTA cluster (the direction tells 0x00 apart)."""
    IMAGE_NOTIFY = 0x00                         # server->client
    QUERY_NEXT_IMAGE_REQUEST = 0x01             # client->server
    QUERY_NEXT_IMAGE_RESPONSE = 0x02            # server->client
    IMAGE_BLOCK_REQUEST = 0x03                  # client->server
    IMAGE_PAGE_REQUEST = 0x04                   # client->server
    IMAGE_BLOCK_RESPONSE = 0x05                 # server->client
    UPGRADE_END_REQUEST = 0x06                  # client->server
    UPGRADE_END_RESPONSE = 0x07                 # server->client
    QUERY_DEVICE_SPECIFIC_FILE_REQUEST = 0x08   # client->server
    QUERY_DEVICE_SPECIFIC_FILE_RESPONSE = 0x09  # server->client


class GlobalCommand(enum.IntEnum):
    """The ZCL global (foundation) commands this codec reads and writes."""
    READ_ATTRIBUTES = 0x00
    READ_ATTRIBUTES_RESPONSE = 0x01
    DEFAULT_RESPONSE = 0x0B


class AttributeId(enum.IntEnum):
    """OTA client attributes (and the global ClusterRevision)."""
    UPGRADE_SERVER_ID = 0x0000
    FILE_OFFSET = 0x0001
    CURRENT_FILE_VERSION = 0x0002
    CURRENT_ZIGBEE_STACK_VERSION = 0x0003
    DOWNLOADED_FILE_VERSION = 0x0004
    DOWNLOADED_ZIGBEE_STACK_VERSION = 0x0005
    IMAGE_UPGRADE_STATUS = 0x0006
    MANUFACTURER_ID = 0x0007
    IMAGE_TYPE_ID = 0x0008
    MINIMUM_BLOCK_PERIOD = 0x0009
    IMAGE_STAMP = 0x000A
    UPGRADE_ACTIVATION_POLICY = 0x000B
    UPGRADE_TIMEOUT_POLICY = 0x000C
    CLUSTER_REVISION = 0xFFFD


class DataType(enum.IntEnum):
    """The ZCL data types this codec reads and writes in attribute records."""
    UINT8 = 0x20
    UINT16 = 0x21
    UINT32 = 0x23
    ENUM8 = 0x30
    EUI64 = 0xF0


#: The type each attribute has in the ZCL OTA chapter (and in zigpy): the three
#: enumerations are enum8 (0x30), not uint8.
ATTRIBUTE_TYPES: dict[AttributeId, DataType] = {
    AttributeId.UPGRADE_SERVER_ID: DataType.EUI64,
    AttributeId.FILE_OFFSET: DataType.UINT32,
    AttributeId.CURRENT_FILE_VERSION: DataType.UINT32,
    AttributeId.CURRENT_ZIGBEE_STACK_VERSION: DataType.UINT16,
    AttributeId.DOWNLOADED_FILE_VERSION: DataType.UINT32,
    AttributeId.DOWNLOADED_ZIGBEE_STACK_VERSION: DataType.UINT16,
    AttributeId.IMAGE_UPGRADE_STATUS: DataType.ENUM8,
    AttributeId.MANUFACTURER_ID: DataType.UINT16,
    AttributeId.IMAGE_TYPE_ID: DataType.UINT16,
    AttributeId.MINIMUM_BLOCK_PERIOD: DataType.UINT16,
    AttributeId.IMAGE_STAMP: DataType.UINT32,
    AttributeId.UPGRADE_ACTIVATION_POLICY: DataType.ENUM8,
    AttributeId.UPGRADE_TIMEOUT_POLICY: DataType.ENUM8,
    AttributeId.CLUSTER_REVISION: DataType.UINT16,
}


class ImageUpgradeStatus(enum.IntEnum):
    NORMAL = 0
    DOWNLOAD_IN_PROGRESS = 1
    DOWNLOAD_COMPLETE = 2
    WAITING_TO_UPGRADE = 3
    COUNT_DOWN = 4
    WAIT_FOR_MORE = 5
    WAITING_TO_UPGRADE_VIA_EXTERNAL_EVENT = 6


class UpgradeActivationPolicy(enum.IntEnum):
    SERVER_ALLOWED = 0
    OUT_OF_BAND_ONLY = 1


class UpgradeTimeoutPolicy(enum.IntEnum):
    APPLY_AFTER_TIMEOUT = 0
    DO_NOT_APPLY = 1


FC_MANUFACTURER_SPECIFIC = 0x04
FC_DIRECTION = 0x08
FC_DISABLE_DEFAULT_RESPONSE = 0x10

QUERY_FC_HARDWARE_VERSION = 0x01
BLOCK_FC_NODE_ADDR = 0x01
BLOCK_FC_MIN_BLOCK_PERIOD = 0x02
PAGE_FC_NODE_ADDR = 0x01

OCTET_STRING_INVALID = 0xFF
_SUCCESS = int(Status.SUCCESS)
_WAIT_FOR_DATA = int(Status.WAIT_FOR_DATA)

# ------------------------------------------------------------------ errors


class ZclError(BridgeEmuError):
    """A ZCL frame cannot be decoded, or a Frame cannot be encoded.

    offset: where in decode's input the fault is (None when encoding);
    reason: what is wrong, naming the command and field;
    kind:   "header" (unreadable header, reserved bits or frame type),
            "direction" (the direction bit is not the one expected),
            "unsupported" (a command this codec does not know),
            "malformed" (the payload does not fit its command), "encode";
    header: the ZclHeader when it was readable (decode), else None;
    status: the Status a device answers with in a Default Response
            (MALFORMED_COMMAND, UNSUP_*), None when no answer is due.
    """

    def __init__(self, offset: int | None, reason: str, kind: str = "malformed", *,
                 header: ZclHeader | None = None, status: Status | None = None):
        self.offset = offset
        self.reason = reason
        self.kind = kind
        self.header = header
        self.status = status
        where = "encoding" if offset is None else f"offset {offset} ({offset:#x})"
        super().__init__(f"ZCL frame, {where}: {reason} [{kind}]")


# ------------------------------------------------------------ wire formats


def _when(cond, *named):
    """The named fields, each present only when cond holds (docs kept)."""
    return [Renamed(If(cond, sc.subcon), newname=sc.name, newdocs=sc.docs) for sc in named]


OCTET_STRING = Prefixed(ExprValidator(Int8ul, obj_ != OCTET_STRING_INVALID), GreedyBytes)

ZCL_HEADER = Struct(
    "frame_control" / BitStruct(
        "reserved" / Const(0, BitsInteger(3)),
        "disable_default_response" / Flag,
        "direction" / BitsInteger(1),
        "manufacturer_specific" / Flag,
        "frame_type" / ExprValidator(BitsInteger(2), obj_ <= 1),
    ) * "bits 5-7 reserved (0); frame types 2 and 3 are reserved",
    "manufacturer" / If(this.frame_control.manufacturer_specific, Int16ul),
    "tsn" / Int8ul,
    "command_id" / Int8ul,
)

IMAGE_ID = ("manufacturer" / Int16ul, "image_type" / Int16ul, "file_version" / Int32ul)

IMAGE_NOTIFY = Struct(
    "payload_type" / ExprValidator(Int8ul, obj_ <= 3)
    * "0 jitter only, 1 +manufacturer, 2 +image_type, 3 +file_version; 4-255 reserved",
    "query_jitter" / Int8ul,
    "manufacturer" / If(this.payload_type >= 1, Int16ul),
    "image_type" / If(this.payload_type >= 2, Int16ul),
    "file_version" / If(this.payload_type >= 3, Int32ul),
    Terminated,
)

QUERY_NEXT_IMAGE_REQUEST = Struct(
    "field_control" / ExprValidator(Int8ul, (obj_ & ~QUERY_FC_HARDWARE_VERSION & 0xFF) == 0)
    * "bit 0 hardware version present; bits 1-7 reserved",
    "manufacturer" / Int16ul,
    "image_type" / Int16ul,
    "current_file_version" / Int32ul,
    "hardware_version" / If(this.field_control & QUERY_FC_HARDWARE_VERSION, Int16ul),
    Terminated,
)

# Query Next Image Response and Query Device Specific File Response
IMAGE_AVAILABLE_RESPONSE = Struct(
    "status" / Int8ul,
    *_when(this.status == _SUCCESS, *IMAGE_ID, "image_size" / Int32ul),
    Terminated,
)

IMAGE_BLOCK_REQUEST = Struct(
    "field_control" / ExprValidator(
        Int8ul, (obj_ & ~(BLOCK_FC_NODE_ADDR | BLOCK_FC_MIN_BLOCK_PERIOD) & 0xFF) == 0)
    * "bit 0 request node address present, bit 1 minimum block period present; "
      "bits 2-7 reserved",
    *IMAGE_ID,
    "file_offset" / Int32ul,
    "max_data_size" / Int8ul,
    "request_node_addr" / If(this.field_control & BLOCK_FC_NODE_ADDR, Int64ul),
    "minimum_block_period" / If(this.field_control & BLOCK_FC_MIN_BLOCK_PERIOD, Optional(Int16ul))
    * "lenient: bit 1 set with the 2 bytes absent reads as absent (period_missing)",
    Terminated,
)

IMAGE_PAGE_REQUEST = Struct(
    "field_control" / ExprValidator(Int8ul, (obj_ & ~PAGE_FC_NODE_ADDR & 0xFF) == 0)
    * "bit 0 request node address present; bits 1-7 reserved",
    *IMAGE_ID,
    "file_offset" / Int32ul,
    "max_data_size" / Int8ul,
    "page_size" / Int16ul,
    "response_spacing" / Int16ul,
    "request_node_addr" / If(this.field_control & PAGE_FC_NODE_ADDR, Int64ul),
    Terminated,
)

# One layout, three forms (three classes): SUCCESS, WAIT_FOR_DATA, any other status.
IMAGE_BLOCK_RESPONSE = Struct(
    "status" / Int8ul,
    *_when(this.status == _SUCCESS, *IMAGE_ID, "file_offset" / Int32ul,
           "data" / OCTET_STRING * "u8 length (0xFF is ZCL's invalid octet string) then the data"),
    *_when(this.status == _WAIT_FOR_DATA, "current_time" / Int32ul,
           "request_time" / Int32ul, "minimum_block_period" / Int16ul),
    Terminated,
)

UPGRADE_END_REQUEST = Struct("status" / Int8ul, *IMAGE_ID, Terminated)

UPGRADE_END_RESPONSE = Struct(*IMAGE_ID, "current_time" / Int32ul, "upgrade_time" / Int32ul,
                              Terminated)

QUERY_DEVICE_SPECIFIC_FILE_REQUEST = Struct(
    "request_node_addr" / Int64ul, *IMAGE_ID, "stack_version" / Int16ul, Terminated)

READ_ATTRIBUTES = Struct("attribute_ids" / GreedyRange(Int16ul), Terminated)

# (plain ints in construct expressions: compiled layouts spell constants with repr())
_VALUE_FORMATS = {int(DataType.UINT8): Int8ul, int(DataType.UINT16): Int16ul,
                  int(DataType.UINT32): Int32ul, int(DataType.ENUM8): Int8ul,
                  int(DataType.EUI64): Int64ul}
_KNOWN_TYPE = functools.reduce(operator.or_, [obj_ == t for t in _VALUE_FORMATS])

READ_ATTRIBUTE_RECORD = Struct(
    "attribute_id" / Int16ul,
    "status" / Int8ul,
    "data_type" / If(this.status == _SUCCESS, ExprValidator(Int8ul, _KNOWN_TYPE))
    * ("data types read: " + ", ".join(f"{t.name.lower()} {t.value:#04x}" for t in DataType)),
    "value" / If(this.status == _SUCCESS, Switch(this.data_type, _VALUE_FORMATS)),
)

READ_ATTRIBUTES_RESPONSE = Struct("records" / GreedyRange(READ_ATTRIBUTE_RECORD), Terminated)

DEFAULT_RESPONSE = Struct("command" / Int8ul, "status" / Int8ul, Terminated)


def _format_field(sc) -> FormatField:
    """The fixed-size integer a (wrapped) construct field reads."""
    while not isinstance(sc, FormatField):
        if isinstance(sc, Prefixed):
            sc = sc.lengthfield
        elif isinstance(sc, Select):        # Optional(x) is Select(x, Pass)
            sc = sc.subcons[0]
        elif isinstance(sc, IfThenElse):    # If(c, x) is IfThenElse(c, x, Pass)
            sc = sc.thensubcon
        elif hasattr(sc, "subcon"):         # Renamed, ExprValidator
            sc = sc.subcon
        else:
            raise TypeError(f"no struct format for {sc!r}")
    return sc


def _fmt(layout: Struct, *names: str) -> str:
    """struct format characters of the named fields of a layout, in the order
    given (an octet string gives its length byte): the fast paths read the
    construct definitions through this, so there is one description per layout."""
    by_name = {sc.name: sc for sc in layout.subcons}
    return "".join(_format_field(by_name[n]).fmtstr[1:] for n in names)


_HEADER_FMT = "B" + _fmt(ZCL_HEADER, "tsn", "command_id")     # frame_control is one byte
assert ZCL_HEADER.subcons[0].sizeof() == 1
_HEADER = struct.Struct("<" + _HEADER_FMT)
_HEADER_MANUF = struct.Struct("<B" + _fmt(ZCL_HEADER, "manufacturer", "tsn", "command_id"))
HEADER_SIZE = _HEADER.size                                    # 3, 5 with a manufacturer code

_BLOCK_REQ_FIXED = ("field_control", "manufacturer", "image_type", "file_version",
                    "file_offset", "max_data_size")
_BRQ = struct.Struct("<" + _fmt(IMAGE_BLOCK_REQUEST, *_BLOCK_REQ_FIXED))
_BRQ_FRAME = struct.Struct("<" + _HEADER_FMT + _fmt(IMAGE_BLOCK_REQUEST, *_BLOCK_REQ_FIXED))
_BRQ_ADDR = struct.Struct("<" + _fmt(IMAGE_BLOCK_REQUEST, "request_node_addr"))
_BRQ_PERIOD = struct.Struct("<" + _fmt(IMAGE_BLOCK_REQUEST, "minimum_block_period"))
_BRQ_BOTH = struct.Struct("<" + _fmt(IMAGE_BLOCK_REQUEST, "request_node_addr",
                                     "minimum_block_period"))

_BLOCK_RSP_SUCCESS = ("status", "manufacturer", "image_type", "file_version", "file_offset", "data")
_BLOCK_RSP_WAIT = ("status", "current_time", "request_time", "minimum_block_period")
_BRS = struct.Struct("<" + _fmt(IMAGE_BLOCK_RESPONSE, *_BLOCK_RSP_SUCCESS[1:]))
_BRS_FRAME = struct.Struct("<" + _HEADER_FMT + _fmt(IMAGE_BLOCK_RESPONSE, *_BLOCK_RSP_SUCCESS))
_BRW = struct.Struct("<" + _fmt(IMAGE_BLOCK_RESPONSE, *_BLOCK_RSP_WAIT[1:]))
_BRW_FRAME = struct.Struct("<" + _HEADER_FMT + _fmt(IMAGE_BLOCK_RESPONSE, *_BLOCK_RSP_WAIT))
_BRA_FRAME = struct.Struct("<" + _HEADER_FMT + _fmt(IMAGE_BLOCK_RESPONSE, "status"))

# ------------------------------------------------------------ data classes

_STATUS = {s.value: s for s in Status}


def _status(value: int) -> int:
    return _STATUS.get(value, value)


def _encode_error(reason: str) -> ZclError:
    return ZclError(None, reason, "encode")


class _Command:
    """Base of the command dataclasses: which command, and its layout."""
    COMMAND_ID: ClassVar[int]
    FRAME_TYPE: ClassVar[FrameType] = FrameType.CLUSTER
    DIRECTION: ClassVar[Direction | None]     # None: a global command, either direction
    LAYOUT: ClassVar[Struct]

    def _values(self) -> dict:
        """The values the layout builds from (raises ZclError if they disagree)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def _from_parsed(cls, c) -> _Command:
        return cls(**{f.name: c[f.name] for f in fields(cls)})


class _Request(_Command):
    DIRECTION = Direction.CLIENT_TO_SERVER


class _Response(_Command):
    DIRECTION = Direction.SERVER_TO_CLIENT


@dataclass(frozen=True)
class ImageNotify(_Response):
    """0x00, server->client. payload_type is worked out from the optional fields
    set: manufacturer (1), then image_type (2), then file_version (3)."""
    COMMAND_ID = OtaCommand.IMAGE_NOTIFY
    LAYOUT = IMAGE_NOTIFY
    query_jitter: int
    manufacturer: int | None = None
    image_type: int | None = None
    file_version: int | None = None

    @property
    def payload_type(self) -> int:
        """0-3; raises ZclError if an optional field is set after an unset one."""
        names = ("manufacturer", "image_type", "file_version")
        values = (self.manufacturer, self.image_type, self.file_version)
        n = 0
        while n < 3 and values[n] is not None:
            n += 1
        for later in range(n + 1, 3):
            if values[later] is not None:
                raise _encode_error(f"ImageNotify: {names[later]} without {names[n]} (payload "
                                    "types add manufacturer, image_type, file_version in turn)")
        return n

    def _values(self) -> dict:
        return dict(super()._values(), payload_type=self.payload_type)


@dataclass(frozen=True)
class QueryNextImageRequest(_Request):
    """0x01, client->server. field_control bit 0 <=> hardware_version is set."""
    COMMAND_ID = OtaCommand.QUERY_NEXT_IMAGE_REQUEST
    LAYOUT = QUERY_NEXT_IMAGE_REQUEST
    manufacturer: int
    image_type: int
    current_file_version: int
    hardware_version: int | None = None

    @property
    def field_control(self) -> int:
        return QUERY_FC_HARDWARE_VERSION if self.hardware_version is not None else 0

    def _values(self) -> dict:
        return dict(super()._values(), field_control=self.field_control)


@dataclass(frozen=True)
class _ImageAvailable:
    """Status, then (on SUCCESS only) the image's id and size."""
    status: int
    manufacturer: int | None = None
    image_type: int | None = None
    file_version: int | None = None
    image_size: int | None = None

    def _values(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        given = [n for n in ("manufacturer", "image_type", "file_version", "image_size")
                 if values[n] is not None]
        if self.status == Status.SUCCESS and len(given) != 4:
            raise _encode_error(f"{type(self).__name__}: SUCCESS needs manufacturer, image_type, "
                                "file_version and image_size (given: "
                                f"{', '.join(given) or 'none'})")
        if self.status != Status.SUCCESS and given:
            raise _encode_error(f"{type(self).__name__}: status {self.status:#04x} carries no "
                                f"image fields (given: {', '.join(given)})")
        return values

    @classmethod
    def _from_parsed(cls, c):
        return cls(_status(c.status), c.manufacturer, c.image_type, c.file_version, c.image_size)


@dataclass(frozen=True)
class QueryNextImageResponse(_ImageAvailable, _Response):
    """0x02, server->client: status; manufacturer, image_type, file_version and
    image_size only (and all of them) on SUCCESS."""
    COMMAND_ID = OtaCommand.QUERY_NEXT_IMAGE_RESPONSE
    LAYOUT = IMAGE_AVAILABLE_RESPONSE


@dataclass(frozen=True)
class ImageBlockRequest(_Request):
    """0x03, client->server. field_control bit 0 <=> request_node_addr is set;
    bit 1 <=> minimum_block_period is set or period_missing is True.

    period_missing: bit 1 set but the 2 bytes absent, as some clients send and
    lenient servers accept (decoded leniently, and encoded that way on purpose).
    """
    COMMAND_ID = OtaCommand.IMAGE_BLOCK_REQUEST
    LAYOUT = IMAGE_BLOCK_REQUEST
    manufacturer: int
    image_type: int
    file_version: int
    file_offset: int
    max_data_size: int
    request_node_addr: int | None = None
    minimum_block_period: int | None = None
    period_missing: bool = False

    @property
    def field_control(self) -> int:
        fc = BLOCK_FC_NODE_ADDR if self.request_node_addr is not None else 0
        if self.minimum_block_period is not None or self.period_missing:
            fc |= BLOCK_FC_MIN_BLOCK_PERIOD
        return fc

    def _values(self) -> dict:
        if self.period_missing is not False and self.period_missing is not True:
            raise _encode_error(f"ImageBlockRequest: period_missing {self.period_missing!r} "
                                "is not a bool")
        if self.period_missing and self.minimum_block_period is not None:
            raise _encode_error("ImageBlockRequest: period_missing with a minimum_block_period")
        values = super()._values()
        del values["period_missing"]
        values["field_control"] = self.field_control
        return values

    @classmethod
    def _from_parsed(cls, c):
        missing = (bool(c.field_control & BLOCK_FC_MIN_BLOCK_PERIOD)
                   and c.minimum_block_period is None)
        return cls(c.manufacturer, c.image_type, c.file_version, c.file_offset, c.max_data_size,
                   c.request_node_addr, c.minimum_block_period, missing)


@dataclass(frozen=True)
class ImagePageRequest(_Request):
    """0x04, client->server. field_control bit 0 <=> request_node_addr is set."""
    COMMAND_ID = OtaCommand.IMAGE_PAGE_REQUEST
    LAYOUT = IMAGE_PAGE_REQUEST
    manufacturer: int
    image_type: int
    file_version: int
    file_offset: int
    max_data_size: int
    page_size: int
    response_spacing: int
    request_node_addr: int | None = None

    @property
    def field_control(self) -> int:
        return PAGE_FC_NODE_ADDR if self.request_node_addr is not None else 0

    def _values(self) -> dict:
        return dict(super()._values(), field_control=self.field_control)


class _BlockResponse(_Response):
    """The three forms of Image Block Response (0x05) share one layout."""
    COMMAND_ID = OtaCommand.IMAGE_BLOCK_RESPONSE
    LAYOUT = IMAGE_BLOCK_RESPONSE
    _NONE = dict.fromkeys(("manufacturer", "image_type", "file_version", "file_offset", "data",
                           "current_time", "request_time", "minimum_block_period"))

    def _values(self) -> dict:
        values = dict(self._NONE)
        values.update(super()._values())
        values["status"] = self.status
        return values

    @classmethod
    def _from_parsed(cls, c):
        if c.status == Status.SUCCESS:
            return ImageBlockResponse(c.manufacturer, c.image_type, c.file_version, c.file_offset,
                                      c.data)
        if c.status == Status.WAIT_FOR_DATA:
            return ImageBlockWait(c.current_time, c.request_time, c.minimum_block_period)
        return ImageBlockAbort(_status(c.status))


@dataclass(frozen=True)
class ImageBlockResponse(_BlockResponse):
    """0x05 with status SUCCESS: a block of the image (data, at most 254 bytes)."""
    manufacturer: int
    image_type: int
    file_version: int
    file_offset: int
    data: bytes

    @property
    def status(self) -> Status:
        return Status.SUCCESS


@dataclass(frozen=True)
class ImageBlockWait(_BlockResponse):
    """0x05 with status WAIT_FOR_DATA: ask again at request_time (UTC seconds, or
    a delay when current_time is 0), then no faster than minimum_block_period."""
    current_time: int
    request_time: int
    minimum_block_period: int

    @property
    def status(self) -> Status:
        return Status.WAIT_FOR_DATA


@dataclass(frozen=True)
class ImageBlockAbort(_BlockResponse):
    """0x05 with a status only: ABORT, or any status but SUCCESS and WAIT_FOR_DATA."""
    status: int = Status.ABORT

    def _values(self) -> dict:
        if self.status in (Status.SUCCESS, Status.WAIT_FOR_DATA):
            raise _encode_error(f"ImageBlockAbort: status {Status(self.status).name} has its own "
                                "form (ImageBlockResponse / ImageBlockWait)")
        return super()._values()


@dataclass(frozen=True)
class UpgradeEndRequest(_Request):
    """0x06, client->server: SUCCESS, INVALID_IMAGE, ABORT or REQUIRE_MORE_IMAGE
    (any status byte is carried)."""
    COMMAND_ID = OtaCommand.UPGRADE_END_REQUEST
    LAYOUT = UPGRADE_END_REQUEST
    status: int
    manufacturer: int
    image_type: int
    file_version: int

    @classmethod
    def _from_parsed(cls, c):
        return cls(_status(c.status), c.manufacturer, c.image_type, c.file_version)


@dataclass(frozen=True)
class UpgradeEndResponse(_Response):
    """0x07, server->client. Wildcards 0xFFFF / 0xFFFF / 0xFFFFFFFF; upgrade_time
    0xFFFFFFFF (UPGRADE_TIME_WAIT) means wait for a later command."""
    COMMAND_ID = OtaCommand.UPGRADE_END_RESPONSE
    LAYOUT = UPGRADE_END_RESPONSE
    manufacturer: int
    image_type: int
    file_version: int
    current_time: int
    upgrade_time: int


@dataclass(frozen=True)
class QueryDeviceSpecificFileRequest(_Request):
    """0x08, client->server."""
    COMMAND_ID = OtaCommand.QUERY_DEVICE_SPECIFIC_FILE_REQUEST
    LAYOUT = QUERY_DEVICE_SPECIFIC_FILE_REQUEST
    request_node_addr: int
    manufacturer: int
    image_type: int
    file_version: int
    stack_version: int


@dataclass(frozen=True)
class QueryDeviceSpecificFileResponse(_ImageAvailable, _Response):
    """0x09, server->client: as Query Next Image Response."""
    COMMAND_ID = OtaCommand.QUERY_DEVICE_SPECIFIC_FILE_RESPONSE
    LAYOUT = IMAGE_AVAILABLE_RESPONSE


class _Global(_Command):
    FRAME_TYPE = FrameType.GLOBAL
    DIRECTION = None


@dataclass(frozen=True)
class ReadAttributeRecord:
    """One record of a Read Attributes Response: on SUCCESS a data type and a
    value (an int; EUI64 as an int), otherwise neither."""
    attribute_id: int
    status: int = Status.SUCCESS
    data_type: int | None = None
    value: int | None = None

    @classmethod
    def of(cls, attribute_id: int, value: int, data_type: int | None = None
           ) -> ReadAttributeRecord:
        """A SUCCESS record, typed as ATTRIBUTE_TYPES says unless data_type is given."""
        if data_type is None:
            try:
                data_type = ATTRIBUTE_TYPES[AttributeId(attribute_id)]
            except (ValueError, KeyError):
                raise _encode_error(f"attribute {attribute_id:#06x} has no known type; "
                                    "give data_type") from None
        return cls(attribute_id, Status.SUCCESS, data_type, value)

    def _values(self) -> dict:
        if self.status == Status.SUCCESS and (self.data_type is None or self.value is None):
            raise _encode_error(f"attribute {self.attribute_id!r}: SUCCESS needs a data_type "
                                "and a value")
        if self.status != Status.SUCCESS and (self.data_type is not None
                                              or self.value is not None):
            raise _encode_error(f"attribute {self.attribute_id!r}: status {self.status!r} "
                                "carries no data_type or value")
        return dict(attribute_id=self.attribute_id, status=self.status,
                    data_type=self.data_type, value=self.value)


@dataclass(frozen=True)
class ReadAttributes(_Global):
    """Global 0x00. A server reading the OTA client's attributes sends it
    server->client; the client's answer travels client->server."""
    COMMAND_ID = GlobalCommand.READ_ATTRIBUTES
    LAYOUT = READ_ATTRIBUTES
    attribute_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "attribute_ids", tuple(self.attribute_ids))

    @classmethod
    def _from_parsed(cls, c):
        return cls(tuple(c.attribute_ids))


@dataclass(frozen=True)
class ReadAttributesResponse(_Global):
    """Global 0x01: one ReadAttributeRecord per attribute asked for."""
    COMMAND_ID = GlobalCommand.READ_ATTRIBUTES_RESPONSE
    LAYOUT = READ_ATTRIBUTES_RESPONSE
    records: tuple[ReadAttributeRecord, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", tuple(self.records))

    def _values(self) -> dict:
        for r in self.records:
            if not isinstance(r, ReadAttributeRecord):
                raise _encode_error(f"ReadAttributesResponse: {r!r} is not a ReadAttributeRecord")
        return dict(records=[r._values() for r in self.records])

    @classmethod
    def _from_parsed(cls, c):
        return cls(tuple(ReadAttributeRecord(r.attribute_id, _status(r.status), r.data_type,
                                             r.value) for r in c.records))


@dataclass(frozen=True)
class DefaultResponse(_Global):
    """Global 0x0B: the command id answered and a status."""
    COMMAND_ID = GlobalCommand.DEFAULT_RESPONSE
    LAYOUT = DEFAULT_RESPONSE
    command: int
    status: int

    @classmethod
    def _from_parsed(cls, c):
        return cls(c.command, _status(c.status))


Command = (
    ImageNotify | QueryNextImageRequest | QueryNextImageResponse | ImageBlockRequest | ImagePageRequest |
    ImageBlockResponse | ImageBlockWait | ImageBlockAbort | UpgradeEndRequest | UpgradeEndResponse |
    QueryDeviceSpecificFileRequest | QueryDeviceSpecificFileResponse | ReadAttributes |
    ReadAttributesResponse | DefaultResponse)

CLUSTER_COMMANDS: dict[tuple[Direction, int], type] = {
    (cls.DIRECTION, cls.COMMAND_ID): cls
    for cls in (ImageNotify, QueryNextImageRequest, QueryNextImageResponse, ImageBlockRequest,
                ImagePageRequest, ImageBlockResponse, UpgradeEndRequest, UpgradeEndResponse,
                QueryDeviceSpecificFileRequest, QueryDeviceSpecificFileResponse)
}
"""(direction, command id) -> the class decode starts from (0x05: one of the three forms)."""
GLOBAL_COMMANDS: dict[int, type] = {
    cls.COMMAND_ID: cls for cls in (ReadAttributes, ReadAttributesResponse, DefaultResponse)}


@dataclass(frozen=True)
class ZclHeader:
    """The ZCL header. manufacturer None <=> the manufacturer-specific bit is clear."""
    frame_type: FrameType
    direction: Direction
    tsn: int
    command_id: int
    manufacturer: int | None = None
    disable_default_response: bool = False

    @property
    def manufacturer_specific(self) -> bool:
        return self.manufacturer is not None

    @property
    def frame_control(self) -> int:
        return (int(self.frame_type)
                | (FC_MANUFACTURER_SPECIFIC if self.manufacturer is not None else 0)
                | (FC_DIRECTION if self.direction else 0)
                | (FC_DISABLE_DEFAULT_RESPONSE if self.disable_default_response else 0))


@dataclass(frozen=True)
class Frame:
    """A ZCL frame of the OTA cluster: header and command."""
    header: ZclHeader
    command: Command

    @classmethod
    def of(cls, command: Command, tsn: int, *, direction: Direction | int | None = None,
           manufacturer: int | None = None, disable_default_response: bool = False) -> Frame:
        """The frame carrying command: frame type and command id from the command;
        direction from a cluster command (a global command needs it given)."""
        if command.DIRECTION is not None:
            if direction is not None and direction != command.DIRECTION:
                raise _encode_error(f"{type(command).__name__} travels "
                                    f"{command.DIRECTION.name}, not {Direction(direction).name}")
            direction = command.DIRECTION
        elif direction is None:
            raise _encode_error(f"{type(command).__name__} is a global command: give its direction")
        return cls(ZclHeader(command.FRAME_TYPE, Direction(direction), tsn, command.COMMAND_ID,
                             manufacturer, disable_default_response), command)


def default_response_to(header: ZclHeader, status: int) -> Frame:
    """The Default Response answering a frame with this header: same tsn and
    manufacturer code, opposite direction, default responses disabled. Whether
    one is due (never to a Default Response, nor to a broadcast) is the caller's call."""
    return Frame(ZclHeader(FrameType.GLOBAL, Direction(1 - header.direction), header.tsn,
                           GlobalCommand.DEFAULT_RESPONSE, header.manufacturer, True),
                 DefaultResponse(header.command_id, status))


# ---------------------------------------------------------- reference codec


def _tell_before(subcons, index: int, payload: bytes) -> int:
    return Struct(*subcons[:index], "_at" / Tell).parse(payload)._at


def _explain(layout: Struct, payload: bytes, base: int, what: str) -> tuple[int, str]:
    """Where and why the layout cannot read payload: walks its fields in order
    and names the first that fails (an element of a GreedyRange followed by
    Terminated is located inside the element). Offsets are base + payload offset."""
    subs = layout.subcons
    for i, sc in enumerate(subs):
        try:
            Struct(*subs[:i + 1]).parse(payload)
        except ConstructError as e:
            at = _tell_before(subs, i, payload)
            detail = str(e).split("\n", 1)[-1]
            if isinstance(e, TerminatedError):
                prev = subs[i - 1] if i else None
                n = len(payload) - at
                if prev is not None and isinstance(_unrenamed(prev), GreedyRange):
                    count = len(Struct(*subs[:i]).parse(payload)[prev.name])
                    element = _unrenamed(prev).subcon
                    name = f"{what}.{prev.name}[{count}]"
                    if isinstance(element, Struct):
                        return _explain(element, payload[at:], base + at, name)
                    return base + at, (f"{name}: {n} byte{'s' if n != 1 else ''} left, "
                                       f"an element takes {element.sizeof()}")
                return base + at, f"{what}: {n} byte{'s' if n != 1 else ''} after the last field"
            explained = isinstance(e, (ValidationError, ConstError)) and sc.docs
            hint = f" ({sc.docs})" if explained else ""
            field = sc.name
            if (e.path or "").startswith("(parsing) -> "):     # the field inside, if any
                parts = e.path.split(" -> ")[1:]
                field = ".".join(p for j, p in enumerate(parts) if not j or p != parts[j - 1])
            return base + at, f"{what}.{field}: {detail}{hint}"
    return base + len(payload), f"{what}: cannot be read"   # not reached: the layout parsed


def _unrenamed(sc):
    while isinstance(sc, Renamed):
        sc = sc.subcon
    return sc


def _parse(layout: Struct, payload: bytes, base: int, what: str, **err):
    try:
        return layout.parse(payload)
    except ConstructError:
        offset, reason = _explain(layout, payload, base, what)
        raise ZclError(offset, reason, **err) from None


def _as_bytes(data) -> bytes:
    return data if type(data) is bytes else bytes(memoryview(data))


def _decode_reference(data: bytes, direction) -> Frame:
    """decode by the construct layouts alone: the definition decode must agree with."""
    data = _as_bytes(data)
    want = None if direction is None else Direction(direction)
    h = _parse(ZCL_HEADER, data, 0, "ZCL header", kind="header")
    fc = h.frame_control
    header = ZclHeader(FrameType(fc.frame_type), Direction(fc.direction), h.tsn, h.command_id,
                       h.manufacturer, fc.disable_default_response)
    pos = HEADER_SIZE + (2 if fc.manufacturer_specific else 0)
    if want is not None and header.direction != want:
        raise ZclError(0, f"direction bit says {header.direction.name}, expected {want.name}",
                       "direction", header=header)
    manuf = header.manufacturer is not None
    cmd_at = pos - 1
    if header.frame_type == FrameType.CLUSTER:
        cls = None if manuf else CLUSTER_COMMANDS.get((header.direction, header.command_id))
        if cls is None:
            kind = "manufacturer-specific " if manuf else ""
            raise ZclError(cmd_at, f"{kind}cluster command {header.command_id:#04x} "
                                   f"({header.direction.name}) is not an OTA cluster command",
                           "unsupported", header=header,
                           status=(Status.UNSUP_MANUF_CLUSTER_COMMAND if manuf
                                   else Status.UNSUP_CLUSTER_COMMAND))
    else:
        cls = GLOBAL_COMMANDS.get(header.command_id)
        if cls is None:
            raise ZclError(cmd_at, f"global command {header.command_id:#04x} is not supported",
                           "unsupported", header=header,
                           status=(Status.UNSUP_MANUF_GENERAL_COMMAND if manuf
                                   else Status.UNSUP_GENERAL_COMMAND))
    parsed = _parse(cls.LAYOUT, data[pos:], pos, cls.__name__.removeprefix("_"), header=header,
                    status=Status.MALFORMED_COMMAND)
    return Frame(header, cls._from_parsed(parsed))


def _build(layout: Struct, values: dict, what: str) -> bytes:
    try:
        return layout.build(values)
    except (ConstructError, TypeError, ValueError, OverflowError, struct.error) as e:
        detail = str(e).replace("Error in path (building) -> ", "").replace("\n", ": ")
        raise _encode_error(f"{what}: {detail}") from None


def _check_frame(frame) -> tuple[ZclHeader, _Command]:
    if not isinstance(frame, Frame):
        raise TypeError(f"encode takes a Frame, not {type(frame).__name__}")
    h, cmd = frame.header, frame.command
    if not isinstance(h, ZclHeader):
        raise _encode_error(f"header {h!r} is not a ZclHeader")
    if not isinstance(h.disable_default_response, bool):
        raise _encode_error(f"disable_default_response {h.disable_default_response!r} "
                            "is not a bool")
    if not isinstance(cmd, _Command) or not hasattr(cmd, "__dataclass_fields__"):
        raise _encode_error(f"command {cmd!r} is not an OTA cluster or global command")
    name = type(cmd).__name__
    if h.frame_type not in (FrameType.GLOBAL, FrameType.CLUSTER):
        raise _encode_error(f"frame type {h.frame_type!r} is reserved")
    if h.frame_type != cmd.FRAME_TYPE:
        raise _encode_error(f"{name} is a {cmd.FRAME_TYPE.name.lower()} command; the header "
                            f"says frame type {h.frame_type!r}")
    if h.command_id != cmd.COMMAND_ID:
        raise _encode_error(f"{name} is command {cmd.COMMAND_ID:#04x}; the header says "
                            f"{h.command_id!r}")
    if h.direction not in (0, 1):
        raise _encode_error(f"direction {h.direction!r} is neither 0 nor 1")
    if cmd.DIRECTION is not None:
        if h.direction != cmd.DIRECTION:
            raise _encode_error(f"{name} travels {cmd.DIRECTION.name}; the header says "
                                f"{Direction(h.direction).name}")
        if h.manufacturer is not None:
            raise _encode_error(f"{name} with a manufacturer code would be a manufacturer's "
                                "own command, not the OTA cluster's")
    return h, cmd


def _encode_reference(frame: Frame) -> bytes:
    """encode by the construct layouts alone: the definition encode must agree with."""
    h, cmd = _check_frame(frame)
    head = _build(ZCL_HEADER, dict(
        frame_control=dict(reserved=0, disable_default_response=h.disable_default_response,
                           direction=int(h.direction), frame_type=int(h.frame_type),
                           manufacturer_specific=h.manufacturer is not None),
        manufacturer=h.manufacturer, tsn=h.tsn, command_id=h.command_id), "ZCL header")
    return head + _build(cmd.LAYOUT, cmd._values(), type(cmd).__name__)


# ---------------------------------------------------------------- fast path

_new = object.__new__
_set = object.__setattr__
_FRAME_TYPES = (FrameType.GLOBAL, FrameType.CLUSTER)
_DIRECTIONS = (Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT)
_brq_unpack = _BRQ.unpack_from
_brs_unpack = _BRS.unpack_from
_brw_unpack = _BRW.unpack_from
_BRQ_END = _BRQ.size
_BRS_END = 1 + _BRS.size
_BRW_END = 1 + _BRW.size


# Frozen dataclasses are built below by setting __dict__ in one go (their
# __init__ sets each field through object.__setattr__, twice as slow); none of
# these classes has a __post_init__ to skip.

def _fast_block_request(data: bytes, pos: int):
    if len(data) - pos < _BRQ_END:
        return None
    fc, m, it, fv, off, mds = _brq_unpack(data, pos)
    p = pos + _BRQ_END
    rest = len(data) - p
    addr = period = None
    missing = False
    if fc:
        if fc & 0xFC:
            return None
        if fc & BLOCK_FC_NODE_ADDR:
            if rest < _BRQ_ADDR.size:
                return None
            addr = _BRQ_ADDR.unpack_from(data, p)[0]
            p += _BRQ_ADDR.size
            rest -= _BRQ_ADDR.size
        if fc & BLOCK_FC_MIN_BLOCK_PERIOD:
            if rest == _BRQ_PERIOD.size:
                period = _BRQ_PERIOD.unpack_from(data, p)[0]
                rest = 0
            else:
                missing = True
    if rest:
        return None
    cmd = _new(ImageBlockRequest)
    _set(cmd, "__dict__", {"manufacturer": m, "image_type": it, "file_version": fv,
                           "file_offset": off, "max_data_size": mds, "request_node_addr": addr,
                           "minimum_block_period": period, "period_missing": missing})
    return cmd


def _fast_block_response(data: bytes, pos: int):
    n = len(data) - pos
    if n <= 0:
        return None
    status = data[pos]
    if status == 0:
        if n < _BRS_END:
            return None
        m, it, fv, off, size = _brs_unpack(data, pos + 1)
        if n - _BRS_END != size or size == OCTET_STRING_INVALID:
            return None
        cmd = _new(ImageBlockResponse)
        _set(cmd, "__dict__", {"manufacturer": m, "image_type": it, "file_version": fv,
                               "file_offset": off, "data": data[pos + _BRS_END:]})
        return cmd
    if status == Status.WAIT_FOR_DATA:
        if n != _BRW_END:
            return None
        ct, rt, mbp = _brw_unpack(data, pos + 1)
        cmd = _new(ImageBlockWait)
        _set(cmd, "__dict__", {"current_time": ct, "request_time": rt,
                               "minimum_block_period": mbp})
        return cmd
    if n != 1:
        return None
    cmd = _new(ImageBlockAbort)
    _set(cmd, "__dict__", {"status": _STATUS.get(status, status)})
    return cmd


_compiled_layouts: dict[int, object] = {}


def _compiled(layout: Struct):
    c = _compiled_layouts.get(id(layout))
    if c is None:
        c = _compiled_layouts[id(layout)] = layout.compile()
    return c


def _compiled_decoder(cls):
    def decode_payload(data: bytes, pos: int):
        try:
            parsed = _compiled(cls.LAYOUT).parse(data[pos:])
        except Exception:           # compiled parsers raise struct.error too: the
            return None             # reference codec says what is wrong, and where
        return cls._from_parsed(parsed)
    return decode_payload


# [frame_type | direction << 1][command_id] -> payload decoder (None: reference path)
_DECODERS: list[list] = [[None] * 256 for _ in range(4)]
for (_d, _id), _cls in CLUSTER_COMMANDS.items():
    _DECODERS[FrameType.CLUSTER | _d << 1][_id] = _compiled_decoder(_cls)
for _id, _cls in GLOBAL_COMMANDS.items():
    _DECODERS[FrameType.GLOBAL][_id] = _DECODERS[FrameType.GLOBAL | 2][_id] = \
        _compiled_decoder(_cls)
_DECODERS[FrameType.CLUSTER | Direction.CLIENT_TO_SERVER << 1][OtaCommand.IMAGE_BLOCK_REQUEST] = \
    _fast_block_request
_DECODERS[FrameType.CLUSTER | Direction.SERVER_TO_CLIENT << 1][OtaCommand.IMAGE_BLOCK_RESPONSE] = \
    _fast_block_response


def decode(data: bytes, direction: Direction | int | None) -> Frame:
    """A ZCL frame of the OTA cluster from its bytes.

    direction: the way the frame is expected to travel (a client decodes
    SERVER_TO_CLIENT frames, a server CLIENT_TO_SERVER ones; global commands
    too); None to take the header's bit as it is. Raises ZclError for anything
    malformed, unexpected or unknown (see the module docstring), with the offset.
    """
    if data.__class__ is not bytes:
        data = _as_bytes(data)
    if len(data) >= HEADER_SIZE:
        fc = data[0]
        if not fc & 0xE6:      # reserved bits, frame types 2-3, manufacturer code: reference
            d = (fc >> 3) & 1
            if direction is None or direction == d:
                fn = _DECODERS[(fc & 1) | d << 1][data[2]]
                if fn is not None:
                    cmd = fn(data, HEADER_SIZE)
                    if cmd is not None:
                        header = _new(ZclHeader)
                        _set(header, "__dict__", {
                            "frame_type": _FRAME_TYPES[fc & 1], "direction": _DIRECTIONS[d],
                            "tsn": data[1], "command_id": data[2], "manufacturer": None,
                            "disable_default_response": (fc & FC_DISABLE_DEFAULT_RESPONSE) != 0})
                        frame = _new(Frame)
                        _set(frame, "__dict__", {"header": header, "command": cmd})
                        return frame
    return _decode_reference(data, direction)


_brq_frame = _BRQ_FRAME.pack
_brs_frame = _BRS_FRAME.pack
_brw_frame = _BRW_FRAME.pack
_bra_frame = _BRA_FRAME.pack
_brq_addr = _BRQ_ADDR.pack
_brq_period = _BRQ_PERIOD.pack
_brq_both = _BRQ_BOTH.pack


def _fast_encode_block_request(cmd: ImageBlockRequest, fc: int, tsn: int) -> bytes | None:
    addr = cmd.request_node_addr
    period = cmd.minimum_block_period
    missing = cmd.period_missing
    if missing is not False:
        return None             # rare: the reference codec writes it (or says what is wrong)
    if addr is None:
        if period is None:
            return _brq_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_REQUEST, 0, cmd.manufacturer,
                              cmd.image_type, cmd.file_version, cmd.file_offset,
                              cmd.max_data_size)
        return _brq_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_REQUEST, BLOCK_FC_MIN_BLOCK_PERIOD,
                          cmd.manufacturer, cmd.image_type, cmd.file_version, cmd.file_offset,
                          cmd.max_data_size) + _brq_period(period)
    head = _brq_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_REQUEST,
                      BLOCK_FC_NODE_ADDR if period is None else
                      BLOCK_FC_NODE_ADDR | BLOCK_FC_MIN_BLOCK_PERIOD,
                      cmd.manufacturer, cmd.image_type, cmd.file_version, cmd.file_offset,
                      cmd.max_data_size)
    return head + (_brq_addr(addr) if period is None else _brq_both(addr, period))


def _fast_encode_block_response(cmd: ImageBlockResponse, fc: int, tsn: int) -> bytes | None:
    data = cmd.data
    if data.__class__ is not bytes or len(data) >= OCTET_STRING_INVALID:
        return None
    return _brs_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_RESPONSE, 0, cmd.manufacturer,
                      cmd.image_type, cmd.file_version, cmd.file_offset, len(data)) + data


_BLOCK_RESPONSE_FC = (FrameType.CLUSTER | FC_DIRECTION, FrameType.CLUSTER | FC_DIRECTION | FC_DISABLE_DEFAULT_RESPONSE)


def encode_image_block_response(tsn: int, manufacturer: int, image_type: int, file_version: int,
                                file_offset: int, data: bytes, *, disable_default_response: bool = True) -> bytes:
    """Byte for byte encode(Frame.of(ImageBlockResponse(manufacturer, image_type,
    file_version, file_offset, data), tsn, disable_default_response=...)), without
    building the objects: what a server sends for every block. Raises the same
    ZclError as encode for values that do not fit."""
    if data.__class__ is bytes and len(data) < OCTET_STRING_INVALID:
        try:
            return _brs_frame(_BLOCK_RESPONSE_FC[disable_default_response is True], tsn,
                              OtaCommand.IMAGE_BLOCK_RESPONSE, _SUCCESS, manufacturer, image_type, file_version,
                              file_offset, len(data)) + data
        except struct.error:
            pass    # out of range: the reference path names the field
    return encode(Frame.of(ImageBlockResponse(manufacturer, image_type, file_version, file_offset, data), tsn,
                           disable_default_response=disable_default_response))


def _fast_encode_block_wait(cmd: ImageBlockWait, fc: int, tsn: int) -> bytes:
    return _brw_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_RESPONSE, Status.WAIT_FOR_DATA,
                      cmd.current_time, cmd.request_time, cmd.minimum_block_period)


def _fast_encode_block_abort(cmd: ImageBlockAbort, fc: int, tsn: int) -> bytes | None:
    status = cmd.status
    if status == Status.SUCCESS or status == Status.WAIT_FOR_DATA:
        return None
    return _bra_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_RESPONSE, status)


_FAST_ENCODERS = {
    ImageBlockRequest: (_fast_encode_block_request, FrameType.CLUSTER),
    ImageBlockResponse: (_fast_encode_block_response, FrameType.CLUSTER | FC_DIRECTION),
    ImageBlockWait: (_fast_encode_block_wait, FrameType.CLUSTER | FC_DIRECTION),
    ImageBlockAbort: (_fast_encode_block_abort, FrameType.CLUSTER | FC_DIRECTION),
}


def _compiled_encode(frame: Frame) -> bytes:
    h, cmd = _check_frame(frame)
    fc = h.frame_control
    if h.manufacturer is None:
        head = _HEADER.pack(fc, h.tsn, h.command_id)
    else:
        head = _HEADER_MANUF.pack(fc, h.manufacturer, h.tsn, h.command_id)
    return head + _compiled(cmd.LAYOUT).build(cmd._values())


def encode(frame: Frame) -> bytes:
    """The bytes of a frame. Raises ZclError (kind "encode") for values that do
    not fit, optional fields that disagree with a status, or a header that
    disagrees with its command; TypeError if frame is not a Frame."""
    try:
        h = frame.header
        cmd = frame.command
        fast = _FAST_ENCODERS.get(cmd.__class__)
        if fast is not None:
            fn, fc = fast
            if (h.__class__ is ZclHeader and h.frame_type == FrameType.CLUSTER
                    and h.command_id == cmd.COMMAND_ID and h.manufacturer is None
                    and h.direction == cmd.DIRECTION):
                ddr = h.disable_default_response
                if ddr is True:
                    fc |= FC_DISABLE_DEFAULT_RESPONSE
                elif ddr is not False:
                    fc = None
                if fc is not None:
                    out = fn(cmd, fc, h.tsn)
                    if out is not None:
                        return out
        else:
            return _compiled_encode(frame)
    except ZclError:
        raise
    except Exception:   # out of range, wrong types: the reference codec says what is wrong
        pass
    return _encode_reference(frame)
