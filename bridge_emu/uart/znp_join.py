"""The host side of a TI Z-Stack (ZNP) dongle that joins a network as a router or an
end device, as a sans-I/O machine: MT bytes (bridge_emu.codec.mt) and time in; MT
bytes, typed events and a deadline out. A ByteMachine (net.serial_link) for a
StreamDriver, so it runs over any pyserial URL, and on virtual time in tests.

What it does, after the link comes up and after every SYS.ResetInd (the stick
forgets its endpoints at each reset, so the bring-up runs again):

    state          asks (each SREQ waits for its SRSP, retried on a timeout)   then
    -------------  ----------------------------------------------------------  -------------------
    PINGING        SYS.Ping                                                     CHECKING
    CHECKING       SYS.Version, UTIL.GetDeviceInfo: can the build take the      READING_ROLE, or
                   role? (capability bit 1 router, bit 2 end device)            REFUSED
    READING_ROLE   SYS.OSALNVRead ZCD_NV_LOGICAL_TYPE (0x0087)                  REGISTERING if it is
                                                                                the role, else
                                                                                CONFIGURING
    CONFIGURING    OSALNVWrite 0x0087 = 1 router / 2 end device,                RESETTING
                   ZCD_NV_STARTUP_OPTION (0x0003) = clear state (a new role
                   starts from no network)
    RESETTING      SYS.ResetReq; waits for SYS.ResetInd                         PINGING (again: the
                                                                                role now reads right)
    REGISTERING    APP_CNF.BDBSetChannel (the channel mask), AF.Register of     STEERING
                   endpoint 1 from the node's simple descriptor
    STEERING       APP_CNF.BDBStartCommissioning mode 0x02 (network steering);  NETWORK_INFO, or
                   waits for ZDO.StateChangeInd JOINED_AS_ROUTER / _END_DEVICE  BACKING_OFF
    BACKING_OFF    nothing: NO_NETWORK (or no join in join_timeout_s); steers   STEERING
                   again after a jittered, doubling delay (retry.Backoff)
    NETWORK_INFO   UTIL.GetDeviceInfo (its NWK address, its state), then        JOINED (event Joined)
                   ZDO.ExtNwkInfo (PAN id, extended PAN id, channel)            or STEERING
    JOINED         data: send() -> AF.DataRequestExt (ZDO keys: endpoint 0);
                   AF.IncomingMsg / ZDO.MsgCbIncoming -> event Received
    REFUSED        the stick cannot take the role (event Refused, once); it
                   stays so until the link or the stick is reset

From any state: the link lost -> OFFLINE; SYS.ResetInd -> PINGING; an SREQ
unanswered after max_tries -> PINGING after a backoff; RPC_ERROR for a bring-up
command -> REFUSED. Leaving JOINED (a reset, the link, the stick reporting it lost
the network) gives the event Down(reason), and the bring-up runs again. A corrupted
frame is skipped: the FrameParser resynchronises on the next SOF and the request it
answered times out and is sent again.

The cluster keys are net.transport's (a ZCL cluster on endpoint 1 below 0x10000,
ZDO at 0x10000 | cluster), redefined here as ZDO_KEY since this layer imports
no transport.
"""
from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge_emu.codec import mt
from bridge_emu.codec.mt import CommandType, DeviceState, Frame, FrameParser, MtError
from bridge_emu.fsm import Transitions
from bridge_emu.retry import Backoff
from bridge_emu.uart.stick_join import (  # the events and role values both joiners give
    DEFAULT_CHANNELS,
    END_DEVICE,
    ROLE_NAMES,
    ROUTER,
    STEERING_BACKOFF,
    ZDO_KEY,
    Down,
    Event,
    Joined,
    Received,
    Refused,
    StickJoiner,
)

__all__ = ["ZnpJoiner", "JoinState", "TRANSITIONS", "Joined", "Received", "Down", "Refused", "Event", "ROUTER",
           "END_DEVICE", "ROLE_NAMES", "ZDO_KEY", "DEFAULT_CHANNELS"]
