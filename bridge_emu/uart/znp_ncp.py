"""A virtual TI Z-Stack (ZNP) dongle, as a sans-I/O machine: a coordinator, or a
router / end device that joins a network on its radio side.

The host side is the dongle's UART: MT frames (bridge_emu.codec.mt) in, SRSPs and
AREQs out, through the ByteMachine methods (receive_bytes / pop_bytes / timer /
next_deadline), so a StreamDriver can put it behind `socket://` or a pty and an
unmodified zigpy-znp can connect, form or restore a network, back it up and start.
The radio side is a second sans-I/O API: `pop_network()` gives what the host sends
over the air as `ApsOut` records, `network_received()`, `device_joined()` and
`device_left()` put what the air brings back into the host's stream.

What it reports: a CC2652 running Z-Stack 3.30+ (SYS.Version: transport 2, product 1,
release 2.7.1, CodeRevision 20230507, no bootloader), MT capabilities 0x0659
(SYS AF ZDO UTIL GP APP_CNF), aligned structs (UTIL.AssocFindDevice answers 36 bytes).

The model:

* NV is one store keyed by (sys_id, item_id, sub_id), as the extended NV API of
  Z-Stack 3.30 sees it; an OSAL NV id n is (ZSTACK, LEGACY, n). It survives
  SYS.ResetReq, and `nv_snapshot()` / the `nv` argument carry it across constructions.
  At every boot missing items get their factory value (as osal_nv_item_init does);
  ZCD_NV_STARTUP_OPTION's ClearConfig / ClearState bits wipe the store / the network
  state first, then are cleared.
* Formation (APP_CNF.BDBStartCommissioning, mode formation, with no network in NV)
  writes the NIB, the active network key, ZCD_NV_BDBNODEISONANETWORK, the extended
  PAN id and the network security material table where zigpy-znp reads them; the host
  then rewrites them as it likes, and `network` always reads them back from NV. With a
  network in NV the same request restores it (the notification says FORMATION_FAILURE,
  as real Z-Stack does). Either way ZDO.StateChangeInd(STARTED_AS_COORDINATOR) follows.
* ZDO requests come from the host as AF.DataRequest(Ext) to endpoint 0, or as MT ZDO
  requests (turned into ZDO payloads); both reach `pop_network()` with profile 0.
  Those for the coordinator itself (Node_Desc, Active_EP, Simple_Desc, NWK_addr,
  IEEE_addr) are answered here from the coordinator's own state. ZDO frames from the
  network reach the host as ZDO.MsgCbIncoming (and the few MT ZDO callbacks zigpy-znp
  waits for); other profiles as AF.IncomingMsg.
* Joins are accepted while permit-join is open (ZDO.MgmtPermitJoinReq to the
  coordinator or broadcast; the duration runs on the machine's clock).
* The role is NV item ZCD_NV_LOGICAL_TYPE (0x0087), read when the host starts BDB
  commissioning: 0 (the factory value) forms or restores a network as above; 1
  (router) or 2 (end device) joins by network steering (mode 0x02) onto the network
  the radio side offers (`radio_network`, a JoinableNetwork; None: nothing in range,
  and steering ends NO_NETWORK after `scan_delay`). A join writes the NIB, key and
  "on a network" flag to NV as a joined Z-Stack does, then reports
  ZDO.StateChangeInd JOINED_AS_ROUTER / JOINED_AS_END_DEVICE after `join_delay`;
  steering again after a reset rejoins the network NV holds if it is still in range.
  `device_types` is what UTIL.GetDeviceInfo reports the firmware can be (a
  coordinator-only build: 0x01); steering as a role the build lacks fails.
  `on_network` says whether the radio is up (joined or started); `reset()` resets
  the dongle as its reset pin would (RAM state lost, SYS.ResetInd sent).

Not emulated: the radio itself (no energy scans, no MAC or NWK subsystems, no
routing: ExtRouteChk finds a route to every joined device), Z-Stack 1.2 / 3.0
behaviour, the TCLK and APS key tables (a joined device is written to the address
manager table, so a backup lists it, but with no link key), long messages (AF.IncomingMsgExt),
frame counters that advance, install codes (accepted and ignored), the bootloader.
"""
from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from construct import Bytes, Const, Flag, Int8ul, Int16ul, Int32ul, Int64ul, Padding, Struct

from bridge_emu.codec import mt, zdo
from bridge_emu.codec.mt import CommandType, DeviceState, Frame, FrameParser, MtError

# -- what the dongle says it is ------------------------------------------------------------------------------------

TRANSPORT_REV = 2
PRODUCT_ID = 1                      # CC2652 / CC1352 Z-Stack 3.30+ builds
RELEASE = (2, 7, 1)
CODE_REVISION = 20230507
CAPABILITIES = 0x0659               # SYS AF ZDO UTIL GP APP_CNF
DEVICE_TYPE_CAPABILITIES = 0x07     # coordinator, router, end device

# ZCD_NV_LOGICAL_TYPE values, and the UTIL.GetDeviceInfo capability bit of each
COORDINATOR, ROUTER, END_DEVICE = 0, 1, 2
ROLE_NAMES = {COORDINATOR: "coordinator", ROUTER: "router", END_DEVICE: "end device"}
JOINED_STATES = {ROUTER: DeviceState.JOINED_AS_ROUTER, END_DEVICE: DeviceState.JOINED_AS_END_DEVICE}
ON_NETWORK_STATES = frozenset({DeviceState.JOINED_AS_ROUTER, DeviceState.JOINED_AS_END_DEVICE,
                               DeviceState.STARTED_AS_COORDINATOR})

# -- Z-Stack status codes (only those it answers with) -------------------------------------------------------------

SUCCESS = 0x00
FAILURE = 0x01
INVALID_PARAMETER = 0x02
NV_ITEM_UNINIT = 0x09
NV_OPER_FAILED = 0x0A
NV_BAD_ITEM_LEN = 0x0C
APS_DUPLICATE_ENTRY = 0xB8
ZDP_INVALID_EP = 0x82
ZDP_NOT_ACTIVE = 0x83

# -- NV ------------------------------------------------------------------------------------------------------------

NV_SYS_ZSTACK = 1
NV_ITEM_LEGACY = 0x0000             # the OSAL NV ids, as sub ids of this item
NV_ITEM_NWK_SEC_MATERIAL_TABLE = 0x0007
NV_ITEM_ADDRMGR = 0x0001             # the address manager table: one entry per sub id
ADDRMGR_ENTRIES = 32                 # its size here (a build constant in Z-Stack)
ADDRMGR_ASSOC, ADDRMGR_SECURITY = 0x01, 0x02      # AddrMgrUserType bits: a child of ours, known to the TC
ADDRMGR_EMPTY = b"\xff" * 12          # type, pad, NWK u16, IEEE u64 (aligned), all ones: unused
APS_GROUP_NAME_LEN = 16             # aps_Group_t's name: its length byte, then up to 15 characters
NV_CHUNK = 244                      # the most one read answers, as zigpy-znp writes

OSAL_EXTADDR = 0x0001
OSAL_STARTUP_OPTION = 0x0003
OSAL_NIB = 0x0021
OSAL_EXTENDED_PAN_ID = 0x002D
OSAL_BCAST_DELIVERY_TIME = 0x0030
OSAL_CONCENTRATOR_ENABLE = 0x0032
OSAL_CONCENTRATOR_DISCOVERY = 0x0033
OSAL_CONCENTRATOR_RC = 0x0036
OSAL_SRC_RTG_EXPIRY_TIME = 0x0038
OSAL_NWK_ACTIVE_KEY_INFO = 0x003A
OSAL_NWK_ALTERN_KEY_INFO = 0x003B
OSAL_NWK_CHILD_AGE_ENABLE = 0x003E
OSAL_APS_USE_EXT_PANID = 0x0047
OSAL_APS_LINK_KEY_TABLE = 0x004C
OSAL_BDBNODEISONANETWORK = 0x0055
OSAL_PRECFGKEY = 0x0062
OSAL_NWKKEY = 0x0082                 # nwkActiveKeyItems_t: key descriptor and frame counter, aligned: 24 bytes
OSAL_PRECFGKEYS_ENABLE = 0x0063
OSAL_PANID = 0x0083
OSAL_CHANLIST = 0x0084
OSAL_LOGICAL_TYPE = 0x0087
OSAL_ZDO_DIRECT_CB = 0x008F
OSAL_TCLK_SEED = 0x0101

