"""TI Z-Stack Monitor-and-Test (MT) frames, as a ZNP dongle speaks them over its UART: a pure, sans-I/O codec.

The frame, every multi-byte field little-endian:

    SOF 0xFE | length u8 (of the payload only, <= 250) | cmd0 u8 | cmd1 u8 | payload | FCS u8

    cmd0 = type << 5 | subsystem    type: POLL 0, SREQ 1, AREQ 2, SRSP 3 (4-7 reserved, refused)
    cmd1 = the command id within its subsystem
    FCS  = XOR of length, cmd0, cmd1 and every payload byte (the SOF is not covered)

An SREQ is answered at once by an SRSP with the same subsystem and id; an AREQ is
either a request nobody answers (SYS.ResetReq) or a callback from the dongle
(ZDO.StateChangeInd, AF.IncomingMsg, ...).

The API, three layers:

* `Frame(type, subsystem, cmd1, payload)`: one frame. `Frame.encode()` gives the wire
  bytes, `Frame.decode(data)` reads exactly one complete frame (MtError otherwise).
* `FrameParser().feed(data) -> list[Frame]`: the stream parser. It keeps a partial
  frame across feeds, skips garbage up to the next SOF, resynchronises on the next
  0xFE after a bad FCS, an oversized length or a reserved type, and never raises.
  `skipped_bytes` and `bad_frames` count what it threw away; it holds at most one
  pending frame (<= 255 bytes) between feeds.
* The command table `COMMANDS` (name -> `Command`), one declaration per command with
  its subsystem, type, id and payload layouts as construct Structs. Names follow
  zigpy-znp's ("AF.Register", "ZDO.StateChangeInd"), field names are the snake_case
  of its parameter names (Endpoint: endpoint, InputClusters: input_clusters):

      frame = mt.encode_command("AF.Register", endpoint=1, profile_id=0x0104, device_id=0x0100,
                                device_version=0, latency_req=0, input_clusters=[0], output_clusters=[0x19])
      frame = mt.encode_response("SYS.Ping", capabilities=0x0659)     # the SRSP of an SREQ
      name, fields = mt.decode(frame)      # ("AF.Register", Container(endpoint=1, ...))

  `encode_command` builds the SREQ or AREQ of a command, `encode_response` the SRSP
  (of an SREQ, or RPC_ERROR.CommandNotRecognized, which exists only as an SRSP).
  `decode` returns a `Decoded(name, fields)`; whether it was the request or the
  response is the frame's `type`. Fields decode to ints, bytes, lists, nested
  Containers and, for closed enumerations, IntEnum members. Status codes stay plain
  ints: Z-Stack returns codes no table lists, and a codec must not refuse them.
  Trailing optional fields (SYS.Version's CodeRevision..., ZDO.NodeDescRsp's
  descriptor) may be left out when encoding and decode to None when absent.

Every failure is an MtError with one line naming the command (or "MT frame") and
what is wrong: a short or overlong payload, an enumeration value out of range, an
unknown field, a command the table does not hold.

Covered (the layouts checked against zigpy-znp's definitions, by the tests, both ways):

    SYS      ResetReq ResetInd Ping Version SetExtAddr GetExtAddr SetTxPower
             OSALNVItemInit OSALNVRead OSALNVWrite OSALNVDelete OSALNVLength OSALNVReadExt OSALNVWriteExt
             NVCreate NVDelete NVLength NVRead NVWrite
    UTIL     GetDeviceInfo LEDControl AssocFindDevice AssocGetWithAddress AssocRemove AssocAdd
    ZDO      NwkAddrReq IEEEAddrReq NodeDescReq SimpleDescReq ActiveEpReq BindReq MgmtLeaveReq
             MgmtPermitJoinReq MgmtNWKUpdateReq MsgCallbackRegister StartupFromApp ExtRouteDisc
             ExtRouteChk ExtNwkInfo, and the callbacks NwkAddrRsp IEEEAddrRsp NodeDescRsp SimpleDescRsp
             ActiveEpRsp ParentAnnceRsp BindRsp MgmtLeaveRsp MgmtPermitJoinRsp StateChangeInd
             EndDeviceAnnceInd SrcRtgInd LeaveInd TCDevInd PermitJoinInd MsgCbIncoming
    AF       Register DataRequest DataRequestExt DataRequestSrcRtg DataConfirm IncomingMsg IncomingMsgExt
    APP_CNF  BDBAddInstallCode BDBStartCommissioning BDBSetJoinUsesInstallCodeKey BDBSetChannel
             BDBSetTcRequireKeyExchange BDBCommissioningNotification SetNwkFrameCounter
    SAPI     ZBReadConfiguration
    RPC_ERROR CommandNotRecognized

That is everything zigpy-znp sends, and every callback it listens for, while it starts
(api.py, zigbee/application.py, nvram.py, znp/security.py, utils.py), plus the ZDO
requests a host driving a dongle as a router needs, plus what zigbee-herdsman's zstack
adapter adds (ZDO.ExtFindGroup, ZDO.ExtAddGroup, SYS.StackTune, the ZDO callbacks
MgmtLqiRsp MgmtRtgRsp UnbindRsp in herdsman's callback form). ZDO.ExtNwkInfo's answer
is Z-Stack's 24-byte layout, not zigpy-znp's (see the table).
"""
from __future__ import annotations

import enum
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from construct import (
    Adapter,
    Check,
    Construct,
    ConstructError,
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
    Optional,
    Padded,
    Prefixed,
    PrefixedArray,
    StreamError,
    Struct,
    Subconstruct,
    Terminated,
    ValidationError,
    stream_read,
    stream_read_entire,
    this,
)
from construct.lib import Container

