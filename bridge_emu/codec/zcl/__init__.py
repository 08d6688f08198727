"""ZCL frames of the OTA Upgrade cluster (0x0019), as real bytes.

A frame is a ZCL header and one command (layout in docs/zigbee-ota.md and in
foundation; all integers little-endian).

API
    encode(frame) -> bytes                  a Frame to its bytes
    decode(data, direction) -> Frame        bytes to a Frame; direction is the way
                                            the frame travels as the caller expects
                                            it (Direction, 0/1), or None to trust
                                            the header's direction bit
    encode_image_block_response(tsn, ...)   encode of an Image Block Response (SUCCESS)
                                            without building the objects
    encode_image_block_request(tsn, ...)    the same for an Image Block Request
    read_image_block_request(data)          the fields of a plain Image Block Request
    read_image_block_response(data)         ... of an Image Block Response (SUCCESS), as a
                                            tuple without building the objects (None: not
                                            that plain form; decode says what it is)
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

Modules, each importing only those above it:
    foundation  the header, Frame, Status, DataType, ZclError, the global commands
    ota         the OTA cluster: enums, construct layouts, command dataclasses
    reference   decode/encode by the construct layouts alone: the definition
    fast        struct encoders/decoders for the block commands, compiled layouts
    dispatch    decode and encode: a fast path, else the reference codec

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

Speed. Each layout has one definition, the construct Structs of foundation
and ota: used as they are by the reference codec (which also finds the offset
of every fault), compiled for most commands, and read through struct formats
derived from their fields for the hot path (Image Block Request / Response,
the three forms). The fast paths handle well-formed frames only and hand
anything else to the reference codec; tests/codec/test_zcl.py checks with
hypothesis that they agree, byte for byte and error for error.
"""
from bridge_emu.codec.zcl.dispatch import decode, encode
from bridge_emu.codec.zcl.fast import (
    encode_image_block_request,
    encode_image_block_response,
    read_image_block_request,
    read_image_block_response,
)
from bridge_emu.codec.zcl.foundation import (
    ATTRIBUTE_TYPES,
    DEFAULT_RESPONSE,
    FC_DIRECTION,
    FC_DISABLE_DEFAULT_RESPONSE,
    FC_MANUFACTURER_SPECIFIC,
    GLOBAL_COMMANDS,
    HEADER_SIZE,
    OCTET_STRING,
    OCTET_STRING_INVALID,
    READ_ATTRIBUTE_RECORD,
    READ_ATTRIBUTES,
    READ_ATTRIBUTES_RESPONSE,
    ZCL_HEADER,
    AttributeId,
    DataType,
    DefaultResponse,
    Direction,
    Frame,
    FrameType,
    GlobalCommand,
    ReadAttributeRecord,
    ReadAttributes,
    ReadAttributesResponse,
    Status,
    ZclError,
    ZclHeader,
    default_response_to,
)
from bridge_emu.codec.zcl.ota import (
    BLOCK_FC_MIN_BLOCK_PERIOD,
    BLOCK_FC_NODE_ADDR,
    CLUSTER_COMMANDS,
    IMAGE_AVAILABLE_RESPONSE,
    IMAGE_BLOCK_REQUEST,
    IMAGE_BLOCK_RESPONSE,
    IMAGE_ID,
    IMAGE_NOTIFY,
    IMAGE_PAGE_REQUEST,
    OTA_CLUSTER_ID,
    PAGE_FC_NODE_ADDR,
    QUERY_DEVICE_SPECIFIC_FILE_REQUEST,
    QUERY_FC_HARDWARE_VERSION,
    QUERY_NEXT_IMAGE_REQUEST,
    UPGRADE_END_REQUEST,
    UPGRADE_END_RESPONSE,
    UPGRADE_TIME_WAIT,
    WILDCARD_FILE_VERSION,
    WILDCARD_IMAGE_TYPE,
    WILDCARD_MANUFACTURER,
    Command,
    ImageBlockAbort,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    ImageNotify,
    ImagePageRequest,
    ImageUpgradeStatus,
    OtaCommand,
    QueryDeviceSpecificFileRequest,
    QueryDeviceSpecificFileResponse,
    QueryNextImageRequest,
    QueryNextImageResponse,
    UpgradeActivationPolicy,
    UpgradeEndRequest,
    UpgradeEndResponse,
    UpgradeTimeoutPolicy,
)

# the reference codec, private but re-exported: the tests hold the fast paths to it
from bridge_emu.codec.zcl.reference import _decode_reference as _decode_reference
from bridge_emu.codec.zcl.reference import _encode_reference as _encode_reference

__all__ = [
    # codec
    "decode", "encode", "encode_image_block_response", "encode_image_block_request",
    "read_image_block_request", "read_image_block_response", "Frame", "ZclHeader", "ZclError",
    "default_response_to", "Command", "CLUSTER_COMMANDS", "GLOBAL_COMMANDS",
    # foundation
    "FrameType", "Direction", "Status", "GlobalCommand", "DataType", "AttributeId", "ATTRIBUTE_TYPES",
    "FC_MANUFACTURER_SPECIFIC", "FC_DIRECTION", "FC_DISABLE_DEFAULT_RESPONSE", "HEADER_SIZE",
    "OCTET_STRING_INVALID", "OCTET_STRING", "ZCL_HEADER", "READ_ATTRIBUTES", "READ_ATTRIBUTE_RECORD",
    "READ_ATTRIBUTES_RESPONSE", "DEFAULT_RESPONSE", "ReadAttributeRecord", "ReadAttributes",
    "ReadAttributesResponse", "DefaultResponse",
    # OTA cluster
    "OTA_CLUSTER_ID", "WILDCARD_MANUFACTURER", "WILDCARD_IMAGE_TYPE", "WILDCARD_FILE_VERSION",
    "UPGRADE_TIME_WAIT", "OtaCommand", "ImageUpgradeStatus", "UpgradeActivationPolicy",
    "UpgradeTimeoutPolicy", "QUERY_FC_HARDWARE_VERSION", "BLOCK_FC_NODE_ADDR", "BLOCK_FC_MIN_BLOCK_PERIOD",
    "PAGE_FC_NODE_ADDR", "IMAGE_ID", "IMAGE_NOTIFY", "QUERY_NEXT_IMAGE_REQUEST", "IMAGE_AVAILABLE_RESPONSE",
    "IMAGE_BLOCK_REQUEST", "IMAGE_PAGE_REQUEST", "IMAGE_BLOCK_RESPONSE", "UPGRADE_END_REQUEST",
    "UPGRADE_END_RESPONSE", "QUERY_DEVICE_SPECIFIC_FILE_REQUEST", "ImageNotify", "QueryNextImageRequest",
    "QueryNextImageResponse", "ImageBlockRequest", "ImagePageRequest", "ImageBlockResponse",
    "ImageBlockWait", "ImageBlockAbort", "UpgradeEndRequest", "UpgradeEndResponse",
    "QueryDeviceSpecificFileRequest", "QueryDeviceSpecificFileResponse",
]
