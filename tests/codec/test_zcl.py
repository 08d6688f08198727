"""The ZCL frame codec of the OTA cluster (bridge_emu.codec.zcl): interop with
zigpy's Ota cluster schemas for every command both ways, exact round trips,
the struct fast paths against the construct definitions, the lenient Image
Block Request, and malformed input (ZclError only, with the right offset)."""
from __future__ import annotations

import typing

import pytest
import zigpy.types as zt
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Ota

from bridge_emu import strategies as bs
from bridge_emu.codec import zcl
from bridge_emu.codec.zcl import (
    ATTRIBUTE_TYPES,
    AttributeId,
    DataType,
    DefaultResponse,
    Direction,
    Frame,
    FrameType,
    ImageBlockAbort,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    ImageNotify,
    ImagePageRequest,
    QueryDeviceSpecificFileRequest,
    QueryNextImageRequest,
    QueryNextImageResponse,
    ReadAttributeRecord,
    ReadAttributes,
    ReadAttributesResponse,
    Status,
    UpgradeEndRequest,
    UpgradeEndResponse,
    ZclError,
    ZclHeader,
    decode,
    default_response_to,
    encode,
)
from bridge_emu.errors import BridgeEmuError

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------- strategies
# bridge_emu.strategies: the ones users import (every command, zigpy-compatible values;
# the lenient block request apart)

u8, u16, u32, u64 = bs.u8, bs.u16, bs.u32, bs.u64
known_status, other_status = bs.known_status, bs.other_status
COMMANDS = bs.zcl_ota_commands()
LENIENT_BLOCK_REQUEST = bs.LENIENT_BLOCK_REQUEST
any_command = st.one_of(*COMMANDS.values(), LENIENT_BLOCK_REQUEST)
frames = bs.zcl_ota_frames
opt = bs.optional


# -------------------------------------------------------------------- zigpy

ZIGPY_NAMES = {"manufacturer": "manufacturer_code", "max_data_size": "maximum_data_size",
               "data": "image_data"}
ZIGPY_NAMES_BY_CLASS = {
    ImageNotify: {"file_version": "new_file_version"},
    QueryDeviceSpecificFileRequest: {"stack_version": "current_zigbee_stack_version"},
    DefaultResponse: {"command": "command_id"},
}
DERIVED = ("field_control", "payload_type", "status")     # properties of some of our classes


def zigpy_schema(frame: Frame):
    h = frame.header
    if h.frame_type == FrameType.GLOBAL:
        return foundation.GENERAL_COMMANDS[h.command_id].schema
    defs = Ota.server_commands if h.direction == C2S else Ota.client_commands
    return defs[h.command_id].schema


def plain(value):
    """A zigpy value as our codec holds it."""
    if isinstance(value, zt.EUI64):
        return int.from_bytes(bytes(value), "little")
    if isinstance(value, bytes):
        return bytes(value)
    return int(value)


def zigpy_value(name: str, value):
    if name == "request_node_addr":
        return zt.EUI64(value.to_bytes(8, "little"))
    return value


def zigpy_record(r: ReadAttributeRecord) -> foundation.ReadAttributeRecord:
    if r.status != Status.SUCCESS:
        return foundation.ReadAttributeRecord(r.attribute_id, r.status)
    python_type = foundation.DataType.from_type_id(r.data_type).python_type
    value = (python_type(r.value.to_bytes(8, "little")) if r.data_type == DataType.EUI64
             else python_type(r.value))
    return foundation.ReadAttributeRecord(r.attribute_id, r.status,
                                          foundation.TypeValue(r.data_type, value))


def record_of_zigpy(r: foundation.ReadAttributeRecord) -> ReadAttributeRecord:
    if r.value is None:
        return ReadAttributeRecord(r.attrid, r.status)
    return ReadAttributeRecord(r.attrid, r.status, int(r.value.type), plain(r.value.value))


def zigpy_kwargs(cmd) -> dict:
    """Our command as keyword arguments for its zigpy schema."""
    if isinstance(cmd, ReadAttributes):
        return {"attribute_ids": [zt.uint16_t(a) for a in cmd.attribute_ids]}
    if isinstance(cmd, ReadAttributesResponse):
        return {"status_records": [zigpy_record(r) for r in cmd.records]}
    names = dict(ZIGPY_NAMES, **ZIGPY_NAMES_BY_CLASS.get(type(cmd), {}))
    out = {}
    for name in [f for f in cmd.__dataclass_fields__ if f != "period_missing"] + list(DERIVED):
        value = getattr(cmd, name, None)
        if value is not None:
            out[names.get(name, name)] = zigpy_value(name, value)
    return out


