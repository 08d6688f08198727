"""A virtual Silicon Labs EZSP dongle (an EFR32 running EmberZNet NCP firmware), as a
sans-I/O machine: a coordinator, or a router / end device that joins a network on
its radio side.

The host side is the dongle's UART: ASH (bridge_emu.uart.ash_link, the NCP end)
carrying EZSP frames (bridge_emu.codec.ezsp), through the ByteMachine methods
(receive_bytes / pop_bytes / timer / next_deadline), so a StreamDriver can put it
behind `socket://` and an unmodified bellows can connect, negotiate the EZSP
version, form or restore a network, start it and back it up. The radio side is the
same sans-I/O API as bridge_emu.uart.znp_ncp (one premises adapter drives either
dongle): `pop_network()` gives what the host sends over the air as `ApsOut`
records; `network_received()`, `device_joined()` and `device_left()` bring the air
back as callbacks.

The model:

* One EZSP protocol version is spoken (`version`, 13 by default; any the codec's
  table covers, 8-19). The host's first `version` command (legacy header) is
  answered in the legacy header with that version, whatever was asked for, as
  EmberZNet does; bellows then switches and asks again in the extended header.
* A host connecting is a start of the stack, as zigbeed's is (it serves EZSP on a
  socket): `startup_rstack_s` (0.25 s) after the connection the NCP reboots and says
  so with an unasked RSTACK (reset code RESET_SOFTWARE, as zigbeed reports), which
  bellows, on a socket:// port, takes instead of resetting the NCP itself (it waits
  up to 2 s for it, NETWORK_COORDINATOR_STARTUP_RESET_WAIT). A host that sends RST
  first (as most do at once) has it answered as always, and then no startup RSTACK
  follows: one reset, one RSTACK. startup_rstack_s None: the NCP is silent until the
  host's RST, as a stick on a USB UART that opening the port does not reset.
* Every command is answered synchronously, in the header format of the session.
  Callbacks are asynchronous frames (frame control 0x90) sent right after the
  response that caused them, carrying the sequence number of the last command
  (already answered, so a host never mistakes one for a response). `callback`
  (polling, for SPI hosts) always finds nothing pending: noCallbacks.
* A command the table has no handler for, or one the codec does not know, is
  answered with invalidCommand (EzspStatus ERROR_INVALID_FRAME_ID, or
  sl_status NOT_SUPPORTED from v14), as EmberZNet does for an unknown frame id,
  and counted by frame id in `invalid_frame_ids` (`gaps`: those but Green
  Power's, which a build without it refuses too). A frame that does not decode
  is counted (`stats["malformed"]`) and ignored.
* Tokens (persistent): the EUI64, the network parameters, the network and trust
  center link keys with their sequence and frame counters, the node type, the
  child table (end devices that joined the coordinator, or that setChildData
  wrote: getChildData reads it), and the key table (link keys by index: importLinkKey from v12, addOrUpdateKeyTableEntry
  before v13; read back with exportLinkKeyByIndex / getKeyTableEntry; its size is
  CONFIG_KEY_TABLE_SIZE, 0 until the host sets it). Transient keys
  (importTransientKey, addTransientLinkKey) are volatile and never expire.
  `nv_snapshot()` / the `nv` argument carry them across constructions. An ASH
  reset (RST from the host, i.e. a host-driven reboot) resets the volatile
  EZSP state (configuration, policies, endpoints, the running network, permit
  join) as a reboot does; `networkInit` then brings the tokened network back up
  (stackStatusHandler NETWORK_UP).
* Formation: setInitialSecurityState stores the keys, formNetwork the parameters;
  the network comes up at once (no beacon).
* Scans end as they start: startScan is answered, then an energy scan reports
  a quiet channel (-92 to -87 dBm) for each channel of the mask, an active scan
  hears no beacon (the NCP does not hear its own network), and scanCompleteHandler
  follows. So a host can pick a channel by energy scan before it forms.
* Sends: sendUnicast / sendBroadcast become ApsOut records, then a
  messageSentHandler reporting success (no radio, so no delivery failures).
  ZDO requests bellows sends to the coordinator itself (node 0x0000: the
  interview zigpy runs of its own coordinator) are answered here as the
  NCP's own ZDO would, as incomingMessageHandler frames.
* Joins (only while permit joining is open): trustCenterJoinHandler, a
  childJoinHandler when an end device joins the coordinator itself (it enters the
  child table; routers are not children), then the
  device's Device_annce as an incomingMessageHandler (broadcast, ZDO). A device
  that leaves: childJoinHandler (leaving) if it was a child, and
  trustCenterJoinHandler DEVICE_LEFT.

* Joining (the router / end-device role, for `bridge-emu attach`): getLibraryStatus
  of the ZigBee PRO library says which roles the build takes (`device_types`, the
  bitmap znp_ncp uses: without the router bit it is an end-device-only stack, and
  joinNetwork as a router is INVALID_CALL). An active scan hears the beacon of
  `radio_network` (a JoinableNetwork) when its channel is scanned; joinNetwork with
  that channel and PAN joins at once: the tokens take the network, its key and the
  node id it was given, and stackStatusHandler NETWORK_UP follows (anything else:
  JOIN_FAILED). networkInit after a reboot comes back up on those tokens. Frames
  reach the host only while the network is up; ZDO for the node goes to the host
  (the bridge on the host answers its own interview). `reset()` is the reset pin:
  the NCP reboots and says so with an unasked RSTACK.

Not emulated: multicast, source routes, an address table, tokens other than the ones above
(getTokenData answers NOT_FOUND, so bellows sees no NV3 tokens), XNCP (customFrame
fails, as stock firmware does), Green Power (bellows' table clears are answered
invalidCommand, as a build without it does), ZLL, mfglib, the bootloader, frame
counters that advance.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from construct import Flag, Int8ul, Int16ul, Int32ul, Int64ul, Struct

from bridge_emu.codec import ezsp, zdo
from bridge_emu.codec.ezsp import Direction, EzspError, EzspFrame
from bridge_emu.uart.ash_link import RESET_SOFTWARE, AshLink, Connected, LinkDown, Received
from bridge_emu.uart.znp_ncp import ApsOut, JoinableNetwork, NetworkState

# -- what the dongle says it is ------------------------------------------------------------------------------------

DEFAULT_VERSION = 13
STACK_TYPE_MESH = 2
STACK_VERSION = (7, 4, 4, 0)            # EmberZNet 7.4.4.0 (the v13 firmware of the SiSDK 2023.12 era)
STACK_BUILD = 0
SILABS_MANUFACTURER_CODE = 0x1049
MFG_STRING = b"bridge-emu"
MFG_BOARD_NAME = b"virtual EFR32"

# -- status codes (EmberStatus / EzspStatus before v14, sl_status_t from v14) --------------------------------------

SUCCESS = 0x00
EMBER_NETWORK_UP, SL_NETWORK_UP = ezsp.EMBER_NETWORK_UP, ezsp.SL_NETWORK_UP
EMBER_NETWORK_DOWN, SL_NETWORK_DOWN = ezsp.EMBER_NETWORK_DOWN, ezsp.SL_NETWORK_DOWN
EMBER_NOT_JOINED, SL_NOT_JOINED = ezsp.EMBER_NOT_JOINED, ezsp.SL_NOT_JOINED
EMBER_NOT_FOUND, SL_NOT_FOUND = 0x03, 0x002D
EMBER_INVALID_CALL, SL_INVALID_STATE = 0x70, 0x0002
EZSP_ERROR_INVALID_ID, SL_INVALID_PARAMETER = 0x37, 0x0021
EZSP_ERROR_INVALID_FRAME_ID, SL_NOT_SUPPORTED = 0x31, 0x000F
EMBER_LIBRARY_NOT_PRESENT = 0xB5
EMBER_BAD_ARGUMENT = 0x02
EMBER_INDEX_OUT_OF_RANGE, SL_INVALID_INDEX = 0xB1, 0x0027
EMBER_TABLE_ENTRY_ERASED, EMBER_TABLE_FULL = 0xB6, 0xB4

# -- ids -----------------------------------------------------------------------------------------------------------

VALUE_VERSION_INFO = 0x11
VALUE_NWK_FRAME_COUNTER = 0x23
VALUE_APS_FRAME_COUNTER = 0x24
CONFIG_SECURITY_LEVEL = 0x0D
CONFIG_KEY_TABLE_SIZE = 0x1E
CONFIG_MAX_END_DEVICE_CHILDREN = 0x11
MFG_TOKEN_LENGTHS = {0x00: 2, 0x01: 16, 0x02: 16, 0x03: 2, 0x04: 2, 0x05: 16, 0x06: 40, 0x07: 8, 0x08: 2,
                     0x09: 92, 0x0A: 20, 0x0B: 2, 0x0C: 8, 0x0D: 2}
EMBER_KEY_TRUST_CENTER_LINK, EMBER_KEY_CURRENT_NETWORK, EMBER_KEY_APPLICATION_LINK = 0x01, 0x03, 0x05
SEC_MAN_KEY_NETWORK, SEC_MAN_KEY_TC_LINK, SEC_MAN_KEY_APP_LINK = 1, 2, 4
SEC_MAN_FLAG_KEY_INDEX_IS_VALID = 0x01
KEY_HAS_PARTNER_EUI64 = 0x0008
KEY_HAS_FRAME_COUNTERS = 0x0006            # outgoing and incoming
NO_KEY_TABLE_INDEX = 0xFF
SCAN_ENERGY, SCAN_ACTIVE = ezsp.SCAN_ENERGY, ezsp.SCAN_ACTIVE
RESET_EXTERNAL = 0x01                      # the ASH reset code after the reset pin
# From a host's connection to the startup RSTACK: the stack starting, as zigbeed's does on a new connection.
# Long enough that a host which resets the link at once (bellows on a serial port, attach, probe) has its RST
# in first, and that bellows on socket:// is waiting for it (it listens from a few ms after its connect, for
# 2 s); short of bellows' 2 s, which it otherwise waits on every connect.
STARTUP_RSTACK_S = 0.25
DEVICE_TYPE_CAPABILITIES = 0x07            # coordinator, router, end device (znp_ncp's bitmap)
ROUTER_CAPABLE = 0x02
QUIET_RSSI_DBM = -92                       # what an energy scan hears on an empty channel (plus up to 5 dB)
NETWORK_STATUS_NO_NETWORK, NETWORK_STATUS_JOINED = 0, 2
DEVICE_UPDATE_STANDARD_SECURITY_UNSECURED_JOIN, DEVICE_UPDATE_LEFT = 1, 2
JOIN_DECISION_USE_PRECONFIGURED_KEY, JOIN_DECISION_NO_ACTION = 0, 3
MAC_ROUTER, MAC_RX_ON_WHEN_IDLE = 0x02, 0x08      # MAC capability flags
APS_OPTION_ENABLE_ROUTE_DISCOVERY = 0x0100
HAVE_NETWORK_KEY_BITS = 0x007C        # what EmberZNet reports once formed (global TC key, have TC/network keys)
ZIGBEE_ALLIANCE_KEY = b"ZigBeeAlliance09"
BROADCASTS = range(0xFFF8, 0x10000)
COORDINATOR_NWK = 0x0000
NV_SNAPSHOT_FORMAT = "bridge-emu/ezsp-nv"
# Green Power commands (frame id -> first version with that meaning), answered invalidCommand as a
# build without Green Power does; bellows clears the GP tables at a reset and expects that answer.
GREEN_POWER_FRAME_IDS = {0x00E2: 8, 0x005F: 17}    # gpSinkTableClearAll, gpClearProxyTable

# EmberZNet's configuration defaults for what bellows reads back (everything else: 0).
CONFIG_DEFAULTS = {CONFIG_SECURITY_LEVEL: 5, CONFIG_KEY_TABLE_SIZE: 0, CONFIG_MAX_END_DEVICE_CHILDREN: 6,
                   0x05: 16, 0x07: 16}

# The coordinator's node descriptor as EmberZNet reports it (logical type coordinator, 2.4 GHz, mains powered).
COORDINATOR_NODE_DESCRIPTOR: Mapping[str, int] = {
    "logical_type": 0, "complex_descriptor_available": 0, "user_descriptor_available": 0, "reserved": 0,
    "aps_flags": 0, "frequency_band": 0x08, "mac_capability_flags": 0x8F,
    "manufacturer_code": SILABS_MANUFACTURER_CODE, "maximum_buffer_size": 82, "maximum_incoming_transfer_size": 128,
    "server_mask": 0x2C41, "maximum_outgoing_transfer_size": 128, "descriptor_capability_field": 0,
}

_Handler = Callable[["EzspCoordinator", dict, float], None]


# -- commands bellows sends that bridge_emu.codec.ezsp does not cover, encoded here (from UG100 / the SiSDK headers):
# name -> (frame id, request, response before v14, response from v14)
_STATUS_V8, _STATUS_V14 = Struct("status" / Int8ul), Struct("status" / Int32ul)
_MULTICAST_ENTRY = Struct("multicast_id" / Int16ul, "endpoint" / Int8ul, "network_index" / Int8ul)
LOCAL_COMMANDS: dict[str, tuple[int, Struct, Struct, Struct]] = {
    "tokenFactoryReset": (0x0077, Struct("exclude_outgoing_fc" / Flag, "exclude_boot_counter" / Flag),
                          Struct(), Struct()),
    "clearKeyTable": (0x00B1, Struct(), _STATUS_V8, _STATUS_V14),
    "setExtendedTimeout": (0x007E, Struct("remote_eui64" / Int64ul, "extended_timeout" / Flag),
                           Struct(), _STATUS_V14),
    # v14: the answer is a status only, OK meaning "extended"
    "getExtendedTimeout": (0x007F, Struct("remote_eui64" / Int64ul), Struct("extended_timeout" / Flag),
                           _STATUS_V14),
    "lookupNodeIdByEui64": (0x0060, Struct("eui64" / Int64ul), Struct("node_id" / Int16ul),
                            Struct("status" / Int32ul, "node_id" / Int16ul)),
    "getMulticastTableEntry": (0x0063, Struct("index" / Int8ul),
                               Struct("status" / Int8ul, "value" / _MULTICAST_ENTRY),
                               Struct("status" / Int32ul, "value" / _MULTICAST_ENTRY)),
    "setMulticastTableEntry": (0x0064, Struct("index" / Int8ul, "value" / _MULTICAST_ENTRY), _STATUS_V8, _STATUS_V14),
    # before v14 only (0x005E is getAddressTableInfo from v14, in the codec)
    "getAddressTableRemoteNodeId": (0x005F, Struct("index" / Int8ul), Struct("node_id" / Int16ul), Struct()),
    "getAddressTableRemoteEui64": (0x005E, Struct("index" / Int8ul), Struct("eui64" / Int64ul), Struct()),
}
_LOCAL_BEFORE_V14_ONLY = {"getAddressTableRemoteNodeId", "getAddressTableRemoteEui64"}
_LOCAL_BY_ID = {frame_id: name for name, (frame_id, *_) in LOCAL_COMMANDS.items()}


class EzspCoordinator:
    """The dongle: a ByteMachine on its UART side, a sans-I/O radio on the other."""

    def __init__(self, ieee: int, nv: Mapping[str, Any] | None = None, *, seed: int = 0,
                 version: int = DEFAULT_VERSION, stack_version: tuple[int, int, int, int] = STACK_VERSION,
                 device_types: int = DEVICE_TYPE_CAPABILITIES,
                 startup_rstack_s: float | None = STARTUP_RSTACK_S):
        if not 0 <= ieee < 1 << 64:
            raise ValueError(f"ieee {ieee!r}: want an EUI-64 as an int")
        if not 0 < device_types <= 0x07:
            raise ValueError(f"device_types {device_types!r}: want a bitmap of 1 coordinator, 2 router, 4 end device")
        if startup_rstack_s is not None and startup_rstack_s < 0:
            raise ValueError(f"startup_rstack_s {startup_rstack_s!r}: want seconds >= 0, or None")
        self.device_types = device_types
        self.startup_rstack_s = startup_rstack_s
        self._startup_at: float | None = None     # when the startup RSTACK is due (a host connected)
        self.radio_network: JoinableNetwork | None = None   # what a joining NCP's active scan hears
        if version not in ezsp.TABLE_VERSIONS:
            raise ValueError(f"EZSP version {version}: want one of {ezsp.TABLE_VERSIONS}")
        self.version = version
        self.stack_version = stack_version
        self.rng = random.Random(seed)
        self.ash = AshLink("ncp")
        self.stats = {"frames": 0, "malformed": 0, "invalid_commands": 0, "reboots": 0, "aps_out": 0,
                      "joins_refused": 0, "resets": 0, "joins": 0, "joins_failed": 0, "startup_rstacks": 0}
        self.invalid_frame_ids: Counter[int] = Counter()     # what was answered invalidCommand, by frame id
        self._tokens: dict[str, Any] = {"eui64": ieee, "network": None, "key_table": {}, "children": {}}
        if nv is not None:
            self._load(nv)
        self._network_out: list[ApsOut] = []
        self._outbox: list[bytes] = []      # frames for the host, given to ASH with the time when an input ends
        # the devices that joined, by their NWK address: kept across the NCP's resets (a real
        # coordinator re-learns its neighbours within seconds of a reboot; bellows looks them up
        # with lookupNodeIdByEui64 after every reconnect), cleared by leaving or forming a network
        self._devices: dict[int, int] = {}        # nwk -> ieee
        self._parents: dict[int, int] = {}        # nwk -> the parent it joined through
        self._reboot()

    # -- ByteMachine ---------------------------------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        self.ash.start(now)
        if self.startup_rstack_s is not None:
            self._startup_at = now + self.startup_rstack_s      # the stack starts for the new host

    def connection_lost(self, now: float) -> None:
        self._startup_at = None     # the dongle keeps running; the host's next RST (or connection) reboots it

    def receive_bytes(self, data: bytes, now: float) -> None:
        self.ash.receive_bytes(data, now)
        for event in self.ash.pop_events():
            if isinstance(event, Received):
                self._on_frame(event.data, now)
            elif isinstance(event, (Connected, LinkDown)):
                self._reboot()      # the host's RST resets the NCP
                if isinstance(event, Connected):
                    self._startup_at = None     # its RSTACK is the one this start gives
        self._flush(now)

    def _flush(self, now: float) -> None:
        for frame in self._outbox:
            self.ash.send(frame, now)
        self._outbox.clear()

    def pop_bytes(self) -> bytes:
        return self.ash.pop_bytes()

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.ash.next_deadline(), self._permit_until, self._startup_at) if d is not None]
        return min(deadlines) if deadlines else None

    def timer(self, now: float) -> None:
        if self._startup_at is not None and now >= self._startup_at:
            self._startup_at = None
            self.stats["startup_rstacks"] += 1
            self._restart(RESET_SOFTWARE)
        self.ash.timer(now)
        if self._permit_until is not None and now >= self._permit_until:
            self._permit_until = None
        for event in self.ash.pop_events():
            if isinstance(event, LinkDown):
                self._reboot()

    # -- the radio side ------------------------------------------------------------------------------------------

    def pop_network(self) -> list[ApsOut]:
        out, self._network_out = self._network_out, []
        return out

    @property
    def gaps(self) -> dict[int, int]:
        """Frame id -> times answered invalidCommand, for the commands a stock NCP would
        have answered (all but Green Power's): what a host met that is not emulated."""
        return {k: n for k, n in self.invalid_frame_ids.items()
                if k not in GREEN_POWER_FRAME_IDS or self.version < GREEN_POWER_FRAME_IDS[k]}

    @property
    def permit_joining(self) -> bool:
        return self._permit_until is not None

    @property
    def node_type(self) -> int:
        """The EmberNodeType the tokens hold (COORDINATOR once formed, what joinNetwork asked once joined)."""
        net = self._tokens["network"]
        return ezsp.EmberNodeType.UNKNOWN_DEVICE if net is None else net.get("node_type",
                                                                            ezsp.EmberNodeType.COORDINATOR)

    @property
    def node_id(self) -> int:
        net = self._tokens["network"]
        return 0xFFFE if net is None or not self._up else net.get("node_id", COORDINATOR_NWK)

    @property
    def on_network(self) -> bool:
        """The radio is up: formed or joined, and the stack started (networkInit, formNetwork, joinNetwork)."""
        return self._up

    @property
    def end_device(self) -> bool:
        return self.node_type in (ezsp.EmberNodeType.END_DEVICE, ezsp.EmberNodeType.SLEEPY_END_DEVICE)

    def reset(self, now: float) -> None:
        """The reset pin: a reboot (the tokens stay), then an unasked RSTACK to the host."""
        self.stats["resets"] += 1
        self._startup_at = None
        self._restart(RESET_EXTERNAL)

    def _restart(self, reset_code: int) -> None:
        """A reboot the NCP makes by itself, told to the host with an unasked RSTACK."""
        self._reboot()
        self._outbox.clear()
        self.ash.ncp_reset(reset_code)
        self.ash.pop_events()       # its LinkDown: the reboot above is what it means

    @property
    def ieee(self) -> int:
        return self._tokens["eui64"]

    @property
    def network(self) -> NetworkState | None:
        """The network the tokens hold, or None before formation."""
        net = self._tokens["network"]
        if net is None:
            return None
        return NetworkState(channel=net["radio_channel"], pan_id=net["pan_id"], extended_pan_id=net["extended_pan_id"],
                            network_key=bytes.fromhex(net["network_key"]), key_seq=net["key_seq"],
                            nwk_update_id=net["nwk_update_id"], frame_counter=net["nwk_frame_counter"],
                            nwk=net.get("node_id", COORDINATOR_NWK), channel_mask=net["channels"])

    def network_received(self, src_nwk: int, src_ep: int, dst_ep: int, profile: int, cluster: int, payload: bytes,
                         lqi: int, now: float) -> None:
        """A frame from the network for the host (a joining NCP off the network hears nothing)."""
        if not self._up and self.node_type != ezsp.EmberNodeType.COORDINATOR:
            return
        self._incoming(src_nwk, src_ep, dst_ep, profile, cluster, bytes(payload), lqi, now,
                       message_type=ezsp.EmberIncomingMessageType.UNICAST)
        self._flush(now)

    def device_joined(self, nwk: int, ieee: int, parent_nwk: int, now: float, mac_capabilities: int = 0x8E) -> bool:
        """A device joins through `parent_nwk`. Refused (False) unless permit joining is open."""
        if not self.permit_joining or not self._up:
            self.stats["joins_refused"] += 1
            return False
        self._devices[nwk] = ieee
        self._parents[nwk] = parent_nwk
        self._callback("trustCenterJoinHandler", new_node_id=nwk, new_node_eui64=ieee,
                       status=DEVICE_UPDATE_STANDARD_SECURITY_UNSECURED_JOIN,
                       policy_decision=JOIN_DECISION_USE_PRECONFIGURED_KEY, parent_of_new_node_id=parent_nwk)
        if parent_nwk == COORDINATOR_NWK and not mac_capabilities & MAC_ROUTER:
            # an end device joining the coordinator becomes its child (routers are neighbours, not children)
            node_type = (ezsp.EmberNodeType.END_DEVICE if mac_capabilities & MAC_RX_ON_WHEN_IDLE
                         else ezsp.EmberNodeType.SLEEPY_END_DEVICE)
            children = self._tokens["children"]
            index = next((i for i, (n, _, _) in children.items() if n == nwk), None)
            if index is None:
                index = next(i for i in range(len(children) + 1) if i not in children)
            children[index] = (nwk, ieee, node_type)
            self._callback("childJoinHandler", index=index, joining=True, child_id=nwk, child_eui64=ieee,
                           child_type=node_type)
        annce = zdo.encode("Device_annce", tsn=self.rng.randrange(256), nwk=nwk, ieee=ieee,
                           capability=mac_capabilities)
        self._incoming(nwk, zdo.ZDO_ENDPOINT, zdo.ZDO_ENDPOINT, zdo.ZDO_PROFILE, 0x0013, annce, 0xFF, now,
                       message_type=ezsp.EmberIncomingMessageType.BROADCAST)
        self._flush(now)
        return True

    def device_left(self, nwk: int, ieee: int, now: float) -> None:
        """A device left the network: the trust centre hears of it (and its parent, if
        that is the coordinator, loses a child)."""
        if nwk not in self._known_devices():
            return
        self._devices.pop(nwk, None)
        parent = self._parents.pop(nwk, COORDINATOR_NWK)
        for index, (child, child_ieee, node_type) in list(self._tokens["children"].items()):
            if child == nwk:
                del self._tokens["children"][index]
                self._callback("childJoinHandler", index=index, joining=False, child_id=nwk,
                               child_eui64=child_ieee, child_type=node_type)
        self._callback("trustCenterJoinHandler", new_node_id=nwk, new_node_eui64=ieee, status=DEVICE_UPDATE_LEFT,
                       policy_decision=JOIN_DECISION_NO_ACTION, parent_of_new_node_id=parent)
        self._flush(now)

    # -- tokens --------------------------------------------------------------------------------------------------

    def nv_snapshot(self) -> dict[str, Any]:
        """The tokens as a JSON-able dict (the `nv` argument of a later construction)."""
        net = self._tokens["network"]
        keys = [{"index": index, "eui64": f"{eui64:016x}", "key": key.hex()}
                for index, (eui64, key) in sorted(self._tokens["key_table"].items())]
        children = [{"index": index, "nwk": nwk, "eui64": f"{eui64:016x}", "type": node_type}
                    for index, (nwk, eui64, node_type) in sorted(self._tokens["children"].items())]
        return {"format": NV_SNAPSHOT_FORMAT, "version": 1, "eui64": f"{self._tokens['eui64']:016x}",
                "network": None if net is None else dict(net), "key_table": keys, "children": children}

    def _load(self, nv: Mapping[str, Any]) -> None:
        if nv.get("format") != NV_SNAPSHOT_FORMAT:
            raise ValueError(f"nv: not a {NV_SNAPSHOT_FORMAT} snapshot")
        try:
            self._tokens = {
                "eui64": int(nv["eui64"], 16),
                "network": None if nv["network"] is None else dict(nv["network"]),
                "key_table": {int(k["index"]): (int(k["eui64"], 16), bytes.fromhex(k["key"]))
                              for k in nv.get("key_table", ())},
                "children": {int(c["index"]): (int(c["nwk"]), int(c["eui64"], 16), int(c["type"]))
                             for c in nv.get("children", ())}}
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"nv: a damaged {NV_SNAPSHOT_FORMAT} snapshot ({type(e).__name__}: {e})") from None

    # -- EZSP ----------------------------------------------------------------------------------------------------

    def _reboot(self) -> None:
        """What a reboot forgets: everything but the tokens."""
        self.stats["reboots"] += 1
        self._config: dict[int, int] = dict(CONFIG_DEFAULTS)
        self._values: dict[int, bytes] = {}
        self._policies: dict[int, int] = {}
        self._endpoints: dict[int, dict] = {}
        self._up = False
        self._permit_until: float | None = None
        self._extended_timeouts: dict[int, bool] = {}
        self._multicast: dict[int, dict] = {}       # index -> entry (group membership; multicasts are not routed)
        self._pending_security: dict | None = None
        self._transient_keys: dict[int, bytes] = {}     # EUI64 (all ones: any joiner) -> key
        self._last_sequence = 0
        self._aps_sequence = self.rng.randrange(256)

    def _on_frame(self, data: bytes, now: float) -> None:
        self.stats["frames"] += 1
        try:
            frame = EzspFrame.decode(data, self.version)
        except EzspError:
            self.stats["malformed"] += 1
            return
        if frame.is_response:
            self.stats["malformed"] += 1     # a host never sends responses
            return
        self._last_sequence = frame.sequence
        legacy = frame.frame_id == ezsp.VERSION_FRAME_ID and len(data) > 2 and data[2] == ezsp.VERSION_FRAME_ID
        self._sequence, self._legacy = frame.sequence, legacy
        local = _LOCAL_BY_ID.get(frame.frame_id)
        if local is not None and not (local in _LOCAL_BEFORE_V14_ONLY and self.version >= 14):
            self._on_local_command(local, frame, now)
            return
        try:
            cmd = ezsp.by_id(frame.frame_id, self.version)
        except EzspError:
            self._invalid_command(frame)
            return
        handler = HANDLERS.get(cmd.name)
        if handler is None or cmd.callback:
            self._invalid_command(frame)
            return
        try:
            fields = ezsp.decode_parameters(cmd.name, self.version, Direction.REQUEST, frame.parameters, strict=False)
        except EzspError:
            self.stats["malformed"] += 1
            self._invalid_command(frame, wrong_length=True)
            return
        handler(self, fields, now)

    def _on_local_command(self, name: str, frame: EzspFrame, now: float) -> None:
        frame_id, request, response_v8, response_v14 = LOCAL_COMMANDS[name]
        try:
            fields = dict(request.parse(frame.parameters))
        except Exception:   # noqa: BLE001 - construct raises several kinds; a bad frame is only counted
            self.stats["malformed"] += 1
            self._invalid_command(frame, wrong_length=True)
            return
        answer = LOCAL_HANDLERS[name](self, fields, now)
        response = response_v14 if self.version >= 14 else response_v8
        self._outbox.append(EzspFrame(self._sequence, ezsp.FC_RESPONSE, frame_id,
                                      response.build(answer)).encode(self.version))

    def _invalid_command(self, frame: EzspFrame, *, wrong_length: bool = False) -> None:
        self.stats["invalid_commands"] += 1
        self.invalid_frame_ids[frame.frame_id] += 1
        if self.version >= 14:
            status = SL_INVALID_PARAMETER if wrong_length else SL_NOT_SUPPORTED
        else:
            status = 0x32 if wrong_length else EZSP_ERROR_INVALID_FRAME_ID   # ERROR_WRONG_LENGTH
        self._outbox.append(ezsp.encode_response("invalidCommand", self.version, frame.sequence, status=status))

    def _reply(self, name: str, **fields: Any) -> None:
        self._outbox.append(ezsp.encode_response(name, self.version, self._sequence, legacy_header=self._legacy,
                                                 **fields))

    def _callback(self, name: str, **fields: Any) -> None:
        self._outbox.append(ezsp.encode_response(name, self.version, self._last_sequence, **fields))

    def _status(self, ember: int, sl: int) -> int:
        return sl if self.version >= 14 else ember

    def _ok_or(self, ok: bool, ember: int, sl: int) -> int:
        return SUCCESS if ok else self._status(ember, sl)

    def _incoming(self, src_nwk: int, src_ep: int, dst_ep: int, profile: int, cluster: int, payload: bytes,
                  lqi: int, now: float, *, message_type: int) -> None:
        aps = {"profile_id": profile, "cluster_id": cluster, "source_endpoint": src_ep,
               "destination_endpoint": dst_ep, "options": APS_OPTION_ENABLE_ROUTE_DISCOVERY, "group_id": 0,
               "sequence": self._next_aps_sequence()}
        rssi = -100 + lqi * 70 // 255            # a plausible RSSI for the link quality
        if self.version >= 14:
            sender_eui64 = self._eui64_of(src_nwk) or 0
            self._callback("incomingMessageHandler", message_type=message_type, aps_frame=aps, sender=src_nwk,
                           sender_eui64=sender_eui64, binding_index=0xFF, address_index=0xFF, lqi=lqi, rssi=rssi,
                           timestamp=int(now * 1000) & 0xFFFFFFFF, message=payload)
        else:
            self._callback("incomingMessageHandler", message_type=message_type, aps_frame=aps, lqi=lqi, rssi=rssi,
                           sender=src_nwk, binding_index=0xFF, address_index=0xFF, message=payload)

    def _known_devices(self) -> dict[int, int]:
        """nwk -> EUI64 of every device the NCP knows: joined since boot, or in the child table."""
        return {**{nwk: ieee for nwk, ieee, _ in self._tokens["children"].values()}, **self._devices}

    def _eui64_of(self, nwk: int) -> int | None:
        return self.ieee if nwk == COORDINATOR_NWK else self._known_devices().get(nwk)

    def _next_aps_sequence(self) -> int:
        self._aps_sequence = (self._aps_sequence + 1) & 0xFF
        return self._aps_sequence

    # -- handlers: one per command -------------------------------------------------------------------------------

    def _token_factory_reset(self, fields: dict, now: float) -> dict:
        self._tokens["network"] = None        # the stack tokens go; the EUI64 is a manufacturing token
        self._tokens["key_table"] = {}
        self._tokens["children"] = {}
        return {}

    def _clear_key_table(self, fields: dict, now: float) -> dict:
        self._tokens["key_table"] = {}
        return {"status": SUCCESS}

    def _set_extended_timeout(self, fields: dict, now: float) -> dict:
        self._extended_timeouts[fields["remote_eui64"]] = fields["extended_timeout"]
        return {"status": SUCCESS}

    def _get_extended_timeout(self, fields: dict, now: float) -> dict:
        extended = self._extended_timeouts.get(fields["remote_eui64"], False)
        return {"status": SUCCESS if extended else 0x0001, "extended_timeout": extended}   # SL_STATUS_FAIL

    def _lookup_node_id(self, fields: dict, now: float) -> dict:
        found = [nwk for nwk, ieee in self._known_devices().items() if ieee == fields["eui64"]]
        if fields["eui64"] == self.ieee:
            found = [COORDINATOR_NWK]
        return {"status": SUCCESS if found else SL_NOT_FOUND, "node_id": found[0] if found else 0xFFFF}

    def _get_multicast_entry(self, fields: dict, now: float) -> dict:
        entry = self._multicast.get(fields["index"], {"multicast_id": 0, "endpoint": 0, "network_index": 0})
        return {"status": SUCCESS, "value": entry}

    def _set_multicast_entry(self, fields: dict, now: float) -> dict:
        self._multicast[fields["index"]] = dict(fields["value"])
        return {"status": SUCCESS}

    def _address_table_node_id(self, fields: dict, now: float) -> dict:
        return {"node_id": 0xFFFF}      # EMBER_TABLE_ENTRY_UNUSED_NODE_ID: the address table is empty

    def _address_table_eui64(self, fields: dict, now: float) -> dict:
        return {"eui64": 0}

    def _version(self, fields: dict, now: float) -> None:
        major, minor, patch, special = self.stack_version
        self._reply("version", protocol_version=self.version, stack_type=STACK_TYPE_MESH,
                    stack_version=major << 12 | minor << 8 | patch << 4 | special)

    def _get_value(self, fields: dict, now: float) -> None:
        value_id = fields["value_id"]
        if value_id == VALUE_VERSION_INFO:
            major, minor, patch, special = self.stack_version
            value = Int16ul.build(STACK_BUILD) + bytes([major, minor, patch, special, 170])   # type: GA release
        elif value_id in self._values:
            value = self._values[value_id]
        else:
            self._reply("getValue", status=self._status(EZSP_ERROR_INVALID_ID, SL_INVALID_PARAMETER), value=b"")
            return
        self._reply("getValue", status=SUCCESS, value=value)

    def _set_value(self, fields: dict, now: float) -> None:
        value_id, value = fields["value_id"], fields["value"]
        net = self._tokens["network"]
        if value_id in (VALUE_NWK_FRAME_COUNTER, VALUE_APS_FRAME_COUNTER) and net is not None and len(value) == 4:
            key = "nwk_frame_counter" if value_id == VALUE_NWK_FRAME_COUNTER else "aps_frame_counter"
            net[key] = int.from_bytes(value, "little")
        self._values[value_id] = bytes(value)
        self._reply("setValue", status=SUCCESS)

    def _get_configuration_value(self, fields: dict, now: float) -> None:
        self._reply("getConfigurationValue", status=SUCCESS, value=self._config.get(fields["config_id"], 0))

    def _set_configuration_value(self, fields: dict, now: float) -> None:
        # EmberZNet takes configuration only before the stack is up (bellows writes it right after reset)
        if self._up:
            self._reply("setConfigurationValue", status=self._status(0x38, SL_INVALID_STATE))  # ERROR_INVALID_CALL
            return
        self._config[fields["config_id"]] = fields["value"]
        self._reply("setConfigurationValue", status=SUCCESS)

    def _set_policy(self, fields: dict, now: float) -> None:
        self._policies[fields["policy_id"]] = fields["decision_id"]
        self._reply("setPolicy", status=SUCCESS)

    def _get_mfg_token(self, fields: dict, now: float) -> None:
        token_id = fields["token_id"]
        length = MFG_TOKEN_LENGTHS.get(token_id, 0)
        known = {0x01: MFG_STRING, 0x02: MFG_BOARD_NAME, 0x03: Int16ul.build(SILABS_MANUFACTURER_CODE)}
        value = known.get(token_id, b"")
        self._reply("getMfgToken", token_data=(value + b"\xff" * length)[:length])

    def _get_token_data(self, fields: dict, now: float) -> None:
        self._reply("getTokenData", status=self._status(EMBER_NOT_FOUND, SL_NOT_FOUND))

    def _custom_frame(self, fields: dict, now: float) -> None:
        self._reply("customFrame", status=self._status(EMBER_LIBRARY_NOT_PRESENT, SL_NOT_SUPPORTED), reply=b"")

    def _add_endpoint(self, fields: dict, now: float) -> None:
        self._endpoints[fields["endpoint"]] = fields
        self._reply("addEndpoint", status=SUCCESS)

    def _network_init(self, fields: dict, now: float) -> None:
        if self._tokens["network"] is None:
            self._reply("networkInit", status=self._status(EMBER_NOT_JOINED, SL_NOT_JOINED))
            return
        self._reply("networkInit", status=SUCCESS)
        self._network_up()

    def _network_up(self) -> None:
        self._up = True
        self._callback("stackStatusHandler", status=self._status(EMBER_NETWORK_UP, SL_NETWORK_UP))

    def _network_state(self, fields: dict, now: float) -> None:
        self._reply("networkState", status=NETWORK_STATUS_JOINED if self._up else NETWORK_STATUS_NO_NETWORK)

    def _get_network_parameters(self, fields: dict, now: float) -> None:
        net = self._tokens["network"]
        if not self._up or net is None:
            params = {"extended_pan_id": 0, "pan_id": 0xFFFF, "radio_tx_power": 0, "radio_channel": 0,
                      "join_method": 0, "nwk_manager_id": 0, "nwk_update_id": 0, "channels": 0}
            self._reply("getNetworkParameters", status=self._status(EMBER_NOT_JOINED, SL_NOT_JOINED),
                        node_type=ezsp.EmberNodeType.UNKNOWN_DEVICE, parameters=params)
            return
        params = {k: net[k] for k in ("extended_pan_id", "pan_id", "radio_tx_power", "radio_channel", "join_method",
                                      "nwk_manager_id", "nwk_update_id", "channels")}
        self._reply("getNetworkParameters", status=SUCCESS, node_type=self.node_type, parameters=params)

    def _get_eui64(self, fields: dict, now: float) -> None:
        self._reply("getEui64", eui64=self.ieee)

    def _get_node_id(self, fields: dict, now: float) -> None:
        self._reply("getNodeId", node_id=self.node_id)

    def _set_initial_security_state(self, fields: dict, now: float) -> None:
        self._pending_security = fields["state"]
        self._reply("setInitialSecurityState", status=SUCCESS)

    def _form_network(self, fields: dict, now: float) -> None:
        if self._up:
            self._reply("formNetwork", status=self._status(EMBER_INVALID_CALL, SL_INVALID_STATE))
            return
        security = self._pending_security or {}
        params = fields["parameters"]
        network_key = security.get("network_key") or self.rng.randbytes(16)
        self._tokens["network"] = {
            **{k: params[k] for k in ("extended_pan_id", "pan_id", "radio_tx_power", "radio_channel",
                                      "join_method", "nwk_update_id", "channels")},
            "nwk_manager_id": COORDINATOR_NWK,
            "node_type": ezsp.EmberNodeType.COORDINATOR, "node_id": COORDINATOR_NWK,
            "network_key": bytes(network_key).hex(),
            "key_seq": security.get("network_key_sequence_number", 0),
            "tc_link_key": bytes(security.get("preconfigured_key") or ZIGBEE_ALLIANCE_KEY).hex(),
            "security_bitmask": security.get("bitmask", 0),
            # a restore sets the counters (setValue) before it forms, so they carry over
            "nwk_frame_counter": int.from_bytes(self._values.get(VALUE_NWK_FRAME_COUNTER, bytes(4)), "little"),
            "aps_frame_counter": int.from_bytes(self._values.get(VALUE_APS_FRAME_COUNTER, bytes(4)), "little"),
        }
        self._tokens["children"] = {}          # a new network has no children yet
        self._devices.clear()
        self._parents.clear()
        self._reply("formNetwork", status=SUCCESS)
        self._network_up()

    def _library_status(self, fields: dict, now: float) -> None:
        if fields["library_id"] != ezsp.ZIGBEE_PRO_LIBRARY_ID:
            self._reply("getLibraryStatus", status=0x00)           # EMBER_LIBRARY_IS_STUB
            return
        router = ezsp.LIBRARY_HAVE_ROUTER_CAPABILITY if self.device_types & ROUTER_CAPABLE else 0
        self._reply("getLibraryStatus", status=ezsp.LIBRARY_PRESENT | router)

    def _join_network(self, fields: dict, now: float) -> None:
        node_type = fields["node_type"]
        joiners = (ezsp.EmberNodeType.ROUTER, ezsp.EmberNodeType.END_DEVICE, ezsp.EmberNodeType.SLEEPY_END_DEVICE)
        if self._up or node_type not in joiners or (
                node_type == ezsp.EmberNodeType.ROUTER and not self.device_types & ROUTER_CAPABLE):
            self._reply("joinNetwork", status=self._status(EMBER_INVALID_CALL, SL_INVALID_STATE))
            return
        self._reply("joinNetwork", status=SUCCESS)
        params, target = fields["parameters"], self.radio_network
        if target is None or (params["radio_channel"], params["pan_id"]) != (target.channel, target.pan_id) or \
                params["extended_pan_id"] not in (0, target.extended_pan_id):
            self.stats["joins_failed"] += 1
            self._callback("stackStatusHandler", status=self._status(ezsp.EMBER_JOIN_FAILED, SL_NOT_JOINED))
            return
        security = self._pending_security or {}
        self._tokens["network"] = {
            "extended_pan_id": target.extended_pan_id, "pan_id": target.pan_id,
            "radio_tx_power": params["radio_tx_power"], "radio_channel": target.channel, "join_method": 0,
            "nwk_update_id": 0, "channels": 1 << target.channel, "nwk_manager_id": COORDINATOR_NWK,
            "node_type": node_type, "node_id": target.nwk, "parent": target.parent_nwk,
            "network_key": bytes(target.network_key).hex(), "key_seq": 0,
            "tc_link_key": bytes(security.get("preconfigured_key") or ZIGBEE_ALLIANCE_KEY).hex(),
            "security_bitmask": security.get("bitmask", 0), "nwk_frame_counter": 0, "aps_frame_counter": 0}
        self._tokens["children"] = {}
        self.stats["joins"] += 1
        self._network_up()

    def _leave_network(self, fields: dict, now: float) -> None:
        if not self._up:
            self._reply("leaveNetwork", status=self._status(EMBER_INVALID_CALL, SL_INVALID_STATE))
            return
        self._reply("leaveNetwork", status=SUCCESS)
        self._tokens["network"] = None
        self._up = False
        self._permit_until = None
        self._devices.clear()
        self._parents.clear()
        self._tokens["children"] = {}
        self._callback("stackStatusHandler", status=self._status(EMBER_NETWORK_DOWN, SL_NETWORK_DOWN))

    def _permit_joining(self, fields: dict, now: float) -> None:
        duration = fields["duration"]
        if not self._up:
            self._reply("permitJoining", status=self._status(EMBER_INVALID_CALL, SL_INVALID_STATE))
            return
        # 0xFF: open until closed (a deadline that never comes)
        self._permit_until = None if duration == 0 else now + (1e9 if duration == 0xFF else duration)
        self._reply("permitJoining", status=SUCCESS)

    def _get_current_security_state(self, fields: dict, now: float) -> None:
        net = self._tokens["network"]
        if not self._up or net is None:
            self._reply("getCurrentSecurityState", status=self._status(EMBER_NOT_JOINED, SL_NOT_JOINED),
                        state={"bitmask": 0, "trust_center_long_address": 0})
            return
        self._reply("getCurrentSecurityState", status=SUCCESS,
                    state={"bitmask": HAVE_NETWORK_KEY_BITS, "trust_center_long_address": self.ieee})

    def _key_material(self, network_key: bool) -> tuple[bytes, int, int]:
        """(key, sequence number, outgoing frame counter) of the network or TC link key; zeros before formation."""
        net = self._tokens["network"]
        if net is None:
            return bytes(16), 0, 0
        if network_key:
            return bytes.fromhex(net["network_key"]), net["key_seq"], net["nwk_frame_counter"]
        return bytes.fromhex(net["tc_link_key"]), 0, net["aps_frame_counter"]

    def _get_key(self, fields: dict, now: float) -> None:
        network_key = fields["key_type"] == EMBER_KEY_CURRENT_NETWORK
        key, seq, counter = self._key_material(network_key)
        ok = self._tokens["network"] is not None
        self._reply("getKey", status=SUCCESS if ok else EMBER_NOT_FOUND, key_struct={
            "bitmask": 0x001B if network_key else 0x0013, "type": fields["key_type"], "key": key,
            "outgoing_frame_counter": counter, "incoming_frame_counter": 0, "sequence_number": seq,
            "partner_eui64": 0 if network_key else self.ieee})

    def _export_key(self, fields: dict, now: float) -> None:
        context = fields["context"]
        network_key = context["core_key_type"] == SEC_MAN_KEY_NETWORK
        known = context["core_key_type"] in (SEC_MAN_KEY_NETWORK, SEC_MAN_KEY_TC_LINK)
        key = self._key_material(network_key)[0] if known else bytes(16)
        status = SUCCESS if known else SL_NOT_FOUND
        if self.version >= 14:
            self._reply("exportKey", status=status, key=key, context=context)
        else:
            self._reply("exportKey", key=key, status=status)

    def _get_network_key_info(self, fields: dict, now: float) -> None:
        net = self._tokens["network"]
        _, seq, counter = self._key_material(True)
        self._reply("getNetworkKeyInfo", status=SUCCESS, network_key_info={
            "network_key_set": net is not None, "alternate_network_key_set": False,
            "network_key_sequence_number": seq, "alt_network_key_sequence_number": 0,
            "network_key_frame_counter": counter})

    def _export_link_key_by_index(self, fields: dict, now: float) -> None:
        index = fields["index"]
        entry = self._tokens["key_table"].get(index)
        eui64, key = entry if entry is not None else (0, bytes(16))
        status = SUCCESS if entry is not None else SL_NOT_FOUND
        metadata = {"bitmask": KEY_HAS_PARTNER_EUI64 if entry else 0, "outgoing_frame_counter": 0,
                    "incoming_frame_counter": 0, "ttl_in_seconds": 0}
        if self.version >= 14:
            context = {"core_key_type": SEC_MAN_KEY_APP_LINK if entry else 0, "key_index": index, "derived_type": 0,
                       "eui64": eui64, "multi_network_index": 0, "flags": SEC_MAN_FLAG_KEY_INDEX_IS_VALID,
                       "psa_key_alg_permission": 0}
            self._reply("exportLinkKeyByIndex", status=status, context=context, plaintext_key=key,
                        key_data=metadata)
        else:
            self._reply("exportLinkKeyByIndex", eui64=eui64, plaintext_key=key, key_data=metadata, status=status)

    def _key_table_index_ok(self, index: int) -> bool:
        return 0 <= index < self._config.get(CONFIG_KEY_TABLE_SIZE, 0)

    def _import_link_key(self, fields: dict, now: float) -> None:
        index = fields["index"]
        if not self._key_table_index_ok(index):
            self._reply("importLinkKey", status=SL_INVALID_INDEX)
            return
        self._tokens["key_table"][index] = (fields["address"], bytes(fields["plaintext_key"]))
        self._reply("importLinkKey", status=SUCCESS)

    def _get_key_table_entry(self, fields: dict, now: float) -> None:
        index = fields["index"]
        entry = self._tokens["key_table"].get(index)
        eui64, key = entry if entry is not None else (0, bytes(16))
        if not self._key_table_index_ok(index):
            status = EMBER_INDEX_OUT_OF_RANGE
        else:
            status = SUCCESS if entry is not None else EMBER_TABLE_ENTRY_ERASED
        self._reply("getKeyTableEntry", status=status, key_struct={
            "bitmask": KEY_HAS_PARTNER_EUI64 | KEY_HAS_FRAME_COUNTERS if entry else 0,
            "type": EMBER_KEY_APPLICATION_LINK if entry else 0, "key": key, "outgoing_frame_counter": 0,
            "incoming_frame_counter": 0, "sequence_number": 0, "partner_eui64": eui64})

    def _add_or_update_key_table_entry(self, fields: dict, now: float) -> None:
        table, eui64 = self._tokens["key_table"], fields["address"]
        size = self._config.get(CONFIG_KEY_TABLE_SIZE, 0)
        index = next((i for i, (e, _) in table.items() if e == eui64), None)
        if index is None:
            index = next((i for i in range(size) if i not in table), None)
        if index is None:
            self._reply("addOrUpdateKeyTableEntry", status=EMBER_TABLE_FULL)
            return
        table[index] = (eui64, bytes(fields["key_data"]))
        self._reply("addOrUpdateKeyTableEntry", status=SUCCESS)

    def _find_key_table_entry(self, fields: dict, now: float) -> None:
        found = [index for index, (eui64, _) in sorted(self._tokens["key_table"].items())
                 if eui64 == fields["address"]]
        # only link keys are kept (no master keys: there is no CBKE)
        self._reply("findKeyTableEntry", index=found[0] if found and fields["link_key"] else NO_KEY_TABLE_INDEX)

    def _erase_key_table_entry(self, fields: dict, now: float) -> None:
        index = fields["index"]
        if not self._key_table_index_ok(index):
            self._reply("eraseKeyTableEntry", status=self._status(EMBER_INDEX_OUT_OF_RANGE, SL_INVALID_INDEX))
            return
        self._tokens["key_table"].pop(index, None)
        self._reply("eraseKeyTableEntry", status=SUCCESS)

    def _import_transient_key(self, fields: dict, now: float) -> None:
        self._transient_keys[fields["eui64"]] = bytes(fields["plaintext_key"])
        self._reply("importTransientKey", status=SUCCESS)

    def _add_transient_link_key(self, fields: dict, now: float) -> None:
        self._transient_keys[fields["partner"]] = bytes(fields["transient_key"])
        self._reply("addTransientLinkKey", status=SUCCESS)

    def _clear_transient_link_keys(self, fields: dict, now: float) -> None:
        self._transient_keys.clear()
        self._reply("clearTransientLinkKeys")

    def _start_scan(self, fields: dict, now: float) -> None:
        """Scans end at once: an energy scan reports a quiet channel for each one
        asked (the premises' network is the only one, and the NCP does not hear
        itself); an active scan hears no beacons."""
        scan_type = fields["scan_type"]
        if scan_type not in (SCAN_ENERGY, SCAN_ACTIVE):
            self._reply("startScan", status=self._status(EMBER_BAD_ARGUMENT, SL_INVALID_PARAMETER))
            return
        self._reply("startScan", status=SUCCESS)
        if scan_type == SCAN_ENERGY:
            for channel in range(11, 27):
                if fields["channel_mask"] >> channel & 1:
                    self._callback("energyScanResultHandler", channel=channel,
                                   max_rssi_value=QUIET_RSSI_DBM + self.rng.randrange(6))
        elif self.radio_network is not None and fields["channel_mask"] >> self.radio_network.channel & 1:
            target = self.radio_network            # a joining NCP hears the network it stands in
            self._callback("networkFoundHandler", network_found={
                "channel": target.channel, "pan_id": target.pan_id, "extended_pan_id": target.extended_pan_id,
                "allowing_join": True, "stack_profile": ezsp.STACK_PROFILE_ZIGBEE_PRO, "nwk_update_id": 0},
                last_hop_lqi=255, last_hop_rssi=-40)
        self._callback("scanCompleteHandler", channel=0, status=SUCCESS)

    def _stop_scan(self, fields: dict, now: float) -> None:
        self._reply("stopScan", status=SUCCESS)      # scans end as they start: nothing runs

    def _set_concentrator(self, fields: dict, now: float) -> None:
        self._reply("setConcentrator", status=SUCCESS)

    def _set_source_route_discovery_mode(self, fields: dict, now: float) -> None:
        self._reply("setSourceRouteDiscoveryMode", remaining_time=0 if fields["mode"] == 0 else 10_000)

    def _set_manufacturer_code(self, fields: dict, now: float) -> None:
        if self.version >= 14:
            self._reply("setManufacturerCode", status=SUCCESS)
        else:
            self._reply("setManufacturerCode")

    def _nop(self, fields: dict, now: float) -> None:
        self._reply("nop")

    def _poll_callbacks(self, fields: dict, now: float) -> None:
        self._reply("noCallbacks")      # callbacks go out asynchronously as they happen

    def _read_counters(self, fields: dict, now: float) -> None:
        self._reply("readCounters", values=[0] * 41)    # EMBER_COUNTER_TYPE_COUNT in EmberZNet 7.x

    def _lookup_eui64(self, fields: dict, now: float) -> None:
        node = fields["node_id"]
        eui64 = self._eui64_of(node)
        self._reply("lookupEui64ByNodeId", status=SUCCESS if eui64 is not None else
                    self._status(0x01, SL_NOT_FOUND), eui64=eui64 or 0)   # EMBER_ERR_FATAL

    def _get_child_data(self, fields: dict, now: float) -> None:
        entry = self._tokens["children"].get(fields["index"])
        nwk, ieee, node_type = entry if entry is not None else (0, 0, 0)
        child = {"eui64": ieee, "type": node_type, "id": nwk, "phy": 0, "power": 0, "timeout": 0}
        if self.version >= 10:
            child["timeout_remaining"] = 0
        # an empty slot answers NOT_JOINED
        self._reply("getChildData", status=SUCCESS if entry else self._status(EMBER_NOT_JOINED, SL_NOT_JOINED),
                    child_data=child)

    def _set_child_data(self, fields: dict, now: float) -> None:
        """A restore writes the child table back (bellows then reboots the NCP)."""
        index, child = fields["index"], fields["child_data"]
        if index >= self._config.get(CONFIG_MAX_END_DEVICE_CHILDREN, 0):
            self._reply("setChildData", status=self._status(EMBER_INDEX_OUT_OF_RANGE, SL_INVALID_INDEX))
            return
        self._tokens["children"][index] = (child["id"], child["eui64"], child["type"])
        self._reply("setChildData", status=SUCCESS)

    def _get_address_table_info(self, fields: dict, now: float) -> None:
        self._reply("getAddressTableInfo", status=SL_NOT_FOUND, nwk=0xFFFF, eui64=0)

    def _send_unicast(self, fields: dict, now: float) -> None:
        self._send(fields, fields["destination"], radius=0, message_type=fields["message_type"], now=now)

    def _send_broadcast(self, fields: dict, now: float) -> None:
        self._send(fields, fields["destination"], radius=fields["radius"],
                   message_type=ezsp.EmberOutgoingMessageType.BROADCAST, now=now)

    def _send(self, fields: dict, destination: int, *, radius: int, message_type: int, now: float) -> None:
        name = "sendBroadcast" if message_type == ezsp.EmberOutgoingMessageType.BROADCAST else "sendUnicast"
        if not self._up:
            self._reply(name, status=self._status(EMBER_NETWORK_DOWN, SL_NETWORK_DOWN), aps_sequence=0)
            return
        aps = dict(fields["aps_frame"])
        aps["sequence"] = self._next_aps_sequence()
        payload = bytes(fields["message"])
        self._reply(name, status=SUCCESS, aps_sequence=aps["sequence"])
        sent = {"message_type": message_type, "destination": destination, "aps_frame": aps,
                "message_tag": fields["message_tag"], "status": SUCCESS, "message": payload}
        self._callback("messageSentHandler", **sent)
        if destination == self.node_id and aps["profile_id"] == zdo.ZDO_PROFILE:
            self._answer_own_zdo(aps["cluster_id"], payload, now)
            return
        self.stats["aps_out"] += 1
        self._network_out.append(ApsOut(
            dst_nwk=destination, dst_ep=aps["destination_endpoint"], src_ep=aps["source_endpoint"],
            profile=aps["profile_id"], cluster=aps["cluster_id"], payload=payload,
            tsn=payload[0] if payload else 0, radius=radius, ack=bool(aps["options"] & 0x0040)))

    def _answer_own_zdo(self, cluster: int, data: bytes, now: float) -> None:
        """A ZDO request for the coordinator itself, answered as EmberZNet's ZDO does."""
        try:
            request = zdo.decode(cluster, data)
        except zdo.ZdoError:
            return
        answer: dict[str, Any] | None = None
        if request.name == "Node_Desc_req":
            answer = {"status": SUCCESS, "nwk_addr_of_interest": COORDINATOR_NWK,
                      "node_descriptor": COORDINATOR_NODE_DESCRIPTOR}
        elif request.name == "Active_EP_req":
            answer = {"status": SUCCESS, "nwk_addr_of_interest": COORDINATOR_NWK,
                      "active_ep_list": sorted(self._endpoints)}
        elif request.name == "Simple_Desc_req":
            endpoint = self._endpoints.get(request.fields.endpoint)
            if endpoint is None:
                answer = {"status": 0x83, "nwk_addr_of_interest": COORDINATOR_NWK}    # ZDP_NOT_ACTIVE
            else:
                answer = {"status": SUCCESS, "nwk_addr_of_interest": COORDINATOR_NWK, "simple_descriptor": {
                    "endpoint": endpoint["endpoint"], "profile": endpoint["profile_id"],
                    "device_type": endpoint["device_id"], "device_version": endpoint["device_version"],
                    "input_clusters": list(endpoint["input_clusters"]),
                    "output_clusters": list(endpoint["output_clusters"])}}
        elif request.name in ("NWK_addr_req", "IEEE_addr_req"):
            answer = {"status": SUCCESS, "ieee": self.ieee, "nwk": COORDINATOR_NWK}
        if answer is not None:
            response = zdo.encode(cluster | zdo.RESPONSE, tsn=request.tsn, **answer)
            self._incoming(COORDINATOR_NWK, zdo.ZDO_ENDPOINT, zdo.ZDO_ENDPOINT, zdo.ZDO_PROFILE,
                           cluster | zdo.RESPONSE, response, 0xFF, now,
                           message_type=ezsp.EmberIncomingMessageType.UNICAST)


