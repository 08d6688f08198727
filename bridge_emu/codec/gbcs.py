"""GBCS messages between the Communications Hub and a bridge: device alerts,
the CS06 Activate Firmware command and its response.

Real GBCS messages travel inside the HAN tunnel with GBCS security. The
emulator keeps the part that decides who may change firmware: CS06 is signed
by the authorising party (ECDSA P-256 over SHA-256, raw r||s, of the target
device's id u64 followed by the command body) and carries an originator
counter the bridge accepts only above the last (see bridge_emu.emulator.bridge).
Encryption and the HAN tunnel are not reproduced. Messages travel here on a
project-defined manufacturer-specific cluster (0xFC01) with this framing,
little-endian:

    kind u8 (1 alert, 2 command, 3 response, 4 alert acknowledgement) | sequence u8 | body

    alert:    code u16 | timestamp u32 (ZigBee UTC) | length u8 | data
    command:  message code u16 (0x0012 Activate Firmware) | originator counter u64
              | manufacturer image hash [32] | execution time u32 (0 = now)
              | signature [64] (absent: an unsigned command, which a bridge refuses)
    response: originator counter u64 | outcome u8 | running version u32
    ack:      code u16 | timestamp u32 (of the alert acknowledged; its sequence in the head)
    fragment: (kind 5) index u8 | count u8 | up to 64 bytes of a message longer than
              one frame (a signed CS06: 112 bytes over an APS payload of 82); its
              sequence in the head is the message's

A real HAN carries alerts with delivery acknowledgements below GBCS; here the
hub acknowledges each alert it receives with an ack, and the bridge sends an
alert again (bridge_emu.retry) until it is acknowledged.

What the messages mean follows GBCS: alert codes and CS06 outcomes as in
docs/gbcs-firmware.md.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from construct import Bytes, ConstructError, GreedyBytes, Int8ul, Int16ul, Int32ul, Int64ul, Prefixed, Struct

from bridge_emu.errors import BridgeEmuError

GBCS_CLUSTER = 0xFC01
SIGNATURE_LEN = 64
ACTIVATE_FIRMWARE = 0x0012  # CS06 message code


class Alert(enum.IntEnum):
    FIRMWARE_VERIFICATION_SUCCESSFUL = 0x8F72   # carries the calculated manufacturer image hash
    FIRMWARE_VERIFICATION_FAILED = 0x8F1C
    FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON = 0x8F1B
    FIRMWARE_VERSION_CHANGED = 0x8F43           # carries the new running version
    FUTURE_DATED_OUTCOME = 0x00CA               # carries the outcome of a future-dated activation
    # A command refused (unsigned, bad signature, replayed or old counter): GBCS
    # discards it and raises Failed Authentication or Integrity Check. Carries
    # the command's originator counter u64 and a Refusal code u8.
    AUTHENTICATION_FAILED = 0x8F84


class Refusal(enum.IntEnum):
    UNSIGNED = 1
    BAD_SIGNATURE = 2
    STALE_COUNTER = 3


class Outcome(enum.IntEnum):
    SUCCESS = 0
    NO_IMAGE_HELD = 1
    HASH_MISMATCH = 2
    ACTIVATION_FAILURE = 3
    ACCEPTED = 0xFF  # future-dated: accepted now, the outcome comes later in alert 0x00CA


class GbcsError(BridgeEmuError):
    """A GBCS message that cannot be decoded."""


_KIND_ALERT, _KIND_COMMAND, _KIND_RESPONSE, _KIND_ACK, _KIND_FRAGMENT = 1, 2, 3, 4, 5
FRAME_MAX = 80          # a message longer than this travels in fragments
FRAGMENT_DATA = 64
FRAGMENT_HEAD = 4        # kind, sequence, index, count
_HEAD = Struct("kind" / Int8ul, "sequence" / Int8ul)
_ALERT = Struct("code" / Int16ul, "timestamp" / Int32ul, "data" / Prefixed(Int8ul, GreedyBytes))
_COMMAND = Struct("message_code" / Int16ul, "originator_counter" / Int64ul, "image_hash" / Bytes(32),
                  "execution_time" / Int32ul)
_RESPONSE = Struct("originator_counter" / Int64ul, "outcome" / Int8ul, "running_version" / Int32ul)
_ACK = Struct("code" / Int16ul, "timestamp" / Int32ul)


@dataclass(frozen=True)
class AlertMessage:
    code: int
    timestamp: int
    data: bytes = b""
    sequence: int = 0


@dataclass(frozen=True)
class ActivateFirmware:
    """CS06: activate the held image whose manufacturer image hash is image_hash."""

    originator_counter: int
    image_hash: bytes
    execution_time: int = 0     # ZigBee UTC seconds; 0 = immediately
    sequence: int = 0
    message_code: int = ACTIVATE_FIRMWARE
    signature: bytes = b""      # raw r||s over signed_bytes(); empty: unsigned

    def signed_bytes(self, target: int) -> bytes:
        """What the authorising party signs: the target device's id, then the
        command body (so a command for one device cannot be replayed to another)."""
        return target.to_bytes(8, "little") + self.body()

    def body(self) -> bytes:
        """The command's fields as framed, without the signature."""
        return _COMMAND.build({"message_code": self.message_code, "originator_counter": self.originator_counter,
                               "image_hash": self.image_hash, "execution_time": self.execution_time})


@dataclass(frozen=True)
class ActivateResponse:
    originator_counter: int
    outcome: int
    running_version: int
    sequence: int = 0


