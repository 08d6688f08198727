"""The reference codec: decode and encode by the construct layouts alone.

This is the definition the fast paths must agree with (tests/codec/test_zcl.py
checks it with hypothesis, byte for byte and error for error), and the path
every frame the fast paths decline takes: it is slow, but when a frame does not
fit it names the field and finds its offset, by walking the layout one field
at a time (`_explain`).
"""
from __future__ import annotations

import struct

from construct import (
    ConstError,
    ConstructError,
    GreedyRange,
    Renamed,
    Struct,
    Tell,
    TerminatedError,
    ValidationError,
)

from bridge_emu.codec.zcl.foundation import (
    GLOBAL_COMMANDS,
    HEADER_SIZE,
    ZCL_HEADER,
    Direction,
    Frame,
    FrameType,
    Status,
    ZclError,
    ZclHeader,
    _Command,
    _encode_error,
)
from bridge_emu.codec.zcl.ota import CLUSTER_COMMANDS


def _tell_before(subcons, index: int, payload: bytes) -> int:
    return Struct(*subcons[:index], "_at" / Tell).parse(payload)._at


def _explain(layout: Struct, payload: bytes, base: int, what: str) -> tuple[int, str]:
    """Where and why the layout cannot read payload: walks its fields in order
    and names the first that fails (an element of a GreedyRange followed by
    Terminated is located inside the element). Offsets are base + payload offset."""
    subs = layout.subcons
    for i, sc in enumerate(subs):
        try:
            Struct(*subs[:i + 1]).parse(payload)
        except ConstructError as e:
            at = _tell_before(subs, i, payload)
            detail = str(e).split("\n", 1)[-1]
            if isinstance(e, TerminatedError):
                prev = subs[i - 1] if i else None
                n = len(payload) - at
                if prev is not None and isinstance(_unrenamed(prev), GreedyRange):
                    count = len(Struct(*subs[:i]).parse(payload)[prev.name])
                    element = _unrenamed(prev).subcon
                    name = f"{what}.{prev.name}[{count}]"
                    if isinstance(element, Struct):
                        return _explain(element, payload[at:], base + at, name)
                    return base + at, (f"{name}: {n} byte{'s' if n != 1 else ''} left, "
                                       f"an element takes {element.sizeof()}")
                return base + at, f"{what}: {n} byte{'s' if n != 1 else ''} after the last field"
            explained = isinstance(e, (ValidationError, ConstError)) and sc.docs
            hint = f" ({sc.docs})" if explained else ""
            field = sc.name
            if (e.path or "").startswith("(parsing) -> "):     # the field inside, if any
                parts = e.path.split(" -> ")[1:]
                field = ".".join(p for j, p in enumerate(parts) if not j or p != parts[j - 1])
            return base + at, f"{what}.{field}: {detail}{hint}"
    return base + len(payload), f"{what}: cannot be read"   # not reached: the layout parsed


def _unrenamed(sc):
    while isinstance(sc, Renamed):
        sc = sc.subcon
    return sc


def _parse(layout: Struct, payload: bytes, base: int, what: str, **err):
    try:
        return layout.parse(payload)
    except ConstructError:
        offset, reason = _explain(layout, payload, base, what)
        raise ZclError(offset, reason, **err) from None


def _as_bytes(data) -> bytes:
    return data if type(data) is bytes else bytes(memoryview(data))


