"""decode and encode: each frame to its fast path, or to the reference codec.

decode picks a payload decoder from a table indexed by frame type, direction
and command id, reading the header inline (a plain header only: reserved
bits, frame types 2-3 and manufacturer codes go to the reference codec);
encode picks the struct encoder by the command's class, else the compiled
layout. Whatever a fast path declines, the reference codec decodes or encodes,
or refuses with the field and offset at fault.
"""
from __future__ import annotations

from bridge_emu.codec.zcl.fast import (
    _compiled_decoder,
    _compiled_encode,
    _fast_block_request,
    _fast_block_response,
    _fast_encode_block_abort,
    _fast_encode_block_request,
    _fast_encode_block_response,
    _fast_encode_block_wait,
)
from bridge_emu.codec.zcl.foundation import (
    FC_DIRECTION,
    FC_DISABLE_DEFAULT_RESPONSE,
    GLOBAL_COMMANDS,
    HEADER_SIZE,
    Direction,
    Frame,
    FrameType,
    ZclError,
    ZclHeader,
)
from bridge_emu.codec.zcl.ota import (
    CLUSTER_COMMANDS,
    ImageBlockAbort,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    OtaCommand,
)
from bridge_emu.codec.zcl.reference import _as_bytes, _decode_reference, _encode_reference

_new = object.__new__
_set = object.__setattr__
_FRAME_TYPES = (FrameType.GLOBAL, FrameType.CLUSTER)
_DIRECTIONS = (Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT)

# [frame_type | direction << 1][command_id] -> payload decoder (None: reference path)
_DECODERS: list[list] = [[None] * 256 for _ in range(4)]
for (_d, _id), _cls in CLUSTER_COMMANDS.items():
    _DECODERS[FrameType.CLUSTER | _d << 1][_id] = _compiled_decoder(_cls)
for _id, _cls in GLOBAL_COMMANDS.items():
    _DECODERS[FrameType.GLOBAL][_id] = _DECODERS[FrameType.GLOBAL | 2][_id] = \
        _compiled_decoder(_cls)
_DECODERS[FrameType.CLUSTER | Direction.CLIENT_TO_SERVER << 1][OtaCommand.IMAGE_BLOCK_REQUEST] = \
    _fast_block_request
_DECODERS[FrameType.CLUSTER | Direction.SERVER_TO_CLIENT << 1][OtaCommand.IMAGE_BLOCK_RESPONSE] = \
    _fast_block_response


def decode(data: bytes, direction: Direction | int | None) -> Frame:
    """A ZCL frame of the OTA cluster from its bytes.

    direction: the way the frame is expected to travel (a client decodes
    SERVER_TO_CLIENT frames, a server CLIENT_TO_SERVER ones; global commands
    too); None to take the header's bit as it is. Raises ZclError for anything
    malformed, unexpected or unknown (see bridge_emu.codec.zcl), with the offset.
    """
    if data.__class__ is not bytes:
        data = _as_bytes(data)
    if len(data) >= HEADER_SIZE:
        fc = data[0]
        if not fc & 0xE6:      # reserved bits, frame types 2-3, manufacturer code: reference
            d = (fc >> 3) & 1
            if direction is None or direction == d:
                fn = _DECODERS[(fc & 1) | d << 1][data[2]]
                if fn is not None:
                    cmd = fn(data, HEADER_SIZE)
                    if cmd is not None:
                        header = _new(ZclHeader)
                        _set(header, "__dict__", {
                            "frame_type": _FRAME_TYPES[fc & 1], "direction": _DIRECTIONS[d],
                            "tsn": data[1], "command_id": data[2], "manufacturer": None,
                            "disable_default_response": (fc & FC_DISABLE_DEFAULT_RESPONSE) != 0})
                        frame = _new(Frame)
                        _set(frame, "__dict__", {"header": header, "command": cmd})
                        return frame
    return _decode_reference(data, direction)


_FAST_ENCODERS = {
    ImageBlockRequest: (_fast_encode_block_request, FrameType.CLUSTER),
    ImageBlockResponse: (_fast_encode_block_response, FrameType.CLUSTER | FC_DIRECTION),
    ImageBlockWait: (_fast_encode_block_wait, FrameType.CLUSTER | FC_DIRECTION),
    ImageBlockAbort: (_fast_encode_block_abort, FrameType.CLUSTER | FC_DIRECTION),
}


def encode(frame: Frame) -> bytes:
    """The bytes of a frame. Raises ZclError (kind "encode") for values that do
    not fit, optional fields that disagree with a status, or a header that
    disagrees with its command; TypeError if frame is not a Frame."""
    try:
        h = frame.header
        cmd = frame.command
        fast = _FAST_ENCODERS.get(cmd.__class__)
        if fast is not None:
            fn, fc = fast
            if (h.__class__ is ZclHeader and h.frame_type == FrameType.CLUSTER
                    and h.command_id == cmd.COMMAND_ID and h.manufacturer is None
                    and h.direction == cmd.DIRECTION):
                ddr = h.disable_default_response
                if ddr is True:
                    fc |= FC_DISABLE_DEFAULT_RESPONSE
                elif ddr is not False:
                    fc = None
                if fc is not None:
                    out = fn(cmd, fc, h.tsn)
                    if out is not None:
                        return out
        else:
            return _compiled_encode(frame)
    except ZclError:
        raise
    except Exception:   # out of range, wrong types: the reference codec says what is wrong
        pass
    return _encode_reference(frame)