from bridge_emu.codec.construct_util import clean_container, construct_reason
from bridge_emu.codec.zdo import NodeDescriptor
from bridge_emu.errors import BridgeEmuError

SOF = 0xFE
MAX_PAYLOAD = 250
_OVERHEAD = 5  # SOF, length, cmd0, cmd1, FCS


class MtError(BridgeEmuError):
    """An MT frame or command payload that cannot be encoded or decoded."""


class CommandType(enum.IntEnum):
    POLL = 0
    SREQ = 1
    AREQ = 2
    SRSP = 3


class Subsystem(enum.IntEnum):
    RPC_ERROR = 0x00
    SYS = 0x01
    MAC = 0x02
    NWK = 0x03
    AF = 0x04
    ZDO = 0x05
    SAPI = 0x06
    UTIL = 0x07
    DEBUG = 0x08
    APP = 0x09
    OTA = 0x0A
    ZNP = 0x0B
    UBL_FUNC = 0x0D
    APP_CNF = 0x0F
    ZGP = 0x15


# -- closed enumerations: a value outside them is a malformed payload --------------------------------------------

class ResetType(enum.IntEnum):
    HARD = 0
    SOFT = 1
    SHUTDOWN = 2


class ResetReason(enum.IntEnum):
    POWER_UP = 0
    EXTERNAL = 1
    WATCHDOG = 2


class BootloaderBuildType(enum.IntEnum):
    NON_BOOTLOADER_BUILD = 0
    BUILT_AS_BIN = 1
    BUILT_AS_HEX = 2


class LatencyReq(enum.IntEnum):
    NONE = 0
    FAST_BEACONS = 1
    SLOW_BEACONS = 2


class AddrMode(enum.IntEnum):
    NOT_PRESENT = 0x00
    GROUP = 0x01
    NWK = 0x02
    IEEE = 0x03
    BROADCAST = 0x0F


class DeviceState(enum.IntEnum):
    INITIALIZED_NOT_STARTED = 0x00
    INITIALIZED_NOT_CONNECTED = 0x01
    DISCOVERING_PANS = 0x02
    JOINING = 0x03
    REJOINING_SECURE_CURRENT_CHANNEL = 0x04
    JOINED_NOT_AUTHENTICATED = 0x05
    JOINED_AS_END_DEVICE = 0x06
    JOINED_AS_ROUTER = 0x07
    STARTING_AS_COORDINATOR = 0x08
    STARTED_AS_COORDINATOR = 0x09
    LOST_PARENT = 0x0A
    SENDING_KEEPALIVE_TO_PARENT = 0x0B
    BACKOFF_BEFORE_REJOIN = 0x0C
    REJOIN_SECURE_ALL_CHANNELS = 0x0D
    REJOIN_INSECURE_CURRENT_CHANNEL = 0x0E
    REJOIN_INSECURE_ALL_CHANNELS = 0x0F


class StartupState(enum.IntEnum):
    RESTORED_NETWORK_STATE = 0
    NEW_NETWORK_STATE = 1
    NOT_STARTED = 2


class AddrRequestType(enum.IntEnum):
    SINGLE = 0
    EXTENDED = 1


class LedMode(enum.IntEnum):
    OFF = 0
    ON = 1
    BLINK = 2
    FLASH = 3
    TOGGLE = 4


class NodeRelation(enum.IntEnum):
    PARENT = 0
    CHILD_RFD = 1
    CHILD_RFD_RX_IDLE = 2
    CHILD_FFD = 3
    CHILD_FFD_RX_IDLE = 4
    NEIGHBOR = 5
    OTHER = 6
    UNKNOWN_8 = 8
    NOT_USED = 0xFF


class RouteStatus(enum.IntEnum):
    INIT = 0
    ACTIVE = 1
    DISC = 2
    LINK_FAIL = 3
    REPAIR = 4


class RoutingStatus(enum.IntEnum):
    SUCCESS = 0
    FAIL = 1
    TBL_FULL = 2
    HIGHER_COST = 3
    NO_ENTRY = 4
    INVALID_PATH = 5
    INVALID_PARAM = 6
    SRC_TBL_FULL = 7


class BdbCommissioningStatus(enum.IntEnum):
    SUCCESS = 0x00
    IN_PROGRESS = 0x01
    NO_NETWORK = 0x02
    TL_TARGET_FAILURE = 0x03
    TL_NOT_AA_CAPABLE = 0x04
    TL_NO_SCAN_RESPONSE = 0x05
    TL_NOT_PERMITTED = 0x06
    TCLK_EX_FAILURE = 0x07
    FORMATION_FAILURE = 0x08
    FB_TARGET_IN_PROGRESS = 0x09
    FB_INITIATOR_IN_PROGRESS = 0x0A
    FB_NO_IDENTIFY_QUERY_RESPONSE = 0x0B
    FB_BINDING_TABLE_FULL = 0x0C
    NETWORK_RESTORED = 0x0D
    FAILURE = 0x0E


class InstallCodeFormat(enum.IntEnum):
    INSTALL_CODE_AND_CRC = 1
    KEY_DERIVED_FROM_INSTALL_CODE = 2


class RpcErrorCode(enum.IntEnum):
    INVALID_SUBSYSTEM = 1
    INVALID_COMMAND_ID = 2
    INVALID_PARAMETER = 3
    INVALID_LENGTH = 4


# -- the frame ---------------------------------------------------------------------------------------------------

