"""Silicon Labs ASH (Asynchronous Serial Host, UG101) framing: the frames, their
CRC, byte stuffing, data randomisation and a stream parser. Pure and sans-I/O;
the link state machine (windows, retransmission, ACK timeouts) lives elsewhere
and builds on this module.

A frame on the wire, before stuffing:

    control u8 | data | CRC-CCITT u16 big-endian (poly 0x1021, init 0xFFFF, over control + data)

then every reserved byte (0x7E FLAG, 0x7D ESCAPE, 0x11 XON, 0x13 XOFF, 0x18 SUBSTITUTE,
0x1A CANCEL) is sent as ESCAPE, byte ^ 0x20, and a FLAG closes the frame. A host
usually sends a CANCEL before a RST so the NCP drops any half-received frame.

    control          frame    data
    0 fff r aaa      DATA     EZSP frame, XORed with randomise()'s sequence
    100 0 n aaa      ACK      -
    101 0 n aaa      NAK      -
    11000000         RST      -
    11000001         RSTACK   version u8 (2) | reset code u8
    11000010         ERROR    version u8 (2) | error code u8

f = frmNum, r = reTx, a = ackNum (the next frame number expected), n = nRdy
(the host's receive buffers are full). The reserved bit of ACK/NAK must be 0.

Received bytes that are not stuffed control the stream: FLAG ends a frame; CANCEL
drops whatever arrived since the previous FLAG; SUBSTITUTE (a UART error) marks the
frame in progress as lost up to the next FLAG; XON/XOFF are flow control and are
skipped here wherever they appear.

API: the frame classes (DataFrame, AckFrame, NakFrame, RstFrame, RstAckFrame,
ErrorFrame) with encode() (unstuffed, with CRC) and to_wire() (stuffed, with FLAG);
decode() for one unstuffed frame; crc16(), randomise(), stuff(), unstuff(); and
AshParser, whose feed() returns the frames received, in order, with a BadFrame
marker where a frame was lost (bad CRC, bad escape, unknown control, SUBSTITUTE,
overlong) so a link layer can NAK at the right moment. Bad input raises AshError
everywhere except in AshParser, which never raises.
"""
from __future__ import annotations

import binascii
import enum
from dataclasses import dataclass

from bridge_emu.errors import BridgeEmuError


class AshError(BridgeEmuError):
    """An ASH frame or byte string that cannot be encoded or decoded."""


class Reserved(enum.IntEnum):
    FLAG = 0x7E
    ESCAPE = 0x7D
    XON = 0x11
    XOFF = 0x13
    SUBSTITUTE = 0x18
    CANCEL = 0x1A


RESERVED_BYTES = frozenset(int(b) for b in Reserved)
FLAG = bytes([Reserved.FLAG])
CANCEL = bytes([Reserved.CANCEL])
ESCAPE_XOR = 0x20
ASH_VERSION = 0x02

# UG101 allows up to 128 data bytes; newer EZSP frames can be longer, so allow
# what bellows allows (256) and bound the parser just above that.
MAX_DATA_LEN = 256
MAX_FRAME_LEN = 1 + MAX_DATA_LEN + 2

_CONTROL_RST = 0xC0
_CONTROL_RSTACK = 0xC1
_CONTROL_ERROR = 0xC2
_CONTROL_ACK = 0x80
_CONTROL_NAK = 0xA0


def crc16(data: bytes) -> int:
    """CRC-CCITT (poly 0x1021, init 0xFFFF, no reflection) as ASH computes it."""
    return binascii.crc_hqx(bytes(data), 0xFFFF)


def _pseudo_random_sequence(length: int) -> bytes:
    out = bytearray()
    r = 0x42
    for _ in range(length):
        out.append(r)
        r = (r >> 1) if r & 1 == 0 else (r >> 1) ^ 0xB8
    return bytes(out)


_RANDOM = _pseudo_random_sequence(MAX_FRAME_LEN)


def randomise(data: bytes) -> bytes:
    """XOR data with the ASH pseudo-random sequence (42 21 a8 54 ...); its own inverse."""
    global _RANDOM
    n = len(data)
    if n > len(_RANDOM):
        _RANDOM = _pseudo_random_sequence(n)
    # one XOR of two big integers: far quicker in CPython than a loop over bytes
    return (int.from_bytes(data, "big") ^ int.from_bytes(_RANDOM[:n], "big")).to_bytes(n, "big")


