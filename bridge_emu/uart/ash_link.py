"""The ASH link layer (Silicon Labs UG101) as a sans-I/O machine, for either end
of the wire: the host (which resets the link) or the NCP (which answers).

Bytes and time in; bytes, events and a deadline out. Frames and their wire
form are bridge_emu.codec.ash; this is the reliability around them:

- DATA frames are numbered modulo 8, at most `window` unacknowledged (real
  NCPs tolerate one; bellows sends one at a time);
- every DATA frame received in sequence is acknowledged at once; one out of
  sequence, or one whose CRC fails, is answered with a single NAK until a good
  frame arrives (the "reject condition"); a retransmitted duplicate is
  acknowledged again and not delivered twice;
- unacknowledged frames are sent again with reTx set when the ACK timer expires
  or a NAK asks for them; the ACK timer adapts to the measured round trip,
  t = 7/8 t + 1/2 rtt, between 0.4 and 3.2 s, doubling at each timeout;
- after `max_timeouts` timeouts in a row the link has failed: the host resets
  it (CANCEL, RST, waiting up to 3.2 s for RSTACK, again and again); the NCP
  sends ERROR and waits for the host's RST;
- an NCP that resets by itself (ncp_reset) sends an unasked RSTACK; the host
  takes it as LinkDown then Connected (the EZSP session above starts afresh).
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from bridge_emu.codec import ash

SEQ = 8                         # frame and ack numbers are 3 bits
T_RX_ACK_INIT, T_RX_ACK_MIN, T_RX_ACK_MAX = 1.6, 0.4, 3.2
T_RSTACK_MAX = 3.2
CANCEL = b"\x1a"
ASH_VERSION = 2
RESET_SOFTWARE = 0x0B           # the reset code an NCP reports after a host's RST
ERROR_EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT = 0x51


# -- events


@dataclass(frozen=True)
class Connected:
    """The link is up (host: RSTACK heard; NCP: RST answered)."""
    reset_code: int


@dataclass(frozen=True)
class Received:
    """A DATA frame's payload, in order and once."""
    data: bytes


@dataclass(frozen=True)
class LinkDown:
    """The link failed or was reset. `unsent`: the frames it held that may not
    have arrived (sent but unacknowledged first, then queued), oldest first; the
    layer above decides what to send again (EZSP's sequence numbers tell a
    repeat from a new frame)."""
    reason: str
    unsent: tuple[bytes, ...] = ()


@dataclass
class _Outstanding:
    frm_num: int
    data: bytes
    sent_at: float
    retransmitted: bool = False