CAPABILITY_BIT = {ROUTER: 0x02, END_DEVICE: 0x04}   # UTIL.GetDeviceInfo device_type bitmap
NV_LOGICAL_TYPE = 0x0087
NV_STARTUP_OPTION = 0x0003
STARTUP_CLEAR_STATE = 0x02
BDB_STEERING = 0x02
AF_ENDPOINT = 1
JOINED_STATES = {DeviceState.JOINED_AS_ROUTER, DeviceState.JOINED_AS_END_DEVICE}
NO_JOIN = {mt.BdbCommissioningStatus.NO_NETWORK, mt.BdbCommissioningStatus.FAILURE,
           mt.BdbCommissioningStatus.TCLK_EX_FAILURE}
MAX_RESETS_IN_A_ROW = 3                   # the role written, the stick reset, still not the role: give up
UNRESPONSIVE_BACKOFF = Backoff(0.5, 10.0)  # a stick that answers nothing: ping again after 0.5 s ... 10 s


class JoinState(enum.Enum):
    OFFLINE = "offline"
    PINGING = "pinging"
    CHECKING = "checking"
    READING_ROLE = "reading role"
    CONFIGURING = "configuring"
    RESETTING = "resetting"
    REGISTERING = "registering"
    STEERING = "steering"
    BACKING_OFF = "backing off"
    NETWORK_INFO = "network info"
    JOINED = "joined"
    REFUSED = "refused"


S = JoinState
_UP = [s for s in S if s is not S.OFFLINE]
_ASKING = [S.PINGING, S.CHECKING, S.READING_ROLE, S.CONFIGURING, S.REGISTERING, S.STEERING, S.NETWORK_INFO,
           S.JOINED, S.RESETTING]

TRANSITIONS = Transitions({
    (S.OFFLINE, "connected"): S.PINGING,
    (S.PINGING, "answered"): S.CHECKING,
    (S.CHECKING, "capable"): S.READING_ROLE,
    (S.CHECKING, "incapable"): S.REFUSED,
    (S.READING_ROLE, "role_set"): S.REGISTERING,
    (S.READING_ROLE, "role_differs"): S.CONFIGURING,
    (S.CONFIGURING, "written"): S.RESETTING,
    (S.REGISTERING, "registered"): S.STEERING,
    (S.STEERING, "joined"): S.NETWORK_INFO,
    (S.STEERING, "no_network"): S.BACKING_OFF,
    (S.BACKING_OFF, "retry"): S.STEERING,
    (S.NETWORK_INFO, "answered"): S.JOINED,
    (S.NETWORK_INFO, "not_joined"): S.STEERING,
    (S.JOINED, "network_lost"): S.STEERING,       # the stick rejoins by itself; steering again if it does not
    **{(s, "link_lost"): S.OFFLINE for s in _UP},
    **{(s, "reset_ind"): S.PINGING for s in _UP},
    **{(s, "no_answer"): S.PINGING for s in _ASKING},
    **{(s, "not_recognized"): S.REFUSED for s in _ASKING if s is not S.JOINED},
    (S.RESETTING, "gave_up"): S.REFUSED,
}, name="znp join")




@dataclass
class _Request:
    name: str
    frame: Frame
    on_answer: Callable[[Any, float], None]
    tries: int = 0