STARTUP_CLEAR_CONFIG = 0x01
STARTUP_CLEAR_STATE = 0x02

NWK_SEC_MATERIAL_ENTRIES = 4
APS_LINK_KEY_TABLE_SIZE = 2 + 6 * 16  # u16 count, room for 16 aligned entries
DEFAULT_CHANNEL_MASK = 0x07FFF800     # channels 11-26
BDB_MODE_FORMATION = 0x04
BDB_MODE_STEERING = 0x02
NWK_NO_ROUTE = 0xCD                   # AF.DataConfirm of a send while off the network

# The network state a ClearState reset forgets (the keys, the NIB, the "on a network" flag).
_NETWORK_STATE = (OSAL_NIB, OSAL_NWK_ACTIVE_KEY_INFO, OSAL_NWK_ALTERN_KEY_INFO, OSAL_BDBNODEISONANETWORK,
                  OSAL_EXTENDED_PAN_ID)

NvKey = tuple[int, int, int]


def _osal(nv_id: int) -> NvKey:
    return (NV_SYS_ZSTACK, NV_ITEM_LEGACY, nv_id)


_SEC_MATERIAL = Struct("frame_counter" / Int32ul, "extended_pan_id" / Int64ul)  # 12 bytes, no padding
_KEY_DESC = Struct("seq" / Int8ul, "key" / Bytes(16))

# Z-Stack's nwkIB_t as a CC2652 stores it (aligned; padding bytes 0), 116 bytes.
NIB = Struct(
    "sequence_num" / Int8ul, "passive_ack_timeout" / Int8ul, "max_broadcast_retries" / Int8ul,
    "max_children" / Int8ul, "max_depth" / Int8ul, "max_routers" / Int8ul, "dummy_neighbor_table" / Int8ul,
    "broadcast_delivery_time" / Int8ul, "report_constant_cost" / Int8ul, "route_disc_retries" / Int8ul,
    "dummy_routing_table" / Int8ul, "secure_all_frames" / Int8ul, "security_level" / Int8ul, "sym_link" / Int8ul,
    "capability_flags" / Int8ul, Padding(1),
    "transaction_persistence_time" / Int16ul,
    "nwk_protocol_version" / Int8ul, "route_discovery_time" / Int8ul, "route_expiry_time" / Int8ul, Padding(1),
    "nwk_dev_address" / Int16ul,
    "nwk_logical_channel" / Int8ul, Padding(1),
    "nwk_coord_address" / Int16ul,
    "nwk_coord_ext_address" / Int64ul,
    "nwk_pan_id" / Int16ul,
    "nwk_state" / Int8ul, Padding(1),
    "channel_list" / Int32ul,
    "beacon_order" / Int8ul, "super_frame_order" / Int8ul, "scan_duration" / Int8ul, "batt_life_ext" / Int8ul,
    "allocated_router_addresses" / Int32ul, "allocated_end_device_addresses" / Int32ul,
    "node_depth" / Int8ul,
    "extended_pan_id" / Int64ul,
    "nwk_key_loaded" / Flag,
    "spare1" / _KEY_DESC, "spare2" / _KEY_DESC,
    "spare3" / Int8ul, "spare4" / Int8ul,
    "nwk_link_status_period" / Int8ul, "nwk_router_age_limit" / Int8ul, "nwk_use_multicast" / Flag,
    "nwk_is_concentrator" / Flag, "nwk_concentrator_discovery_time" / Int8ul, "nwk_concentrator_radius" / Int8ul,
    "nwk_all_fresh" / Int8ul, Padding(1),
    "nwk_manager_addr" / Int16ul,
    "nwk_total_transmissions" / Int16ul,
    "nwk_update_id" / Int8ul, Padding(1),
)
NWK_STATE_ROUTER = 8

# UTIL.AssocFindDevice's answer for an empty slot: an aligned associated_devices_t (36 bytes), unused.
_EMPTY_ASSOCIATION = Struct(
    "short_addr" / Const(0xFFFE, Int16ul), "addr_idx" / Const(0xFFFF, Int16ul), "node_relation" / Const(0xFF, Int8ul),
    Padding(31),
).build({})

# Factory NV: what a freshly flashed dongle holds (1-byte settings zigpy-znp reads and rewrites without creating).
_FACTORY_OSAL: Mapping[int, bytes] = {
    OSAL_STARTUP_OPTION: b"\x00",
    OSAL_LOGICAL_TYPE: b"\x00",                 # coordinator
    OSAL_BCAST_DELIVERY_TIME: bytes([30]),
    OSAL_CONCENTRATOR_ENABLE: b"\x00",
    OSAL_CONCENTRATOR_DISCOVERY: bytes([120]),
    OSAL_CONCENTRATOR_RC: b"\x00",
    OSAL_SRC_RTG_EXPIRY_TIME: bytes([255]),
    OSAL_NWK_CHILD_AGE_ENABLE: b"\x01",
    OSAL_ZDO_DIRECT_CB: b"\x00",
    OSAL_PANID: (0xFFFF).to_bytes(2, "little"),
    OSAL_CHANLIST: DEFAULT_CHANNEL_MASK.to_bytes(4, "little"),
    OSAL_PRECFGKEYS_ENABLE: b"\x00",
    # herdsman tells an aligned build (CC26xx, 24 bytes) from an unaligned one (CC2530, 21) by this item's
    # length, and reads the preconfigured key before it decides whether to form
    OSAL_NWKKEY: bytes(24),
    OSAL_PRECFGKEY: bytes(16),
    OSAL_APS_USE_EXT_PANID: bytes(8),
    OSAL_APS_LINK_KEY_TABLE: bytes(APS_LINK_KEY_TABLE_SIZE),
}

# The coordinator's own node descriptor (Node_Desc_rsp about 0x0000): a 2.4 GHz mains-powered trust center.
COORDINATOR_NODE_DESCRIPTOR: Mapping[str, int] = {
    "logical_type": 0, "complex_descriptor_available": 0, "user_descriptor_available": 0, "reserved": 0,
    "aps_flags": 0, "frequency_band": 0x08, "mac_capability_flags": 0x8F, "manufacturer_code": 0x0000,
    "maximum_buffer_size": 80, "maximum_incoming_transfer_size": 160, "server_mask": 0x2C41,
    "maximum_outgoing_transfer_size": 160, "descriptor_capability_field": 0,
}

AF_ACK_REQUEST = 0x10
BROADCASTS = range(0xFFF8, 0x10000)
NV_SNAPSHOT_FORMAT = "bridge-emu/znp-nv"


# -- records -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ApsOut:
    """One APS frame the host sends over the air. ZDO: profile 0, endpoints 0, payload TSN first.

    dst_nwk is a NWK address or a broadcast address (0xFFF8..0xFFFF); for a group
    send it is 0xFFFF and `group` holds the group id."""

    dst_nwk: int
    dst_ep: int
    src_ep: int
    profile: int
    cluster: int
    payload: bytes
    tsn: int
    radius: int
    ack: bool
    group: int | None = None


@dataclass(frozen=True)
class NetworkState:
    """The network as NV holds it (what zigpy-znp's backup reads)."""

    channel: int
    pan_id: int
    extended_pan_id: int
    network_key: bytes
    key_seq: int
    nwk_update_id: int
    frame_counter: int
    nwk: int
    channel_mask: int


@dataclass(frozen=True)
class JoinableNetwork:
    """A network in range of a joining dongle's radio, and what its parent hands the joiner."""

    pan_id: int
    extended_pan_id: int
    channel: int
    nwk: int                        # the address the joiner is given
    parent_nwk: int = 0x0000
    network_key: bytes = bytes(16)


@dataclass(frozen=True)
class _Endpoint:
    endpoint: int
    profile: int
    device_id: int
    device_version: int
    input_clusters: tuple[int, ...]
    output_clusters: tuple[int, ...]