def fcs(body: bytes) -> int:
    """The MT frame check sequence: XOR of every byte given (length, cmd0, cmd1, payload)."""
    check = 0
    for byte in body:
        check ^= byte
    return check


@dataclass(frozen=True)
class Frame:
    """One MT frame: its type, subsystem, command id (cmd1) and payload."""

    type: CommandType
    subsystem: int  # a Subsystem when the value is known; any 5-bit value travels
    cmd1: int
    payload: bytes = b""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "type", CommandType(self.type))
        except ValueError:
            raise MtError(f"MT frame: type {self.type!r} is not POLL, SREQ, AREQ or SRSP") from None
        if not isinstance(self.subsystem, int) or not 0 <= self.subsystem <= 0x1F:
            raise MtError(f"MT frame: subsystem {self.subsystem!r} out of range 0..0x1F")
        if self.subsystem in Subsystem._value2member_map_:
            object.__setattr__(self, "subsystem", Subsystem(self.subsystem))
        if not isinstance(self.cmd1, int) or not 0 <= self.cmd1 <= 0xFF:
            raise MtError(f"MT frame: command id {self.cmd1!r} out of range 0..0xFF")
        object.__setattr__(self, "payload", bytes(self.payload))
        if len(self.payload) > MAX_PAYLOAD:
            raise MtError(f"MT frame: payload of {len(self.payload)} bytes, at most {MAX_PAYLOAD}")

    @property
    def cmd0(self) -> int:
        return self.type << 5 | self.subsystem

    def encode(self) -> bytes:
        body = bytes([len(self.payload), self.cmd0, self.cmd1]) + self.payload
        return bytes([SOF]) + body + bytes([fcs(body)])

    @classmethod
    def decode(cls, data: bytes) -> Frame:
        """Exactly one complete frame, SOF to FCS."""
        data = bytes(data)
        if len(data) < _OVERHEAD:
            raise MtError(f"MT frame: {len(data)} bytes, at least {_OVERHEAD}")
        if data[0] != SOF:
            raise MtError(f"MT frame: SOF 0x{data[0]:02X} at offset 0, expected 0x{SOF:02X}")
        length = data[1]
        if length > MAX_PAYLOAD:
            raise MtError(f"MT frame: length {length} at offset 1, at most {MAX_PAYLOAD}")
        if len(data) != length + _OVERHEAD:
            raise MtError(f"MT frame: {len(data)} bytes, length {length} at offset 1 needs {length + _OVERHEAD}")
        computed = fcs(data[1:-1])
        if data[-1] != computed:
            raise MtError(f"MT frame: FCS 0x{data[-1]:02X} at offset {len(data) - 1}, computed 0x{computed:02X}")
        cmd0 = data[2]
        if cmd0 >> 5 not in CommandType._value2member_map_:
            raise MtError(f"MT frame: reserved type {cmd0 >> 5} in cmd0 0x{cmd0:02X} at offset 2")
        return cls(CommandType(cmd0 >> 5), cmd0 & 0x1F, data[3], data[4:-1])


class FrameParser:
    """Sans-I/O stream parser: feed it bytes as they arrive, get back the complete frames.

    It never raises. Bytes before a SOF are skipped; a frame with a bad FCS, a length
    over 250 or a reserved type counts as bad and parsing resumes at the next 0xFE
    after its SOF (the "frame" may have been garbage holding a frame). Between feeds
    it keeps only the start of one frame, so its memory stays bounded.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.skipped_bytes = 0
        self.bad_frames = 0

    @property
    def pending(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buffer)

    def reset(self) -> None:
        """Forget a partial frame (after a reconnection, say); the counters stay."""
        self.skipped_bytes += len(self._buffer)
        self._buffer.clear()

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        buffer = self._buffer
        buffer += data
        while buffer:
            start = buffer.find(SOF)
            if start < 0:
                self.skipped_bytes += len(buffer)
                buffer.clear()
                break
            if start:
                self.skipped_bytes += start
                del buffer[:start]
            if len(buffer) < 2:
                break
            length = buffer[1]
            if length > MAX_PAYLOAD:
                self._drop_sof()
                continue
            if len(buffer) < length + _OVERHEAD:
                break  # wait for the rest
            try:
                frames.append(Frame.decode(bytes(buffer[: length + _OVERHEAD])))
            except MtError:
                self._drop_sof()
                continue
            del buffer[: length + _OVERHEAD]
        return frames

    def _drop_sof(self) -> None:
        self.bad_frames += 1
        self.skipped_bytes += 1
        del self._buffer[:1]


# -- payload building blocks -------------------------------------------------------------------------------------

class _ClosedEnum(Adapter):
    """An integer field that must be one of an IntEnum's values; decodes to the member."""

    def __init__(self, subcon: Construct, enum_type: type[enum.IntEnum]):
        super().__init__(subcon)
        self.enum_type = enum_type

    def _member(self, obj: Any, path: str) -> enum.IntEnum:
        try:
            return self.enum_type(obj)
        except ValueError:
            raise ValidationError(f"{self.enum_type.__name__} {obj!r} out of range", path=path) from None

    def _decode(self, obj: Any, context: Any, path: str) -> enum.IntEnum:
        return self._member(obj, path)

    def _encode(self, obj: Any, context: Any, path: str) -> int:
        return int(self._member(obj, path))


def _enum8(enum_type: type[enum.IntEnum]) -> Construct:
    return _ClosedEnum(Int8ul, enum_type)