def ours_as_zigpy_plain(cmd) -> dict:
    return {k: plain(v) for k, v in zigpy_kwargs(cmd).items()
            if k not in ("attribute_ids", "status_records")}


def zigpy_header(h: ZclHeader) -> foundation.ZCLHeader:
    fc = foundation.FrameControl(
        frame_type=foundation.FrameType(int(h.frame_type)),
        is_manufacturer_specific=int(h.manufacturer is not None),
        direction=foundation.Direction(int(h.direction)),
        disable_default_response=int(h.disable_default_response), reserved=0)
    return foundation.ZCLHeader(frame_control=fc, manufacturer=h.manufacturer, tsn=h.tsn,
                                command_id=h.command_id)


def check_zigpy_reads(frame: Frame, data: bytes) -> None:
    """zigpy decodes our bytes to the same header and field values."""
    zh, rest = foundation.ZCLHeader.deserialize(data)
    h = frame.header
    assert (int(zh.frame_control.frame_type), int(zh.direction), zh.tsn, zh.command_id) == \
        (h.frame_type, h.direction, h.tsn, h.command_id)
    assert bool(zh.frame_control.disable_default_response) == h.disable_default_response
    assert zh.manufacturer == h.manufacturer
    zobj, left = zigpy_schema(frame).deserialize(rest)
    assert left == b""
    cmd = frame.command
    if isinstance(cmd, ReadAttributes):
        assert list(zobj.attribute_ids) == list(cmd.attribute_ids)
    elif isinstance(cmd, ReadAttributesResponse):
        assert tuple(record_of_zigpy(r) for r in zobj.status_records) == cmd.records
    else:
        # zigpy's optional fields are None when absent (its Image Block Response is
        # one schema whose fields depend on status): compare what is present.
        got = {k: plain(v) for k, v in zobj.as_dict().items() if v is not None}
        assert got == ours_as_zigpy_plain(cmd)


def zigpy_bytes(frame: Frame) -> bytes:
    schema = zigpy_schema(frame)
    payload = schema(**zigpy_kwargs(frame.command)).serialize()
    return zigpy_header(frame.header).serialize() + payload


@pytest.mark.parametrize("name", list(COMMANDS))
def test_zigpy_interop(name):
    """Every command both ways: zigpy reads our frames with equal values, we read
    zigpy's with equal values, and the bytes are the same."""

    @FAST
    @given(frames(COMMANDS[name]))
    def check(frame):
        ours = encode(frame)
        check_zigpy_reads(frame, ours)
        theirs = zigpy_bytes(frame)
        assert decode(theirs, frame.header.direction) == frame
        assert theirs == ours

    check()


def test_zigpy_covers_every_ota_command():
    ours = {(cls.DIRECTION, cls.COMMAND_ID) for cls in zcl.CLUSTER_COMMANDS.values()}
    theirs = ({(C2S, i) for i in Ota.server_commands} | {(S2C, i) for i in Ota.client_commands})
    assert ours == theirs
    assert set(COMMANDS) == {cls.__name__ for cls in typing.get_args(zcl.Command)}


def test_zigpy_refuses_the_lenient_block_request():
    """A difference: zigpy neither writes nor reads field_control bit 1 without the period."""
    frame = Frame.of(ImageBlockRequest(0x1234, 1, 7, 64, 50, period_missing=True), 3)
    data = encode(frame)
    assert data[3] == zcl.BLOCK_FC_MIN_BLOCK_PERIOD and len(data) == 3 + 14
    _, rest = foundation.ZCLHeader.deserialize(data)
    with pytest.raises(ValueError):
        Ota.server_commands[3].schema.deserialize(rest)
    with pytest.raises(ValueError):
        Ota.server_commands[3].schema(field_control=2, manufacturer_code=0x1234, image_type=1,
                                      file_version=7, file_offset=64,
                                      maximum_data_size=50).serialize()


