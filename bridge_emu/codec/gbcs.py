"""GBCS messages between the Communications Hub and a bridge: device alerts,
the CS06 Activate Firmware command and its response.

Real GBCS messages travel inside the HAN tunnel with GBCS security
(signatures, counters, encryption), which the emulator does not reproduce.
They travel here on a project-defined manufacturer-specific cluster (0xFC01)
with this framing, little-endian:

    kind u8 (1 alert, 2 command, 3 response, 4 alert acknowledgement) | sequence u8 | body

    alert:    code u16 | timestamp u32 (ZigBee UTC) | length u8 | data
    command:  message code u16 (0x0012 Activate Firmware) | originator counter u64
              | manufacturer image hash [32] | execution time u32 (0 = now)
    response: originator counter u64 | outcome u8 | running version u32
    ack:      code u16 | timestamp u32 (of the alert acknowledged; its sequence in the head)

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
ACTIVATE_FIRMWARE = 0x0012  # CS06 message code


class Alert(enum.IntEnum):
    FIRMWARE_VERIFICATION_SUCCESSFUL = 0x8F72   # carries the calculated manufacturer image hash
    FIRMWARE_VERIFICATION_FAILED = 0x8F1C
    FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON = 0x8F1B
    FIRMWARE_VERSION_CHANGED = 0x8F43           # carries the new running version
    FUTURE_DATED_OUTCOME = 0x00CA               # carries the outcome of a future-dated activation


class Outcome(enum.IntEnum):
    SUCCESS = 0
    NO_IMAGE_HELD = 1
    HASH_MISMATCH = 2
    ACTIVATION_FAILURE = 3
    ACCEPTED = 0xFF  # future-dated: accepted now, the outcome comes later in alert 0x00CA


class GbcsError(BridgeEmuError):
    """A GBCS message that cannot be decoded."""


_KIND_ALERT, _KIND_COMMAND, _KIND_RESPONSE, _KIND_ACK = 1, 2, 3, 4
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
        return _HEAD.build({"kind": _KIND_COMMAND, "sequence": msg.sequence}) + _COMMAND.build(
            {"message_code": msg.message_code, "originator_counter": msg.originator_counter,
             "image_hash": msg.image_hash, "execution_time": msg.execution_time})
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
            if len(body) != _COMMAND.sizeof():
                raise GbcsError(f"command: {len(body)} body bytes, expected {_COMMAND.sizeof()}")
            c = _COMMAND.parse(body)
            return ActivateFirmware(c.originator_counter, bytes(c.image_hash), c.execution_time,
                                    head.sequence, c.message_code)
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