class ZnpJoiner(StickJoiner):
    """Drives a ZNP stick as a joining device. role: ROUTER or END_DEVICE;
    endpoint: the node's simple descriptor (endpoint, profile, device_type,
    device_version, input_clusters, output_clusters), as zigbee_node gives it."""

    TRANSITIONS = TRANSITIONS
    JOINED = S.JOINED

    def __init__(self, role: int, endpoint: Mapping[str, Any], *, channels: int = DEFAULT_CHANNELS,
                 srsp_timeout_s: float = 1.0, max_tries: int = 3, reset_timeout_s: float = 5.0,
                 join_timeout_s: float = 30.0, steering_backoff: Backoff = STEERING_BACKOFF,
                 unresponsive_backoff: Backoff = UNRESPONSIVE_BACKOFF, radius: int = 30, seed: int = 0):
        super().__init__(role, endpoint, channels, seed)
        self.channels = channels
        self.srsp_timeout_s, self.max_tries = srsp_timeout_s, max_tries
        self.reset_timeout_s, self.join_timeout_s = reset_timeout_s, join_timeout_s
        self.steering_backoff, self.unresponsive_backoff = steering_backoff, unresponsive_backoff
        self.radius = radius
        self.parser = FrameParser()
        self.state = S.OFFLINE
        self.version: Any = None             # SYS.Version's answer
        self.device_types: int | None = None
        self.stats = {"frames": 0, "undecodable": 0, "retries": 0, "resets_seen": 0, "steering": 0,
                      "sent": 0, "send_dropped": 0, "send_failed": 0, "confirm_failed": 0, "received": 0,
                      "joins": 0, "downs": 0}
        self._out = bytearray()
        self._queue: deque[_Request] = deque()
        self._pending: _Request | None = None
        self._pending_deadline: float | None = None
        self._steer_tries = 0
        self._unanswered_rounds = 0
        self._resets_in_a_row = 0
        self._tsn = 0
        self._info: Any = None
        self.last_steering_failure: str | None = None

    # -- ByteMachine ---------------------------------------------------------------------------------------------

    def connection_made(self, now: float) -> None:
        self.parser.reset()
        if self.state is S.OFFLINE:
            self._refused_said = False
            self._start_over(now, "connected")

    def connection_lost(self, now: float) -> None:
        self.parser.reset()
        if self.state is not S.OFFLINE:
            self._leave(now, "link_lost", "the link to the stick was lost")

    def receive_bytes(self, data: bytes, now: float) -> None:
        bad = self.parser.bad_frames
        for frame in self.parser.feed(data):
            self.stats["frames"] += 1
            self._on_frame(frame, now)
        self.stats["undecodable"] += self.parser.bad_frames - bad

    def pop_bytes(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def next_deadline(self) -> float | None:
        times = [t for t in (self._pending_deadline, self._state_deadline) if t is not None]
        return min(times) if times else None

    def timer(self, now: float) -> None:
        if self._pending_deadline is not None and now >= self._pending_deadline:
            self._request_timed_out(now)
        self._state_timer(now)

    # -- the API above -------------------------------------------------------------------------------------------

    def send(self, dst: int, cluster: int, payload: bytes, now: float) -> bool:
        """Queue a frame for NWK address dst (cluster: a ZCL cluster, or ZDO_KEY | a ZDO cluster with the
        payload TSN first). False when it was dropped: not joined, or too much waiting."""
        if self._drops_send():
            return False
        zdo = cluster >= ZDO_KEY
        endpoint = 0 if zdo else AF_ENDPOINT
        self._tsn = (self._tsn + 1) & 0xFF
        frame = mt.encode_command(
            "AF.DataRequestExt", dst_addr_mode_address={"mode": mt.AddrMode.NWK, "address": dst},
            dst_endpoint=endpoint, dst_pan_id=0x0000, src_endpoint=endpoint, cluster_id=cluster & 0xFFFF,
            tsn=self._tsn, options=0, radius=self.radius, data=bytes(payload))
        self.stats["sent"] += 1
        self._submit_frame("AF.DataRequestExt", frame, self._data_answered, now)
        return True

    # -- moves ---------------------------------------------------------------------------------------------------

    def _clear(self) -> None:
        self._queue.clear()
        self._pending = self._pending_deadline = None
        self._cancel_after()

    def _leave(self, now: float, trigger: str, reason: str) -> None:
        """Out of whatever it was doing (the link, a reset, no answer): Down if it was joined."""
        was_joined = self.state is S.JOINED
        self._go(trigger)
        self._clear()
        if was_joined:
            self._down(reason)
        if self.state is S.PINGING:
            self._ping(now)

    def _start_over(self, now: float, trigger: str) -> None:
        self._go(trigger)
        self._clear()
        self._ping(now)

    # -- the bring-up, step by step ------------------------------------------------------------------------------

    def _ping(self, now: float) -> None:
        self._submit("SYS.Ping", {}, self._pinged, now)

    def _pinged(self, fields: Any, now: float) -> None:
        self._unanswered_rounds = 0
        self._go("answered")
        self._submit("SYS.Version", {}, self._versioned, now)

    def _versioned(self, fields: Any, now: float) -> None:
        self.version = fields
        self._submit("UTIL.GetDeviceInfo", {}, self._checked, now)

    def _checked(self, fields: Any, now: float) -> None:
        self.device_types = fields.device_type
        if not fields.device_type & CAPABILITY_BIT[self.role]:
            can = ", ".join(name for bit, name in ((1, "coordinator"), (2, "router"), (4, "end device"))
                            if fields.device_type & bit) or "nothing"
            self._refuse(now, "incapable", f"the stick cannot join as {ROLE_NAMES[self.role]}: UTIL.GetDeviceInfo "
                                           f"reports device types 0x{fields.device_type:02X} ({can} only)")
            return
        self._go("capable")
        self._submit("SYS.OSALNVRead", {"id": NV_LOGICAL_TYPE, "offset": 0}, self._role_read, now)

    def _role_read(self, fields: Any, now: float) -> None:
        if fields.status == 0 and bytes(fields.value[:1]) == bytes([self.role]):
            self._resets_in_a_row = 0
            self._go("role_set")
            self._register(now)
            return
        if self._resets_in_a_row >= MAX_RESETS_IN_A_ROW:
            self._refuse(now, "not_recognized", f"the stick keeps ZCD_NV_LOGICAL_TYPE at "
                                                f"{bytes(fields.value).hex() or 'nothing'} after "
                                                f"{self._resets_in_a_row} resets; it will not be a "
                                                f"{ROLE_NAMES[self.role]}")
            return
        self._go("role_differs")
        self._submit("SYS.OSALNVWrite", {"id": NV_LOGICAL_TYPE, "offset": 0, "value": bytes([self.role])},
                     self._nv_written("ZCD_NV_LOGICAL_TYPE", self._write_startup_option), now)

    def _nv_written(self, what: str, then: Callable[[float], None]) -> Callable[[Any, float], None]:
        def answered(fields: Any, now: float) -> None:
            if fields.status != 0:
                self._refuse(now, "not_recognized", f"the stick refused the write of {what} "
                                                    f"(status 0x{fields.status:02X})")
                return
            then(now)
        return answered

    def _write_startup_option(self, now: float) -> None:
        self._submit("SYS.OSALNVWrite", {"id": NV_STARTUP_OPTION, "offset": 0, "value": bytes([STARTUP_CLEAR_STATE])},
                     self._nv_written("ZCD_NV_STARTUP_OPTION", self._reset_stick), now)

    def _reset_stick(self, now: float) -> None:
        self._go("written")
        self._resets_in_a_row += 1
        self._write(mt.encode_command("SYS.ResetReq", type=mt.ResetType.SOFT))   # an AREQ: ResetInd answers
        self._after(now + self.reset_timeout_s, self._reset_unanswered)

    def _reset_unanswered(self, now: float) -> None:
        if self._resets_in_a_row >= MAX_RESETS_IN_A_ROW:
            self._refuse(now, "gave_up", "the stick does not come back from SYS.ResetReq (no SYS.ResetInd)")
            return
        self._resets_in_a_row += 1
        self._write(mt.encode_command("SYS.ResetReq", type=mt.ResetType.SOFT))
        self._after(now + self.reset_timeout_s, self._reset_unanswered)

    def _register(self, now: float) -> None:
        self._submit("APP_CNF.BDBSetChannel", {"is_primary": True, "channel": self.channels},
                     lambda f, t: self._submit("APP_CNF.BDBSetChannel", {"is_primary": False, "channel": 0},
                                               self._channels_set, t), now)

    def _channels_set(self, fields: Any, now: float) -> None:
        ep = self.endpoint
        self._submit("AF.Register", {"endpoint": ep["endpoint"], "profile_id": ep["profile"],
                                     "device_id": ep["device_type"], "device_version": ep["device_version"],
                                     "latency_req": mt.LatencyReq.NONE,
                                     "input_clusters": list(ep["input_clusters"]),
                                     "output_clusters": list(ep["output_clusters"])}, self._registered, now)

    def _registered(self, fields: Any, now: float) -> None:
        if fields.status not in (0x00, 0xB8):     # 0xB8: already registered (no reset since)
            self._refuse(now, "not_recognized", f"the stick refused AF.Register of endpoint "
                                                f"{self.endpoint['endpoint']} (status 0x{fields.status:02X})")
            return
        self._go("registered")
        self._steer(now)

    def _steer(self, now: float) -> None:
        self.stats["steering"] += 1
        self._submit("APP_CNF.BDBStartCommissioning", {"mode": BDB_STEERING}, self._steering_started, now)
        self._after(now + self.join_timeout_s, self._join_timed_out)

    def _steering_started(self, fields: Any, now: float) -> None:
        if fields.status != 0:
            self._no_network(now, f"BDBStartCommissioning status 0x{fields.status:02X}")

    def _join_timed_out(self, now: float) -> None:
        self._no_network(now, f"no join in {self.join_timeout_s:g} s")

    def _no_network(self, now: float, why: str) -> None:
        if self.state is not S.STEERING:
            return
        self._go("no_network")
        self.last_steering_failure = why
        delay = self.steering_backoff.delay(self._steer_tries, self.rng)
        self._steer_tries += 1
        self._after(now + delay, self._steer_again)

    def _steer_again(self, now: float) -> None:
        self._go("retry")
        self._steer(now)

    def _on_joined_state(self, now: float) -> None:
        self._go("joined")
        self._cancel_after()
        self._submit("UTIL.GetDeviceInfo", {}, self._device_info, now)

    def _device_info(self, fields: Any, now: float) -> None:
        if fields.device_state not in JOINED_STATES:
            self._go("not_joined")
            self._steer(now)
            return
        self._info = fields
        self._submit("ZDO.ExtNwkInfo", {}, self._network_info, now)

    def _network_info(self, fields: Any, now: float) -> None:
        info = self._info
        channel = fields.channel if 11 <= fields.channel <= 26 else 0     # Z-Stack sends the logical channel
        role = "router" if info.device_state == DeviceState.JOINED_AS_ROUTER else "end device"
        self._go("answered")
        self._steer_tries = 0
        self.joined = Joined(nwk=info.nwk, pan_id=fields.pan_id, extended_pan_id=fields.extended_pan_id,
                             channel=channel, role=role, ieee=info.ieee)
        self.stats["joins"] += 1
        self._events.append(self.joined)

    # -- requests ------------------------------------------------------------------------------------------------

    def _submit(self, name: str, fields: Mapping[str, Any], on_answer: Callable[[Any, float], None],
                now: float) -> None:
        self._submit_frame(name, mt.encode_command(name, **fields), on_answer, now)

    def _submit_frame(self, name: str, frame: Frame, on_answer: Callable[[Any, float], None], now: float) -> None:
        self._queue.append(_Request(name, frame, on_answer))
        self._next_request(now)

    def _next_request(self, now: float) -> None:
        if self._pending is None and self._queue:
            self._pending = self._queue.popleft()
            self._transmit(now)

    def _transmit(self, now: float) -> None:
        request = self._pending
        request.tries += 1
        self._write(request.frame)
        self._pending_deadline = now + self.srsp_timeout_s

    def _request_timed_out(self, now: float) -> None:
        request = self._pending
        self._pending_deadline = None
        if request is None:
            return
        if request.tries < self.max_tries:
            self.stats["retries"] += 1
            self._transmit(now)
            return
        # the stick does not answer: start again from a ping, after a while
        rounds = self._unanswered_rounds
        self._unanswered_rounds += 1
        was_joined = self.state is S.JOINED
        self._go("no_answer")
        self._clear()
        if was_joined:
            self._down(f"the stick did not answer {request.name} ({request.tries} tries)")
        self._after(now + self.unresponsive_backoff.delay(rounds, self.rng), self._ping)

    def _answered(self, now: float) -> _Request:
        request, self._pending, self._pending_deadline = self._pending, None, None
        return request

    def _data_answered(self, fields: Any, now: float) -> None:
        if fields.status != 0:
            self.stats["send_failed"] += 1

    def _write(self, frame: Frame) -> None:
        self._out += frame.encode()

    # -- frames in -----------------------------------------------------------------------------------------------

    def _on_frame(self, frame: Frame, now: float) -> None:
        try:
            name, fields = mt.decode(frame)
        except MtError:
            self.stats["undecodable"] += 1
            return
        if frame.type == CommandType.SRSP:
            self._on_srsp(name, frame, fields, now)
        elif frame.type == CommandType.AREQ:
            handler = _AREQS.get(name)
            if handler is not None:
                handler(self, fields, now)

    def _on_srsp(self, name: str, frame: Frame, fields: Any, now: float) -> None:
        request = self._pending
        if request is None or self.state is S.OFFLINE:
            return                                   # late, or an answer to a request since given up
        if name == "RPC_ERROR.CommandNotRecognized":
            if fields.request_header != request.frame.cmd0 | request.frame.cmd1 << 8:
                return
            self._answered(now)
            if request.name == "AF.DataRequestExt":
                self.stats["send_failed"] += 1
            else:
                self._refuse(now, "not_recognized", f"the stick does not know {request.name} (RPC_ERROR "
                                                    f"{fields.error_code.name}); it cannot join as a "
                                                    f"{ROLE_NAMES[self.role]} this way")
                return
        elif (frame.subsystem, frame.cmd1) != (request.frame.subsystem, request.frame.cmd1):
            return                                   # not the answer awaited (a duplicate, say)
        else:
            self._answered(now)
            request.on_answer(fields, now)
        self._next_request(now)

    def _reset_ind(self, fields: Any, now: float) -> None:
        self.stats["resets_seen"] += 1
        if self.state is S.OFFLINE:
            return
        expected = self.state is S.RESETTING
        if self.state is S.REFUSED and not expected:
            self._refused_said = False              # a reset stick may be another stick: ask again
        self._leave(now, "reset_ind", "the stick reset (SYS.ResetInd)")
        if not expected:
            self._resets_in_a_row = 0

    def _state_change(self, fields: Any, now: float) -> None:
        state = fields.state
        if self.state is S.STEERING and state in JOINED_STATES:
            self._on_joined_state(now)
        elif self.state is S.JOINED and state not in JOINED_STATES:
            self._go("network_lost")
            self._clear()
            self._down(f"the stick lost the network ({state.name})")
            self._after(now + self.join_timeout_s, self._join_timed_out)

    def _commissioning(self, fields: Any, now: float) -> None:
        if self.state is not S.STEERING or fields.mode != BDB_STEERING:
            return
        if fields.status in NO_JOIN:
            self._no_network(now, f"network steering: {fields.status.name}")
        elif fields.status == mt.BdbCommissioningStatus.SUCCESS and self._pending is None and not self._queue:
            # steering done with no state change: it may have been on a network already; ask it
            self._on_joined_state(now)

    def _incoming(self, fields: Any, now: float) -> None:
        if self.state is S.JOINED:
            self.stats["received"] += 1
            self._events.append(Received(fields.src_addr, fields.cluster_id, bytes(fields.data)))

    def _zdo_incoming(self, fields: Any, now: float) -> None:
        if self.state is S.JOINED:
            self.stats["received"] += 1
            self._events.append(Received(fields.src, ZDO_KEY | fields.cluster_id,
                                         bytes([fields.tsn]) + bytes(fields.data)))

    def _confirm(self, fields: Any, now: float) -> None:
        if fields.status != 0:
            self.stats["confirm_failed"] += 1


_AREQS: Mapping[str, Callable[[ZnpJoiner, Any, float], None]] = {
    "SYS.ResetInd": ZnpJoiner._reset_ind,
    "ZDO.StateChangeInd": ZnpJoiner._state_change,
    "APP_CNF.BDBCommissioningNotification": ZnpJoiner._commissioning,
    "AF.IncomingMsg": ZnpJoiner._incoming,
    "ZDO.MsgCbIncoming": ZnpJoiner._zdo_incoming,
    "AF.DataConfirm": ZnpJoiner._confirm,
}
