"""EZSP (EmberZNet Serial Protocol, UG100) frames as carried in ASH DATA frames:
the frame header in its legacy and extended formats, and a declarative table of
the commands a virtual coordinator NCP, or a host driving a dongle as a router or
end device, needs, with their parameter layouts per EZSP version.

Header, legacy (v4-v7, and the first `version` command of any session):

    sequence u8 | frame control u8 | frame id u8
    (v5-v7 send ids as: sequence | frame control | 0xFF | 0x00 | frame id)

Header, extended (v8 and later):

    sequence u8 | frame control low u8 | frame control high u8 | frame id u16 LE

Frame control low: bit 7 direction (0 command host->NCP, 1 response/callback);
in a response bits 6-5 network index, bits 4-3 callback type (0 none, 1 synchronous,
2 asynchronous: 0x10), bit 2 callback pending, bit 1 truncated, bit 0 overflow;
in a command bits 6-5 network index, bits 1-0 sleep mode. Frame control high:
bits 1-0 frame format version (1), bit 6 padding, bit 7 security.

Parameters follow the header, little-endian. Field types map to construct as:
uint8/16/32 -> Int8ul/16/32, int8 -> Int8sl, bool -> Flag, EUI64 and extended
PAN id -> Int64ul (the EUI as written, 0x00124B..., from its little-endian wire
bytes), key -> Bytes(16), LV bytes -> u8 length + bytes, EmberStatus/EzspStatus ->
u8, sl_status_t (v14+) -> u32. Enums are plain ints here; EmberNodeType and a few
others have IntEnums below.

Versions: the command table covers EZSP 8-14 and 16-19 (there is no v15);
v4-v7 get the header codec and `version` only. Layout changes tracked (from the
EmberZNet/SiSDK releases, cross-checked with bellows in the tests):
  v8   networkInit gains its bitmask; extended header.
  v9   getTokenData, setChildData.  v10 EmberChildData gains timeout_remaining.
  v12  exportKey (context with u8 derived type), exportLinkKeyByIndex,
       importLinkKey, importTransientKey.
  v13  exportKey context derived type u16, getNetworkKeyInfo; getKey,
       getKeyTableEntry, addOrUpdateKeyTableEntry and addTransientLinkKey removed.
  v14  EmberStatus/EzspStatus become sl_status_t u32 and status moves first in
       several responses; message tags u16; sendBroadcast gains alias and NWK
       sequence; incomingMessageHandler gains the sender EUI64 and a timestamp and
       reorders lqi/rssi; leaveNetwork gains options; setManufacturerCode answers a
       status; exportKey/exportLinkKeyByIndex answer a context; getAddressTableInfo.
  v16-v19 change none of the commands covered.

Covered (ids in COMMANDS): version, getLibraryStatus, nop, callback, noCallbacks, invalidCommand,
getValue, setValue, getConfigurationValue, setConfigurationValue, setPolicy,
networkInit, networkState, getNetworkParameters, getEui64, getNodeId, formNetwork,
joinNetwork, leaveNetwork, permitJoining, stackStatusHandler, childJoinHandler,
trustCenterJoinHandler, setInitialSecurityState, getCurrentSecurityState,
addEndpoint, sendUnicast, sendBroadcast, messageSentHandler, incomingMessageHandler,
setConcentrator, setSourceRouteDiscoveryMode, setManufacturerCode, getMfgToken,
getTokenData (v9+), getKey (v8-v12), exportKey (v12+), getNetworkKeyInfo (v13+),
exportLinkKeyByIndex (v12+), importLinkKey (v12+), getKeyTableEntry and
addOrUpdateKeyTableEntry (v8-v12), findKeyTableEntry,
eraseKeyTableEntry, importTransientKey (v12+), addTransientLinkKey (v8-v12),
clearTransientLinkKeys, startScan, stopScan, energyScanResultHandler,
networkFoundHandler, scanCompleteHandler, getChildData, setChildData (v9+), lookupEui64ByNodeId, getAddressTableInfo
(v14+), customFrame (bellows' XNCP probe at connect), readCounters (watchdog).
Not covered: multicast, source routes, setKeyTableEntry, address table commands
before v14, Green Power, ZLL, mfglib, tokens other
than getTokenData/getMfgToken, bootloader, radio tuning (v18 DHC).

API: EzspFrame.encode(version)/EzspFrame.decode(data, version) for the header;
encode_request(name, version, sequence, **fields) and encode_response(...) for a
whole frame; decode(data, version, direction=None) -> (name, fields) where fields
is a plain dict (nested structs as dicts). Errors raise EzspError.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

from construct import (
    Array,
    Bytes,
    Construct,
    ConstructError,
    Container,
    Flag,
    GreedyBytes,
    GreedyRange,
    If,
    IfThenElse,
    Int8sl,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    ListContainer,
    Prefixed,
    Rebuild,
    Struct,
    len_,
    this,
)

from bridge_emu.errors import BridgeEmuError


class EzspError(BridgeEmuError):
    """An EZSP frame or command that cannot be encoded or decoded."""


# --- header --------------------------------------------------------------------------------------------------

FIRST_EXTENDED_VERSION = 8
LEGACY_VERSIONS = (4, 5, 6, 7)
TABLE_VERSIONS = (8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19)
SUPPORTED_VERSIONS = LEGACY_VERSIONS + TABLE_VERSIONS

FC_RESPONSE = 0x80            # low byte, bit 7
FC_CALLBACK_SYNC = 0x08       # low byte, bits 4-3 = 1
FC_CALLBACK_ASYNC = 0x10      # low byte, bits 4-3 = 2
FC_CALLBACK_PENDING = 0x04
FC_TRUNCATED = 0x02
FC_OVERFLOW = 0x01
FC_HIGH_FORMAT_VERSION_1 = 0x01
_LEGACY_EXTENDED_MARK = 0xFF  # v5-v7: frame id 0xFF, then extended control 0x00, then the real id
VERSION_FRAME_ID = 0x0000


class Direction(enum.Enum):
    REQUEST = "request"     # host -> NCP
    RESPONSE = "response"   # NCP -> host: responses and callbacks


def _check_version(version: int) -> None:
    if version not in SUPPORTED_VERSIONS:
        raise EzspError(f"EZSP version {version} is not supported (supported: {SUPPORTED_VERSIONS})")


@dataclass(frozen=True)
class EzspFrame:
    """One EZSP frame: header fields and the raw parameter bytes.

    frame_control is the low byte; frame_control_high the extended format's high
    byte (not on the wire in the legacy format, where decode() leaves it at 0x01)."""

    sequence: int
    frame_control: int
    frame_id: int
    parameters: bytes = b""
    frame_control_high: int = FC_HIGH_FORMAT_VERSION_1

    @property
    def is_response(self) -> bool:
        return bool(self.frame_control & FC_RESPONSE)

    @property
    def is_callback(self) -> bool:
        return self.is_response and bool(self.frame_control & (FC_CALLBACK_SYNC | FC_CALLBACK_ASYNC))

    @property
    def callback_pending(self) -> bool:
        return self.is_response and bool(self.frame_control & FC_CALLBACK_PENDING)

    @property
    def network_index(self) -> int:
        return self.frame_control >> 5 & 0x03

    def encode(self, version: int, *, legacy_header: bool = False) -> bytes:
        """The frame in version's header format, or in the legacy one when legacy_header
        (the first `version` command; the NCP answers in the format it was asked in)."""
        _check_version(version)
        for what, value in (("sequence", self.sequence), ("frame control", self.frame_control),
                            ("frame control high", self.frame_control_high)):
            if not 0 <= value <= 0xFF:
                raise EzspError(f"EZSP {what} must be 0-255, not {value}")
        if legacy_header or version < FIRST_EXTENDED_VERSION:
            if self.frame_id > 0xFF or self.frame_id < 0:
                raise EzspError(f"EZSP frame id 0x{self.frame_id:04x} does not fit a legacy header")
            if version >= 5 and not legacy_header and self.frame_id != VERSION_FRAME_ID:
                head = bytes([self.sequence, self.frame_control, _LEGACY_EXTENDED_MARK, 0x00, self.frame_id])
            else:
                head = bytes([self.sequence, self.frame_control, self.frame_id])
        else:
            if not 0 <= self.frame_id <= 0xFFFF:
                raise EzspError(f"EZSP frame id {self.frame_id} must be 0-0xffff")
            head = bytes([self.sequence, self.frame_control, self.frame_control_high]) + \
                self.frame_id.to_bytes(2, "little")
        return head + bytes(self.parameters)

    @classmethod
    def decode(cls, data: bytes, version: int) -> EzspFrame:
        """Split a frame received in a session of this EZSP version. A v8+ session
        also accepts the legacy header, for `version` only (frame id 0 in byte 2,
        where an extended header has frame format version 1)."""
        _check_version(version)
        data = bytes(data)
        if len(data) < 3:
            raise EzspError(f"EZSP frame of {len(data)} bytes is shorter than a header (3)")
        seq, fc = data[0], data[1]
        if version >= FIRST_EXTENDED_VERSION:
            if data[2] == VERSION_FRAME_ID:
                return cls(seq, fc, VERSION_FRAME_ID, data[3:])
            if data[2] & 0x03 != FC_HIGH_FORMAT_VERSION_1:
                raise EzspError(f"EZSP frame control high byte 0x{data[2]:02x} at offset 2 "
                                "is not frame format version 1")
            if len(data) < 5:
                raise EzspError(f"EZSP frame of {len(data)} bytes is shorter than an extended header (5)")
            return cls(seq, fc, int.from_bytes(data[3:5], "little"), data[5:], data[2])
        if version >= 5 and data[2] == _LEGACY_EXTENDED_MARK:
            if len(data) < 5:
                raise EzspError(f"EZSP frame of {len(data)} bytes is shorter than its extended legacy header (5)")
            return cls(seq, fc, data[4], data[5:])
        return cls(seq, fc, data[2], data[3:])


# --- parameter types -----------------------------------------------------------------------------------------

u8, u16, u32, s8 = Int8ul, Int16ul, Int32ul, Int8sl
EUI64 = Int64ul
KEY = Bytes(16)
LV_BYTES = Prefixed(Int8ul, GreedyBytes)
LV_BYTES32 = Prefixed(Int32ul, GreedyBytes)
EMBER_STATUS = Int8ul      # EmberStatus, before v14
EZSP_STATUS = Int8ul       # EzspStatus, before v14
SL_STATUS = Int32ul        # sl_status_t, v14 and later
SL_STATUS_OK = 0
EMBER_SUCCESS = 0


class EmberNodeType(enum.IntEnum):
    UNKNOWN_DEVICE = 0
    COORDINATOR = 1
    ROUTER = 2
    END_DEVICE = 3
    SLEEPY_END_DEVICE = 4


# EmberLibraryStatus of the ZigBee PRO library (getLibraryStatus, library id 0): what roles the build can take
ZIGBEE_PRO_LIBRARY_ID = 0x00
LIBRARY_PRESENT = 0x80
LIBRARY_HAVE_ROUTER_CAPABILITY = 0x01      # without it: an end-device-only (leaf) stack
LIBRARY_ZLL_SUPPORT = 0x02

# stackStatusHandler's status (EmberStatus before v14, sl_status_t from v14), and the few others a host reads
EMBER_NETWORK_UP, SL_NETWORK_UP = 0x90, 0x0015
EMBER_NETWORK_DOWN, SL_NETWORK_DOWN = 0x91, 0x0016
EMBER_NOT_JOINED, SL_NOT_JOINED = 0x93, 0x0017
EMBER_JOIN_FAILED = 0x94                   # sl_status NOT_JOINED from v14, as bellows maps it
EMBER_NO_BEACONS, SL_NO_BEACONS = 0xAB, 0x0018
SCAN_ENERGY, SCAN_ACTIVE = 0, 1            # EzspNetworkScanType
STACK_PROFILE_ZIGBEE_PRO = 2


def network_up_status(version: int) -> int:
    return SL_NETWORK_UP if version >= 14 else EMBER_NETWORK_UP


def network_down_status(version: int) -> int:
    return SL_NETWORK_DOWN if version >= 14 else EMBER_NETWORK_DOWN


class EmberNetworkStatus(enum.IntEnum):
    NO_NETWORK = 0
    JOINING_NETWORK = 1
    JOINED_NETWORK = 2
    JOINED_NETWORK_NO_PARENT = 3
    LEAVING_NETWORK = 4


class EmberOutgoingMessageType(enum.IntEnum):
    DIRECT = 0
    VIA_ADDRESS_TABLE = 1
    VIA_BINDING = 2
    MULTICAST = 3
    MULTICAST_WITH_ALIAS = 4
    BROADCAST_WITH_ALIAS = 5
    BROADCAST = 6


class EmberIncomingMessageType(enum.IntEnum):
    UNICAST = 0
    UNICAST_REPLY = 1
    MULTICAST = 2
    MULTICAST_LOOPBACK = 3
    BROADCAST = 4
    BROADCAST_LOOPBACK = 5
    MANY_TO_ONE_ROUTE_REQUEST = 6


NETWORK_PARAMETERS = Struct(
    "extended_pan_id" / EUI64,
    "pan_id" / u16,
    "radio_tx_power" / s8,          # dBm, int8_t in the SDK (bellows reads it unsigned)
    "radio_channel" / u8,
    "join_method" / u8,
    "nwk_manager_id" / u16,
    "nwk_update_id" / u8,
    "channels" / u32,               # channel mask, bit n = channel n
)
ZIGBEE_NETWORK = Struct(            # EmberZigbeeNetwork: a beacon an active scan heard
    "channel" / u8,
    "pan_id" / u16,
    "extended_pan_id" / EUI64,
    "allowing_join" / Flag,
    "stack_profile" / u8,
    "nwk_update_id" / u8,
)
APS_FRAME = Struct(
    "profile_id" / u16,
    "cluster_id" / u16,
    "source_endpoint" / u8,
    "destination_endpoint" / u8,
    "options" / u16,
    "group_id" / u16,
    "sequence" / u8,
)
INITIAL_SECURITY_STATE = Struct(
    "bitmask" / u16,
    "preconfigured_key" / KEY,
    "network_key" / KEY,
    "network_key_sequence_number" / u8,
    "preconfigured_trust_center_eui64" / EUI64,
)
CURRENT_SECURITY_STATE = Struct("bitmask" / u16, "trust_center_long_address" / EUI64)
KEY_STRUCT = Struct(
    "bitmask" / u16,
    "type" / u8,
    "key" / KEY,
    "outgoing_frame_counter" / u32,
    "incoming_frame_counter" / u32,
    "sequence_number" / u8,
    "partner_eui64" / EUI64,
)


def _security_manager_context(derived_type: Construct) -> Struct:
    return Struct(
        "core_key_type" / u8,
        "key_index" / u8,
        "derived_type" / derived_type,   # u8 in v12, u16 from v13
        "eui64" / EUI64,
        "multi_network_index" / u8,
        "flags" / u8,
        "psa_key_alg_permission" / u32,
    )


SECURITY_MANAGER_CONTEXT_V12 = _security_manager_context(u8)
SECURITY_MANAGER_CONTEXT = _security_manager_context(u16)
NETWORK_KEY_INFO = Struct(
    "network_key_set" / Flag,
    "alternate_network_key_set" / Flag,
    "network_key_sequence_number" / u8,
    "alt_network_key_sequence_number" / u8,
    "network_key_frame_counter" / u32,
)
APS_KEY_METADATA = Struct(
    "bitmask" / u16,
    "outgoing_frame_counter" / u32,
    "incoming_frame_counter" / u32,
    "ttl_in_seconds" / u16,
)
_CHILD_DATA_FIELDS = ("eui64" / EUI64, "type" / u8, "id" / u16, "phy" / u8, "power" / u8, "timeout" / u8)
CHILD_DATA_V8 = Struct(*_CHILD_DATA_FIELDS)
CHILD_DATA = Struct(*_CHILD_DATA_FIELDS, "timeout_remaining" / u32)   # v10+


# --- the command table ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    request: Struct
    response: Struct


@dataclass(frozen=True)
class Command:
    """One EZSP command or callback. layouts maps the first version a layout applies
    to (until the next key) to it; None marks the command absent from that version."""

    name: str
    frame_id: int
    layouts: dict[int, Layout | None] = field(hash=False)
    callback: bool = False

    def layout(self, version: int) -> Layout | None:
        found = None
        for since in sorted(self.layouts):
            if since <= version:
                found = self.layouts[since]
        return found

    def available(self, version: int) -> bool:
        return self.layout(version) is not None


EMPTY = Struct()
COMMANDS: dict[str, Command] = {}


def _define(name: str, frame_id: int, layouts: dict[int, tuple[Struct, Struct] | None], *,
            callback: bool = False) -> None:
    COMMANDS[name] = Command(name, frame_id, {v: None if lay is None else Layout(*lay) for v, lay in layouts.items()},
                             callback)


def _status_widened(request: Struct, response, old_status: Construct = EMBER_STATUS):
    """The common v14 change: the layout stays, the status becomes sl_status_t.
    response is a function of the status construct."""
    return {8: (request, response(old_status)), 14: (request, response(SL_STATUS))}


def _status_only(st: Construct) -> Struct:
    return Struct("status" / st)


# `version` keeps one layout in every version (it is how a host learns the version).
_define("version", VERSION_FRAME_ID, {4: (
    Struct("desired_protocol_version" / u8),
    Struct("protocol_version" / u8, "stack_type" / u8, "stack_version" / u16))})
_define("addEndpoint", 0x0002, _status_widened(Struct(
    "endpoint" / u8,
    "profile_id" / u16,
    "device_id" / u16,
    "device_version" / u8,
    "input_cluster_count" / Rebuild(u8, len_(this.input_clusters)),
    "output_cluster_count" / Rebuild(u8, len_(this.output_clusters)),
    "input_clusters" / Array(this.input_cluster_count, u16),
    "output_clusters" / Array(this.output_cluster_count, u16),
), _status_only, EZSP_STATUS))
_define("getLibraryStatus", 0x0001, {8: (Struct("library_id" / u8), Struct("status" / u8))})   # EmberLibraryStatus
_define("nop", 0x0005, {8: (EMPTY, EMPTY)})
_define("callback", 0x0006, {8: (EMPTY, EMPTY)})   # answered by the pending callback itself, or noCallbacks
_define("noCallbacks", 0x0007, {8: (EMPTY, EMPTY)})   # the answer to `callback` when none is pending
_define("getMfgToken", 0x000B, {8: (Struct("token_id" / u8), Struct("token_data" / LV_BYTES))})
_define("setConcentrator", 0x0010, _status_widened(Struct(
    "on" / Flag,
    "concentrator_type" / u16,
    "min_time" / u16,
    "max_time" / u16,
    "route_error_threshold" / u8,
    "delivery_failure_threshold" / u8,
    "max_hops" / u8,
), _status_only))
_define("setManufacturerCode", 0x0015, {8: (Struct("code" / u16), EMPTY),
                                        14: (Struct("code" / u16), _status_only(SL_STATUS))})
_define("networkInit", 0x0017, _status_widened(Struct("bitmask" / u16), _status_only))
_define("networkState", 0x0018, {8: (EMPTY, Struct("status" / u8))})   # EmberNetworkStatus, never widened
_define("stackStatusHandler", 0x0019, _status_widened(EMPTY, _status_only), callback=True)
_define("startScan", 0x001A, _status_widened(
    Struct("scan_type" / u8, "channel_mask" / u32, "duration" / u8), _status_only))   # EzspNetworkScanType
_define("networkFoundHandler", 0x001B, {8: (EMPTY, Struct(
    "network_found" / ZIGBEE_NETWORK, "last_hop_lqi" / u8, "last_hop_rssi" / s8))}, callback=True)
_define("scanCompleteHandler", 0x001C, _status_widened(EMPTY, lambda st: Struct("channel" / u8, "status" / st)),
        callback=True)
_define("stopScan", 0x001D, _status_widened(EMPTY, _status_only))
_define("formNetwork", 0x001E, _status_widened(Struct("parameters" / NETWORK_PARAMETERS), _status_only))
_define("joinNetwork", 0x001F, _status_widened(
    Struct("node_type" / u8, "parameters" / NETWORK_PARAMETERS), _status_only))
_define("leaveNetwork", 0x0020, {8: (EMPTY, _status_only(EMBER_STATUS)),
                                 14: (Struct("options" / u8), _status_only(SL_STATUS))})
_define("permitJoining", 0x0022, _status_widened(Struct("duration" / u8), _status_only))
_define("childJoinHandler", 0x0023, {8: (EMPTY, Struct(
    "index" / u8, "joining" / Flag, "child_id" / u16, "child_eui64" / EUI64, "child_type" / u8))}, callback=True)
_define("trustCenterJoinHandler", 0x0024, {8: (EMPTY, Struct(
    "new_node_id" / u16,
    "new_node_eui64" / EUI64,
    "status" / u8,                      # EmberDeviceUpdate
    "policy_decision" / u8,             # EmberJoinDecision
    "parent_of_new_node_id" / u16,
))}, callback=True)
_define("getEui64", 0x0026, {8: (EMPTY, Struct("eui64" / EUI64))})
_define("getNodeId", 0x0027, {8: (EMPTY, Struct("node_id" / u16))})
_define("getNetworkParameters", 0x0028, _status_widened(EMPTY, lambda st: Struct(
    "status" / st, "node_type" / u8, "parameters" / NETWORK_PARAMETERS)))
_define("sendUnicast", 0x0034, {
    8: (Struct("message_type" / u8, "destination" / u16, "aps_frame" / APS_FRAME, "message_tag" / u8,
               "message" / LV_BYTES),
        Struct("status" / EMBER_STATUS, "aps_sequence" / u8)),
    14: (Struct("message_type" / u8, "destination" / u16, "aps_frame" / APS_FRAME, "message_tag" / u16,
                "message" / LV_BYTES),
         Struct("status" / SL_STATUS, "aps_sequence" / u8)),
})
_define("sendBroadcast", 0x0036, {
    8: (Struct("destination" / u16, "aps_frame" / APS_FRAME, "radius" / u8, "message_tag" / u8,
               "message" / LV_BYTES),
        Struct("status" / EMBER_STATUS, "aps_sequence" / u8)),
    14: (Struct("alias" / u16, "destination" / u16, "nwk_sequence" / u8, "aps_frame" / APS_FRAME, "radius" / u8,
                "message_tag" / u16, "message" / LV_BYTES),
         Struct("status" / SL_STATUS, "aps_sequence" / u8)),
})
_define("messageSentHandler", 0x003F, {
    8: (EMPTY, Struct("message_type" / u8, "destination" / u16, "aps_frame" / APS_FRAME, "message_tag" / u8,
                      "status" / EMBER_STATUS, "message" / LV_BYTES)),
    14: (EMPTY, Struct("status" / SL_STATUS, "message_type" / u8, "destination" / u16, "aps_frame" / APS_FRAME,
                       "message_tag" / u16, "message" / LV_BYTES)),
}, callback=True)
_define("incomingMessageHandler", 0x0045, {
    8: (EMPTY, Struct("message_type" / u8, "aps_frame" / APS_FRAME, "lqi" / u8, "rssi" / s8, "sender" / u16,
                      "binding_index" / u8, "address_index" / u8, "message" / LV_BYTES)),
    14: (EMPTY, Struct("message_type" / u8, "aps_frame" / APS_FRAME, "sender" / u16, "sender_eui64" / EUI64,
                       "binding_index" / u8, "address_index" / u8, "lqi" / u8, "rssi" / s8, "timestamp" / u32,
                       "message" / LV_BYTES)),
}, callback=True)
_define("customFrame", 0x0047, _status_widened(Struct("payload" / LV_BYTES), lambda st: Struct(
    "status" / st, "reply" / LV_BYTES)))
_define("energyScanResultHandler", 0x0048, {8: (EMPTY, Struct("channel" / u8, "max_rssi_value" / s8))},
        callback=True)
_define("getChildData", 0x004A, {
    8: (Struct("index" / u8), Struct("status" / EMBER_STATUS, "child_data" / CHILD_DATA_V8)),
    10: (Struct("index" / u8), Struct("status" / EMBER_STATUS, "child_data" / CHILD_DATA)),
    14: (Struct("index" / u8), Struct("status" / SL_STATUS, "child_data" / CHILD_DATA)),
})
_define("getConfigurationValue", 0x0052, _status_widened(Struct("config_id" / u8), lambda st: Struct(
    "status" / st, "value" / u16), EZSP_STATUS))
_define("setConfigurationValue", 0x0053, _status_widened(
    Struct("config_id" / u8, "value" / u16), _status_only, EZSP_STATUS))
_define("setPolicy", 0x0055, _status_widened(
    Struct("policy_id" / u8, "decision_id" / u8), _status_only, EZSP_STATUS))
# sent by the NCP instead of the response to a command it cannot process
_define("invalidCommand", 0x0058, _status_widened(EMPTY, _status_only, EZSP_STATUS))
_define("setSourceRouteDiscoveryMode", 0x005A, {8: (Struct("mode" / u8), Struct("remaining_time" / u32))})
_define("getAddressTableInfo", 0x005E, {8: None, 14: (
    Struct("index" / u8), Struct("status" / SL_STATUS, "nwk" / u16, "eui64" / EUI64))})
_define("lookupEui64ByNodeId", 0x0061, _status_widened(Struct("node_id" / u16), lambda st: Struct(
    "status" / st, "eui64" / EUI64)))
_define("addOrUpdateKeyTableEntry", 0x0066, {8: (
    Struct("address" / EUI64, "link_key" / Flag, "key_data" / KEY), _status_only(EMBER_STATUS)), 13: None})
_define("setInitialSecurityState", 0x0068, _status_widened(
    Struct("state" / INITIAL_SECURITY_STATE), _status_only))
_define("getCurrentSecurityState", 0x0069, _status_widened(EMPTY, lambda st: Struct(
    "status" / st, "state" / CURRENT_SECURITY_STATE)))
_define("getKey", 0x006A, {8: (Struct("key_type" / u8), Struct("status" / EMBER_STATUS, "key_struct" / KEY_STRUCT)),
                           13: None})
_define("clearTransientLinkKeys", 0x006B, {8: (EMPTY, EMPTY)})
_define("getKeyTableEntry", 0x0071, {8: (
    Struct("index" / u8), Struct("status" / EMBER_STATUS, "key_struct" / KEY_STRUCT)), 13: None})
_define("findKeyTableEntry", 0x0075, {8: (Struct("address" / EUI64, "link_key" / Flag), Struct("index" / u8))})
_define("eraseKeyTableEntry", 0x0076, _status_widened(Struct("index" / u8), _status_only))
_define("getValue", 0x00AA, _status_widened(Struct("value_id" / u8), lambda st: Struct(
    "status" / st, "value" / LV_BYTES), EZSP_STATUS))
_define("setValue", 0x00AB, _status_widened(Struct("value_id" / u8, "value" / LV_BYTES), _status_only, EZSP_STATUS))
_define("setChildData", 0x00AC, {
    8: None,
    9: (Struct("index" / u8, "child_data" / CHILD_DATA_V8), _status_only(EMBER_STATUS)),
    10: (Struct("index" / u8, "child_data" / CHILD_DATA), _status_only(EMBER_STATUS)),
    14: (Struct("index" / u8, "child_data" / CHILD_DATA), _status_only(SL_STATUS)),
})
_define("addTransientLinkKey", 0x00AF, {8: (Struct("partner" / EUI64, "transient_key" / KEY),
                                            _status_only(EMBER_STATUS)), 13: None})   # importTransientKey from v13
_define("readCounters", 0x00F1, {8: (EMPTY, Struct("values" / GreedyRange(u16)))})
_define("getTokenData", 0x0102, {8: None, **{v: (Struct("token" / u32, "index" / u32), Struct(
    "status" / st,
    "value" / If(this.status == 0, LV_BYTES32),   # only on success
)) for v, st in ((9, EMBER_STATUS), (14, SL_STATUS))}})
_define("importLinkKey", 0x010E, {8: None, 12: (
    Struct("index" / u8, "address" / EUI64, "plaintext_key" / KEY), _status_only(SL_STATUS))})
_define("exportLinkKeyByIndex", 0x010F, {
    8: None,
    12: (Struct("index" / u8), Struct("eui64" / EUI64, "plaintext_key" / KEY, "key_data" / APS_KEY_METADATA,
                                      "status" / SL_STATUS)),
    14: (Struct("index" / u8), Struct("status" / SL_STATUS, "context" / SECURITY_MANAGER_CONTEXT,
                                      "plaintext_key" / KEY, "key_data" / APS_KEY_METADATA)),
})
_define("importTransientKey", 0x0111, {8: None, 12: (
    Struct("eui64" / EUI64, "plaintext_key" / KEY, "flags" / u8), _status_only(SL_STATUS))})   # sl_zb_sec_man_flags_t
_define("exportKey", 0x0114, {
    8: None,
    12: (Struct("context" / SECURITY_MANAGER_CONTEXT_V12), Struct("key" / KEY, "status" / SL_STATUS)),
    13: (Struct("context" / SECURITY_MANAGER_CONTEXT), Struct("key" / KEY, "status" / SL_STATUS)),
    14: (Struct("context" / SECURITY_MANAGER_CONTEXT), Struct("status" / SL_STATUS, "key" / KEY,
                                                              "context" / SECURITY_MANAGER_CONTEXT)),
})
_define("getNetworkKeyInfo", 0x0116, {8: None, 13: (EMPTY, Struct(
    "status" / SL_STATUS, "network_key_info" / NETWORK_KEY_INFO))})


def command(name: str, version: int) -> tuple[Command, Layout]:
    """The command and its layout in this version; EzspError if it has none there."""
    _check_version(version)
    cmd = COMMANDS.get(name)
    if cmd is None:
        raise EzspError(f"unknown EZSP command {name!r}")
    if version < FIRST_EXTENDED_VERSION and name != "version":
        raise EzspError(f"EZSP v{version}: only `version` is covered before v{FIRST_EXTENDED_VERSION}")
    layout = cmd.layout(version)
    if layout is None:
        raise EzspError(f"EZSP command {name} does not exist in version {version}")
    return cmd, layout


def by_id(frame_id: int, version: int) -> Command:
    """The command with this frame id in this version (ids are reused across versions)."""
    _check_version(version)
    for cmd in COMMANDS.values():
        if cmd.frame_id == frame_id and (version >= FIRST_EXTENDED_VERSION or cmd.name == "version") \
                and cmd.available(version):
            return cmd
    raise EzspError(f"unknown EZSP frame id 0x{frame_id:04x} in version {version}")


# --- encode / decode -----------------------------------------------------------------------------------------

def _plain(value):
    """construct's Containers and ListContainers as dicts and lists (no _io)."""
    if isinstance(value, Container):
        return {k: _plain(v) for k, v in value.items() if not k.startswith("_")}
    if isinstance(value, ListContainer | list):
        return [_plain(v) for v in value]
    return value


