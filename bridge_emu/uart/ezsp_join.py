"""The host side of a Silicon Labs EZSP stick (EmberZNet NCP) that joins a network as a
router or a (sleepy) end device, as a sans-I/O machine: ASH bytes (bridge_emu.uart.
ash_link, the host end, carrying bridge_emu.codec.ezsp frames) and time in; bytes,
typed events and a deadline out. A ByteMachine (net.serial_link) for a StreamDriver,
like znp_join, and it gives the same events (stick_join's Joined, Received, Down,
Refused), so dongle.attach drives either stick the same way.

What it does after the link comes up, and again after every reset of the NCP (an
EmberZNet NCP forgets its endpoints, configuration and running network at each one):

    state          asks (one EZSP command at a time, each awaiting its response)  then
    -------------  -------------------------------------------------------------  -------------------
    LINK_RESET     ASH: CANCEL, RST; waits for RSTACK                              VERSIONING
    VERSIONING     `version` (legacy header) with the version wanted; if the      CHECKING, or REFUSED
                   NCP speaks another the codec covers (8-19), `version` again    (below v8)
                   with that one, in its header format
    CHECKING       getLibraryStatus(ZigBee PRO): present, router capability?     CONFIGURING, or
                   (an end-device-only stack cannot be a router); getEui64        REFUSED
    CONFIGURING    setConfigurationValue (stack profile 2, security level 5),     STARTING
                   addEndpoint 1 from the node's simple descriptor (Basic in,
                   OTA 0x0019 out): EmberZNet takes endpoints only before the
                   network is up
    STARTING       networkInit: the network the tokens hold, if any; waits for    NETWORK_INFO, or
                   stackStatusHandler NETWORK_UP                                  SCANNING (none)
    NETWORK_INFO   getNetworkParameters (node type, PAN, channel), getNodeId      JOINED (event Joined),
                                                                                  or LEAVING (the tokens
                                                                                  hold another role)
    LEAVING        leaveNetwork; waits for NETWORK_DOWN                            SCANNING
    SCANNING       startScan (active) over the channel mask; networkFoundHandler  JOINING, or
                   beacons that allow joining; scanCompleteHandler                 BACKING_OFF
    JOINING        setInitialSecurityState (global TC link key, encrypted key),   NETWORK_INFO, or
                   joinNetwork(ROUTER, or SLEEPY_END_DEVICE) on the best beacon;   BACKING_OFF
                   waits for stackStatusHandler NETWORK_UP
    BACKING_OFF    nothing: no network let it in; scans again after a jittered,   SCANNING
                   doubling delay (retry.Backoff)
    JOINED         send() -> sendUnicast (ZDO keys: profile 0, endpoint 0);
                   incomingMessageHandler -> event Received; messageSentHandler
                   counted
    REFUSED        the stick cannot take the role (event Refused, once); stays so
                   until the link or the NCP is reset

From any state: the port lost -> OFFLINE; an ASH failure (the NCP's ERROR frame, too
many ACK timeouts) -> LINK_RESET (the link layer sends RST itself); an unasked RSTACK
(the NCP reset by itself) -> VERSIONING; a command unanswered for response_timeout_s
-> LINK_RESET; stackStatusHandler NETWORK_DOWN while JOINED -> LINK_RESET (a clean
restart rejoins from the tokens, or scans). Leaving JOINED gives the event
Down(reason). invalidCommand for a bring-up command -> REFUSED.
"""
from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge_emu.codec import ezsp
from bridge_emu.codec.ezsp import Direction, EmberNodeType, EzspError, EzspFrame
from bridge_emu.fsm import Transitions
from bridge_emu.retry import Backoff
from bridge_emu.uart.ash_link import AshLink, Connected, LinkDown
from bridge_emu.uart.ash_link import Received as AshReceived
from bridge_emu.uart.stick_join import (  # one home for the events and role values both joiners give
    DEFAULT_CHANNELS,
    END_DEVICE,
    ROLE_NAMES,
    ROUTER,
    STEERING_BACKOFF,
    ZDO_KEY,
    Down,
    Joined,
    Received,
    Refused,
    StickJoiner,
)