class _NullableTail(Subconstruct):
    """zigpy-znp's NullableNodeDescriptor: the rest of the payload is absent, a lone 0x00, or the whole struct.

    Both empty forms decode to None; None encodes to nothing, as zigpy-znp sends it."""

    def _parse(self, stream: io.IOBase, context: Any, path: str) -> Any:
        rest = stream_read_entire(stream, path)
        if rest in (b"", b"\x00"):
            return None
        size = self.subcon.sizeof()
        if len(rest) != size:
            raise StreamError(f"{len(rest)} bytes, expected {size}", path=path)
        return self.subcon._parsereport(io.BytesIO(rest), context, path)

    def _build(self, obj: Any, stream: io.IOBase, context: Any, path: str) -> Any:
        return None if obj is None else self.subcon._build(obj, stream, context, path)


class _ZeroLengthIsNone(Subconstruct):
    """A u8-size-prefixed struct whose size 0 means "none" (ZDO.SimpleDescRsp on failure)."""

    def __init__(self, subcon: Construct):
        super().__init__(Prefixed(Int8ul, subcon))

    def _parse(self, stream: io.IOBase, context: Any, path: str) -> Any:
        size = stream_read(stream, 1, path)[0]
        if size == 0:
            return None
        stream.seek(-1, io.SEEK_CUR)
        return self.subcon._parsereport(stream, context, path)

    def _build(self, obj: Any, stream: io.IOBase, context: Any, path: str) -> Any:
        if obj is None:
            stream.write(b"\x00")
            return None
        return self.subcon._build(obj, stream, context, path)


def _payload(*fields: Construct) -> Struct:
    """A command payload: the fields, then nothing (trailing bytes are an error)."""
    return Struct(*fields, Terminated)


class _NoGapAfterNone(Construct):
    """Optional trailing fields may stop early but not skip: once one is None, all after it must be too."""

    def __init__(self, *names: str):
        super().__init__()
        self.names = names
        self.flagbuildnone = True

    def _check(self, context: Any, path: str) -> None:
        absent = None
        for name in self.names:
            if context.get(name) is None:
                absent = absent or name
            elif absent:
                raise ValidationError(f"{name} present after {absent} left out", path=path)

    def _parse(self, stream: io.IOBase, context: Any, path: str) -> None:
        self._check(context, path)

    def _build(self, obj: Any, stream: io.IOBase, context: Any, path: str) -> None:
        self._check(context, path)

    def _sizeof(self, context: Any, path: str) -> int:
        return 0


_IEEE = Int64ul          # an EUI-64, as an int (its bytes little-endian on the wire)
_NWK = Int16ul
_STATUS = Int8ul         # open-ended: Z-Stack status codes stay ints
_SHORT_BYTES = Prefixed(Int8ul, GreedyBytes)
_LONG_BYTES = Prefixed(Int16ul, GreedyBytes)
_CLUSTER_LIST = PrefixedArray(Int8ul, Int16ul)
_NWK_LIST = PrefixedArray(Int8ul, _NWK)
_STATUS_ONLY = _payload("status" / _STATUS)
_EMPTY = _payload()

# AF's AddrModeAddress: the mode, then 8 bytes holding an IEEE address or a NWK address padded with zeros.
_ADDR_MODE_ADDRESS = Struct(
    "mode" / _enum8(AddrMode),
    "address" / IfThenElse(this.mode == AddrMode.IEEE, _IEEE, Padded(8, _NWK)),
)



class _WithAbsentAsNone(Adapter):
    """Lets a caller leave out the fields a variant does not carry (they encode as None, i.e. nothing)."""

    def __init__(self, subcon: Construct, *names: str):
        super().__init__(subcon)
        self.names = names

    def _decode(self, obj: Any, context: Any, path: str) -> Any:
        return obj

    def _encode(self, obj: Mapping[str, Any], context: Any, path: str) -> dict[str, Any]:
        return {**dict.fromkeys(self.names), **obj}


# ZDO's binding destination: a group (mode 1), or an IEEE address and endpoint (mode 3).
_BIND_DESTINATION = _WithAbsentAsNone(Struct(
    "addr_mode" / Int8ul,
    Check(lambda ctx: ctx.addr_mode in (AddrMode.GROUP, AddrMode.IEEE)),
    "nwk" / If(this.addr_mode == AddrMode.GROUP, _NWK),
    "ieee" / If(this.addr_mode == AddrMode.IEEE, _IEEE),
    "endpoint" / If(this.addr_mode == AddrMode.IEEE, Int8ul),
), "nwk", "ieee", "endpoint")

_SIMPLE_DESCRIPTOR = _ZeroLengthIsNone(Struct(
    "endpoint" / Int8ul,
    "profile" / Int16ul,
    "device_type" / Int16ul,
    "device_version" / Int8ul,
    "input_clusters" / _CLUSTER_LIST,
    "output_clusters" / _CLUSTER_LIST,
    Terminated,  # the size prefix must cover exactly the descriptor
))

# UTIL.AssocGetWithAddress: Z-Stack's associated_devices_t, packed (Z-Stack 3.30+: with the trailing ctrl byte).
_ASSOCIATED_DEVICE = Struct(
    "short_addr" / _NWK,
    "addr_idx" / Int16ul,
    "node_relation" / _enum8(NodeRelation),
    "dev_status" / Int8ul,
    "assoc_cnt" / Int8ul,
    "age" / Int8ul,
    "link_info" / Struct(
        "tx_counter" / Int8ul,
        "tx_cost" / Int8ul,
        "rx_lqi" / Int8ul,
        "in_key_seq_num" / Int8ul,
        "in_frm_cntr" / Int32ul,
        "tx_failure" / Int16ul,
    ),
    "end_dev" / Struct("end_dev_cfg" / Int8ul, "device_timeout" / Int32ul),
    "timeout_counter" / Int32ul,
    "keepalive_rcv" / Int8ul,
    "ctrl" / Int8ul,
)