@dataclass(frozen=True)
class AlertAck:
    """The hub heard the alert of this code, timestamp and sequence."""
    code: int
    timestamp: int
    sequence: int = 0

    @classmethod
    def of(cls, alert: AlertMessage) -> AlertAck:
        return cls(alert.code, alert.timestamp, alert.sequence)

    def acknowledges(self, alert: AlertMessage) -> bool:
        return (self.code, self.timestamp, self.sequence) == (alert.code, alert.timestamp, alert.sequence)


Message = AlertMessage | ActivateFirmware | ActivateResponse | AlertAck


def encode(msg: Message) -> bytes:
    if isinstance(msg, AlertMessage):
        return _HEAD.build({"kind": _KIND_ALERT, "sequence": msg.sequence}) + _ALERT.build(
            {"code": msg.code, "timestamp": msg.timestamp, "data": msg.data})
    if isinstance(msg, ActivateFirmware):
        if msg.signature and len(msg.signature) != SIGNATURE_LEN:
            raise GbcsError(f"command: a signature is {SIGNATURE_LEN} bytes, not {len(msg.signature)}")
        return _HEAD.build({"kind": _KIND_COMMAND, "sequence": msg.sequence}) + msg.body() + msg.signature
    if isinstance(msg, ActivateResponse):
        return _HEAD.build({"kind": _KIND_RESPONSE, "sequence": msg.sequence}) + _RESPONSE.build(
            {"originator_counter": msg.originator_counter, "outcome": msg.outcome,
             "running_version": msg.running_version})
    if isinstance(msg, AlertAck):
        return _HEAD.build({"kind": _KIND_ACK, "sequence": msg.sequence}) + _ACK.build(
            {"code": msg.code, "timestamp": msg.timestamp})
    raise GbcsError(f"not a GBCS message: {type(msg).__name__}")


def decode(data: bytes) -> Message:
    try:
        head = _HEAD.parse(data)
        body = data[_HEAD.sizeof():]
        if head.kind == _KIND_ALERT:
            a = _ALERT.parse(body)
            size = _ALERT.build(a).__len__()
            if size != len(body):
                raise GbcsError(f"alert: {len(body) - size} trailing bytes at offset {2 + size}")
            return AlertMessage(a.code, a.timestamp, bytes(a.data), head.sequence)
        if head.kind == _KIND_COMMAND:
            size = _COMMAND.sizeof()
            if len(body) not in (size, size + SIGNATURE_LEN):
                raise GbcsError(f"command: {len(body)} body bytes, expected {size} (unsigned) "
                                f"or {size + SIGNATURE_LEN} (signed)")
            c = _COMMAND.parse(body)
            return ActivateFirmware(c.originator_counter, bytes(c.image_hash), c.execution_time,
                                    head.sequence, c.message_code, bytes(body[size:]))
        if head.kind == _KIND_RESPONSE:
            if len(body) != _RESPONSE.sizeof():
                raise GbcsError(f"response: {len(body)} body bytes, expected {_RESPONSE.sizeof()}")
            r = _RESPONSE.parse(body)
            return ActivateResponse(r.originator_counter, r.outcome, r.running_version, head.sequence)
        if head.kind == _KIND_ACK:
            if len(body) != _ACK.sizeof():
                raise GbcsError(f"ack: {len(body)} body bytes, expected {_ACK.sizeof()}")
            a = _ACK.parse(body)
            return AlertAck(a.code, a.timestamp, head.sequence)
    except ConstructError as e:
        raise GbcsError(f"GBCS message of {len(data)} bytes: {e}") from None
    raise GbcsError(f"unknown GBCS message kind {head.kind} at offset 0")


def frames(msg: Message) -> list[bytes]:
    """The frames that carry msg: one, or fragments when it is longer than FRAME_MAX."""
    data = encode(msg)
    if len(data) <= FRAME_MAX:
        return [data]
    parts = [data[i:i + FRAGMENT_DATA] for i in range(0, len(data), FRAGMENT_DATA)]
    return [bytes([_KIND_FRAGMENT, data[1], i, len(parts)]) + part for i, part in enumerate(parts)]


class Reassembly:
    """Puts fragmented messages back together (sans-I/O: frames in, messages out).

    Frames that are not fragments pass straight through decode(). Fragments of
    one message share its sequence; a message completes when every index has
    arrived, in any order, repeats harmless. Only the last few messages are kept
    (a lost fragment is made good by the sender's retry, which sends all again)."""

    KEEP = 4

    def __init__(self) -> None:
        self._parts: dict[tuple[int, int], dict[int, bytes]] = {}

    def receive(self, frame: bytes) -> Message | None:
        if len(frame) < 1 or frame[0] != _KIND_FRAGMENT:
            return decode(frame)
        if len(frame) <= FRAGMENT_HEAD:
            raise GbcsError(f"fragment of {len(frame)} bytes: head and data need at least {FRAGMENT_HEAD + 1}")
        seq, index, count = frame[1], frame[2], frame[3]
        if count < 2 or index >= count:
            raise GbcsError(f"fragment {index} of {count} at offset 2: not a part of a message")
        parts = self._parts.setdefault((seq, count), {})
        parts[index] = bytes(frame[FRAGMENT_HEAD:])
        while len(self._parts) > self.KEEP:
            del self._parts[next(iter(self._parts))]
        if len(parts) < count:
            return None
        del self._parts[(seq, count)]
        return decode(b"".join(parts[i] for i in range(count)))