__all__ = ["EzspJoiner", "JoinState", "TRANSITIONS", "Joined", "Received", "Down", "Refused", "ROUTER",
           "END_DEVICE", "ZDO_KEY"]

WANTED_VERSION = 13                       # asked first; the NCP answers with its own
NODE_TYPES = {ROUTER: EmberNodeType.ROUTER, END_DEVICE: EmberNodeType.SLEEPY_END_DEVICE}
ROLE_OF_NODE_TYPE = {EmberNodeType.ROUTER: ROUTER, EmberNodeType.END_DEVICE: END_DEVICE,
                     EmberNodeType.SLEEPY_END_DEVICE: END_DEVICE}
CONFIG_STACK_PROFILE, CONFIG_SECURITY_LEVEL = 0x0C, 0x0D
# a joiner of a ZigBee 3.0 / HA network: the global trust-centre link key, the network key sent encrypted
SECURITY_BITMASK = 0x0004 | 0x0100 | 0x0800   # TRUST_CENTER_GLOBAL_LINK_KEY, HAVE_PRECONFIGURED_KEY, REQUIRE_ENC
ZIGBEE_ALLIANCE_KEY = b"ZigBeeAlliance09"
ZCL_APS_OPTIONS = 0x0140                  # EMBER_APS_OPTION_RETRY | ENABLE_ROUTE_DISCOVERY
ZDO_APS_OPTIONS = 0x0100
HA_PROFILE, ZDO_PROFILE = 0x0104, 0x0000
AF_ENDPOINT = 1
SCAN_DURATION = 3                         # 802.15.4 exponent: about 0.14 s a channel
TX_POWER_DBM = 8


class JoinState(enum.Enum):
    OFFLINE = "offline"
    LINK_RESET = "link reset"
    VERSIONING = "versioning"
    CHECKING = "checking"
    CONFIGURING = "configuring"
    STARTING = "starting"
    NETWORK_INFO = "network info"
    LEAVING = "leaving"
    SCANNING = "scanning"
    JOINING = "joining"
    BACKING_OFF = "backing off"
    JOINED = "joined"
    REFUSED = "refused"


S = JoinState
_UP = [s for s in S if s is not S.OFFLINE]
_TALKING = [s for s in S if s not in (S.OFFLINE, S.LINK_RESET)]

TRANSITIONS = Transitions({
    (S.OFFLINE, "connected"): S.LINK_RESET,
    (S.LINK_RESET, "link_up"): S.VERSIONING,
    (S.VERSIONING, "agreed"): S.CHECKING,
    (S.VERSIONING, "unsupported"): S.REFUSED,
    (S.CHECKING, "capable"): S.CONFIGURING,
    (S.CHECKING, "incapable"): S.REFUSED,
    (S.CONFIGURING, "configured"): S.STARTING,
    (S.STARTING, "network_up"): S.NETWORK_INFO,
    (S.STARTING, "no_network"): S.SCANNING,
    (S.NETWORK_INFO, "answered"): S.JOINED,
    (S.NETWORK_INFO, "wrong_role"): S.LEAVING,
    (S.LEAVING, "left"): S.SCANNING,
    (S.SCANNING, "found"): S.JOINING,
    (S.SCANNING, "none_found"): S.BACKING_OFF,
    (S.JOINING, "network_up"): S.NETWORK_INFO,
    (S.JOINING, "join_failed"): S.BACKING_OFF,
    (S.BACKING_OFF, "retry"): S.SCANNING,
    **{(s, "port_lost"): S.OFFLINE for s in _UP},
    **{(s, "link_down"): S.LINK_RESET for s in _TALKING},
    **{(s, "ncp_reset"): S.VERSIONING for s in _TALKING},
    **{(s, "no_answer"): S.LINK_RESET for s in _TALKING},
    (S.JOINED, "network_down"): S.LINK_RESET,
    **{(s, "not_supported"): S.REFUSED for s in (S.VERSIONING, S.CHECKING, S.CONFIGURING, S.STARTING,
                                                 S.NETWORK_INFO, S.LEAVING, S.SCANNING, S.JOINING)},
}, name="ezsp join")


