"""The fast paths: struct for the hot commands, compiled construct for the rest.

Image Block Request and the three forms of Image Block Response, a server's
and a client's every block, are read and written by struct, with formats
derived from the construct fields of their layouts (`_fmt`): one description
per layout. The other commands go through their layouts compiled by construct.
Both handle well-formed frames only and return None (or raise, when encoding)
for anything else, which the reference codec then decodes or refuses, saying
what is wrong and where.

The struct methods and constants are bound as module globals here, where the
functions that use them are: a global is one lookup, an attribute two.
"""
from __future__ import annotations

import struct

from construct import FormatField, IfThenElse, Prefixed, Select, Struct

from bridge_emu.codec.zcl.foundation import (
    _STATUS,
    _SUCCESS,
    FC_DIRECTION,
    FC_DISABLE_DEFAULT_RESPONSE,
    HEADER_SIZE,
    OCTET_STRING_INVALID,
    ZCL_HEADER,
    Frame,
    FrameType,
    Status,
)
from bridge_emu.codec.zcl.ota import (
    BLOCK_FC_MIN_BLOCK_PERIOD,
    BLOCK_FC_NODE_ADDR,
    IMAGE_BLOCK_REQUEST,
    IMAGE_BLOCK_RESPONSE,
    ImageBlockAbort,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    OtaCommand,
)
from bridge_emu.codec.zcl.reference import _check_frame, _encode_reference


def _format_field(sc) -> FormatField:
    """The fixed-size integer a (wrapped) construct field reads."""
    while not isinstance(sc, FormatField):
        if isinstance(sc, Prefixed):
            sc = sc.lengthfield
        elif isinstance(sc, Select):        # Optional(x) is Select(x, Pass)
            sc = sc.subcons[0]
        elif isinstance(sc, IfThenElse):    # If(c, x) is IfThenElse(c, x, Pass)
            sc = sc.thensubcon
        elif hasattr(sc, "subcon"):         # Renamed, ExprValidator
            sc = sc.subcon
        else:
            raise TypeError(f"no struct format for {sc!r}")
    return sc


def _fmt(layout: Struct, *names: str) -> str:
    """struct format characters of the named fields of a layout, in the order
    given (an octet string gives its length byte): the fast paths read the
    construct definitions through this, so there is one description per layout."""
    by_name = {sc.name: sc for sc in layout.subcons}
    return "".join(_format_field(by_name[n]).fmtstr[1:] for n in names)


_HEADER_FMT = "B" + _fmt(ZCL_HEADER, "tsn", "command_id")     # frame_control is one byte
assert ZCL_HEADER.subcons[0].sizeof() == 1
_HEADER = struct.Struct("<" + _HEADER_FMT)
_HEADER_MANUF = struct.Struct("<B" + _fmt(ZCL_HEADER, "manufacturer", "tsn", "command_id"))
assert _HEADER.size == HEADER_SIZE

_BLOCK_REQ_FIXED = ("field_control", "manufacturer", "image_type", "file_version",
                    "file_offset", "max_data_size")
_BRQ = struct.Struct("<" + _fmt(IMAGE_BLOCK_REQUEST, *_BLOCK_REQ_FIXED))
_BRQ_FRAME = struct.Struct("<" + _HEADER_FMT + _fmt(IMAGE_BLOCK_REQUEST, *_BLOCK_REQ_FIXED))
_BRQ_ADDR = struct.Struct("<" + _fmt(IMAGE_BLOCK_REQUEST, "request_node_addr"))
_BRQ_PERIOD = struct.Struct("<" + _fmt(IMAGE_BLOCK_REQUEST, "minimum_block_period"))
_BRQ_BOTH = struct.Struct("<" + _fmt(IMAGE_BLOCK_REQUEST, "request_node_addr",
                                     "minimum_block_period"))