def stuff(data: bytes) -> bytes:
    """Escape every reserved byte (ESCAPE, byte ^ 0x20); no FLAG is added."""
    data = bytes(data)
    if len(data.translate(None, _RESERVED_TABLE)) == len(data):
        return data                     # nothing to escape (the usual case)
    out = bytearray()
    for b in data:
        if b in RESERVED_BYTES:
            out += bytes([Reserved.ESCAPE, b ^ ESCAPE_XOR])
        else:
            out.append(b)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    """Undo stuff(); the input must hold one frame's bytes without the FLAG."""
    data = bytes(data)
    if Reserved.ESCAPE not in data and len(data.translate(None, _RESERVED_TABLE)) == len(data):
        return data
    out = bytearray()
    escaped = False
    for offset, b in enumerate(data):
        if escaped:
            b ^= ESCAPE_XOR
            if b not in RESERVED_BYTES:
                raise AshError(f"unstuff: escaped byte 0x{b ^ ESCAPE_XOR:02x} at offset {offset} "
                               "does not stand for a reserved byte")
            out.append(b)
            escaped = False
        elif b == Reserved.ESCAPE:
            escaped = True
        elif b in RESERVED_BYTES:
            raise AshError(f"unstuff: unescaped reserved byte 0x{b:02x} at offset {offset}")
        else:
            out.append(b)
    if escaped:
        raise AshError(f"unstuff: ESCAPE at offset {len(data) - 1} ends the data")
    return bytes(out)


_RESERVED_TABLE = bytes(sorted(RESERVED_BYTES))
_SPECIAL_IN_FRAME = bytes(sorted(RESERVED_BYTES - {Reserved.FLAG, Reserved.ESCAPE}))


def _with_crc(body: bytes) -> bytes:
    return body + crc16(body).to_bytes(2, "big")


def _check_3bit(what: str, value: int) -> None:
    if not 0 <= value <= 7:
        raise AshError(f"{what} must be 0-7, not {value}")