def _decode_reference(data: bytes, direction) -> Frame:
    """decode by the construct layouts alone: the definition decode must agree with."""
    data = _as_bytes(data)
    want = None if direction is None else Direction(direction)
    h = _parse(ZCL_HEADER, data, 0, "ZCL header", kind="header")
    fc = h.frame_control
    header = ZclHeader(FrameType(fc.frame_type), Direction(fc.direction), h.tsn, h.command_id,
                       h.manufacturer, fc.disable_default_response)
    pos = HEADER_SIZE + (2 if fc.manufacturer_specific else 0)
    if want is not None and header.direction != want:
        raise ZclError(0, f"direction bit says {header.direction.name}, expected {want.name}",
                       "direction", header=header)
    manuf = header.manufacturer is not None
    cmd_at = pos - 1
    if header.frame_type == FrameType.CLUSTER:
        cls = None if manuf else CLUSTER_COMMANDS.get((header.direction, header.command_id))
        if cls is None:
            kind = "manufacturer-specific " if manuf else ""
            raise ZclError(cmd_at, f"{kind}cluster command {header.command_id:#04x} "
                                   f"({header.direction.name}) is not an OTA cluster command",
                           "unsupported", header=header,
                           status=(Status.UNSUP_MANUF_CLUSTER_COMMAND if manuf
                                   else Status.UNSUP_CLUSTER_COMMAND))
    else:
        cls = GLOBAL_COMMANDS.get(header.command_id)
        if cls is None:
            raise ZclError(cmd_at, f"global command {header.command_id:#04x} is not supported",
                           "unsupported", header=header,
                           status=(Status.UNSUP_MANUF_GENERAL_COMMAND if manuf
                                   else Status.UNSUP_GENERAL_COMMAND))
    parsed = _parse(cls.LAYOUT, data[pos:], pos, cls.__name__.removeprefix("_"), header=header,
                    status=Status.MALFORMED_COMMAND)
    return Frame(header, cls._from_parsed(parsed))


def _build(layout: Struct, values: dict, what: str) -> bytes:
    try:
        return layout.build(values)
    except (ConstructError, TypeError, ValueError, OverflowError, struct.error) as e:
        detail = str(e).replace("Error in path (building) -> ", "").replace("\n", ": ")
        raise _encode_error(f"{what}: {detail}") from None


def _check_frame(frame) -> tuple[ZclHeader, _Command]:
    if not isinstance(frame, Frame):
        raise TypeError(f"encode takes a Frame, not {type(frame).__name__}")
    h, cmd = frame.header, frame.command
    if not isinstance(h, ZclHeader):
        raise _encode_error(f"header {h!r} is not a ZclHeader")
    if not isinstance(h.disable_default_response, bool):
        raise _encode_error(f"disable_default_response {h.disable_default_response!r} "
                            "is not a bool")
    if not isinstance(cmd, _Command) or not hasattr(cmd, "__dataclass_fields__"):
        raise _encode_error(f"command {cmd!r} is not an OTA cluster or global command")
    name = type(cmd).__name__
    if h.frame_type not in (FrameType.GLOBAL, FrameType.CLUSTER):
        raise _encode_error(f"frame type {h.frame_type!r} is reserved")
    if h.frame_type != cmd.FRAME_TYPE:
        raise _encode_error(f"{name} is a {cmd.FRAME_TYPE.name.lower()} command; the header "
                            f"says frame type {h.frame_type!r}")
    if h.command_id != cmd.COMMAND_ID:
        raise _encode_error(f"{name} is command {cmd.COMMAND_ID:#04x}; the header says "
                            f"{h.command_id!r}")
    if h.direction not in (0, 1):
        raise _encode_error(f"direction {h.direction!r} is neither 0 nor 1")
    if cmd.DIRECTION is not None:
        if h.direction != cmd.DIRECTION:
            raise _encode_error(f"{name} travels {cmd.DIRECTION.name}; the header says "
                                f"{Direction(h.direction).name}")
        if h.manufacturer is not None:
            raise _encode_error(f"{name} with a manufacturer code would be a manufacturer's "
                                "own command, not the OTA cluster's")
    return h, cmd


def _encode_reference(frame: Frame) -> bytes:
    """encode by the construct layouts alone: the definition encode must agree with."""
    h, cmd = _check_frame(frame)
    head = _build(ZCL_HEADER, dict(
        frame_control=dict(reserved=0, disable_default_response=h.disable_default_response,
                           direction=int(h.direction), frame_type=int(h.frame_type),
                           manufacturer_specific=h.manufacturer is not None),
        manufacturer=h.manufacturer, tsn=h.tsn, command_id=h.command_id), "ZCL header")
    return head + _build(cmd.LAYOUT, cmd._values(), type(cmd).__name__)