_BLOCK_RSP_SUCCESS = ("status", "manufacturer", "image_type", "file_version", "file_offset", "data")
_BLOCK_RSP_WAIT = ("status", "current_time", "request_time", "minimum_block_period")
_BRS = struct.Struct("<" + _fmt(IMAGE_BLOCK_RESPONSE, *_BLOCK_RSP_SUCCESS[1:]))
_BRS_FRAME = struct.Struct("<" + _HEADER_FMT + _fmt(IMAGE_BLOCK_RESPONSE, *_BLOCK_RSP_SUCCESS))
_BRW = struct.Struct("<" + _fmt(IMAGE_BLOCK_RESPONSE, *_BLOCK_RSP_WAIT[1:]))
_BRW_FRAME = struct.Struct("<" + _HEADER_FMT + _fmt(IMAGE_BLOCK_RESPONSE, *_BLOCK_RSP_WAIT))
_BRA_FRAME = struct.Struct("<" + _HEADER_FMT + _fmt(IMAGE_BLOCK_RESPONSE, "status"))

# ------------------------------------------------------------- decoding

_new = object.__new__
_set = object.__setattr__
_brq_unpack = _BRQ.unpack_from
_brs_unpack = _BRS.unpack_from
_brw_unpack = _BRW.unpack_from
_BRQ_END = _BRQ.size
_BRS_END = 1 + _BRS.size
_BRW_END = 1 + _BRW.size


# Frozen dataclasses are built below by setting __dict__ in one go (their
# __init__ sets each field through object.__setattr__, twice as slow); none of
# these classes has a __post_init__ to skip.

def _fast_block_request(data: bytes, pos: int):
    if len(data) - pos < _BRQ_END:
        return None
    fc, m, it, fv, off, mds = _brq_unpack(data, pos)
    p = pos + _BRQ_END
    rest = len(data) - p
    addr = period = None
    missing = False
    if fc:
        if fc & 0xFC:
            return None
        if fc & BLOCK_FC_NODE_ADDR:
            if rest < _BRQ_ADDR.size:
                return None
            addr = _BRQ_ADDR.unpack_from(data, p)[0]
            p += _BRQ_ADDR.size
            rest -= _BRQ_ADDR.size
        if fc & BLOCK_FC_MIN_BLOCK_PERIOD:
            if rest == _BRQ_PERIOD.size:
                period = _BRQ_PERIOD.unpack_from(data, p)[0]
                rest = 0
            else:
                missing = True
    if rest:
        return None
    cmd = _new(ImageBlockRequest)
    _set(cmd, "__dict__", {"manufacturer": m, "image_type": it, "file_version": fv,
                           "file_offset": off, "max_data_size": mds, "request_node_addr": addr,
                           "minimum_block_period": period, "period_missing": missing})
    return cmd


def _fast_block_response(data: bytes, pos: int):
    n = len(data) - pos
    if n <= 0:
        return None
    status = data[pos]
    if status == 0:
        if n < _BRS_END:
            return None
        m, it, fv, off, size = _brs_unpack(data, pos + 1)
        if n - _BRS_END != size or size == OCTET_STRING_INVALID:
            return None
        cmd = _new(ImageBlockResponse)
        _set(cmd, "__dict__", {"manufacturer": m, "image_type": it, "file_version": fv,
                               "file_offset": off, "data": data[pos + _BRS_END:]})
        return cmd
    if status == Status.WAIT_FOR_DATA:
        if n != _BRW_END:
            return None
        ct, rt, mbp = _brw_unpack(data, pos + 1)
        cmd = _new(ImageBlockWait)
        _set(cmd, "__dict__", {"current_time": ct, "request_time": rt,
                               "minimum_block_period": mbp})
        return cmd
    if n != 1:
        return None
    cmd = _new(ImageBlockAbort)
    _set(cmd, "__dict__", {"status": _STATUS.get(status, status)})
    return cmd


# ------------------------------------------------------------- encoding

_brq_frame = _BRQ_FRAME.pack
_brs_frame = _BRS_FRAME.pack
_brw_frame = _BRW_FRAME.pack
_bra_frame = _BRA_FRAME.pack
_brq_addr = _BRQ_ADDR.pack
_brq_period = _BRQ_PERIOD.pack
_brq_both = _BRQ_BOTH.pack