class ZnpCoordinator:
    """The dongle: a ByteMachine on its UART side, a sans-I/O radio on the other. It plays
    the role NV 0x0087 names: coordinator (the factory value), router or end device."""

    def __init__(self, ieee: int, nv: Mapping[str, Any] | None = None, *, seed: int = 0,
                 product_id: int = PRODUCT_ID, release: tuple[int, int, int] = RELEASE,
                 code_revision: int = CODE_REVISION, boot_delay: float = 0.01, formation_delay: float = 0.05,
                 device_types: int = DEVICE_TYPE_CAPABILITIES, join_delay: float = 0.05, scan_delay: float = 0.5):
        if not 0 <= ieee < 1 << 64:
            raise ValueError(f"ieee {ieee!r}: want an EUI-64 as an int")
        if not 0 < device_types <= 0x07:
            raise ValueError(f"device_types {device_types!r}: want a bitmap of 1 coordinator, 2 router, 4 end device")
        self.hardware_ieee = ieee
        self.device_types = device_types
        self.join_delay, self.scan_delay = join_delay, scan_delay
        self.radio_network: JoinableNetwork | None = None   # what a joining dongle's steering finds
        self.product_id, self.release, self.code_revision = product_id, release, code_revision
        self.boot_delay, self.formation_delay = boot_delay, formation_delay
        self.rng = random.Random(seed)
        self.parser = FrameParser()
        self.stats = {"frames": 0, "undecodable": 0, "unknown_sreqs": 0, "ignored_areqs": 0, "resets": 0,
                      "formations": 0, "aps_out": 0, "joins_refused": 0, "joins": 0, "steering_failed": 0}
        self._nv: dict[NvKey, bytearray] = {} if nv is None else _load_nv(nv)
        self._out = bytearray()
        self._later: list[tuple[float, int, Frame | Callable[[float], None]]] = []   # AREQs / steps due (a heap)
        self._order = 0
        self._network_out: list[ApsOut] = []
        self._devices: dict[int, int] = {}                  # ieee -> nwk of the devices joined since boot
        self._aps_counter = 0
        self._boot(now=None)

    # -- ByteMachine ---------------------------------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        self.parser.reset()

    def connection_lost(self, now: float) -> None:
        self.parser.reset()        # the dongle keeps running; a half-read frame is lost

    def receive_bytes(self, data: bytes, now: float) -> None:
        bad_before = self.parser.bad_frames
        for frame in self.parser.feed(data):
            self.stats["frames"] += 1
            self._on_frame(frame, now)
        self.stats["undecodable"] += self.parser.bad_frames - bad_before

    def pop_bytes(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def next_deadline(self) -> float | None:
        deadlines = [self._later[0][0]] if self._later else []
        if self._permit_until is not None and self._permit_until != float("inf"):
            deadlines.append(self._permit_until)
        return min(deadlines) if deadlines else None

    def timer(self, now: float) -> None:
        while self._later and self._later[0][0] <= now:
            due = heapq.heappop(self._later)[2]
            if isinstance(due, Frame):
                self._send(due)
            else:
                due(now)
        if self._permit_until is not None and self._permit_until <= now:
            self._permit_until = None

    # -- the radio side ------------------------------------------------------------------------------------------

    def pop_network(self) -> list[ApsOut]:
        out, self._network_out = self._network_out, []
        return out

    @property
    def logical_type(self) -> int:
        """ZCD_NV_LOGICAL_TYPE: 0 coordinator, 1 router, 2 end device (what the host wrote)."""
        value = self._osal_byte(OSAL_LOGICAL_TYPE)
        return value if value in ROLE_NAMES else COORDINATOR

    @property
    def state(self) -> DeviceState:
        return self._state

    @property
    def on_network(self) -> bool:
        """The radio is up: joined (router, end device) or started as coordinator."""
        return self._state in ON_NETWORK_STATES

    @property
    def end_device(self) -> bool:
        """On the network (or about to join it) as an end device (NV 0x0087 = 2)."""
        return self.logical_type == END_DEVICE

    def reset(self, now: float) -> None:
        """The reset pin (or a watchdog): RAM state is lost, NV kept, SYS.ResetInd follows."""
        self._boot(now)

    @property
    def permit_joining(self) -> bool:
        return self._permit_until is not None

    @property
    def ieee(self) -> int:
        value = self._nv.get(_osal(OSAL_EXTADDR))
        return int.from_bytes(value, "little") if value is not None and len(value) == 8 else self.hardware_ieee

    @property
    def network(self) -> NetworkState | None:
        """The network NV holds, or None before formation."""
        nib_raw = self._nv.get(_osal(OSAL_NIB))
        key_raw = self._nv.get(_osal(OSAL_NWK_ACTIVE_KEY_INFO))
        if nib_raw is None or key_raw is None or self._osal_byte(OSAL_BDBNODEISONANETWORK) != 1:
            return None
        try:
            nib = NIB.parse(bytes(nib_raw))
            key = _KEY_DESC.parse(bytes(key_raw))
        except Exception:   # noqa: BLE001 - the host may write anything there; then there is no usable network
            return None
        if nib.nwk_logical_channel == 0 or not nib.nwk_key_loaded:
            return None
        return NetworkState(channel=nib.nwk_logical_channel, pan_id=nib.nwk_pan_id,
                            extended_pan_id=nib.extended_pan_id, network_key=key.key, key_seq=key.seq,
                            nwk_update_id=nib.nwk_update_id, frame_counter=self._frame_counter(nib.extended_pan_id),
                            nwk=nib.nwk_dev_address, channel_mask=nib.channel_list)

    def network_received(self, src_nwk: int, src_ep: int, dst_ep: int, profile: int, cluster: int, payload: bytes,
                         lqi: int, now: float) -> None:
        """A frame from the network for the host (a joining dongle off the network hears nothing)."""
        if self.logical_type != COORDINATOR and not self.on_network:
            return
        payload = bytes(payload)
        if profile == zdo.ZDO_PROFILE and dst_ep == zdo.ZDO_ENDPOINT:
            self._zdo_to_host(src_nwk, cluster, payload, broadcast=False)
            return
        self._aps_counter = (self._aps_counter + 1) & 0xFF
        self._send(mt.encode_command(
            "AF.IncomingMsg", group_id=0, cluster_id=cluster, src_addr=src_nwk, src_endpoint=src_ep,
            dst_endpoint=dst_ep, was_broadcast=False, lqi=lqi, security_use=False,
            time_stamp=int(now * 1000) & 0xFFFFFFFF, tsn=self._aps_counter, data=payload, mac_src_addr=src_nwk,
            msg_result_radius=0))

    def device_joined(self, nwk: int, ieee: int, parent_nwk: int, now: float, mac_capabilities: int = 0x8E) -> bool:
        """A device joins through `parent_nwk`. Refused (False) unless permit-join is open."""
        if not self.permit_joining or self.network is None:
            self.stats["joins_refused"] += 1
            return False
        self._devices[ieee] = nwk
        child = parent_nwk == self._own_nwk() and not mac_capabilities & 0x02     # an end device of ours
        self._remember_device(nwk, ieee, ADDRMGR_SECURITY | (ADDRMGR_ASSOC if child else 0))
        self._send(mt.encode_command("ZDO.TCDevInd", src_nwk=nwk, src_ieee=ieee, parent_nwk=parent_nwk))
        # the device announces itself once it has the network key (a broadcast the coordinator hears)
        self._send(mt.encode_command("ZDO.EndDeviceAnnceInd", src=nwk, nwk=nwk, ieee=ieee,
                                     capabilities=mac_capabilities))
        annce = zdo.encode("Device_annce", tsn=self.rng.randrange(256), nwk=nwk, ieee=ieee,
                           capability=mac_capabilities)
        self._zdo_to_host(nwk, 0x0013, annce, broadcast=True)
        return True

    def device_left(self, nwk: int, ieee: int, now: float) -> None:
        self._devices.pop(ieee, None)
        self._remember_device(nwk, ieee, None)
        self._send(mt.encode_command("ZDO.LeaveInd", nwk=nwk, ieee=ieee, request=False, remove=False, rejoin=False))

    # -- NV ------------------------------------------------------------------------------------------------------

    def _remember_device(self, nwk: int, ieee: int, kind: int | None) -> None:
        """The address manager entry of a device (kind None: forget it), where zigpy-znp's backup reads
        the devices of the network: its own slot if it has one, else the first unused."""
        keys = [(NV_SYS_ZSTACK, NV_ITEM_ADDRMGR, sub_id) for sub_id in range(ADDRMGR_ENTRIES)]
        mine = ieee.to_bytes(8, "little")
        slot = next((k for k in keys if bytes(self._nv.get(k, b""))[4:12] == mine), None)
        if slot is None and kind is not None:
            slot = next((k for k in keys if bytes(self._nv.get(k, b"")) == ADDRMGR_EMPTY), None)
        if slot is None:
            return                                    # the table is full (or it was never there): as Z-Stack
        self._nv[slot] = bytearray(ADDRMGR_EMPTY if kind is None else
                                   bytes([kind, 0xFF]) + nwk.to_bytes(2, "little") + mine)

    def nv_snapshot(self) -> dict[str, Any]:
        """NV as a JSON-able dict (the `nv` argument of a later construction)."""
        return {"format": NV_SNAPSHOT_FORMAT, "version": 1,
                "items": {f"{s:02x}:{i:04x}:{u:04x}": bytes(v).hex() for (s, i, u), v in sorted(self._nv.items())}}

    def _osal_byte(self, nv_id: int) -> int | None:
        value = self._nv.get(_osal(nv_id))
        return value[0] if value else None

    def _frame_counter(self, extended_pan_id: int) -> int:
        for sub_id in range(NWK_SEC_MATERIAL_ENTRIES):
            raw = self._nv.get((NV_SYS_ZSTACK, NV_ITEM_NWK_SEC_MATERIAL_TABLE, sub_id))
            if raw is not None and len(raw) == _SEC_MATERIAL.sizeof():
                entry = _SEC_MATERIAL.parse(bytes(raw))
                if entry.extended_pan_id == extended_pan_id:
                    return entry.frame_counter
        return 0

    # -- boot and formation --------------------------------------------------------------------------------------

    def _boot(self, now: float | None) -> None:
        """Power-up or reset: apply the startup options, re-create missing factory items, forget the session."""
        option = self._osal_byte(OSAL_STARTUP_OPTION) or 0
        if option & STARTUP_CLEAR_CONFIG:
            self._nv.clear()
        elif option & STARTUP_CLEAR_STATE:
            for nv_id in _NETWORK_STATE:
                self._nv.pop(_osal(nv_id), None)
        self._nv.setdefault(_osal(OSAL_EXTADDR), bytearray(self.hardware_ieee.to_bytes(8, "little")))
        for nv_id, value in _FACTORY_OSAL.items():
            self._nv.setdefault(_osal(nv_id), bytearray(value))
        for sub_id in range(NWK_SEC_MATERIAL_ENTRIES):
            self._nv.setdefault((NV_SYS_ZSTACK, NV_ITEM_NWK_SEC_MATERIAL_TABLE, sub_id),
                                bytearray(_SEC_MATERIAL.sizeof()))
        for sub_id in range(ADDRMGR_ENTRIES):
            self._nv.setdefault((NV_SYS_ZSTACK, NV_ITEM_ADDRMGR, sub_id), bytearray(ADDRMGR_EMPTY))
        self._nv[_osal(OSAL_STARTUP_OPTION)] = bytearray(1)
        self._state = DeviceState.INITIALIZED_NOT_STARTED
        self._endpoints: dict[int, _Endpoint] = {}
        self._groups: dict[int, dict[int, bytes]] = {}       # endpoint -> group id -> name (RAM, not NV here)
        self._permit_until: float | None = None
        self._primary_channels = DEFAULT_CHANNEL_MASK
        self._later.clear()
        self._devices.clear()
        if now is not None:
            self.stats["resets"] += 1
            self._send_at(now + self.boot_delay, mt.encode_command(
                "SYS.ResetInd", reason=mt.ResetReason.EXTERNAL, transport_rev=TRANSPORT_REV,
                product_id=self.product_id, major_rel=self.release[0], minor_rel=self.release[1],
                maint_rel=self.release[2]))

    def _form(self) -> None:
        """A new network from the formation settings in NV (zigpy-znp rewrites it afterwards)."""
        channels = [ch for ch in range(11, 27) if self._primary_channels & (1 << ch)] or [11]
        channel = self.rng.choice(channels)
        pan_id = int.from_bytes(self._nv[_osal(OSAL_PANID)], "little")
        if pan_id in (0xFFFF, 0xFFFE, 0x0000):
            pan_id = self.rng.randrange(0x0001, 0xFFF7)
        extended_pan_id = int.from_bytes(self._nv[_osal(OSAL_APS_USE_EXT_PANID)], "little") or self.ieee
        key = bytes(self._nv.get(_osal(OSAL_PRECFGKEY), b""))
        if len(key) != 16 or not any(key):
            key = self.rng.randbytes(16)
        nib = _default_nib(channel=channel, pan_id=pan_id, extended_pan_id=extended_pan_id,
                           channel_list=self._primary_channels)
        key_desc = _KEY_DESC.build({"seq": 0, "key": key})
        for nv_id, value in ((OSAL_NIB, NIB.build(nib)), (OSAL_NWK_ACTIVE_KEY_INFO, key_desc),
                             (OSAL_NWK_ALTERN_KEY_INFO, key_desc), (OSAL_BDBNODEISONANETWORK, b"\x01"),
                             (OSAL_EXTENDED_PAN_ID, extended_pan_id.to_bytes(8, "little"))):
            self._nv[_osal(nv_id)] = bytearray(value)
        self._nv.setdefault(_osal(OSAL_TCLK_SEED), bytearray(self.rng.randbytes(16)))
        self._nv[(NV_SYS_ZSTACK, NV_ITEM_NWK_SEC_MATERIAL_TABLE, 0)] = bytearray(
            _SEC_MATERIAL.build({"frame_counter": 0, "extended_pan_id": extended_pan_id}))
        for sub_id in range(ADDRMGR_ENTRIES):          # a new network knows no devices yet
            self._nv[(NV_SYS_ZSTACK, NV_ITEM_ADDRMGR, sub_id)] = bytearray(ADDRMGR_EMPTY)
        self.stats["formations"] += 1

    # -- frames in -----------------------------------------------------------------------------------------------

    def _on_frame(self, frame: Frame, now: float) -> None:
        if frame.type not in (CommandType.SREQ, CommandType.AREQ):
            self.stats["ignored_areqs"] += 1   # SRSPs and POLLs from a host mean nothing to a dongle
            return
        try:
            name, fields = mt.decode(frame)
        except MtError:
            if frame.type == CommandType.SREQ and (frame.subsystem, frame.cmd1) not in _KNOWN_HEADERS:
                self._not_recognized(frame)
            else:
                self.stats["undecodable"] += 1   # a known command with a malformed payload: Z-Stack drops it
            return
        handler = _HANDLERS.get(name)
        if handler is None:
            if frame.type == CommandType.SREQ:
                self._not_recognized(frame)
            else:
                self.stats["ignored_areqs"] += 1
            return
        handler(self, fields, now)

    def _not_recognized(self, frame: Frame) -> None:
        self.stats["unknown_sreqs"] += 1
        code = (mt.RpcErrorCode.INVALID_COMMAND_ID if frame.subsystem in _SUBSYSTEMS_SERVED
                else mt.RpcErrorCode.INVALID_SUBSYSTEM)
        self._send(mt.encode_response("RPC_ERROR.CommandNotRecognized", error_code=code,
                                      request_header=frame.cmd0 | frame.cmd1 << 8))

    # -- frames out ----------------------------------------------------------------------------------------------

    def _send(self, frame: Frame) -> None:
        self._out += frame.encode()

    def _send_at(self, when: float, frame: Frame) -> None:
        self._order += 1
        heapq.heappush(self._later, (when, self._order, frame))

    def _reply(self, name: str, **fields: Any) -> None:
        self._send(mt.encode_response(name, **fields))

    def _to_network(self, aps: ApsOut) -> None:
        self.stats["aps_out"] += 1
        self._network_out.append(aps)

    def _zdo_to_host(self, src_nwk: int, cluster: int, payload: bytes, *, broadcast: bool) -> None:
        """A ZDO frame (TSN first) reaching the host: MsgCbIncoming (zigpy-znp's way), then the MT ZDO callback
        of a response (zigbee-herdsman's way: it waits for ZDO.ActiveEpRsp, NodeDescRsp, ...)."""
        if not payload:
            return
        self._send(mt.encode_command("ZDO.MsgCbIncoming", src=src_nwk, is_broadcast=broadcast, cluster_id=cluster,
                                     security_use=0, tsn=payload[0], mac_dst=0xFFFF if broadcast else 0x0000,
                                     data=payload[1:]))
        callback = _mt_zdo_callback(src_nwk, cluster, payload)
        if callback is not None:
            self._send(callback)

    # -- SREQ handlers (the table _HANDLERS maps names to these) -------------------------------------------------

    def _sys_reset(self, fields: Any, now: float) -> None:
        self._boot(now)

    def _sys_ping(self, fields: Any, now: float) -> None:
        self._reply("SYS.Ping", capabilities=CAPABILITIES)

    def _sys_version(self, fields: Any, now: float) -> None:
        major, minor, maint = self.release
        self._reply("SYS.Version", transport_rev=TRANSPORT_REV, product_id=self.product_id, major_rel=major,
                    minor_rel=minor, maint_rel=maint, code_revision=self.code_revision,
                    bootloader_build_type=mt.BootloaderBuildType.NON_BOOTLOADER_BUILD,
                    bootloader_revision=0xFFFFFFFF)

    def _sys_get_ext_addr(self, fields: Any, now: float) -> None:
        self._reply("SYS.GetExtAddr", ext_addr=self.ieee)

    def _sys_set_ext_addr(self, fields: Any, now: float) -> None:
        self._nv[_osal(OSAL_EXTADDR)] = bytearray(fields.ext_addr.to_bytes(8, "little"))
        self._reply("SYS.SetExtAddr", status=SUCCESS)

    def _sys_set_tx_power(self, fields: Any, now: float) -> None:
        self._reply("SYS.SetTxPower", status_or_power=SUCCESS)

    # OSAL NV: the legacy item of the extended store
    def _osal_item_init(self, fields: Any, now: float) -> None:
        key = _osal(fields.id)
        if key in self._nv:
            self._reply("SYS.OSALNVItemInit", status=SUCCESS)
            return
        self._nv[key] = bytearray(bytes(fields.value[: fields.item_len]).ljust(fields.item_len, b"\x00"))
        self._reply("SYS.OSALNVItemInit", status=NV_ITEM_UNINIT)

    def _osal_length(self, fields: Any, now: float) -> None:
        self._reply("SYS.OSALNVLength", item_len=len(self._nv.get(_osal(fields.id), b"")))

    def _osal_read(self, fields: Any, now: float) -> None:
        self._nv_read("SYS.OSALNVRead", _osal(fields.id), fields.offset, NV_CHUNK)

    def _osal_read_ext(self, fields: Any, now: float) -> None:
        self._nv_read("SYS.OSALNVReadExt", _osal(fields.id), fields.offset, NV_CHUNK)

    def _osal_write(self, fields: Any, now: float) -> None:
        self._reply("SYS.OSALNVWrite", status=self._nv_write(_osal(fields.id), fields.offset, fields.value))

    def _osal_write_ext(self, fields: Any, now: float) -> None:
        self._reply("SYS.OSALNVWriteExt", status=self._nv_write(_osal(fields.id), fields.offset, fields.value))

    def _osal_delete(self, fields: Any, now: float) -> None:
        key = _osal(fields.id)
        if key not in self._nv:
            status = NV_ITEM_UNINIT
        elif len(self._nv[key]) != fields.item_len:
            status = NV_BAD_ITEM_LEN
        else:
            del self._nv[key]
            status = SUCCESS
        self._reply("SYS.OSALNVDelete", status=status)

    # the extended NV API of Z-Stack 3.30
    def _nv_create(self, fields: Any, now: float) -> None:
        key = (fields.sys_id, fields.item_id, fields.sub_id)
        if key in self._nv:
            self._reply("SYS.NVCreate", status=NV_ITEM_UNINIT)
            return
        self._nv[key] = bytearray(fields.length)
        self._reply("SYS.NVCreate", status=SUCCESS)

    def _nv_delete(self, fields: Any, now: float) -> None:
        removed = self._nv.pop((fields.sys_id, fields.item_id, fields.sub_id), None)
        self._reply("SYS.NVDelete", status=SUCCESS if removed is not None else NV_ITEM_UNINIT)

    def _nv_length(self, fields: Any, now: float) -> None:
        self._reply("SYS.NVLength", length=len(self._nv.get((fields.sys_id, fields.item_id, fields.sub_id), b"")))

    def _nv_read_ext_api(self, fields: Any, now: float) -> None:
        self._nv_read("SYS.NVRead", (fields.sys_id, fields.item_id, fields.sub_id), fields.offset,
                      min(fields.length, NV_CHUNK))

    def _nv_write_ext_api(self, fields: Any, now: float) -> None:
        status = self._nv_write((fields.sys_id, fields.item_id, fields.sub_id), fields.offset, fields.value)
        self._reply("SYS.NVWrite", status=status)

    def _nv_read(self, name: str, key: NvKey, offset: int, most: int) -> None:
        value = self._nv.get(key)
        if value is None or offset > len(value):
            self._reply(name, status=NV_OPER_FAILED, value=b"")
            return
        self._reply(name, status=SUCCESS, value=bytes(value[offset: offset + most]))

    def _nv_write(self, key: NvKey, offset: int, data: bytes) -> int:
        value = self._nv.get(key)
        if value is None:
            return NV_ITEM_UNINIT
        if offset + len(data) > len(value):
            return NV_BAD_ITEM_LEN
        value[offset: offset + len(data)] = data
        return SUCCESS

    # UTIL
    def _util_device_info(self, fields: Any, now: float) -> None:
        network = self.network
        started = self.on_network
        self._reply("UTIL.GetDeviceInfo", status=SUCCESS, ieee=self.ieee,
                    nwk=network.nwk if network and started else 0xFFFE, device_type=self.device_types,
                    device_state=self._state, associated_devices=[])

    def _util_led(self, fields: Any, now: float) -> None:
        self._reply("UTIL.LEDControl", status=SUCCESS)

    def _util_assoc_find(self, fields: Any, now: float) -> None:
        self._reply("UTIL.AssocFindDevice", device=_EMPTY_ASSOCIATION)

    # APP_CNF (BDB)
    def _bdb_start(self, fields: Any, now: float) -> None:
        self._reply("APP_CNF.BDBStartCommissioning", status=SUCCESS)
        if self.logical_type != COORDINATOR:
            self._bdb_join(fields.mode, now)
            return
        if not fields.mode & BDB_MODE_FORMATION:
            self._send_at(now, mt.encode_command("APP_CNF.BDBCommissioningNotification",
                                                 status=mt.BdbCommissioningStatus.SUCCESS, mode=fields.mode,
                                                 remaining_modes=0))
            return
        due = now + self.formation_delay
        if self.network is None:
            self._form()
            status = mt.BdbCommissioningStatus.SUCCESS
        else:
            status = mt.BdbCommissioningStatus.FORMATION_FAILURE   # already on a network: restored, not formed
        self._state = DeviceState.STARTED_AS_COORDINATOR
        self._send_at(now, mt.encode_command("ZDO.StateChangeInd", state=DeviceState.STARTING_AS_COORDINATOR))
        self._send_at(now, mt.encode_command("APP_CNF.BDBCommissioningNotification",
                                             status=mt.BdbCommissioningStatus.IN_PROGRESS, mode=BDB_MODE_FORMATION,
                                             remaining_modes=BDB_MODE_FORMATION))
        self._send_at(due, mt.encode_command("ZDO.StateChangeInd", state=DeviceState.STARTED_AS_COORDINATOR))
        self._send_at(due, mt.encode_command("APP_CNF.BDBCommissioningNotification", status=status,
                                             mode=BDB_MODE_FORMATION, remaining_modes=0))

    def _bdb_join(self, mode: int, now: float) -> None:
        """BDB commissioning of a router or end device: network steering joins (or rejoins) the network in range."""
        role = self.logical_type

        def notify(at: float, status: mt.BdbCommissioningStatus, remaining: int = 0) -> None:
            self._send_at(at, mt.encode_command("APP_CNF.BDBCommissioningNotification", status=status,
                                                mode=BDB_MODE_STEERING, remaining_modes=remaining))
        if not mode & BDB_MODE_STEERING:
            self._send_at(now, mt.encode_command("APP_CNF.BDBCommissioningNotification",
                                                 status=mt.BdbCommissioningStatus.SUCCESS, mode=mode,
                                                 remaining_modes=0))
            return
        if self.on_network:                        # steering on a network: it is open to others, nothing more
            notify(now, mt.BdbCommissioningStatus.SUCCESS)
            return
        if not self.device_types & (1 << role):    # a build without this role cannot start as it
            self.stats["steering_failed"] += 1
            notify(now, mt.BdbCommissioningStatus.FAILURE)
            return
        notify(now, mt.BdbCommissioningStatus.IN_PROGRESS, BDB_MODE_STEERING)
        self._state = DeviceState.DISCOVERING_PANS
        self._send_at(now, mt.encode_command("ZDO.StateChangeInd", state=DeviceState.DISCOVERING_PANS))
        target = self.radio_network
        held = self.network
        in_range = (target is not None and self._primary_channels & (1 << target.channel)
                    and (held is None or held.extended_pan_id == target.extended_pan_id))
        if not in_range:
            def nothing(at: float) -> None:
                self.stats["steering_failed"] += 1
                self._state = DeviceState.INITIALIZED_NOT_CONNECTED
                self._send(mt.encode_command("ZDO.StateChangeInd", state=DeviceState.INITIALIZED_NOT_CONNECTED))
                self._send(mt.encode_command("APP_CNF.BDBCommissioningNotification",
                                             status=mt.BdbCommissioningStatus.NO_NETWORK, mode=BDB_MODE_STEERING,
                                             remaining_modes=0))
            self._send_at(now + self.scan_delay, nothing)
            return

        def joined(at: float) -> None:
            self._write_joined_network(target, role)
            self.stats["joins"] += 1
            self._state = JOINED_STATES[role]
            self._send(mt.encode_command("ZDO.StateChangeInd", state=DeviceState.JOINING))
            self._send(mt.encode_command("ZDO.StateChangeInd", state=self._state))
            self._send(mt.encode_command("APP_CNF.BDBCommissioningNotification",
                                         status=mt.BdbCommissioningStatus.SUCCESS, mode=BDB_MODE_STEERING,
                                         remaining_modes=0))
        self._send_at(now + self.join_delay, joined)

    def _write_joined_network(self, target: JoinableNetwork, role: int) -> None:
        """What Z-Stack keeps in NV once it has joined (and rejoins from after a reset)."""
        nib = _default_nib(channel=target.channel, pan_id=target.pan_id, extended_pan_id=target.extended_pan_id,
                           channel_list=self._primary_channels)
        nib.update(nwk_dev_address=target.nwk, nwk_coord_address=target.parent_nwk, nwk_is_concentrator=False,
                   capability_flags=0x8E if role == ROUTER else 0x80, node_depth=1)
        key_desc = _KEY_DESC.build({"seq": 0, "key": bytes(target.network_key)})
        for nv_id, value in ((OSAL_NIB, NIB.build(nib)), (OSAL_NWK_ACTIVE_KEY_INFO, key_desc),
                             (OSAL_BDBNODEISONANETWORK, b"\x01"),
                             (OSAL_EXTENDED_PAN_ID, target.extended_pan_id.to_bytes(8, "little"))):
            self._nv[_osal(nv_id)] = bytearray(value)
        self._nv[(NV_SYS_ZSTACK, NV_ITEM_NWK_SEC_MATERIAL_TABLE, 0)] = bytearray(
            _SEC_MATERIAL.build({"frame_counter": 0, "extended_pan_id": target.extended_pan_id}))

    def _bdb_set_channel(self, fields: Any, now: float) -> None:
        if fields.is_primary:
            self._primary_channels = fields.channel
        self._reply("APP_CNF.BDBSetChannel", status=SUCCESS)

    def _set_frame_counter(self, fields: Any, now: float) -> None:
        network = self.network
        if network is not None:
            self._nv[(NV_SYS_ZSTACK, NV_ITEM_NWK_SEC_MATERIAL_TABLE, 0)] = bytearray(_SEC_MATERIAL.build(
                {"frame_counter": fields.frame_counter_value, "extended_pan_id": network.extended_pan_id}))
        self._reply("APP_CNF.SetNwkFrameCounter", status=SUCCESS)

    # AF
    def _af_register(self, fields: Any, now: float) -> None:
        if fields.endpoint in self._endpoints or fields.endpoint == 0:
            self._reply("AF.Register", status=APS_DUPLICATE_ENTRY)
            return
        self._endpoints[fields.endpoint] = _Endpoint(
            fields.endpoint, fields.profile_id, fields.device_id, fields.device_version,
            tuple(fields.input_clusters), tuple(fields.output_clusters))
        self._reply("AF.Register", status=SUCCESS)

    def _af_data_request(self, fields: Any, now: float) -> None:
        self._reply("AF.DataRequest", status=SUCCESS)
        self._af_send(fields.dst_addr, None, fields, now)

    def _af_data_request_ext(self, fields: Any, now: float) -> None:
        address = fields.dst_addr_mode_address
        group = None
        if address.mode == mt.AddrMode.IEEE:
            dst_nwk = self._devices.get(address.address, 0xFFFE)
        elif address.mode == mt.AddrMode.GROUP:
            dst_nwk, group = 0xFFFF, address.address
        else:
            dst_nwk = address.address
        self._reply("AF.DataRequestExt", status=SUCCESS)
        self._af_send(dst_nwk, group, fields, now)

    def _af_send(self, dst_nwk: int, group: int | None, fields: Any, now: float) -> None:
        is_zdo = fields.dst_endpoint == zdo.ZDO_ENDPOINT
        if is_zdo:
            profile = zdo.ZDO_PROFILE
        else:
            endpoint = self._endpoints.get(fields.src_endpoint)
            profile = endpoint.profile if endpoint is not None else 0x0104
        data = bytes(fields.data)
        if self.logical_type != COORDINATOR and not self.on_network:
            if not is_zdo:
                self._send(mt.encode_command("AF.DataConfirm", status=NWK_NO_ROUTE, endpoint=fields.src_endpoint,
                                             tsn=fields.tsn))
            return
        if is_zdo and dst_nwk == self._own_nwk() and group is None:
            self._answer_own_zdo(fields.cluster_id, data)
        else:
            self._to_network(ApsOut(dst_nwk=dst_nwk, dst_ep=fields.dst_endpoint, src_ep=fields.src_endpoint,
                                    profile=profile, cluster=fields.cluster_id, payload=data, tsn=fields.tsn,
                                    radius=fields.radius, ack=bool(fields.options & AF_ACK_REQUEST), group=group))
        # ZDO and broadcasts get no confirmation (zigpy-znp waits for none)
        if (not is_zdo and dst_nwk not in BROADCASTS) or group is not None:
            self._send(mt.encode_command("AF.DataConfirm", status=SUCCESS, endpoint=fields.src_endpoint,
                                         tsn=fields.tsn))

    def _own_nwk(self) -> int:
        network = self.network
        return network.nwk if network is not None else 0x0000

    def _answer_own_zdo(self, cluster: int, data: bytes) -> None:
        """A ZDO request for the coordinator itself, answered from its own state as Z-Stack's ZDO would."""
        try:
            request = zdo.decode(cluster, data)
        except zdo.ZdoError:
            return   # responses to ourselves, and requests we do not know: nothing answers them
        own = self._own_nwk()
        answer: dict[str, Any] | None = None
        if request.name == "Node_Desc_req":
            descriptor = dict(COORDINATOR_NODE_DESCRIPTOR, logical_type=self.logical_type)
            answer = {"status": SUCCESS, "nwk_addr_of_interest": own, "node_descriptor": descriptor}
        elif request.name == "Active_EP_req":
            answer = {"status": SUCCESS, "nwk_addr_of_interest": own, "active_ep_list": sorted(self._endpoints)}
        elif request.name == "Simple_Desc_req":
            endpoint = self._endpoints.get(request.fields.endpoint)
            if endpoint is None:
                status = ZDP_INVALID_EP if request.fields.endpoint in (0, 0xFF) else ZDP_NOT_ACTIVE
                answer = {"status": status, "nwk_addr_of_interest": own}
            else:
                answer = {"status": SUCCESS, "nwk_addr_of_interest": own, "simple_descriptor": {
                    "endpoint": endpoint.endpoint, "profile": endpoint.profile, "device_type": endpoint.device_id,
                    "device_version": endpoint.device_version, "input_clusters": list(endpoint.input_clusters),
                    "output_clusters": list(endpoint.output_clusters)}}
        elif request.name in ("NWK_addr_req", "IEEE_addr_req"):
            answer = {"status": SUCCESS, "ieee": self.ieee, "nwk": own}
        elif request.name == "Mgmt_NWK_Update_req" and request.fields.scan_duration <= 0x05:
            # an energy scan: a quiet band (no radio here), as low readings on every channel scanned
            scanned = request.fields.scan_channels & DEFAULT_CHANNEL_MASK
            energies = [self.rng.randrange(0, 40) for ch in range(11, 27) if scanned & (1 << ch)]
            answer = {"status": SUCCESS, "scanned_channels": scanned, "total_transmissions": 0,
                      "transmission_failures": 0, "energy_values": energies}
        if answer is not None:
            response = zdo.encode(cluster | zdo.RESPONSE, tsn=request.tsn, **answer)
            self._zdo_to_host(own, cluster | zdo.RESPONSE, response, broadcast=False)

    # ZDO (MT)
    def _zdo_permit_join(self, fields: Any, now: float) -> None:
        self._reply("ZDO.MgmtPermitJoinReq", status=SUCCESS)
        own = self._own_nwk()
        broadcast = fields.addr_mode == mt.AddrMode.BROADCAST or fields.dst in BROADCASTS
        if broadcast or fields.dst == own:
            if fields.duration == 0:
                self._permit_until = None
            else:
                self._permit_until = float("inf") if fields.duration == 0xFF else now + fields.duration
            self._send(mt.encode_command("ZDO.MgmtPermitJoinRsp", src=own, status=SUCCESS))
        if fields.dst != own:
            payload = zdo.encode("Mgmt_Permit_Joining_req", tsn=self._next_zdo_tsn(),
                                 permit_duration=fields.duration, tc_significant=fields.tc_significance)
            self._zdo_out(fields.dst, 0x0036, payload)

    def _next_zdo_tsn(self) -> int:
        return self.rng.randrange(256)

    def _zdo_out(self, dst: int, cluster: int, payload: bytes) -> None:
        self._to_network(ApsOut(dst_nwk=dst, dst_ep=zdo.ZDO_ENDPOINT, src_ep=zdo.ZDO_ENDPOINT,
                                profile=zdo.ZDO_PROFILE, cluster=cluster, payload=payload, tsn=payload[0],
                                radius=0, ack=False))

    def _zdo_msg_cb_register(self, fields: Any, now: float) -> None:
        self._reply("ZDO.MsgCallbackRegister", status=SUCCESS)

    def _zdo_startup_from_app(self, fields: Any, now: float) -> None:
        restored = self.network is not None
        self._reply("ZDO.StartupFromApp", state=mt.StartupState.RESTORED_NETWORK_STATE if restored
                    else mt.StartupState.NOT_STARTED)

    def _zdo_route_disc(self, fields: Any, now: float) -> None:
        self._reply("ZDO.ExtRouteDisc", status=SUCCESS)

    def _zdo_route_check(self, fields: Any, now: float) -> None:
        known = fields.dst in self._devices.values()
        self._reply("ZDO.ExtRouteChk", status=mt.RoutingStatus.SUCCESS if known else mt.RoutingStatus.NO_ENTRY)

    def _zdo_find_group(self, fields: Any, now: float) -> None:
        """MT_ZdoExtFindGroup: the status, then an aps_Group_t (id, 16-byte name whose first byte is its length),
        all zeros when the endpoint is not in the group."""
        name = self._groups.get(fields.endpoint, {}).get(fields.group_id)
        if name is None:
            self._reply("ZDO.ExtFindGroup", group=bytes([FAILURE]) + bytes(2 + APS_GROUP_NAME_LEN))
            return
        entry = fields.group_id.to_bytes(2, "little") + bytes([len(name)]) + name
        self._reply("ZDO.ExtFindGroup", group=bytes([SUCCESS]) + entry.ljust(2 + APS_GROUP_NAME_LEN, b"\x00"))

    def _zdo_add_group(self, fields: Any, now: float) -> None:
        groups = self._groups.setdefault(fields.endpoint, {})
        if fields.endpoint not in self._endpoints:
            status = INVALID_PARAMETER
        elif fields.group_id in groups:
            status = APS_DUPLICATE_ENTRY
        else:
            groups[fields.group_id] = bytes(fields.group_name[: APS_GROUP_NAME_LEN - 1])
            status = SUCCESS
        self._reply("ZDO.ExtAddGroup", status=status)

    def _zdo_nwk_info(self, fields: Any, now: float) -> None:
        network = self.network
        if network is None:
            self._reply("ZDO.ExtNwkInfo", dst=0xFFFE, device_state=self._state, pan_id=0xFFFF, parent_nwk=0xFFFE,
                        extended_pan_id=0, parent_ieee=0, channel=0)
            return
        self._reply("ZDO.ExtNwkInfo", dst=network.nwk, device_state=self._state, pan_id=network.pan_id,
                    parent_nwk=0xFFFE, extended_pan_id=network.extended_pan_id, parent_ieee=0,
                    channel=network.channel)

    def _zdo_nwk_update(self, fields: Any, now: float) -> None:
        self._reply("ZDO.MgmtNWKUpdateReq", status=SUCCESS)
        channels = [ch for ch in range(11, 27) if fields.channels & (1 << ch)]
        nib_raw = self._nv.get(_osal(OSAL_NIB))
        if fields.scan_duration == 0xFE and len(channels) == 1 and nib_raw is not None:   # a channel change
            nib = NIB.parse(bytes(nib_raw))
            nib.nwk_logical_channel = channels[0]
            nib.nwk_update_id = (nib.nwk_update_id + 1) & 0xFF
            self._nv[_osal(OSAL_NIB)] = bytearray(NIB.build(nib))


def _default_nib(*, channel: int, pan_id: int, extended_pan_id: int, channel_list: int) -> dict[str, Any]:
    """The NIB Z-Stack 3.30 writes when it forms a network as coordinator."""
    empty_key = {"seq": 0, "key": bytes(16)}
    return {
        "sequence_num": 0, "passive_ack_timeout": 5, "max_broadcast_retries": 2, "max_children": 0,
        "max_depth": 20, "max_routers": 0, "dummy_neighbor_table": 0, "broadcast_delivery_time": 30,
        "report_constant_cost": 0, "route_disc_retries": 0, "dummy_routing_table": 0, "secure_all_frames": 1,
        "security_level": 5, "sym_link": 1, "capability_flags": 0x8F, "transaction_persistence_time": 7,
        "nwk_protocol_version": 2, "route_discovery_time": 13, "route_expiry_time": 30, "nwk_dev_address": 0x0000,
        "nwk_logical_channel": channel, "nwk_coord_address": 0x0000, "nwk_coord_ext_address": 0,
        "nwk_pan_id": pan_id, "nwk_state": NWK_STATE_ROUTER, "channel_list": channel_list, "beacon_order": 15,
        "super_frame_order": 15, "scan_duration": 4, "batt_life_ext": 0, "allocated_router_addresses": 1,
        "allocated_end_device_addresses": 1, "node_depth": 0, "extended_pan_id": extended_pan_id,
        "nwk_key_loaded": True, "spare1": empty_key, "spare2": empty_key, "spare3": 0, "spare4": 0,
        "nwk_link_status_period": 15, "nwk_router_age_limit": 3, "nwk_use_multicast": False,
        "nwk_is_concentrator": True, "nwk_concentrator_discovery_time": 120, "nwk_concentrator_radius": 10,
        "nwk_all_fresh": 1, "nwk_manager_addr": 0x0000, "nwk_total_transmissions": 0, "nwk_update_id": 0,
    }


def _load_nv(snapshot: Mapping[str, Any]) -> dict[NvKey, bytearray]:
    if snapshot.get("format") != NV_SNAPSHOT_FORMAT:
        raise ValueError(f"nv: format {snapshot.get('format')!r}, expected {NV_SNAPSHOT_FORMAT!r}")
    items: dict[NvKey, bytearray] = {}
    for name, value in snapshot.get("items", {}).items():
        try:
            sys_id, item_id, sub_id = (int(part, 16) for part in name.split(":"))
            items[sys_id, item_id, sub_id] = bytearray.fromhex(value)
        except ValueError:
            raise ValueError(f"nv: item {name!r} is not SS:IIII:SSSS with a hex value") from None
    return items


# MT ZDO requests -> (ZDO cluster, their ZDO destination and fields)
_MT_ZDO_REQUESTS: Mapping[str, tuple[int, Callable[[Any], tuple[int, dict[str, Any]]]]] = {
    "ZDO.NwkAddrReq": (0x0000, lambda f: (0xFFFD, {"ieee": f.ieee, "request_type": int(f.request_type),
                                                   "start_index": f.start_index})),
    "ZDO.IEEEAddrReq": (0x0001, lambda f: (f.nwk, {"nwk_addr_of_interest": f.nwk,
                                                   "request_type": int(f.request_type),
                                                   "start_index": f.start_index})),
    "ZDO.NodeDescReq": (0x0002, lambda f: (f.dst_addr, {"nwk_addr_of_interest": f.nwk_addr_of_interest})),
    "ZDO.SimpleDescReq": (0x0004, lambda f: (f.dst_addr, {"nwk_addr_of_interest": f.nwk_addr_of_interest,
                                                          "endpoint": f.endpoint})),
    "ZDO.ActiveEpReq": (0x0005, lambda f: (f.dst_addr, {"nwk_addr_of_interest": f.nwk_addr_of_interest})),
    "ZDO.BindReq": (0x0021, lambda f: (f.dst, {"src_address": f.src, "src_endpoint": f.src_endpoint,
                                               "cluster_id": f.cluster_id, "dst_address": dict(f.address)})),
    "ZDO.MgmtLeaveReq": (0x0034, lambda f: (f.dst_addr, {"device_address": f.ieee,
                                                         "options": f.remove_children_rejoin})),
}

# The MT callback of each ZDO response: Z-Stack's MT_ZDO registers for them all at boot (MT_ZDO_CB_FUNC), so
# they reach the host whether or not it asked for MsgCbIncoming. Cluster -> the callback's MT command id.
_ZDO_MT_CALLBACK_IDS: Mapping[int, int] = {
    0x8000: 0x80, 0x8001: 0x81,                         # NwkAddrRsp, IEEEAddrRsp
    0x8002: 0x82, 0x8003: 0x83, 0x8004: 0x84,           # NodeDescRsp, PowerDescRsp, SimpleDescRsp
    0x8005: 0x85, 0x8006: 0x86, 0x8015: 0x8A,           # ActiveEpRsp, MatchDescRsp, ServerDiscRsp
    0x8021: 0xA1, 0x8022: 0xA2,                         # BindRsp, UnbindRsp
    0x8031: 0xB1, 0x8032: 0xB2, 0x8033: 0xB3,           # MgmtLqiRsp, MgmtRtgRsp, MgmtBindRsp
    0x8034: 0xB4, 0x8036: 0xB6, 0x8038: 0xB8,           # MgmtLeaveRsp, MgmtPermitJoinRsp, MgmtNwkUpdateNotify
}
_ADDR_RESPONSES = (0x8000, 0x8001)


def _mt_zdo_callback(src_nwk: int, cluster: int, payload: bytes) -> Frame | None:
    """The MT ZDO callback Z-Stack sends for a ZDO response (payload TSN first), or None for other clusters.

    Most are the source address, then the ZDO response after its TSN. The address responses carry no source
    address, always hold the start index and device count (0, 0 for a single request), and in that order:
    MT_ZdoAddrRspCB writes the start index first where ZDO puts the count first."""
    command_id = _ZDO_MT_CALLBACK_IDS.get(cluster)
    if command_id is None:
        return None
    body = payload[1:]
    if cluster in _ADDR_RESPONSES:
        fixed, rest = body[:11], body[11:]
        count, start = (rest[0], rest[1]) if len(rest) >= 2 else (0, 0)
        body = fixed + bytes([start, count]) + rest[2:]
    else:
        body = src_nwk.to_bytes(2, "little") + body
    return Frame(CommandType.AREQ, mt.Subsystem.ZDO, command_id, body)


_Handler = Callable[[ZnpCoordinator, Any, float], None]


def _ok(name: str) -> _Handler:
    """An SREQ that only needs SUCCESS (a setting the emulation does not act on)."""
    return lambda machine, fields, now: machine._reply(name, status=SUCCESS)


def _mt_zdo_request(name: str, cluster: int, build: Callable[[Any], tuple[int, dict[str, Any]]]) -> _Handler:
    """An MT ZDO request: SRSP SUCCESS, then its ZDO frame goes to the network (or is answered here)."""
    def handle(machine: ZnpCoordinator, fields: Any, now: float) -> None:
        machine._reply(name, status=SUCCESS)
        dst, zdo_fields = build(fields)
        payload = zdo.encode(cluster, tsn=machine._next_zdo_tsn(), **zdo_fields)
        if dst == machine._own_nwk():
            machine._answer_own_zdo(cluster, payload)
        else:
            machine._zdo_out(dst, cluster, payload)
    return handle


_HANDLERS: Mapping[str, _Handler] = {
    "SYS.ResetReq": ZnpCoordinator._sys_reset,
    "SYS.Ping": ZnpCoordinator._sys_ping,
    "SYS.Version": ZnpCoordinator._sys_version,
    "SYS.GetExtAddr": ZnpCoordinator._sys_get_ext_addr,
    "SYS.SetExtAddr": ZnpCoordinator._sys_set_ext_addr,
    "SYS.SetTxPower": ZnpCoordinator._sys_set_tx_power,
    "SYS.OSALNVItemInit": ZnpCoordinator._osal_item_init,
    "SYS.OSALNVLength": ZnpCoordinator._osal_length,
    "SYS.OSALNVRead": ZnpCoordinator._osal_read,
    "SYS.OSALNVReadExt": ZnpCoordinator._osal_read_ext,
    "SYS.OSALNVWrite": ZnpCoordinator._osal_write,
    "SYS.OSALNVWriteExt": ZnpCoordinator._osal_write_ext,
    "SYS.OSALNVDelete": ZnpCoordinator._osal_delete,
    "SYS.NVCreate": ZnpCoordinator._nv_create,
    "SYS.NVDelete": ZnpCoordinator._nv_delete,
    "SYS.NVLength": ZnpCoordinator._nv_length,
    "SYS.NVRead": ZnpCoordinator._nv_read_ext_api,
    "SYS.NVWrite": ZnpCoordinator._nv_write_ext_api,
    "UTIL.GetDeviceInfo": ZnpCoordinator._util_device_info,
    "UTIL.LEDControl": ZnpCoordinator._util_led,
    "UTIL.AssocFindDevice": ZnpCoordinator._util_assoc_find,
    "APP_CNF.BDBStartCommissioning": ZnpCoordinator._bdb_start,
    "APP_CNF.BDBSetChannel": ZnpCoordinator._bdb_set_channel,
    "APP_CNF.BDBSetTcRequireKeyExchange": _ok("APP_CNF.BDBSetTcRequireKeyExchange"),
    "APP_CNF.BDBSetJoinUsesInstallCodeKey": _ok("APP_CNF.BDBSetJoinUsesInstallCodeKey"),
    "APP_CNF.BDBAddInstallCode": _ok("APP_CNF.BDBAddInstallCode"),
    "APP_CNF.SetNwkFrameCounter": ZnpCoordinator._set_frame_counter,
    "AF.Register": ZnpCoordinator._af_register,
    "AF.DataRequest": ZnpCoordinator._af_data_request,
    "AF.DataRequestExt": ZnpCoordinator._af_data_request_ext,
    "ZDO.MgmtPermitJoinReq": ZnpCoordinator._zdo_permit_join,
    "ZDO.MsgCallbackRegister": ZnpCoordinator._zdo_msg_cb_register,
    "ZDO.StartupFromApp": ZnpCoordinator._zdo_startup_from_app,
    "ZDO.ExtRouteDisc": ZnpCoordinator._zdo_route_disc,
    "ZDO.ExtRouteChk": ZnpCoordinator._zdo_route_check,
    "ZDO.ExtNwkInfo": ZnpCoordinator._zdo_nwk_info,
    "ZDO.ExtFindGroup": ZnpCoordinator._zdo_find_group,
    "ZDO.ExtAddGroup": ZnpCoordinator._zdo_add_group,
    "ZDO.MgmtNWKUpdateReq": ZnpCoordinator._zdo_nwk_update,
    **{name: _mt_zdo_request(name, cluster, build) for name, (cluster, build) in _MT_ZDO_REQUESTS.items()},
}

_SUBSYSTEMS_SERVED = {mt.Subsystem.SYS, mt.Subsystem.UTIL, mt.Subsystem.ZDO, mt.Subsystem.AF, mt.Subsystem.APP_CNF}
_KNOWN_HEADERS = {(command.subsystem, command.id) for command in mt.COMMANDS.values() if command.name in _HANDLERS}

#: The same machine in either role (ZnpCoordinator is its historical name).
ZnpDongle = ZnpCoordinator