def _check_u8(what: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise AshError(f"{what} must be 0-255, not {value}")


class _Frame:
    def encode(self) -> bytes:  # pragma: no cover - every frame class overrides it
        raise NotImplementedError

    def to_wire(self, *, cancel_first: bool = False) -> bytes:
        """The frame as sent: stuffed, closed by FLAG, optionally preceded by CANCEL."""
        return (CANCEL if cancel_first else b"") + stuff(self.encode()) + FLAG


@dataclass(frozen=True)
class DataFrame(_Frame):
    frm_num: int
    re_tx: bool
    ack_num: int
    data: bytes   # the EZSP frame, in clear

    def __post_init__(self) -> None:
        _check_3bit("DATA frmNum", self.frm_num)
        _check_3bit("DATA ackNum", self.ack_num)
        if not 1 <= len(self.data) <= MAX_DATA_LEN:
            raise AshError(f"DATA data must be 1-{MAX_DATA_LEN} bytes, not {len(self.data)}")

    def encode(self) -> bytes:
        control = (self.frm_num << 4) | (int(bool(self.re_tx)) << 3) | self.ack_num
        return _with_crc(bytes([control]) + randomise(self.data))


@dataclass(frozen=True)
class AckFrame(_Frame):
    ack_num: int
    n_rdy: bool = False

    def __post_init__(self) -> None:
        _check_3bit("ACK ackNum", self.ack_num)

    def encode(self) -> bytes:
        return _with_crc(bytes([_CONTROL_ACK | (int(bool(self.n_rdy)) << 3) | self.ack_num]))


@dataclass(frozen=True)
class NakFrame(_Frame):
    ack_num: int
    n_rdy: bool = False

    def __post_init__(self) -> None:
        _check_3bit("NAK ackNum", self.ack_num)

    def encode(self) -> bytes:
        return _with_crc(bytes([_CONTROL_NAK | (int(bool(self.n_rdy)) << 3) | self.ack_num]))


@dataclass(frozen=True)
class RstFrame(_Frame):
    def encode(self) -> bytes:
        return _with_crc(bytes([_CONTROL_RST]))


@dataclass(frozen=True)
class RstAckFrame(_Frame):
    version: int = ASH_VERSION
    reset_code: int = 0

    def __post_init__(self) -> None:
        _check_u8("RSTACK version", self.version)
        _check_u8("RSTACK reset code", self.reset_code)

    def encode(self) -> bytes:
        return _with_crc(bytes([_CONTROL_RSTACK, self.version, self.reset_code]))


@dataclass(frozen=True)
class ErrorFrame(_Frame):
    version: int = ASH_VERSION
    code: int = 0

    def __post_init__(self) -> None:
        _check_u8("ERROR version", self.version)
        _check_u8("ERROR code", self.code)

    def encode(self) -> bytes:
        return _with_crc(bytes([_CONTROL_ERROR, self.version, self.code]))


Frame = DataFrame | AckFrame | NakFrame | RstFrame | RstAckFrame | ErrorFrame


def decode(data: bytes) -> Frame:
    """One unstuffed frame (control, data, CRC; no FLAG) to its frame object."""
    data = bytes(data)
    if len(data) < 3:
        raise AshError(f"frame of {len(data)} bytes is shorter than control + CRC (3)")
    if len(data) > MAX_FRAME_LEN:
        raise AshError(f"frame of {len(data)} bytes is longer than {MAX_FRAME_LEN}")
    body, crc = data[:-2], int.from_bytes(data[-2:], "big")
    if crc16(body) != crc:
        raise AshError(f"frame CRC 0x{crc:04x} at offset {len(body)} does not match 0x{crc16(body):04x}")
    control, payload = body[0], body[1:]

    def expect(name: str, size: int) -> None:
        if len(payload) != size:
            raise AshError(f"{name} frame has {len(payload)} data bytes, expected {size}")

    if control & 0x80 == 0:
        if not payload:
            raise AshError("DATA frame has no data")
        return DataFrame(control >> 4 & 7, bool(control & 0x08), control & 7, randomise(payload))
    if control & 0xE0 in (_CONTROL_ACK, _CONTROL_NAK):
        name = "ACK" if control & 0xE0 == _CONTROL_ACK else "NAK"
        if control & 0x10:
            raise AshError(f"{name} control byte 0x{control:02x} has its reserved bit 4 set")
        expect(name, 0)
        cls = AckFrame if name == "ACK" else NakFrame
        return cls(control & 7, bool(control & 0x08))
    if control == _CONTROL_RST:
        expect("RST", 0)
        return RstFrame()
    if control == _CONTROL_RSTACK:
        expect("RSTACK", 2)
        return RstAckFrame(payload[0], payload[1])
    if control == _CONTROL_ERROR:
        expect("ERROR", 2)
        return ErrorFrame(payload[0], payload[1])
    raise AshError(f"unknown control byte 0x{control:02x} at offset 0")


@dataclass(frozen=True)
class BadFrame:
    """Marker from AshParser: a frame was received but lost.

    raw holds the unstuffed bytes that arrived (possibly partial), reason says why.
    A link layer NAKs on it when it is in a position to (UG101: a DATA frame with a
    bad CRC, or any lost frame when it expects one)."""

    raw: bytes
    reason: str

    @property
    def looks_like_data(self) -> bool:
        """True when the control byte (if any arrived) is a DATA frame's."""
        return bool(self.raw) and self.raw[0] & 0x80 == 0


class AshParser:
    """Stream parser: feed() any bytes, get back frames and BadFrame markers in order.

    Never raises on input; holds at most MAX_FRAME_LEN bytes of a frame in progress
    (a longer one is dropped up to the next FLAG and reported as a BadFrame).
    Counters: frames (good frames), bad_frames (BadFrame markers), cancelled
    (frames dropped by a CANCEL byte, which is not an error)."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._escaped = False
        self._lost: str | None = None   # why the frame in progress is lost; None: it is fine
        self.frames = 0
        self.bad_frames = 0
        self.cancelled = 0

    def reset(self) -> None:
        """Forget the frame in progress (the counters stay)."""
        self._buf.clear()
        self._escaped = False
        self._lost = None

    def feed(self, data: bytes) -> list[Frame | BadFrame]:
        data = bytes(data)
        out: list[Frame | BadFrame] = []
        # Fast path: whole frames with nothing but escapes in them (what a healthy
        # line carries), taken a frame at a time; anything else byte by byte.
        while not self._buf and not self._escaped and self._lost is None:
            end = data.find(FLAG)
            if end < 0:
                break
            segment = data[:end]
            if len(segment.translate(None, _SPECIAL_IN_FRAME)) != len(segment) or len(segment) > 2 * MAX_FRAME_LEN:
                break
            try:
                raw = unstuff(segment)
            except AshError:
                break
            if len(raw) > MAX_FRAME_LEN:
                break
            data = data[end + 1:]
            if not raw:
                continue
            try:
                frame = decode(raw)
            except AshError as e:
                self.bad_frames += 1
                out.append(BadFrame(raw, str(e)))
            else:
                self.frames += 1
                out.append(frame)
        for b in data:
            if b == Reserved.FLAG:
                item = self._end_frame()
                if item is not None:
                    out.append(item)
            elif b == Reserved.CANCEL:
                if self._buf or self._lost:
                    self.cancelled += 1
                self.reset()
            elif b in (Reserved.XON, Reserved.XOFF):
                continue
            elif b == Reserved.SUBSTITUTE:
                self._lose("SUBSTITUTE byte (UART error)")
            elif self._lost is not None:
                continue
            elif self._escaped:
                self._escaped = False
                if b ^ ESCAPE_XOR not in RESERVED_BYTES:
                    self._lose(f"escaped byte 0x{b:02x} does not stand for a reserved byte")
                else:
                    self._append(b ^ ESCAPE_XOR)
            elif b == Reserved.ESCAPE:
                self._escaped = True
            else:
                self._append(b)
        return out

    def _append(self, b: int) -> None:
        if len(self._buf) >= MAX_FRAME_LEN:
            self._lose(f"frame longer than {MAX_FRAME_LEN} bytes")
        else:
            self._buf.append(b)

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
        self._escaped = False

    def _end_frame(self) -> Frame | BadFrame | None:
        raw, lost, escaped = bytes(self._buf), self._lost, self._escaped
        self.reset()
        if lost is None and escaped:
            lost = "ESCAPE directly before FLAG"
        if lost is None and not raw:
            return None  # back-to-back FLAGs are allowed and mean nothing
        if lost is None:
            try:
                frame = decode(raw)
            except AshError as e:
                lost = str(e)
            else:
                self.frames += 1
                return frame
        self.bad_frames += 1
        return BadFrame(raw, lost)