_VERSION_OPTIONAL = ("code_revision", "bootloader_build_type", "bootloader_revision")


# -- the command table -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Command:
    """One MT command: where it lives and its payload layouts.

    `request` is the SREQ or AREQ payload; `response` the SRSP payload of an SREQ (or of
    RPC_ERROR.CommandNotRecognized, the one SRSP-only command). `optional` names the
    trailing fields that may be absent."""

    name: str
    subsystem: Subsystem
    type: CommandType
    id: int
    request: Struct | None = None
    response: Struct | None = None
    optional: tuple[str, ...] = ()


def _sreq(subsystem: Subsystem, name: str, command_id: int, request: Struct, response: Struct = _STATUS_ONLY,
          optional: tuple[str, ...] = ()) -> Command:
    return Command(f"{subsystem.name}.{name}", subsystem, CommandType.SREQ, command_id, request, response, optional)


def _areq(subsystem: Subsystem, name: str, command_id: int, payload: Struct, optional: tuple[str, ...] = ()) -> Command:
    return Command(f"{subsystem.name}.{name}", subsystem, CommandType.AREQ, command_id, payload, None, optional)


_SYS, _UTIL, _ZDO, _AF = Subsystem.SYS, Subsystem.UTIL, Subsystem.ZDO, Subsystem.AF
_APP_CNF, _SAPI = Subsystem.APP_CNF, Subsystem.SAPI

_NV_ITEM = ("sys_id" / Int8ul, "item_id" / Int16ul, "sub_id" / Int16ul)  # the extended NV API's item key
_ZDO_TARGET = ("dst_addr" / _NWK, "nwk_addr_of_interest" / _NWK)
_ZDO_ADDR_RSP = _payload("status" / _STATUS, "ieee" / _IEEE, "nwk" / _NWK, "num_assoc" / Int8ul,
                         "index" / Int8ul, "devices" / GreedyRange(_NWK))
_ZDO_SRC_STATUS = _payload("src" / _NWK, "status" / _STATUS)