def _fast_encode_block_request(cmd: ImageBlockRequest, fc: int, tsn: int) -> bytes | None:
    addr = cmd.request_node_addr
    period = cmd.minimum_block_period
    missing = cmd.period_missing
    if missing is not False:
        return None             # rare: the reference codec writes it (or says what is wrong)
    if addr is None:
        if period is None:
            return _brq_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_REQUEST, 0, cmd.manufacturer,
                              cmd.image_type, cmd.file_version, cmd.file_offset,
                              cmd.max_data_size)
        return _brq_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_REQUEST, BLOCK_FC_MIN_BLOCK_PERIOD,
                          cmd.manufacturer, cmd.image_type, cmd.file_version, cmd.file_offset,
                          cmd.max_data_size) + _brq_period(period)
    head = _brq_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_REQUEST,
                      BLOCK_FC_NODE_ADDR if period is None else
                      BLOCK_FC_NODE_ADDR | BLOCK_FC_MIN_BLOCK_PERIOD,
                      cmd.manufacturer, cmd.image_type, cmd.file_version, cmd.file_offset,
                      cmd.max_data_size)
    return head + (_brq_addr(addr) if period is None else _brq_both(addr, period))


def _fast_encode_block_response(cmd: ImageBlockResponse, fc: int, tsn: int) -> bytes | None:
    data = cmd.data
    if data.__class__ is not bytes or len(data) >= OCTET_STRING_INVALID:
        return None
    return _brs_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_RESPONSE, 0, cmd.manufacturer,
                      cmd.image_type, cmd.file_version, cmd.file_offset, len(data)) + data


_BLOCK_RESPONSE_FC = (FrameType.CLUSTER | FC_DIRECTION, FrameType.CLUSTER | FC_DIRECTION | FC_DISABLE_DEFAULT_RESPONSE)


def encode_image_block_response(tsn: int, manufacturer: int, image_type: int, file_version: int,
                                file_offset: int, data: bytes, *, disable_default_response: bool = True) -> bytes:
    """Byte for byte encode(Frame.of(ImageBlockResponse(manufacturer, image_type,
    file_version, file_offset, data), tsn, disable_default_response=...)), without
    building the objects: what a server sends for every block. Raises the same
    ZclError as encode for values that do not fit."""
    if data.__class__ is bytes and len(data) < OCTET_STRING_INVALID:
        try:
            return _brs_frame(_BLOCK_RESPONSE_FC[disable_default_response is True], tsn,
                              OtaCommand.IMAGE_BLOCK_RESPONSE, _SUCCESS, manufacturer, image_type, file_version,
                              file_offset, len(data)) + data
        except struct.error:
            pass    # out of range: the reference path names the field
    # where encode ends up too: its fast path declines these same frames
    return _encode_reference(Frame.of(ImageBlockResponse(manufacturer, image_type, file_version, file_offset,
                                                         data), tsn, disable_default_response=disable_default_response))


def _fast_encode_block_wait(cmd: ImageBlockWait, fc: int, tsn: int) -> bytes:
    return _brw_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_RESPONSE, Status.WAIT_FOR_DATA,
                      cmd.current_time, cmd.request_time, cmd.minimum_block_period)


def _fast_encode_block_abort(cmd: ImageBlockAbort, fc: int, tsn: int) -> bytes | None:
    status = cmd.status
    if status == Status.SUCCESS or status == Status.WAIT_FOR_DATA:
        return None
    return _bra_frame(fc, tsn, OtaCommand.IMAGE_BLOCK_RESPONSE, status)


# ------------------------------------------------------ compiled layouts

_compiled_layouts: dict[int, object] = {}


def _compiled(layout: Struct):
    c = _compiled_layouts.get(id(layout))
    if c is None:
        c = _compiled_layouts[id(layout)] = layout.compile()
    return c


def _compiled_decoder(cls):
    def decode_payload(data: bytes, pos: int):
        try:
            parsed = _compiled(cls.LAYOUT).parse(data[pos:])
        except Exception:           # compiled parsers raise struct.error too: the
            return None             # reference codec says what is wrong, and where
        return cls._from_parsed(parsed)
    return decode_payload