class AshLink:
    """One end of an ASH link. role: "host" or "ncp"."""

    def __init__(self, role: str, *, window: int = 1, max_timeouts: int = 5, reset_code: int = RESET_SOFTWARE):
        if role not in ("host", "ncp"):
            raise ValueError(f"role {role!r}: want 'host' or 'ncp'")
        if not 1 <= window <= 7:
            raise ValueError(f"window {window}: ASH allows 1..7 frames outstanding")
        self.role = role
        self.window = window
        self.max_timeouts = max_timeouts
        self.reset_code = reset_code
        self.parser = ash.AshParser()
        self.connected = False
        self.t_rx_ack = T_RX_ACK_INIT
        self.stats = {"sent": 0, "retransmitted": 0, "received": 0, "duplicates": 0, "naks_sent": 0,
                      "naks_received": 0, "bad_frames": 0, "resets": 0, "timeouts": 0}
        self._out = bytearray()
        self._events: list = []
        self._queue: deque[bytes] = deque()
        self._reset_state()
        self._rst_deadline: float | None = None

    # -- the API a protocol above uses

    def start(self, now: float) -> None:
        """Host: reset the link (CANCEL, RST). NCP: wait for the host's RST."""
        if self.role == "host":
            self._send_rst(now)

    def send(self, data: bytes, now: float) -> None:
        """Queue one EZSP frame; it goes when the window allows."""
        self._queue.append(bytes(data))
        self._fill_window(now)

    def receive_bytes(self, data: bytes, now: float) -> None:
        for frame in self.parser.feed(data):
            self._on_frame(frame, now)

    def pop_bytes(self) -> bytes:
        out, self._out = bytes(self._out), bytearray()
        return out

    def pop_events(self) -> list:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self._rst_deadline, self._ack_deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    def timer(self, now: float) -> None:
        if self._rst_deadline is not None and now >= self._rst_deadline:
            self._send_rst(now)                     # no RSTACK yet: ask again
        ack_at = self._ack_deadline()
        if ack_at is not None and now >= ack_at:
            self._ack_timeout(now)

    def ncp_reset(self, reset_code: int) -> None:
        """NCP: it rebooted by itself (reset pin, watchdog, power): whatever was in flight is gone,
        and it says so with an unasked RSTACK, as an EmberZNet NCP does after every reset."""
        if self.role != "ncp":
            raise ValueError("ncp_reset: only an NCP resets by itself")
        self._down("the NCP reset")
        self.stats["resets"] += 1
        self._emit(ash.RstAckFrame(ASH_VERSION, reset_code))
        self.connected = True

    @property
    def idle(self) -> bool:
        """Nothing queued or unacknowledged."""
        return not self._queue and not self._unacked

    # -- state

    def _reset_state(self) -> None:
        self._tx_next = 0
        self._rx_expected = 0
        self._unacked: deque[_Outstanding] = deque()
        self._timeouts = 0
        self._rejecting = False
        self._ack_sent_at: float | None = None     # when the oldest unacknowledged frame was (re)sent
        self.t_rx_ack = T_RX_ACK_INIT

    def _down(self, reason: str) -> None:
        unsent = tuple(o.data for o in self._unacked) + tuple(self._queue)
        if self.connected or unsent:
            self._events.append(LinkDown(reason, unsent))
        self.connected = False
        self._queue.clear()
        self._reset_state()

    # -- frames in

    def _on_frame(self, frame, now: float) -> None:
        if isinstance(frame, ash.BadFrame):
            self.stats["bad_frames"] += 1
            if self.connected:
                self._nak(now)
            return
        if isinstance(frame, ash.RstFrame):
            if self.role == "ncp":
                self._down("the host reset the link")
                self.stats["resets"] += 1
                self._emit(ash.RstAckFrame(ASH_VERSION, self.reset_code))
                self.connected = True
                self._events.append(Connected(self.reset_code))
            return
        if isinstance(frame, ash.RstAckFrame):
            if self.role == "host" and self._rst_deadline is not None:
                self._rst_deadline = None
                self._reset_state()
                self.connected = True
                self._events.append(Connected(frame.reset_code))
                self._fill_window(now)
            elif self.role == "host" and self.connected:
                # unasked: the NCP reset by itself (its pin, a watchdog) and its frame numbers start at 0 again
                self._down(f"the NCP reset (RSTACK, reset code 0x{frame.reset_code:02X})")
                self.connected = True
                self._events.append(Connected(frame.reset_code))
            return
        if isinstance(frame, ash.ErrorFrame):
            if self.role == "host":
                self._down(f"the NCP reported error 0x{frame.code:02X}")
                self._send_rst(now)
            return
        if not self.connected:
            return
        if isinstance(frame, ash.DataFrame):
            self._acknowledged(frame.ack_num, now)
            self._on_data(frame, now)
        elif isinstance(frame, ash.AckFrame):
            self._acknowledged(frame.ack_num, now)
        elif isinstance(frame, ash.NakFrame):
            self.stats["naks_received"] += 1
            self._acknowledged(frame.ack_num, now)
            self._retransmit(now)
        self._fill_window(now)

    def _on_data(self, frame, now: float) -> None:
        if frame.frm_num == self._rx_expected:
            self._rx_expected = (self._rx_expected + 1) % SEQ
            self._rejecting = False
            self.stats["received"] += 1
            self._events.append(Received(frame.data))
            self._emit(ash.AckFrame(self._rx_expected, False))
        elif frame.re_tx and (self._rx_expected - frame.frm_num) % SEQ <= self.window:
            self.stats["duplicates"] += 1          # we had it; our ACK was lost
            self._emit(ash.AckFrame(self._rx_expected, False))
        else:
            self._nak(now)

    def _nak(self, now: float) -> None:
        if not self._rejecting:
            self._rejecting = True
            self.stats["naks_sent"] += 1
            self._emit(ash.NakFrame(self._rx_expected, False))

    def _acknowledged(self, ack_num: int, now: float) -> None:
        """Frames before ack_num are through; an ack_num outside what is outstanding is ignored."""
        if not self._unacked:
            return
        first = self._unacked[0].frm_num
        count = (ack_num - first) % SEQ
        if count == 0 or count > len(self._unacked):
            return
        for _ in range(count):
            done = self._unacked.popleft()
            if not done.retransmitted:
                rtt = now - done.sent_at
                self.t_rx_ack = min(T_RX_ACK_MAX, max(T_RX_ACK_MIN, 7 / 8 * self.t_rx_ack + rtt / 2))
        self._timeouts = 0
        self._ack_sent_at = self._unacked[0].sent_at if self._unacked else None

    # -- frames out

    def _emit(self, frame) -> None:
        self._out += frame.to_wire()

    def _send_rst(self, now: float) -> None:
        self._down("link reset")
        self.stats["resets"] += 1
        self._out += CANCEL
        self._emit(ash.RstFrame())
        self._rst_deadline = now + T_RSTACK_MAX

    def _fill_window(self, now: float) -> None:
        while self.connected and self._queue and len(self._unacked) < self.window:
            data = self._queue.popleft()
            item = _Outstanding(self._tx_next, data, now)
            self._tx_next = (self._tx_next + 1) % SEQ
            self._unacked.append(item)
            self.stats["sent"] += 1
            self._emit(ash.DataFrame(item.frm_num, False, self._rx_expected, data))
            if self._ack_sent_at is None:
                self._ack_sent_at = now

    def _retransmit(self, now: float) -> None:
        for item in self._unacked:
            item.retransmitted = True
            item.sent_at = now
            self.stats["retransmitted"] += 1
            self._emit(ash.DataFrame(item.frm_num, True, self._rx_expected, item.data))
        if self._unacked:
            self._ack_sent_at = now

    def _ack_deadline(self) -> float | None:
        if not self.connected or not self._unacked or self._ack_sent_at is None:
            return None
        return self._ack_sent_at + self.t_rx_ack

    def _ack_timeout(self, now: float) -> None:
        self._timeouts += 1
        self.stats["timeouts"] += 1
        if self._timeouts >= self.max_timeouts:
            if self.role == "host":
                self._send_rst(now)
            else:
                self._down("too many ACK timeouts")
                self._emit(ash.ErrorFrame(ASH_VERSION, ERROR_EXCEEDED_MAXIMUM_ACK_TIMEOUT_COUNT))
            return
        self.t_rx_ack = min(T_RX_ACK_MAX, self.t_rx_ack * 2)
        self._retransmit(now)
