"""ZigBee Device Object (ZDO) frames, the APS payloads of profile 0 / endpoint 0: a pure codec.

A ZDO frame is the transaction sequence number (one byte), then the command's fields,
every multi-byte field little-endian. The cluster id says which command it is: requests
below 0x8000, their responses at request | 0x8000 (ZigBee spec 2.4.3 / 2.4.4).

    data = zdo.encode(0x0005, tsn=7, nwk_addr_of_interest=0x1234)       # Active_EP_req
    frame = zdo.decode(0x8005, data)       # ZdoFrame(cluster=0x8005, name="Active_EP_rsp", tsn=..., fields=...)

Names follow zigpy's `zigpy.zdo.types.ZDOCmd`, field names the snake_case of its
parameter names (NWKAddrOfInterest: nwk_addr_of_interest). Fields decode to ints,
lists, Containers (the node and simple descriptors, a bind destination) and None for
an optional tail that is absent (Node_Desc_rsp and Simple_Desc_rsp on a failure
status; the associated-device list of NWK_addr_rsp / IEEE_addr_rsp to a single
request). Statuses stay plain ints.

Covered: NWK_addr, IEEE_addr, Node_Desc, Simple_Desc, Active_EP, Match_Desc, Bind and
Unbind (requests and responses), Device_annce, Mgmt_Leave, Mgmt_Permit_Joining
(requests and responses), Mgmt_NWK_Update_req / _rsp (Mgmt_NWK_Update_notify: the energy scan zigpy runs
before it forms a network): what a coordinator's interview of a joining device, and its
permit-join and bind management, exchange. Not covered: Mgmt_Lqi / Mgmt_Rtg / the
descriptor store commands, Power_Desc, the extended descriptor commands.

Every failure is a ZdoError with one line naming the command (or cluster) and what is wrong.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from construct import (
    Adapter,
    Check,
    ConstructError,
    GreedyBytes,
    GreedyRange,
    If,
    Int8ul,
    Int16ul,
    Int32ul,
    Int64ul,
    Prefixed,
    PrefixedArray,
    Struct,
    Terminated,
    ValidationError,
    this,
)
from construct.lib import Container

from bridge_emu.codec.construct_util import clean_container, construct_reason
from bridge_emu.errors import BridgeEmuError


class ZdoError(BridgeEmuError):
    """A ZDO payload that cannot be encoded or decoded."""


ZDO_PROFILE = 0x0000
ZDO_ENDPOINT = 0
RESPONSE = 0x8000  # a response's cluster id is its request's with this bit set

class NodeDescriptor(Adapter):
    """The ZigBee node descriptor, its two bit-packed bytes spread into zigpy's field names (bit 0 first)."""

    _BYTE1 = (("logical_type", 3), ("complex_descriptor_available", 1), ("user_descriptor_available", 1),
              ("reserved", 3))
    _BYTE2 = (("aps_flags", 3), ("frequency_band", 5))

    def __init__(self) -> None:
        super().__init__(Struct(
            "byte1" / Int8ul,
            "byte2" / Int8ul,
            "mac_capability_flags" / Int8ul,
            "manufacturer_code" / Int16ul,
            "maximum_buffer_size" / Int8ul,
            "maximum_incoming_transfer_size" / Int16ul,
            "server_mask" / Int16ul,
            "maximum_outgoing_transfer_size" / Int16ul,
            "descriptor_capability_field" / Int8ul,
        ))

    @staticmethod
    def _unpack(byte: int, layout: tuple[tuple[str, int], ...], into: Container) -> None:
        for name, bits in layout:
            into[name] = byte & ((1 << bits) - 1)
            byte >>= bits

    @staticmethod
    def _pack(obj: Mapping[str, Any], layout: tuple[tuple[str, int], ...], path: str) -> int:
        byte, shift = 0, 0
        for name, bits in layout:
            value = int(obj[name])
            if not 0 <= value < 1 << bits:
                raise ValidationError(f"{name} {value} does not fit {bits} bits", path=path)
            byte |= value << shift
            shift += bits
        return byte

    def _decode(self, obj: Container, context: Any, path: str) -> Container:
        fields = Container()
        self._unpack(obj.byte1, self._BYTE1, fields)
        self._unpack(obj.byte2, self._BYTE2, fields)
        for name, value in obj.items():
            if name not in ("byte1", "byte2") and not name.startswith("_"):
                fields[name] = value
        return fields

    def _encode(self, obj: Mapping[str, Any], context: Any, path: str) -> dict[str, Any]:
        raw = {name: value for name, value in obj.items() if name not in dict(self._BYTE1 + self._BYTE2)}
        raw["byte1"] = self._pack(obj, self._BYTE1, path)
        raw["byte2"] = self._pack(obj, self._BYTE2, path)
        return raw


