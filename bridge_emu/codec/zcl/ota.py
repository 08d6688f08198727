"""The OTA Upgrade cluster (0x0019): its constants and enums, the construct
layout of each cluster command's payload, and the command dataclasses.

The layouts are the one description of each payload: the reference codec
parses and builds by them as they are, the compiled codec compiles them, and
the struct fast path derives its formats from their fields. Field control and
payload type are not stored in the dataclasses: they are worked out from which
optional fields are set (None = absent), and are properties.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, fields

from construct import (
    ExprValidator,
    If,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    Optional,
    Renamed,
    Struct,
    Terminated,
    obj_,
    this,
)

from bridge_emu.codec.zcl.foundation import (
    _SUCCESS,
    OCTET_STRING,
    DefaultResponse,
    Direction,
    ReadAttributes,
    ReadAttributesResponse,
    Status,
    _Command,
    _encode_error,
    _status,
)

OTA_CLUSTER_ID = 0x0019

WILDCARD_MANUFACTURER = 0xFFFF
WILDCARD_IMAGE_TYPE = 0xFFFF
WILDCARD_FILE_VERSION = 0xFFFFFFFF
UPGRADE_TIME_WAIT = 0xFFFFFFFF      # Upgrade End Response: wait for a later command


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


QUERY_FC_HARDWARE_VERSION = 0x01
BLOCK_FC_NODE_ADDR = 0x01
BLOCK_FC_MIN_BLOCK_PERIOD = 0x02
PAGE_FC_NODE_ADDR = 0x01

_WAIT_FOR_DATA = int(Status.WAIT_FOR_DATA)

# ------------------------------------------------------------ wire formats


def _when(cond, *named):
    """The named fields, each present only when cond holds (docs kept)."""
    return [Renamed(If(cond, sc.subcon), newname=sc.name, newdocs=sc.docs) for sc in named]


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

# ------------------------------------------------------------ data classes


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


# Every command decode returns: this cluster's and the global ones.
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