def encode_parameters(name: str, version: int, direction: Direction, fields: dict) -> bytes:
    cmd, layout = command(name, version)
    struct = layout.request if direction is Direction.REQUEST else layout.response
    known = {sc.name for sc in struct.subcons}
    # counts are rebuilt from their lists, and a conditional field may be left out
    wanted = {sc.name for sc in struct.subcons if not isinstance(sc.subcon, Rebuild | IfThenElse)}
    given = set(fields)
    if given - known:
        raise EzspError(f"{name} {direction.value} (v{version}): unknown fields {sorted(given - known)}")
    if wanted - given:
        raise EzspError(f"{name} {direction.value} (v{version}): missing fields {sorted(wanted - given)}")
    # construct wants a key even for a conditional field it will not build
    fields = {**{sc.name: None for sc in struct.subcons if isinstance(sc.subcon, IfThenElse)}, **fields}
    try:
        return struct.build(fields)
    except (ConstructError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise EzspError(f"{name} {direction.value} (v{version}): {type(e).__name__}: {e}".splitlines()[0]) from None


def encode_request(name: str, version: int, sequence: int, *, legacy_header: bool | None = None,
                   frame_control: int = 0x00, **fields) -> bytes:
    """A whole command frame host -> NCP. `version` goes in the legacy header unless
    legacy_header=False (a host's first version command must be legacy)."""
    cmd, _ = command(name, version)
    params = encode_parameters(name, version, Direction.REQUEST, fields)
    legacy = (name == "version") if legacy_header is None else legacy_header
    return EzspFrame(sequence, frame_control, cmd.frame_id, params).encode(version, legacy_header=legacy)


def encode_response(name: str, version: int, sequence: int, *, legacy_header: bool = False,
                    frame_control: int | None = None, **fields) -> bytes:
    """A whole response or callback frame NCP -> host. frame_control defaults to
    0x80 for responses and 0x90 (asynchronous callback) for callbacks; answer a
    `version` sent in the legacy header with legacy_header=True."""
    cmd, _ = command(name, version)
    params = encode_parameters(name, version, Direction.RESPONSE, fields)
    if frame_control is None:
        frame_control = FC_RESPONSE | (FC_CALLBACK_ASYNC if cmd.callback else 0)
    return EzspFrame(sequence, frame_control, cmd.frame_id, params).encode(version, legacy_header=legacy_header)


def decode_parameters(name: str, version: int, direction: Direction, data: bytes, *, strict: bool = True) -> dict:
    """Parameter bytes to a dict. strict: trailing bytes are an error (otherwise ignored,
    as newer firmware sometimes appends fields)."""
    _, layout = command(name, version)
    struct = layout.request if direction is Direction.REQUEST else layout.response
    data = bytes(data)
    try:
        parsed = struct.parse(data)
        used = len(struct.build(parsed))
    except (ConstructError, KeyError, TypeError, ValueError) as e:
        raise EzspError(f"{name} {direction.value} (v{version}) of {len(data)} bytes: "
                        f"{type(e).__name__}: {e}".splitlines()[0]) from None
    if strict and used != len(data):
        raise EzspError(f"{name} {direction.value} (v{version}): {len(data) - used} trailing bytes at offset {used}")
    return _plain(parsed)


def decode(data: bytes, version: int, direction: Direction | None = None, *,
           strict: bool = True) -> tuple[str, dict]:
    """A whole EZSP frame to (command name, fields). direction defaults to what
    the frame control's bit 7 says."""
    frame = EzspFrame.decode(data, version)
    if direction is None:
        direction = Direction.RESPONSE if frame.is_response else Direction.REQUEST
    cmd = by_id(frame.frame_id, version)
    return cmd.name, decode_parameters(cmd.name, version, direction, frame.parameters, strict=strict)