def test_zigpy_read_attributes_of_the_ota_client_types():
    """Our attribute types are zigpy's (the three enumerations are enum8, 0x30)."""
    for attr, data_type in ATTRIBUTE_TYPES.items():
        if attr == AttributeId.CLUSTER_REVISION:
            continue
        zdef = Ota.attributes[attr]
        assert int(zdef.zcl_type) == data_type, attr


# -------------------------------------------------------------- round trips


@MANY
@given(frames())
def test_round_trip(frame):
    data = encode(frame)
    assert decode(data, frame.header.direction) == frame
    assert decode(data, None) == frame
    assert encode(decode(data, None)) == data


@MANY
@given(frames())
def test_fast_paths_match_the_construct_definitions(frame):
    """The struct fast paths (block commands) and compiled layouts write and read
    exactly what the plain construct layouts do."""
    data = zcl._encode_reference(frame)
    assert encode(frame) == data
    assert zcl._decode_reference(data, frame.header.direction) == frame


BLOCK_HEADERS = [bytes([fc, tsn, cmd]) for fc, cmd in ((0x01, 3), (0x11, 3), (0x09, 5), (0x19, 5))
                 for tsn in (0, 0xA5)]


@MANY
@given(st.sampled_from(BLOCK_HEADERS), st.binary(max_size=40), st.sampled_from([None, C2S, S2C]))
def test_fast_decode_matches_reference_on_any_block_payload(head, payload, direction):
    data = head + payload
    try:
        want = zcl._decode_reference(data, direction)
    except ZclError as e:
        with pytest.raises(ZclError) as got:
            decode(data, direction)
        assert (got.value.offset, got.value.kind, got.value.reason) == (e.offset, e.kind, e.reason)
        return
    assert decode(data, direction) == want
    assert encode(want) == data


@st.composite
def block_payloads(draw):
    """Block request / response payloads near the valid ones: fields of the
    right sizes with a few bytes more or less."""
    if draw(st.booleans()):
        fc = draw(st.sampled_from([0, 1, 2, 3, 4, 0x80]))
        body = bytes([fc]) + draw(st.binary(min_size=13, max_size=13))
        body += draw(st.binary(max_size=12))
        return bytes([0x01, 1, 3]) + body
    status = draw(st.sampled_from([0x00, 0x97, 0x95, 0x98]))
    if status == 0:
        data = draw(st.binary(max_size=60))
        size = draw(st.sampled_from([len(data), len(data) + 1, max(len(data) - 1, 0), 0xFF]))
        body = bytes([status]) + draw(st.binary(min_size=12, max_size=12)) + bytes([size]) + data
    else:
        body = bytes([status]) + draw(st.binary(max_size=12))
    return bytes([0x09, 1, 5]) + body


@MANY
@given(block_payloads())
def test_fast_decode_matches_reference_near_valid_blocks(data):
    direction = Direction((data[0] >> 3) & 1)
    try:
        want = zcl._decode_reference(data, direction)
    except ZclError:
        with pytest.raises(ZclError):
            decode(data, direction)
        return
    assert decode(data, direction) == want
    assert encode(want) == data


@FAST
@given(st.integers(-3, 2**33), st.integers(-3, 2**17), st.sampled_from([None, -1, 2**64, 5]),
       st.sampled_from([None, -1, 0x10000, 9]), st.binary(max_size=300))
def test_fast_encode_errors_match_reference(big, small, addr, period, data):
    for cmd in (ImageBlockRequest(small, small, big, big, small, addr, period),
                ImageBlockResponse(small, small, big, big, data), ImageBlockWait(big, big, small),
                ImageBlockAbort(small)):
        frame = Frame.of(cmd, 1)
        try:
            want = zcl._encode_reference(frame)
        except ZclError:
            with pytest.raises(ZclError):
                encode(frame)
            continue
        assert encode(frame) == want


@FAST
@given(st.integers(-3, 300), st.integers(-3, 2**17), st.integers(-3, 2**17), st.integers(-3, 2**33),
       st.integers(-3, 2**33), st.one_of(st.binary(max_size=300), st.builds(bytearray, st.binary(max_size=8))),
       st.booleans())
