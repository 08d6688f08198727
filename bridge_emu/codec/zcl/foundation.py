"""The ZCL foundation: what every frame of this codec shares, whichever cluster.

The header (layout in docs/zigbee-ota.md; all integers little-endian):

    frame_control u8  bits 0-1 frame type (0 global, 1 cluster-specific),
                      bit 2 manufacturer-specific, bit 3 direction
                      (0 client->server, 1 server->client), bit 4 disable
                      default response, bits 5-7 reserved
    [manufacturer u16 when bit 2 is set], tsn u8, command_id u8

then the command's payload. Here: the header (ZclHeader, its construct
layout and frame-control bits), Frame, Status, DataType, ZclError, and the
global commands this codec reads and writes (Read Attributes, Read Attributes
Response, Default Response) with the base class of every command.

AttributeId and ATTRIBUTE_TYPES name the OTA cluster's attributes but live
here, by DataType: ReadAttributeRecord.of types its records from them, and
DataType holds exactly the types they use.
"""
from __future__ import annotations

import enum
import functools
import operator
from dataclasses import dataclass, fields
from typing import ClassVar

from construct import (
    BitsInteger,
    BitStruct,
    Const,
    ExprValidator,
    Flag,
    GreedyBytes,
    GreedyRange,
    If,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    Prefixed,
    Struct,
    Switch,
    Terminated,
    obj_,
    this,
)

from bridge_emu.errors import BridgeEmuError


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

FC_MANUFACTURER_SPECIFIC = 0x04
FC_DIRECTION = 0x08
FC_DISABLE_DEFAULT_RESPONSE = 0x10

HEADER_SIZE = 3                 # frame_control, tsn, command_id; 5 with a manufacturer code

OCTET_STRING_INVALID = 0xFF
_SUCCESS = int(Status.SUCCESS)

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
    """A ZCL frame of the OTA cluster: header and command (a Command: a global
    command here or a cluster command of ota)."""
    header: ZclHeader
    command: _Command

    @classmethod
    def of(cls, command: _Command, tsn: int, *, direction: Direction | int | None = None,
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