_IEEE = Int64ul
_NWK = Int16ul
_STATUS = Int8ul
_CLUSTER_LIST = PrefixedArray(Int8ul, Int16ul)

_SIMPLE_DESCRIPTOR = Struct(
    "endpoint" / Int8ul,
    "profile" / Int16ul,
    "device_type" / Int16ul,
    "device_version" / Int8ul,
    "input_clusters" / _CLUSTER_LIST,
    "output_clusters" / _CLUSTER_LIST,
)

# Bind/Unbind destination: a group (mode 1) or an IEEE address and endpoint (mode 3).
_MULTI_ADDRESS = Struct(
    "addr_mode" / Int8ul,
    Check(lambda ctx: ctx.addr_mode in (0x01, 0x03)),
    "nwk" / If(this.addr_mode == 0x01, _NWK),
    "ieee" / If(this.addr_mode == 0x03, _IEEE),
    "endpoint" / If(this.addr_mode == 0x03, Int8ul),
)


@dataclass(frozen=True)
class ZdoCommand:
    """One ZDO command: its cluster id, zigpy's name for it, its payload after the TSN.

    `tail` names the trailing fields that are absent or present together."""

    cluster: int
    name: str
    payload: Struct
    tail: Struct | None = None

    @property
    def field_names(self) -> list[str]:
        names = [subcon.name for subcon in self.payload.subcons if subcon.name]
        if self.tail is not None:
            names += [subcon.name for subcon in self.tail.subcons if subcon.name]
        return names

    @property
    def tail_names(self) -> list[str]:
        return [] if self.tail is None else [subcon.name for subcon in self.tail.subcons if subcon.name]


def _command(cluster: int, name: str, *fields: Any, tail: tuple = ()) -> ZdoCommand:
    return ZdoCommand(cluster, name, Struct(*fields), Struct(*tail, Terminated) if tail else None)


_STATUS_ONLY = ("status" / _STATUS,)
_ADDR_RSP = ("status" / _STATUS, "ieee" / _IEEE, "nwk" / _NWK)
_ADDR_RSP_TAIL = ("num_assoc_dev" / Int8ul, "start_index" / Int8ul, "nwk_addr_assoc_dev_list" / GreedyRange(_NWK))
_BIND = ("src_address" / _IEEE, "src_endpoint" / Int8ul, "cluster_id" / Int16ul, "dst_address" / _MULTI_ADDRESS)

_TABLE: tuple[ZdoCommand, ...] = (
    _command(0x0000, "NWK_addr_req", "ieee" / _IEEE, "request_type" / Int8ul, "start_index" / Int8ul),
    _command(0x0001, "IEEE_addr_req", "nwk_addr_of_interest" / _NWK, "request_type" / Int8ul,
             "start_index" / Int8ul),
    _command(0x0002, "Node_Desc_req", "nwk_addr_of_interest" / _NWK),
    _command(0x0004, "Simple_Desc_req", "nwk_addr_of_interest" / _NWK, "endpoint" / Int8ul),
    _command(0x0005, "Active_EP_req", "nwk_addr_of_interest" / _NWK),
    _command(0x0006, "Match_Desc_req", "nwk_addr_of_interest" / _NWK, "profile" / Int16ul,
             "in_clusters" / _CLUSTER_LIST, "out_clusters" / _CLUSTER_LIST),
    _command(0x0013, "Device_annce", "nwk" / _NWK, "ieee" / _IEEE, "capability" / Int8ul),
    _command(0x0021, "Bind_req", *_BIND),
    _command(0x0022, "Unbind_req", *_BIND),
    _command(0x0034, "Mgmt_Leave_req", "device_address" / _IEEE, "options" / Int8ul),
    _command(0x0036, "Mgmt_Permit_Joining_req", "permit_duration" / Int8ul, "tc_significant" / Int8ul),
    # duration <= 5: an energy scan (scan_count); 0xFE: a channel change, 0xFF: a new mask and manager (update id)
    _command(0x0038, "Mgmt_NWK_Update_req", "scan_channels" / Int32ul, "scan_duration" / Int8ul,
             "scan_count" / If(this.scan_duration <= 0x05, Int8ul),
             "nwk_update_id" / If(this.scan_duration >= 0xFE, Int8ul),
             "nwk_manager_addr" / If(this.scan_duration == 0xFF, _NWK)),
    _command(0x8000, "NWK_addr_rsp", *_ADDR_RSP, tail=_ADDR_RSP_TAIL),
    _command(0x8001, "IEEE_addr_rsp", *_ADDR_RSP, tail=_ADDR_RSP_TAIL),
    # the descriptors are present only with a SUCCESS status
    _command(0x8002, "Node_Desc_rsp", "status" / _STATUS, "nwk_addr_of_interest" / _NWK,
             tail=("node_descriptor" / NodeDescriptor(),)),
    _command(0x8004, "Simple_Desc_rsp", "status" / _STATUS, "nwk_addr_of_interest" / _NWK,
             tail=("simple_descriptor" / Prefixed(Int8ul, Struct(*_SIMPLE_DESCRIPTOR.subcons, Terminated)),)),
    _command(0x8005, "Active_EP_rsp", "status" / _STATUS, "nwk_addr_of_interest" / _NWK,
             "active_ep_list" / PrefixedArray(Int8ul, Int8ul)),
    _command(0x8006, "Match_Desc_rsp", "status" / _STATUS, "nwk_addr_of_interest" / _NWK,
             "match_list" / PrefixedArray(Int8ul, Int8ul)),
    _command(0x8021, "Bind_rsp", *_STATUS_ONLY),
    _command(0x8022, "Unbind_rsp", *_STATUS_ONLY),
    _command(0x8034, "Mgmt_Leave_rsp", *_STATUS_ONLY),
    _command(0x8036, "Mgmt_Permit_Joining_rsp", *_STATUS_ONLY),
    _command(0x8038, "Mgmt_NWK_Update_rsp", "status" / _STATUS, "scanned_channels" / Int32ul,
             "total_transmissions" / Int16ul, "transmission_failures" / Int16ul,
             "energy_values" / PrefixedArray(Int8ul, Int8ul)),
)