def test_block_response_encoder_is_encode_byte_for_byte_and_error_for_error(tsn, manufacturer, image_type,
                                                                            version, offset, data, no_default):
    frame = Frame.of(ImageBlockResponse(manufacturer, image_type, version, offset, data), tsn,
                     disable_default_response=no_default)
    try:
        want = zcl._encode_reference(frame)
    except ZclError as e:
        with pytest.raises(ZclError) as got:
            zcl.encode_image_block_response(tsn, manufacturer, image_type, version, offset, data,
                                            disable_default_response=no_default)
        assert str(got.value) == str(e)
        return
    assert zcl.encode_image_block_response(tsn, manufacturer, image_type, version, offset, data,
                                           disable_default_response=no_default) == want


# ------------------------------------------------------------ the lenient case


@pytest.mark.parametrize("addr", [None, 0x0011223344556677])
def test_block_request_period_bit_without_bytes(addr):
    fixed = bytes.fromhex("34120100070000004000000032")     # manufacturer..max_data_size
    tail = b"" if addr is None else addr.to_bytes(8, "little")
    fc = zcl.BLOCK_FC_MIN_BLOCK_PERIOD | (zcl.BLOCK_FC_NODE_ADDR if addr is not None else 0)
    data = bytes([0x01, 9, 0x03, fc]) + fixed + tail
    frame = decode(data, C2S)
    cmd = frame.command
    assert cmd == ImageBlockRequest(0x1234, 1, 7, 64, 50, addr, None, period_missing=True)
    assert cmd.field_control == fc and cmd.minimum_block_period is None
    assert encode(frame) == data                          # written back as it came
    with_period = decode(data + b"\x0a\x00", C2S).command
    assert (with_period.minimum_block_period, with_period.period_missing) == (10, False)
    with pytest.raises(ZclError) as e:                   # one byte of a period is not lenient
        decode(data + b"\x0a", C2S)
    assert e.value.offset == len(data) and e.value.kind == "malformed"


def test_block_request_period_missing_and_period_both_refused():
    with pytest.raises(ZclError, match="period_missing"):
        encode(Frame.of(ImageBlockRequest(1, 2, 3, 4, 5, None, 10, period_missing=True), 0))


# ----------------------------------------------------------- malformed input


@MANY
@given(st.binary(max_size=48), st.sampled_from([None, C2S, S2C]))
def test_any_bytes_raise_only_zcl_error(data, direction):
    try:
        frame = decode(data, direction)
    except ZclError as e:
        assert isinstance(e, BridgeEmuError)
        assert e.offset is None or 0 <= e.offset <= len(data)
        return
    assert encode(frame) == data                      # whatever is accepted is kept exactly
    assert zcl._decode_reference(data, direction) == frame


@st.composite
def mutated(draw):
    frame = draw(frames())
    data = bytearray(encode(frame))
    how = draw(st.sampled_from(["cut", "extend", "flip", "splice"]))
    if how == "cut":
        del data[draw(st.integers(0, len(data) - 1)):]
    elif how == "extend":
        data += draw(st.binary(min_size=1, max_size=4))
    elif how == "flip":
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    else:
        i = draw(st.integers(0, len(data)))
        data[i:i] = draw(st.binary(min_size=1, max_size=3))
    return bytes(data), draw(st.sampled_from([None, frame.header.direction]))


@MANY
@given(mutated())
def test_mutated_frames_raise_only_zcl_error(case):
    data, direction = case
    try:
        frame = decode(data, direction)
    except ZclError:
        return
    assert encode(frame) == data
    assert zcl._decode_reference(data, direction) == frame


def hx(s: str) -> bytes:
    return bytes.fromhex(s.replace(" ", ""))


BLOCK_REQ = "01 07 03 00 3412 0100 07000000 40000000 32"
BLOCK_RSP = "09 07 05 00 3412 0100 07000000 40000000 03 616263"