@dataclass
class _Command:
    name: str
    fields: dict
    on_answer: Callable[[dict, float], None]
    legacy_header: bool = False


@dataclass(frozen=True)
class Beacon:
    """A network an active scan heard."""
    channel: int
    pan_id: int
    extended_pan_id: int
    nwk_update_id: int
    lqi: int


class EzspJoiner(StickJoiner):
    """Drives an EZSP stick as a joining device. role: ROUTER or END_DEVICE (znp_join's values, as
    zigbee_node's logical type gives them); endpoint: the node's simple descriptor."""

    TRANSITIONS = TRANSITIONS
    JOINED = S.JOINED

    def __init__(self, role: int, endpoint: Mapping[str, Any], *, channels: int = DEFAULT_CHANNELS,
                 wanted_version: int = WANTED_VERSION, response_timeout_s: float = 6.0,
                 join_timeout_s: float = 20.0, scan_timeout_s: float = 20.0,
                 backoff: Backoff = STEERING_BACKOFF, seed: int = 0):
        super().__init__(role, endpoint, channels, seed)
        if wanted_version not in ezsp.TABLE_VERSIONS:
            raise ValueError(f"wanted_version {wanted_version}: want one of {ezsp.TABLE_VERSIONS}")
        self.channels = channels & DEFAULT_CHANNELS
        self.wanted_version = wanted_version
        self.response_timeout_s, self.join_timeout_s, self.scan_timeout_s = (
            response_timeout_s, join_timeout_s, scan_timeout_s)
        self.backoff = backoff
        self.ash = AshLink("host")
        self.state = S.OFFLINE
        self.version = wanted_version        # the session's EZSP version (the NCP's, once agreed)
        self.stack_version: str | None = None
        self.library_status: int | None = None
        self.ieee: int | None = None
        self.last_join_failure: str | None = None
        self.stats = {"frames": 0, "undecodable": 0, "link_resets": 0, "ncp_resets": 0, "scans": 0, "joins": 0,
                      "downs": 0, "sent": 0, "send_dropped": 0, "send_failed": 0, "confirm_failed": 0,
                      "received": 0, "timeouts": 0, "config_refused": 0}
        self._queue: deque[_Command] = deque()
        self._pending: _Command | None = None
        self._pending_seq: int | None = None
        self._pending_deadline: float | None = None
        self._seq = 0
        self._tag = 0
        self._tries = 0
        self._beacons: list[Beacon] = []
        self._params: dict | None = None

    # -- ByteMachine ---------------------------------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        if self.state is S.OFFLINE:
            self._refused_said = False
            self._go("connected")
            self._reset_link(now)

    def connection_lost(self, now: float) -> None:
        if self.state is not S.OFFLINE:
            self._leave(now, "port_lost", "the link to the stick was lost")
            self.ash = AshLink("host")      # a new port is a new link: nothing of the old one counts

    def receive_bytes(self, data: bytes, now: float) -> None:
        if self.state is S.OFFLINE:
            return
        self.ash.receive_bytes(data, now)
        self._link_events(now)

    def pop_bytes(self) -> bytes:
        return self.ash.pop_bytes()

    def next_deadline(self) -> float | None:
        times = [t for t in (self.ash.next_deadline(), self._pending_deadline, self._state_deadline) if t is not None]
        return min(times) if times else None

    def timer(self, now: float) -> None:
        if self.state is S.OFFLINE:
            return
        self.ash.timer(now)
        self._link_events(now)
        if self._pending_deadline is not None and now >= self._pending_deadline:
            self._no_answer(now)
        self._state_timer(now)

    # -- the API above -------------------------------------------------------------------------------------------

    def send(self, dst: int, cluster: int, payload: bytes, now: float) -> bool:
        """Queue a frame for NWK address dst (cluster: a ZCL cluster, or ZDO_KEY | a ZDO cluster with the
        payload TSN first). False when it was dropped: not joined, or too much waiting."""
        if self._drops_send():
            return False
        zdo = cluster >= ZDO_KEY
        endpoint = 0 if zdo else AF_ENDPOINT
        self._tag = (self._tag + 1) & 0xFF
        aps = {"profile_id": ZDO_PROFILE if zdo else self.endpoint["profile"], "cluster_id": cluster & 0xFFFF,
               "source_endpoint": endpoint, "destination_endpoint": endpoint,
               "options": ZDO_APS_OPTIONS if zdo else ZCL_APS_OPTIONS, "group_id": 0, "sequence": 0}
        self.stats["sent"] += 1
        self._submit("sendUnicast", {"message_type": ezsp.EmberOutgoingMessageType.DIRECT, "destination": dst,
                                     "aps_frame": aps, "message_tag": self._tag, "message": bytes(payload)},
                     self._sent, now)
        return True

    # -- moves ---------------------------------------------------------------------------------------------------

    def _clear(self) -> None:
        self._queue.clear()
        self._pending = self._pending_seq = self._pending_deadline = None
        self._cancel_after()

    def _leave(self, now: float, trigger: str, reason: str) -> None:
        was_joined = self.state is S.JOINED
        self._go(trigger)
        self._clear()
        if was_joined:
            self._down(reason)

    def _reset_link(self, now: float) -> None:
        self.stats["link_resets"] += 1
        self.ash.start(now)                  # CANCEL, RST; ASH asks again every 3.2 s until RSTACK
        self.ash.pop_events()                # its LinkDown: we asked for it

    # -- the link below ------------------------------------------------------------------------------------------

    def _link_events(self, now: float) -> None:
        events = self.ash.pop_events()
        for i, ev in enumerate(events):
            if isinstance(ev, AshReceived):
                self._on_frame(ev.data, now)
            elif isinstance(ev, LinkDown):
                if any(isinstance(later, Connected) for later in events[i + 1:]):
                    continue            # an unasked RSTACK: the Connected after it says the NCP reset
                if self.state not in (S.OFFLINE, S.LINK_RESET):
                    # ASH reset the link itself (ERROR from the NCP, ACK timeouts) or the NCP reset: start over
                    self._leave(now, "link_down", f"the link to the stick failed ({ev.reason})")
            elif isinstance(ev, Connected):
                if self.state is S.LINK_RESET:
                    self._go("link_up")
                elif self.state is not S.OFFLINE:
                    # an unasked RSTACK: the NCP reset by itself
                    self.stats["ncp_resets"] += 1
                    if self.state is S.REFUSED:
                        self._refused_said = False      # a reset stick may be another stick: ask again
                    self._leave(now, "ncp_reset", f"the stick reset (RSTACK, reset code 0x{ev.reset_code:02X})")
                self._negotiate(now)

    # -- the bring-up, step by step ------------------------------------------------------------------------------

    def _negotiate(self, now: float) -> None:
        self._clear()
        self.version = self.wanted_version
        self._submit("version", {"desired_protocol_version": self.wanted_version}, self._versioned, now,
                     legacy_header=True)

    def _versioned(self, fields: dict, now: float) -> None:
        theirs = fields["protocol_version"]
        if theirs not in ezsp.TABLE_VERSIONS:
            self._refuse(now, "unsupported", f"the stick speaks EZSP v{theirs}; attach needs v8 to v19 "
                                             "(EmberZNet 6.7 or later)")
            return
        if theirs != self.version:
            self.version = theirs             # ask again in the version it speaks, in that version's header
            self._submit("version", {"desired_protocol_version": theirs}, self._versioned, now)
            return
        s = fields["stack_version"]
        self.stack_version = f"{s >> 12 & 0xF}.{s >> 8 & 0xF}.{s >> 4 & 0xF}.{s & 0xF}"
        self._go("agreed")
        self._submit("getLibraryStatus", {"library_id": ezsp.ZIGBEE_PRO_LIBRARY_ID}, self._checked, now)

    def _checked(self, fields: dict, now: float) -> None:
        status = self.library_status = fields["status"]
        if status == 0xFF or not status & ezsp.LIBRARY_PRESENT:
            self._refuse(now, "incapable", f"the stick cannot join as {ROLE_NAMES[self.role]}: getLibraryStatus "
                                           f"reports no ZigBee PRO library (0x{status:02X})")
            return
        if self.role == ROUTER and not status & ezsp.LIBRARY_HAVE_ROUTER_CAPABILITY:
            self._refuse(now, "incapable", f"the stick cannot join as router: getLibraryStatus reports "
                                           f"0x{status:02X} (an end-device-only ZigBee PRO stack)")
            return
        self._go("capable")
        self._submit("getEui64", {}, self._eui64, now)

    def _eui64(self, fields: dict, now: float) -> None:
        self.ieee = fields["eui64"]
        for config_id, value in ((CONFIG_STACK_PROFILE, ezsp.STACK_PROFILE_ZIGBEE_PRO), (CONFIG_SECURITY_LEVEL, 5)):
            self._submit("setConfigurationValue", {"config_id": config_id, "value": value}, self._configured, now)
        ep = self.endpoint
        self._submit("addEndpoint", {"endpoint": ep["endpoint"], "profile_id": ep["profile"],
                                     "device_id": ep["device_type"], "device_version": ep["device_version"],
                                     "input_clusters": list(ep["input_clusters"]),
                                     "output_clusters": list(ep["output_clusters"])}, self._endpoint_added, now)

    def _configured(self, fields: dict, now: float) -> None:
        if fields["status"] != 0:
            self.stats["config_refused"] += 1        # a value the build fixes: not a reason to stop

    def _endpoint_added(self, fields: dict, now: float) -> None:
        if fields["status"] != 0:
            self._refuse(now, "not_supported", f"the stick refused addEndpoint of endpoint "
                                               f"{self.endpoint['endpoint']} (status 0x{fields['status']:02X})")
            return
        self._go("configured")
        self._submit("networkInit", {"bitmask": 0}, self._network_init, now)
        self._after(now + self.join_timeout_s, self._start_timed_out)

    def _network_init(self, fields: dict, now: float) -> None:
        if self.state is S.STARTING and fields["status"] != 0:     # NOT_JOINED: no network in its tokens
            self._cancel_after()
            self._go("no_network")
            self._scan(now)

    def _start_timed_out(self, now: float) -> None:
        if self.state is S.STARTING:
            self._go("no_network")
            self._scan(now)

    def _network_info(self, now: float) -> None:
        self._cancel_after()
        self._submit("getNetworkParameters", {}, self._parameters, now)

    def _parameters(self, fields: dict, now: float) -> None:
        role = ROLE_OF_NODE_TYPE.get(fields["node_type"])
        if role != self.role:
            self._go("wrong_role")        # its tokens hold a network in another role (a coordinator's, say)
            self._submit("leaveNetwork", {"options": 0} if self.version >= 14 else {}, self._left, now)
            self._after(now + self.join_timeout_s, self._leave_timed_out)
            return
        self._params = fields["parameters"]
        self._submit("getNodeId", {}, self._node_id, now)

    def _left(self, fields: dict, now: float) -> None:
        if fields["status"] != 0 and self.state is S.LEAVING:
            self._leave_timed_out(now)        # not on a network after all: scan

    def _leave_timed_out(self, now: float) -> None:
        if self.state is S.LEAVING:
            self._go("left")
            self._scan(now)

    def _node_id(self, fields: dict, now: float) -> None:
        p = self._params
        self._go("answered")
        self._tries = 0
        self.joined = Joined(nwk=fields["node_id"], pan_id=p["pan_id"], extended_pan_id=p["extended_pan_id"],
                             channel=p["radio_channel"], role=ROLE_NAMES[self.role], ieee=self.ieee or 0)
        self.stats["joins"] += 1
        self._events.append(self.joined)

    def _scan(self, now: float) -> None:
        self.stats["scans"] += 1
        self._beacons = []
        self._submit("startScan", {"scan_type": ezsp.SCAN_ACTIVE, "channel_mask": self.channels,
                                   "duration": SCAN_DURATION}, self._scan_started, now)
        self._after(now + self.scan_timeout_s, lambda t: self._no_join(t, "none_found", "the scan never ended"))

    def _scan_started(self, fields: dict, now: float) -> None:
        if fields["status"] != 0:
            self._no_join(now, "none_found", f"startScan status 0x{fields['status']:X}")

    def _scan_complete(self, fields: dict, now: float) -> None:
        if self.state is not S.SCANNING:
            return
        if not self._beacons:
            self._no_join(now, "none_found", "no network permitting joins in range")
            return
        best = max(self._beacons, key=lambda b: b.lqi)
        self._go("found")
        self._cancel_after()
        self._submit("setInitialSecurityState", {"state": {
            "bitmask": SECURITY_BITMASK, "preconfigured_key": ZIGBEE_ALLIANCE_KEY, "network_key": bytes(16),
            "network_key_sequence_number": 0, "preconfigured_trust_center_eui64": 0}}, self._security_set, now)
        self._submit("joinNetwork", {"node_type": NODE_TYPES[self.role], "parameters": {
            "extended_pan_id": best.extended_pan_id, "pan_id": best.pan_id, "radio_tx_power": TX_POWER_DBM,
            "radio_channel": best.channel, "join_method": 0, "nwk_manager_id": 0,
            "nwk_update_id": best.nwk_update_id, "channels": 1 << best.channel}}, self._join_started, now)
        self._after(now + self.join_timeout_s, lambda t: self._no_join(t, "join_failed", "no NETWORK_UP in time"))

    def _security_set(self, fields: dict, now: float) -> None:
        if fields["status"] != 0:
            self._refuse(now, "not_supported", f"the stick refused setInitialSecurityState "
                                               f"(status 0x{fields['status']:X})")

    def _join_started(self, fields: dict, now: float) -> None:
        if fields["status"] != 0:
            why = f"joinNetwork as {ROLE_NAMES[self.role]}: status 0x{fields['status']:X}"
            if self.role == ROUTER and self.library_status is not None and \
                    not self.library_status & ezsp.LIBRARY_HAVE_ROUTER_CAPABILITY:
                self._refuse(now, "not_supported", f"the stick cannot join as router ({why})")
                return
            self._no_join(now, "join_failed", why)

    def _no_join(self, now: float, trigger: str, why: str) -> None:
        if self.state not in (S.SCANNING, S.JOINING):
            return
        self._go(trigger)
        self.last_join_failure = why
        self._clear()
        delay = self.backoff.delay(self._tries, self.rng)
        self._tries += 1
        self._after(now + delay, self._scan_again)

    def _scan_again(self, now: float) -> None:
        self._go("retry")
        self._scan(now)

    # -- callbacks -----------------------------------------------------------------------------------------------

    def _stack_status(self, fields: dict, now: float) -> None:
        up = fields["status"] == ezsp.network_up_status(self.version)
        if up and self.state in (S.STARTING, S.JOINING):
            self._go("network_up")
            self._network_info(now)
        elif self.state is S.JOINING and not up:
            self._no_join(now, "join_failed", f"stackStatusHandler 0x{fields['status']:X}")
        elif self.state is S.LEAVING and fields["status"] == ezsp.network_down_status(self.version):
            self._cancel_after()
            self._go("left")
            self._scan(now)
        elif self.state is S.JOINED and not up:
            self._leave(now, "network_down", f"the stick lost the network (stackStatusHandler "
                                             f"0x{fields['status']:X})")
            self._reset_link(now)

    def _network_found(self, fields: dict, now: float) -> None:
        found = fields["network_found"]
        if self.state is S.SCANNING and found["allowing_join"] and found["stack_profile"] == \
                ezsp.STACK_PROFILE_ZIGBEE_PRO and self.channels >> found["channel"] & 1:
            self._beacons.append(Beacon(found["channel"], found["pan_id"], found["extended_pan_id"],
                                        found["nwk_update_id"], fields["last_hop_lqi"]))

    def _incoming(self, fields: dict, now: float) -> None:
        if self.state is not S.JOINED:
            return
        aps = fields["aps_frame"]
        zdo = aps["profile_id"] == ZDO_PROFILE and aps["destination_endpoint"] == 0
        if not zdo and aps["destination_endpoint"] not in (AF_ENDPOINT, 0xFF):
            return
        self.stats["received"] += 1
        self._events.append(Received(fields["sender"], (ZDO_KEY if zdo else 0) | aps["cluster_id"],
                                     bytes(fields["message"])))

    def _message_sent(self, fields: dict, now: float) -> None:
        if fields["status"] != 0:
            self.stats["confirm_failed"] += 1

    def _sent(self, fields: dict, now: float) -> None:
        if fields["status"] != 0:
            self.stats["send_failed"] += 1

    # -- commands ------------------------------------------------------------------------------------------------

    def _submit(self, name: str, fields: dict, on_answer: Callable[[dict, float], None], now: float, *,
                legacy_header: bool = False) -> None:
        self._queue.append(_Command(name, fields, on_answer, legacy_header))
        self._next_command(now)

    def _next_command(self, now: float) -> None:
        if self._pending is not None or not self._queue:
            return
        command = self._pending = self._queue.popleft()
        self._seq = (self._seq + 1) & 0xFF
        self._pending_seq = self._seq
        frame = ezsp.encode_request(command.name, self.version, self._seq, legacy_header=command.legacy_header,
                                    **command.fields)
        self.ash.send(frame, now)
        self._pending_deadline = now + self.response_timeout_s

    def _no_answer(self, now: float) -> None:
        """EZSP commands are not repeated (ASH already retransmits); a silent NCP gets a link reset."""
        name = self._pending.name if self._pending is not None else "?"
        self.stats["timeouts"] += 1
        self._leave(now, "no_answer", f"the stick did not answer {name} in {self.response_timeout_s:g} s")
        self._reset_link(now)

    def _on_frame(self, data: bytes, now: float) -> None:
        self.stats["frames"] += 1
        try:
            frame = EzspFrame.decode(data, self.version)
            command = ezsp.by_id(frame.frame_id, self.version)
        except EzspError:
            self.stats["undecodable"] += 1
            return
        if not frame.is_response:
            self.stats["undecodable"] += 1           # an NCP sends only responses and callbacks
            return
        if command.callback:
            try:
                fields = ezsp.decode_parameters(command.name, self.version, Direction.RESPONSE, frame.parameters,
                                                strict=False)
            except EzspError:
                self.stats["undecodable"] += 1
                return
            handler = _CALLBACKS.get(command.name)
            if handler is not None:
                handler(self, fields, now)
            return
        pending = self._pending
        if pending is None or frame.sequence != self._pending_seq:
            return                                    # late, or for a command since given up
        self._pending = self._pending_seq = self._pending_deadline = None
        if command.name == "invalidCommand" and self.state is S.JOINED:
            self.stats["send_failed"] += 1
            self._next_command(now)
            return
        if command.name == "invalidCommand":
            self._refuse(now, "not_supported", f"the stick does not know {pending.name} (invalidCommand); it "
                                               f"cannot join as a {ROLE_NAMES[self.role]} this way")
            return
        if command.name != pending.name:
            self.stats["undecodable"] += 1
            self._next_command(now)
            return
        try:
            fields = ezsp.decode_parameters(command.name, self.version, Direction.RESPONSE, frame.parameters,
                                            strict=False)
        except EzspError:
            self.stats["undecodable"] += 1
            self._next_command(now)
            return
        pending.on_answer(fields, now)
        self._next_command(now)


_CALLBACKS: Mapping[str, Callable[[EzspJoiner, dict, float], None]] = {
    "stackStatusHandler": EzspJoiner._stack_status,
    "networkFoundHandler": EzspJoiner._network_found,
    "scanCompleteHandler": EzspJoiner._scan_complete,
    "incomingMessageHandler": EzspJoiner._incoming,
    "messageSentHandler": EzspJoiner._message_sent,
}