COMMANDS: Mapping[int, ZdoCommand] = {command.cluster: command for command in _TABLE}
BY_NAME: Mapping[str, ZdoCommand] = {command.name: command for command in _TABLE}
assert len(COMMANDS) == len(BY_NAME) == len(_TABLE), "a ZDO command is declared twice"


@dataclass(frozen=True)
class ZdoFrame:
    """A decoded ZDO frame: its cluster id, command name, TSN and fields (a construct Container)."""

    cluster: int
    name: str
    tsn: int
    fields: Container


def _lookup(cluster: int | str) -> ZdoCommand:
    table = BY_NAME if isinstance(cluster, str) else COMMANDS
    try:
        return table[cluster]
    except KeyError:
        shown = cluster if isinstance(cluster, str) else f"0x{cluster:04X}"
        raise ZdoError(f"ZDO cluster {shown} is not in the table") from None


def encode(cluster: int | str, /, *, tsn: int, **fields: Any) -> bytes:
    """The ZDO payload (TSN first) of a command, by cluster id or name.

    The optional tail (a descriptor, an associated-device list) is left out when its
    fields are left out or None."""
    command = _lookup(cluster)
    names = command.field_names
    unknown = sorted(set(fields) - set(names))
    if unknown:
        raise ZdoError(f"ZDO {command.name}: unknown field {unknown[0]!r}, expected some of {', '.join(names)}")
    tail_names = command.tail_names
    missing = [name for name in names if name not in tail_names and name not in fields]
    if missing:
        raise ZdoError(f"ZDO {command.name}: missing field {missing[0]!r}")
    if not 0 <= tsn <= 0xFF:
        raise ZdoError(f"ZDO {command.name}: tsn {tsn} out of range 0..255")
    with_tail = command.tail is not None and any(fields.get(name) is not None for name in tail_names)
    try:
        data = bytes([tsn]) + command.payload.build({name: fields[name] for name in names if name not in tail_names})
        if with_tail:
            data += command.tail.build({name: fields.get(name) for name in tail_names})
    except (ConstructError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ZdoError(f"ZDO {command.name}: cannot encode, {construct_reason(e)}") from None
    return data


def decode(cluster: int, data: bytes) -> ZdoFrame:
    """A ZDO payload (TSN first) of the given cluster id."""
    command = _lookup(cluster)
    data = bytes(data)
    if not data:
        raise ZdoError(f"ZDO {command.name}: empty payload, no TSN")
    try:
        body = Struct(*command.payload.subcons, "_rest" / GreedyBytes).parse(data[1:])
        rest = body.pop("_rest")
        if command.tail is None:
            if rest:
                raise ZdoError(f"ZDO {command.name}: {len(rest)} bytes after the last field")
        elif rest:
            body.update(command.tail.parse(rest))
        else:
            body.update(dict.fromkeys(command.tail_names))
    except ConstructError as e:
        raise ZdoError(f"ZDO {command.name}: {construct_reason(e)} (payload {len(data)} bytes)") from None
    return ZdoFrame(command.cluster, command.name, data[0], clean_container(body))


def is_response(cluster: int) -> bool:
    return bool(cluster & RESPONSE)