MALFORMED = [
    # data, direction, kind, offset, words in the reason, status
    ("", None, "header", 0, "frame_control", None),
    ("01 07", None, "header", 2, "command_id", None),
    ("05 34", None, "header", 1, "manufacturer", None),
    ("21 07 03", None, "header", 0, "reserved", None),
    ("02 07 03", None, "header", 0, "frame_type", None),
    (BLOCK_REQ, S2C, "direction", 0, "expected SERVER_TO_CLIENT", None),
    ("01 07 40", None, "unsupported", 2, "0x40", Status.UNSUP_CLUSTER_COMMAND),
    ("09 07 03", None, "unsupported", 2, "0x03", Status.UNSUP_CLUSTER_COMMAND),
    ("05 34 12 07 03 00", None, "unsupported", 4, "manufacturer-specific",
     Status.UNSUP_MANUF_CLUSTER_COMMAND),
    ("00 07 06", None, "unsupported", 2, "global command 0x06", Status.UNSUP_GENERAL_COMMAND),
    ("04 34 12 07 06", None, "unsupported", 4, "global", Status.UNSUP_MANUF_GENERAL_COMMAND),
    (BLOCK_REQ[:-3], None, "malformed", 16, "max_data_size", Status.MALFORMED_COMMAND),
    (BLOCK_REQ + "00", None, "malformed", 17, "1 byte after the last field",
     Status.MALFORMED_COMMAND),
    ("01 07 03 04" + BLOCK_REQ[12:], None, "malformed", 3, "field_control",
     Status.MALFORMED_COMMAND),
    ("01 07 03 01" + BLOCK_REQ[12:] + "1122", None, "malformed", 17, "request_node_addr",
     Status.MALFORMED_COMMAND),
    ("01 07 01 02 3412 0100 07000000", None, "malformed", 3, "field_control",
     Status.MALFORMED_COMMAND),
    ("09 07 00 04 0a", None, "malformed", 3, "payload_type", Status.MALFORMED_COMMAND),
    ("09 07 00 02 0a 3412", None, "malformed", 7, "image_type", Status.MALFORMED_COMMAND),
    (BLOCK_RSP[:-2], None, "malformed", 16, "data", Status.MALFORMED_COMMAND),
    (BLOCK_RSP.replace(" 03 ", " ff ") + "00" * 252, None, "malformed", 16, "0xFF",
     Status.MALFORMED_COMMAND),
    (BLOCK_RSP + "00", None, "malformed", 20, "after the last field", Status.MALFORMED_COMMAND),
    ("09 07 05 97 01000000 02000000 03", None, "malformed", 12, "minimum_block_period",
     Status.MALFORMED_COMMAND),
    ("09 07 05 95 00", None, "malformed", 4, "after the last field", Status.MALFORMED_COMMAND),
    ("09 07 02 98 3412", None, "malformed", 4, "after the last field", Status.MALFORMED_COMMAND),
    ("09 07 02 00 3412", None, "malformed", 6, "image_type", Status.MALFORMED_COMMAND),
    ("01 07 04 00 3412 0100 07000000 40000000 32 0004", None, "malformed", 19, "response_spacing",
     Status.MALFORMED_COMMAND),
    ("08 07 00 0100 02", None, "malformed", 5, "attribute_ids[1]", Status.MALFORMED_COMMAND),
    ("00 07 01 0600 00 31 05", None, "malformed", 6, "records[0].data_type:",
     Status.MALFORMED_COMMAND),
    ("00 07 01 0600 00 30 05 0000 00 23 0100", None, "malformed", 12, "records[1].value",
     Status.MALFORMED_COMMAND),
    ("08 07 0b 03", None, "malformed", 4, "status", Status.MALFORMED_COMMAND),
]


@pytest.mark.parametrize("data, direction, kind, offset, words, status", MALFORMED)
def test_malformed_says_what_and_where(data, direction, kind, offset, words, status):
    with pytest.raises(ZclError) as e:
        decode(hx(data), direction)
    err = e.value
    assert (err.kind, err.offset, err.status) == (kind, offset, status), str(err)
    assert words in err.reason, err.reason
    assert f"offset {offset}" in str(err)
    if kind in ("header",):
        assert err.header is None
    else:
        assert err.header is not None and err.header.tsn == 7


def test_unknown_command_error_answers_with_a_default_response():
    with pytest.raises(ZclError) as e:
        decode(hx("11 2a 40 0102"), C2S)
    answer = default_response_to(e.value.header, e.value.status)
    assert encode(answer) == hx("18 2a 0b 40 81")
    assert decode(encode(answer), S2C) == answer


def test_decode_takes_buffers():
    data = hx(BLOCK_RSP)
    want = decode(data, S2C)
    assert decode(bytearray(data), S2C) == want == decode(memoryview(data), S2C)
    assert type(decode(bytearray(data), S2C).command.data) is bytes