_TABLE: tuple[Command, ...] = (
    # SYS
    _areq(_SYS, "ResetReq", 0x00, _payload("type" / _enum8(ResetType))),
    _sreq(_SYS, "Ping", 0x01, _EMPTY, _payload("capabilities" / Int16ul)),
    _sreq(_SYS, "Version", 0x02, _EMPTY, _payload(
        "transport_rev" / Int8ul,
        "product_id" / Int8ul,
        "major_rel" / Int8ul,
        "minor_rel" / Int8ul,
        "maint_rel" / Int8ul,
        # Z-Stack 1.2 stops here; 3.x adds these
        "code_revision" / Optional(Int32ul),
        "bootloader_build_type" / Optional(_enum8(BootloaderBuildType)),
        "bootloader_revision" / Optional(Int32ul),
        _NoGapAfterNone(*_VERSION_OPTIONAL),
    ), optional=_VERSION_OPTIONAL),
    _sreq(_SYS, "SetExtAddr", 0x03, _payload("ext_addr" / _IEEE)),
    _sreq(_SYS, "GetExtAddr", 0x04, _EMPTY, _payload("ext_addr" / _IEEE)),
    _sreq(_SYS, "OSALNVItemInit", 0x07, _payload("id" / Int16ul, "item_len" / Int16ul, "value" / _SHORT_BYTES)),
    _sreq(_SYS, "OSALNVRead", 0x08, _payload("id" / Int16ul, "offset" / Int8ul),
          _payload("status" / _STATUS, "value" / _SHORT_BYTES)),
    _sreq(_SYS, "OSALNVWrite", 0x09, _payload("id" / Int16ul, "offset" / Int8ul, "value" / _SHORT_BYTES)),
    _sreq(_SYS, "OSALNVDelete", 0x12, _payload("id" / Int16ul, "item_len" / Int16ul)),
    _sreq(_SYS, "OSALNVLength", 0x13, _payload("id" / Int16ul), _payload("item_len" / Int16ul)),
    # Z-Stack 3.30+ answers SUCCESS or INVALID_PARAMETER, 1.2 and 3.0 the power applied: one signed byte either way
    _sreq(_SYS, "SetTxPower", 0x14, _payload("tx_power" / Int8sl), _payload("status_or_power" / Int8sl)),
    # the 16-bit offset variants zigpy-znp uses for items longer than 255 bytes
    _sreq(_SYS, "OSALNVReadExt", 0x1C, _payload("id" / Int16ul, "offset" / Int16ul),
          _payload("status" / _STATUS, "value" / _SHORT_BYTES)),
    _sreq(_SYS, "OSALNVWriteExt", 0x1D, _payload("id" / Int16ul, "offset" / Int16ul, "value" / _LONG_BYTES)),
    # the extended NV API of Z-Stack 3.30+
    _sreq(_SYS, "NVCreate", 0x30, _payload(*_NV_ITEM, "length" / Int32ul)),
    _sreq(_SYS, "NVDelete", 0x31, _payload(*_NV_ITEM)),
    _sreq(_SYS, "NVLength", 0x32, _payload(*_NV_ITEM), _payload("length" / Int32ul)),
    _sreq(_SYS, "NVRead", 0x33, _payload(*_NV_ITEM, "offset" / Int16ul, "length" / Int8ul),
          _payload("status" / _STATUS, "value" / _SHORT_BYTES)),
    _sreq(_SYS, "NVWrite", 0x34, _payload(*_NV_ITEM, "offset" / Int16ul, "value" / _SHORT_BYTES)),
    # TI's documentation calls the last byte HwRev; Z-Stack sends its maintenance release there (zigpy-znp: MaintRel)
    _areq(_SYS, "ResetInd", 0x80, _payload(
        "reason" / _enum8(ResetReason),
        "transport_rev" / Int8ul,
        "product_id" / Int8ul,
        "major_rel" / Int8ul,
        "minor_rel" / Int8ul,
        "maint_rel" / Int8ul,
    )),
    # UTIL
    _sreq(_UTIL, "GetDeviceInfo", 0x00, _EMPTY, _payload(
        "status" / _STATUS,
        "ieee" / _IEEE,
        "nwk" / _NWK,
        "device_type" / Int8ul,  # bitmap: 1 coordinator, 2 router, 4 end device
        "device_state" / _enum8(DeviceState),
        "associated_devices" / _NWK_LIST,
    )),
    _sreq(_UTIL, "LEDControl", 0x0A, _payload("led" / Int8ul, "mode" / _enum8(LedMode))),
    _sreq(_UTIL, "AssocFindDevice", 0x49, _payload("index" / Int8ul), _payload("device" / GreedyBytes)),
    _sreq(_UTIL, "AssocGetWithAddress", 0x4A, _payload("ieee" / _IEEE, "nwk" / _NWK),
          _payload("device" / _ASSOCIATED_DEVICE)),
    _sreq(_UTIL, "AssocRemove", 0x63, _payload("ieee" / _IEEE)),
    _sreq(_UTIL, "AssocAdd", 0x64, _payload("nwk" / _NWK, "ieee" / _IEEE, "node_relation" / _enum8(NodeRelation))),
    # ZDO requests: the SRSP only says the request went out; the answer comes as a callback below
    _sreq(_ZDO, "NwkAddrReq", 0x00, _payload("ieee" / _IEEE, "request_type" / _enum8(AddrRequestType),
                                             "start_index" / Int8ul)),
    _sreq(_ZDO, "IEEEAddrReq", 0x01, _payload("nwk" / _NWK, "request_type" / _enum8(AddrRequestType),
                                              "start_index" / Int8ul)),
    _sreq(_ZDO, "NodeDescReq", 0x02, _payload(*_ZDO_TARGET)),
    _sreq(_ZDO, "SimpleDescReq", 0x04, _payload(*_ZDO_TARGET, "endpoint" / Int8ul)),
    _sreq(_ZDO, "ActiveEpReq", 0x05, _payload(*_ZDO_TARGET)),
    _sreq(_ZDO, "BindReq", 0x21, _payload("dst" / _NWK, "src" / _IEEE, "src_endpoint" / Int8ul,
                                          "cluster_id" / Int16ul, "address" / _BIND_DESTINATION)),
    # bit 0 rejoin, bit 1 remove children (zigpy-znp: RemoveChildren_Rejoin)
    _sreq(_ZDO, "MgmtLeaveReq", 0x34, _payload("dst_addr" / _NWK, "ieee" / _IEEE, "remove_children_rejoin" / Int8ul)),
    _sreq(_ZDO, "MgmtPermitJoinReq", 0x36, _payload("addr_mode" / _enum8(AddrMode), "dst" / _NWK,
                                                    "duration" / Int8ul, "tc_significance" / Int8ul)),
    _sreq(_ZDO, "MgmtNWKUpdateReq", 0x37, _payload("dst" / _NWK, "dst_addr_mode" / _enum8(AddrMode),
                                                   "channels" / Int32ul, "scan_duration" / Int8ul,
                                                   "scan_count" / Int8ul, "nwk_manager_addr" / _NWK)),
    _sreq(_ZDO, "MsgCallbackRegister", 0x3E, _payload("cluster_id" / Int16ul)),
    _sreq(_ZDO, "StartupFromApp", 0x40, _payload("start_delay" / Int16ul),
          _payload("state" / _enum8(StartupState))),
    _sreq(_ZDO, "ExtRouteDisc", 0x45, _payload("dst" / _NWK, "options" / Int8ul, "radius" / Int8ul)),
    _sreq(_ZDO, "ExtRouteChk", 0x46, _payload("dst" / _NWK, "rt_status" / _enum8(RouteStatus), "options" / Int8ul),
          _payload("status" / _enum8(RoutingStatus))),
    # 24 bytes, as Z-Stack's MT_ZdoExtNwkInfo builds them (and zigbee-herdsman reads them): the device state after
    # the address, and the logical channel as one byte. zigpy-znp declares 26 (no state, a 32-bit channel mask)
    # but never sends the command, so this is the one layout here that differs from zigpy-znp's.
    # the APS group table of an endpoint (herdsman puts its Green Power endpoint 242 in group 0x0B84 at start)
    _sreq(_ZDO, "ExtFindGroup", 0x4A, _payload("endpoint" / Int8ul, "group_id" / Int16ul),
          _payload("group" / GreedyBytes)),      # status, then aps_Group_t: id u16, name (length first, 16 bytes)
    _sreq(_ZDO, "ExtAddGroup", 0x4B, _payload("endpoint" / Int8ul, "group_id" / Int16ul,
                                              "group_name" / _SHORT_BYTES)),
    _sreq(_ZDO, "ExtNwkInfo", 0x50, _EMPTY, _payload(
        "dst" / _NWK,
        "device_state" / _enum8(DeviceState),
        "pan_id" / Int16ul,
        "parent_nwk" / _NWK,
        "extended_pan_id" / Int64ul,
        "parent_ieee" / _IEEE,
        "channel" / Int8ul,  # the logical channel, 11..26 (0: none)
    )),
    # ZDO callbacks
    _areq(_ZDO, "NwkAddrRsp", 0x80, _ZDO_ADDR_RSP),
    _areq(_ZDO, "IEEEAddrRsp", 0x81, _ZDO_ADDR_RSP),
    _areq(_ZDO, "NodeDescRsp", 0x82, _payload("src" / _NWK, "status" / _STATUS, "nwk" / _NWK,
                                              "node_descriptor" / _NullableTail(NodeDescriptor())),
          optional=("node_descriptor",)),
    _areq(_ZDO, "SimpleDescRsp", 0x84, _payload("src" / _NWK, "status" / _STATUS, "nwk" / _NWK,
                                                "simple_descriptor" / _SIMPLE_DESCRIPTOR)),
    _areq(_ZDO, "ActiveEpRsp", 0x85, _payload("src" / _NWK, "status" / _STATUS, "nwk" / _NWK,
                                              "active_endpoints" / PrefixedArray(Int8ul, Int8ul))),
    _areq(_ZDO, "ParentAnnceRsp", 0x9F, _payload("src" / _NWK, "status" / _STATUS,
                                                 "child_info" / PrefixedArray(Int8ul, _IEEE))),
    _areq(_ZDO, "BindRsp", 0xA1, _ZDO_SRC_STATUS),
    _areq(_ZDO, "MgmtLeaveRsp", 0xB4, _ZDO_SRC_STATUS),
    _areq(_ZDO, "MgmtPermitJoinRsp", 0xB6, _ZDO_SRC_STATUS),
    _areq(_ZDO, "StateChangeInd", 0xC0, _payload("state" / _enum8(DeviceState))),
    _areq(_ZDO, "EndDeviceAnnceInd", 0xC1, _payload("src" / _NWK, "nwk" / _NWK, "ieee" / _IEEE,
                                                    "capabilities" / Int8ul)),
    _areq(_ZDO, "SrcRtgInd", 0xC4, _payload("dst_addr" / _NWK, "relays" / _NWK_LIST)),
    _areq(_ZDO, "LeaveInd", 0xC9, _payload("nwk" / _NWK, "ieee" / _IEEE, "request" / Flag, "remove" / Flag,
                                           "rejoin" / Flag)),
    _areq(_ZDO, "TCDevInd", 0xCA, _payload("src_nwk" / _NWK, "src_ieee" / _IEEE, "parent_nwk" / _NWK)),
    _areq(_ZDO, "PermitJoinInd", 0xCB, _payload("duration" / Int8ul)),
    # a ZDO message for a cluster registered with MsgCallbackRegister, its ZDO payload after the TSN
    _areq(_ZDO, "MsgCbIncoming", 0xFF, _payload("src" / _NWK, "is_broadcast" / Flag, "cluster_id" / Int16ul,
                                                "security_use" / Int8ul, "tsn" / Int8ul, "mac_dst" / _NWK,
                                                "data" / GreedyBytes)),
    # AF
    _sreq(_AF, "Register", 0x00, _payload(
        "endpoint" / Int8ul,
        "profile_id" / Int16ul,
        "device_id" / Int16ul,
        "device_version" / Int8ul,
        "latency_req" / _enum8(LatencyReq),
        "input_clusters" / _CLUSTER_LIST,
        "output_clusters" / _CLUSTER_LIST,
    )),
    _sreq(_AF, "DataRequest", 0x01, _payload(
        "dst_addr" / _NWK, "dst_endpoint" / Int8ul, "src_endpoint" / Int8ul, "cluster_id" / Int16ul,
        "tsn" / Int8ul, "options" / Int8ul, "radius" / Int8ul, "data" / _SHORT_BYTES,
    )),
    _sreq(_AF, "DataRequestExt", 0x02, _payload(
        "dst_addr_mode_address" / _ADDR_MODE_ADDRESS, "dst_endpoint" / Int8ul, "dst_pan_id" / Int16ul,
        "src_endpoint" / Int8ul, "cluster_id" / Int16ul, "tsn" / Int8ul, "options" / Int8ul, "radius" / Int8ul,
        "data" / _LONG_BYTES,
    )),
    _sreq(_AF, "DataRequestSrcRtg", 0x03, _payload(
        "dst_addr" / _NWK, "dst_endpoint" / Int8ul, "src_endpoint" / Int8ul, "cluster_id" / Int16ul,
        "tsn" / Int8ul, "options" / Int8ul, "radius" / Int8ul, "source_route" / _NWK_LIST, "data" / _SHORT_BYTES,
    )),
    _areq(_AF, "DataConfirm", 0x80, _payload("status" / _STATUS, "endpoint" / Int8ul, "tsn" / Int8ul)),
    _areq(_AF, "IncomingMsg", 0x81, _payload(
        "group_id" / Int16ul, "cluster_id" / Int16ul, "src_addr" / _NWK, "src_endpoint" / Int8ul,
        "dst_endpoint" / Int8ul, "was_broadcast" / Flag, "lqi" / Int8ul, "security_use" / Flag,
        "time_stamp" / Int32ul, "tsn" / Int8ul, "data" / _SHORT_BYTES, "mac_src_addr" / _NWK,
        "msg_result_radius" / Int8ul,
    )),
    _areq(_AF, "IncomingMsgExt", 0x82, _payload(
        "group_id" / Int16ul, "cluster_id" / Int16ul, "src_addr_mode_address" / _ADDR_MODE_ADDRESS,
        "src_endpoint" / Int8ul, "src_pan_id" / Int16ul, "dst_endpoint" / Int8ul, "was_broadcast" / Flag,
        "lqi" / Int8ul, "security_use" / Int8ul, "time_stamp" / Int32ul, "tsn" / Int8ul, "data" / _LONG_BYTES,
        "mac_src_addr" / _NWK, "msg_result_radius" / Int8ul,
    )),
    # APP_CNF: BDB commissioning
    _sreq(_APP_CNF, "BDBAddInstallCode", 0x04, _payload(
        "install_code_format" / _enum8(InstallCodeFormat), "ieee" / _IEEE,
        "install_code" / GreedyBytes,  # 16 bytes of derived key, or 18 of code and CRC
    )),
    _sreq(_APP_CNF, "BDBStartCommissioning", 0x05, _payload("mode" / Int8ul)),  # bitmap, 4 = formation
    _sreq(_APP_CNF, "BDBSetJoinUsesInstallCodeKey", 0x06, _payload("bdb_join_uses_install_code_key" / Flag)),
    _sreq(_APP_CNF, "BDBSetChannel", 0x08, _payload("is_primary" / Flag, "channel" / Int32ul)),  # a channel mask
    _sreq(_APP_CNF, "BDBSetTcRequireKeyExchange", 0x09,
          _payload("bdb_trust_center_require_key_exchange" / Flag)),
    _sreq(_APP_CNF, "SetNwkFrameCounter", 0xFF, _payload("frame_counter_value" / Int32ul)),
    _areq(_APP_CNF, "BDBCommissioningNotification", 0x80, _payload(
        "status" / _enum8(BdbCommissioningStatus), "mode" / Int8ul, "remaining_modes" / Int8ul,
    )),
    # SAPI: zigpy-znp reads a few configuration items this way on older firmware
    _sreq(_SAPI, "ZBReadConfiguration", 0x04, _payload("config_id" / Int8ul),
          _payload("status" / _STATUS, "config_id" / Int8ul, "value" / _SHORT_BYTES)),
    # RPC_ERROR: the dongle's answer to an SREQ it cannot handle; request_header is the SREQ's cmd0 | cmd1 << 8
    Command("RPC_ERROR.CommandNotRecognized", Subsystem.RPC_ERROR, CommandType.SRSP, 0x00,
            response=_payload("error_code" / _enum8(RpcErrorCode), "request_header" / Int16ul)),
)