def _compiled_encode(frame: Frame) -> bytes:
    h, cmd = _check_frame(frame)
    fc = h.frame_control
    if h.manufacturer is None:
        head = _HEADER.pack(fc, h.tsn, h.command_id)
    else:
        head = _HEADER_MANUF.pack(fc, h.manufacturer, h.tsn, h.command_id)
    return head + _compiled(cmd.LAYOUT).build(cmd._values())


# ------------------------------------------- the block exchange, without objects
#
# What a client sends and a server answers for every block of a download, read
# and written straight from and to bytes: no command, header or Frame is built.
# Each function handles the plain form only (no manufacturer code, no optional
# fields, well-formed) and returns None otherwise; callers then take the general
# path (decode/encode), which gives the same result for the plain form (the
# tests hold them to it) and names the fault for anything else.

_BRQ_FC = (FrameType.CLUSTER, FrameType.CLUSTER | FC_DISABLE_DEFAULT_RESPONSE)
_BRQ_PLAIN_SIZE = _BRQ_FRAME.size
_BRQ_PERIOD_SIZE = _BRQ_FRAME.size + _BRQ_PERIOD.size
_brq_frame_unpack = _BRQ_FRAME.unpack
_brs_frame_unpack = _BRS_FRAME.unpack_from
_BRS_HEAD = _BRS_FRAME.size
_IBRQ = int(OtaCommand.IMAGE_BLOCK_REQUEST)
_IBRS = int(OtaCommand.IMAGE_BLOCK_RESPONSE)
_BRS_FCS = frozenset(_BLOCK_RESPONSE_FC)


def encode_image_block_request(tsn: int, manufacturer: int, image_type: int, file_version: int,
                               file_offset: int, max_data_size: int,
                               minimum_block_period: int | None = None) -> bytes:
    """Byte for byte encode(Frame.of(ImageBlockRequest(manufacturer, image_type,
    file_version, file_offset, max_data_size, minimum_block_period=...), tsn)),
    without building the objects: what a client sends for every block. Raises
    the same ZclError as encode for values that do not fit."""
    try:
        if minimum_block_period is None:
            return _brq_frame(FrameType.CLUSTER, tsn, _IBRQ, 0, manufacturer, image_type,
                              file_version, file_offset, max_data_size)
        return _brq_frame(FrameType.CLUSTER, tsn, _IBRQ, BLOCK_FC_MIN_BLOCK_PERIOD, manufacturer,
                          image_type, file_version, file_offset, max_data_size) \
            + _brq_period(minimum_block_period)
    except struct.error:
        pass
    return _encode_reference(Frame.of(ImageBlockRequest(
        manufacturer, image_type, file_version, file_offset, max_data_size,
        minimum_block_period=minimum_block_period), tsn))


def read_image_block_request(data: bytes):
    """(tsn, manufacturer, image_type, file_version, file_offset, max_data_size)
    of a plain Image Block Request (frame control 0x01 or 0x11, field control 0:
    no node address, no minimum block period), else None."""
    if data.__class__ is not bytes or len(data) != _BRQ_PLAIN_SIZE:
        return None
    fc, tsn, cid, field_control, m, it, fv, off, mds = _brq_frame_unpack(data)
    if cid != _IBRQ or field_control or (fc != 0x01 and fc != 0x11):
        return None
    return tsn, m, it, fv, off, mds


def read_image_block_response(data: bytes):
    """(tsn, manufacturer, image_type, file_version, file_offset, data) of an
    Image Block Response with status SUCCESS (frame control 0x09 or 0x19), else None."""
    if data.__class__ is not bytes or len(data) < _BRS_HEAD:
        return None
    fc, tsn, cid, status, m, it, fv, off, size = _brs_frame_unpack(data)
    if cid != _IBRS or status or fc not in _BRS_FCS or len(data) - _BRS_HEAD != size \
            or size == OCTET_STRING_INVALID:
        return None
    return tsn, m, it, fv, off, data[_BRS_HEAD:]