# --------------------------------------------------------------- encoding


@pytest.mark.parametrize("frame, words", [
    (Frame.of(ImageBlockRequest(0x10000, 1, 2, 3, 4), 0), "manufacturer"),
    (Frame.of(ImageBlockRequest(1, 1, 2, 3, 256), 0), "max_data_size"),
    (Frame.of(ImageBlockRequest(1, 1, 2, -3, 4), 0), "file_offset"),
    (Frame.of(ImageBlockRequest("1", 1, 2, 3, 4), 0), "manufacturer"),
    (Frame.of(ImageBlockResponse(1, 1, 2, 3, bytes(255)), 0), "data"),
    (Frame.of(ImageBlockResponse(1, 1, 2, 3, "text"), 0), "data"),
    (Frame.of(ImageBlockAbort(Status.SUCCESS), 0), "own form"),
    (Frame.of(ImageBlockAbort(Status.WAIT_FOR_DATA), 0), "own form"),
    (Frame.of(QueryNextImageResponse(Status.SUCCESS, 1, 2), 0), "SUCCESS needs"),
    (Frame.of(QueryNextImageResponse(Status.NO_IMAGE_AVAILABLE, 1, 2, 3, 4), 0), "carries no"),
    (Frame.of(ImageNotify(10, None, 1), 0), "image_type without manufacturer"),
    (Frame.of(ImageNotify(10, 1, None, 1), 0), "file_version without image_type"),
    (Frame.of(ReadAttributesResponse([ReadAttributeRecord(1)]), 0, direction=0),
     "needs a data_type"),
    (Frame.of(ReadAttributesResponse([ReadAttributeRecord(1, 0x86, 0x20, 1)]), 0, direction=0),
     "carries no"),
    (Frame.of(ReadAttributesResponse([ReadAttributeRecord(1, 0, 0x42, 1)]), 0, direction=0),
     "data_type"),
    (Frame.of(DefaultResponse(3, 0x81), 256, direction=1), "tsn"),
    (Frame(ZclHeader(FrameType.CLUSTER, C2S, 0, 5), ImageBlockResponse(1, 2, 3, 4, b"")),
     "travels SERVER_TO_CLIENT"),
    (Frame(ZclHeader(FrameType.CLUSTER, S2C, 0, 3), ImageBlockResponse(1, 2, 3, 4, b"")),
     "is command 0x05"),
    (Frame(ZclHeader(FrameType.GLOBAL, S2C, 0, 5), ImageBlockResponse(1, 2, 3, 4, b"")),
     "cluster command"),
    (Frame(ZclHeader(FrameType.CLUSTER, S2C, 0, 5, 0x1234), ImageBlockResponse(1, 2, 3, 4, b"")),
     "manufacturer code"),
    (Frame(ZclHeader(FrameType.CLUSTER, S2C, 0, 5, None, 1), ImageBlockResponse(1, 2, 3, 4, b"")),
     "disable_default_response"),
    (Frame(ZclHeader(3, S2C, 0, 5), ImageBlockResponse(1, 2, 3, 4, b"")), "reserved"),
    (Frame(ZclHeader(FrameType.GLOBAL, S2C, 0, 0), ImageBlockResponse(1, 2, 3, 4, b"")),
     "cluster command"),
    (Frame(ZclHeader(FrameType.GLOBAL, S2C, 0, 0, 0x10000), ReadAttributes([1])), "manufacturer"),
    (Frame(ZclHeader(FrameType.CLUSTER, S2C, 0, 5), "not a command"), "not an OTA"),
])
def test_encode_refuses(frame, words):
    with pytest.raises(ZclError) as e:
        encode(frame)
    assert e.value.kind == "encode" and e.value.offset is None
    assert words in e.value.reason, e.value.reason


def test_encode_wants_a_frame():
    with pytest.raises(TypeError):
        encode(ImageBlockAbort())


def test_frame_of():
    f = Frame.of(ImageBlockRequest(1, 2, 3, 4, 5), 9, disable_default_response=True)
    assert f.header == ZclHeader(FrameType.CLUSTER, C2S, 9, 3, None, True)
    assert f.header.frame_control == 0x11 and not f.header.manufacturer_specific
    with pytest.raises(ZclError, match="travels CLIENT_TO_SERVER"):
        Frame.of(ImageBlockRequest(1, 2, 3, 4, 5), 9, direction=S2C)
    with pytest.raises(ZclError, match="give its direction"):
        Frame.of(ReadAttributes([0]), 9)
    g = Frame.of(ReadAttributes([0x0006]), 9, direction=S2C, manufacturer=0x1234)
    assert encode(g) == hx("0c 3412 09 00 0600")