HANDLERS: dict[str, _Handler] = {
    "version": EzspCoordinator._version,
    "nop": EzspCoordinator._nop,
    "callback": EzspCoordinator._poll_callbacks,
    "getValue": EzspCoordinator._get_value,
    "setValue": EzspCoordinator._set_value,
    "getConfigurationValue": EzspCoordinator._get_configuration_value,
    "setConfigurationValue": EzspCoordinator._set_configuration_value,
    "setPolicy": EzspCoordinator._set_policy,
    "getMfgToken": EzspCoordinator._get_mfg_token,
    "getTokenData": EzspCoordinator._get_token_data,
    "customFrame": EzspCoordinator._custom_frame,
    "addEndpoint": EzspCoordinator._add_endpoint,
    "networkInit": EzspCoordinator._network_init,
    "networkState": EzspCoordinator._network_state,
    "getNetworkParameters": EzspCoordinator._get_network_parameters,
    "getEui64": EzspCoordinator._get_eui64,
    "getNodeId": EzspCoordinator._get_node_id,
    "setInitialSecurityState": EzspCoordinator._set_initial_security_state,
    "formNetwork": EzspCoordinator._form_network,
    "joinNetwork": EzspCoordinator._join_network,
    "getLibraryStatus": EzspCoordinator._library_status,
    "leaveNetwork": EzspCoordinator._leave_network,
    "permitJoining": EzspCoordinator._permit_joining,
    "getCurrentSecurityState": EzspCoordinator._get_current_security_state,
    "getKey": EzspCoordinator._get_key,
    "exportKey": EzspCoordinator._export_key,
    "getNetworkKeyInfo": EzspCoordinator._get_network_key_info,
    "exportLinkKeyByIndex": EzspCoordinator._export_link_key_by_index,
    "setConcentrator": EzspCoordinator._set_concentrator,
    "setSourceRouteDiscoveryMode": EzspCoordinator._set_source_route_discovery_mode,
    "setManufacturerCode": EzspCoordinator._set_manufacturer_code,
    "readCounters": EzspCoordinator._read_counters,
    "lookupEui64ByNodeId": EzspCoordinator._lookup_eui64,
    "getChildData": EzspCoordinator._get_child_data,
    "setChildData": EzspCoordinator._set_child_data,
    "getAddressTableInfo": EzspCoordinator._get_address_table_info,
    "sendUnicast": EzspCoordinator._send_unicast,
    "sendBroadcast": EzspCoordinator._send_broadcast,
    "importLinkKey": EzspCoordinator._import_link_key,
    "getKeyTableEntry": EzspCoordinator._get_key_table_entry,
    "addOrUpdateKeyTableEntry": EzspCoordinator._add_or_update_key_table_entry,
    "findKeyTableEntry": EzspCoordinator._find_key_table_entry,
    "eraseKeyTableEntry": EzspCoordinator._erase_key_table_entry,
    "importTransientKey": EzspCoordinator._import_transient_key,
    "addTransientLinkKey": EzspCoordinator._add_transient_link_key,
    "clearTransientLinkKeys": EzspCoordinator._clear_transient_link_keys,
    "startScan": EzspCoordinator._start_scan,
    "stopScan": EzspCoordinator._stop_scan,
}

LOCAL_HANDLERS: dict[str, Callable[[EzspCoordinator, dict, float], dict]] = {
    "tokenFactoryReset": EzspCoordinator._token_factory_reset,
    "clearKeyTable": EzspCoordinator._clear_key_table,
    "setExtendedTimeout": EzspCoordinator._set_extended_timeout,
    "getExtendedTimeout": EzspCoordinator._get_extended_timeout,
    "lookupNodeIdByEui64": EzspCoordinator._lookup_node_id,
    "getMulticastTableEntry": EzspCoordinator._get_multicast_entry,
    "setMulticastTableEntry": EzspCoordinator._set_multicast_entry,
    "getAddressTableRemoteNodeId": EzspCoordinator._address_table_node_id,
    "getAddressTableRemoteEui64": EzspCoordinator._address_table_eui64,
}