COMMANDS: Mapping[str, Command] = {command.name: command for command in _TABLE}


def _index() -> dict[tuple[CommandType, int, int], tuple[Command, Struct]]:
    index: dict[tuple[CommandType, int, int], tuple[Command, Struct]] = {}
    for command in _TABLE:
        if command.request is not None:
            index[command.type, command.subsystem, command.id] = (command, command.request)
        if command.response is not None:
            index[CommandType.SRSP, command.subsystem, command.id] = (command, command.response)
    return index


_BY_HEADER = _index()
assert len(COMMANDS) == len(_TABLE), "a command name is declared twice"


class Decoded(NamedTuple):
    """A decoded command: its table name and its fields (a construct Container, also a dict)."""

    name: str
    fields: Container


def _field_names(struct: Struct) -> list[str]:
    return [subcon.name for subcon in struct.subcons if subcon.name]


def _build(command: Command, struct: Struct, frame_type: CommandType, fields: dict[str, Any]) -> Frame:
    names = _field_names(struct)
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise MtError(f"MT {command.name}: unknown field {unknown[0]!r}, expected some of {', '.join(names)}")
    missing = [name for name in names if name not in fields and name not in command.optional]
    if missing:
        raise MtError(f"MT {command.name}: missing field {missing[0]!r}")
    values = {**dict.fromkeys(command.optional), **fields}
    try:
        payload = struct.build(values)
    except (ConstructError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise MtError(f"MT {command.name}: cannot encode, {construct_reason(e)}") from None
    if len(payload) > MAX_PAYLOAD:
        raise MtError(f"MT {command.name}: payload of {len(payload)} bytes, at most {MAX_PAYLOAD}")
    return Frame(frame_type, command.subsystem, command.id, payload)


def _command(name: str) -> Command:
    try:
        return COMMANDS[name]
    except KeyError:
        raise MtError(f"MT command {name!r} is not in the table") from None


def encode_command(name: str, /, **fields: Any) -> Frame:
    """The SREQ (or AREQ) frame of the named command."""
    command = _command(name)
    if command.request is None:
        raise MtError(f"MT {name}: has no request, only a response (use encode_response)")
    return _build(command, command.request, command.type, fields)


def encode_response(name: str, /, **fields: Any) -> Frame:
    """The SRSP frame answering the named SREQ (or RPC_ERROR.CommandNotRecognized)."""
    command = _command(name)
    if command.response is None:
        raise MtError(f"MT {name}: is an {command.type.name} and has no SRSP")
    return _build(command, command.response, CommandType.SRSP, fields)


def decode(frame: Frame) -> Decoded:
    """The command a frame carries, by its header, and its fields."""
    try:
        command, struct = _BY_HEADER[frame.type, frame.subsystem, frame.cmd1]
    except KeyError:
        subsystem = getattr(frame.subsystem, "name", f"0x{frame.subsystem:02X}")
        raise MtError(f"MT frame: no {frame.type.name} {subsystem} 0x{frame.cmd1:02X} in the command table") from None
    try:
        fields = struct.parse(frame.payload)
    except ConstructError as e:
        raise MtError(f"MT {command.name} {frame.type.name}: {construct_reason(e)} "
                      f"(payload {len(frame.payload)} bytes)") from None
    return Decoded(command.name, clean_container(fields))