# ------------------------------------------------------- wire examples


def test_wire_examples():
    """Hand-checked bytes against the reference layout."""
    cases = [
        (Frame.of(ImageNotify(100, 0x1234, 0x0001, 0x01020304), 1),
         "09 01 00 03 64 3412 0100 04030201"),
        (Frame.of(QueryNextImageRequest(0x1234, 1, 0x01020304, 0x0100), 2),
         "01 02 01 01 3412 0100 04030201 0001"),
        (Frame.of(QueryNextImageResponse(Status.SUCCESS, 0x1234, 1, 0x01020305, 0x1000), 2),
         "09 02 02 00 3412 0100 05030201 00100000"),
        (Frame.of(QueryNextImageResponse(Status.NO_IMAGE_AVAILABLE), 2), "09 02 02 98"),
        (Frame.of(ImageBlockRequest(0x1234, 1, 0x01020305, 0x40, 50, 0x0011223344556677, 250), 3),
         "01 03 03 03 3412 0100 05030201 40000000 32 7766554433221100 fa00"),
        (Frame.of(ImagePageRequest(0x1234, 1, 0x01020305, 0, 64, 1024, 50), 4),
         "01 04 04 00 3412 0100 05030201 00000000 40 0004 3200"),
        (Frame.of(ImageBlockResponse(0x1234, 1, 0x01020305, 0x40, b"\xaa\xbb"), 3),
         "09 03 05 00 3412 0100 05030201 40000000 02 aabb"),
        (Frame.of(ImageBlockWait(0, 60, 250), 3), "09 03 05 97 00000000 3c000000 fa00"),
        (Frame.of(ImageBlockAbort(), 3), "09 03 05 95"),
        (Frame.of(UpgradeEndRequest(Status.SUCCESS, 0x1234, 1, 0x01020305), 5),
         "01 05 06 00 3412 0100 05030201"),
        (Frame.of(UpgradeEndResponse(0xFFFF, 0xFFFF, 0xFFFFFFFF, 0, 0xFFFFFFFF), 5),
         "09 05 07 ffff ffff ffffffff 00000000 ffffffff"),
        (Frame.of(QueryDeviceSpecificFileRequest(0x0011223344556677, 0x1234, 0xFFC0, 1, 2), 6),
         "01 06 08 7766554433221100 3412 c0ff 01000000 0200"),
        (Frame.of(ReadAttributesResponse([ReadAttributeRecord.of(AttributeId.FILE_OFFSET, 0x40),
                                          ReadAttributeRecord.of(
                                              AttributeId.IMAGE_UPGRADE_STATUS, 1),
                                          ReadAttributeRecord(0x0010,
                                                              Status.UNSUPPORTED_ATTRIBUTE)]),
                  7, direction=C2S),
         "00 07 01 0100 00 23 40000000 0600 00 30 01 1000 86"),
        (Frame.of(DefaultResponse(0x06, Status.SUCCESS), 8, direction=S2C), "08 08 0b 06 00"),
    ]
    for frame, wire in cases:
        assert encode(frame) == hx(wire), type(frame.command).__name__
        assert decode(hx(wire), frame.header.direction) == frame


def test_decoded_values_and_properties():
    f = decode(hx("09 01 00 02 32 3412 0100"), S2C)
    assert f.command == ImageNotify(50, 0x1234, 1) and f.command.payload_type == 2
    assert decode(hx("09 03 05 98"), S2C).command.status is Status.NO_IMAGE_AVAILABLE
    assert decode(hx("09 03 05 42"), S2C).command.status == 0x42   # unknown statuses kept
    assert decode(hx(BLOCK_RSP), S2C).command.status is Status.SUCCESS
    assert ReadAttributeRecord.of(AttributeId.UPGRADE_SERVER_ID, 1).data_type == DataType.EUI64
    with pytest.raises(ZclError):
        ReadAttributeRecord.of(0x4000, 1)
