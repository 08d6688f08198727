"""The ASH framing codec (bridge_emu.codec.ash): the UG101 vectors, CRC, stuffing
and randomisation properties, the stream parser (byte at a time, control bytes,
garbage, bounded memory) and round trips against bellows' frame classes both ways."""
from __future__ import annotations

import binascii

import pytest
from bellows import ash as bellows_ash
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge_emu.codec import ash
from bridge_emu.codec.ash import (
    AckFrame,
    AshError,
    AshParser,
    BadFrame,
    DataFrame,
    ErrorFrame,
    NakFrame,
    RstAckFrame,
    RstFrame,
)

FAST = settings(deadline=None, max_examples=150)

VECTORS = [
    (RstFrame(), "c038bc"),
    (RstAckFrame(version=2, reset_code=2), "c102029b7b"),
    (AckFrame(ack_num=1), "816059"),
    (NakFrame(ack_num=6), "a634dc"),
    (DataFrame(frm_num=0, re_tx=False, ack_num=0, data=bytes.fromhex("0000000004")), "004221a8542e09eb"),
]

frames = st.one_of(
    st.builds(DataFrame, st.integers(0, 7), st.booleans(), st.integers(0, 7),
              st.binary(min_size=1, max_size=ash.MAX_DATA_LEN)),
    st.builds(AckFrame, st.integers(0, 7), st.booleans()),
    st.builds(NakFrame, st.integers(0, 7), st.booleans()),
    st.just(RstFrame()),
    st.builds(RstAckFrame, st.integers(0, 255), st.integers(0, 255)),
    st.builds(ErrorFrame, st.integers(0, 255), st.integers(0, 255)),
)


@pytest.mark.parametrize(("frame", "hexed"), VECTORS)
def test_vectors_encode_decode_and_wire(frame, hexed):
    assert frame.encode().hex() == hexed
    assert ash.decode(bytes.fromhex(hexed)) == frame
    assert frame.to_wire() == ash.stuff(bytes.fromhex(hexed)) + b"\x7e"
    assert AshParser().feed(frame.to_wire()) == [frame]


def test_rst_is_usually_preceded_by_cancel():
    wire = RstFrame().to_wire(cancel_first=True)
    assert wire.hex() == "1ac038bc7e"
    parser = AshParser()
    assert parser.feed(b"\x01\x02" + wire) == [RstFrame()]   # the half frame before CANCEL is dropped
    assert parser.cancelled == 1 and parser.bad_frames == 0


def test_pseudo_random_sequence_and_reserved_bytes():
    assert ash.randomise(bytes(8)).hex() == "4221a8542a15b259"
    assert ash.stuff(bytes([0x7E, 0x7D, 0x11, 0x13, 0x18, 0x1A, 0x00])).hex() == "7d5e7d5d7d317d337d387d3a00"
    assert ash.crc16(b"\xc0") == 0x38BC


@FAST
@given(st.binary(max_size=600))
def test_randomise_is_its_own_inverse(data):
    assert ash.randomise(ash.randomise(data)) == data
    assert ash.randomise(data) == bytes(a ^ b for a, b in zip(data, bellows_ash.generate_random_sequence(len(data))))


@FAST
@given(st.binary(max_size=300))
def test_stuffing_round_trips_and_hides_reserved_bytes(data):
    stuffed = ash.stuff(data)
    assert not set(stuffed) & (ash.RESERVED_BYTES - {0x7D})
    assert ash.unstuff(stuffed) == data
    assert stuffed == bytes(bellows_ash.AshProtocol._stuff_bytes(data))
    assert ash.crc16(data) == binascii.crc_hqx(data, 0xFFFF)


@pytest.mark.parametrize(("stuffed", "where"), [
    (b"\x7d", "offset 0"), (b"ab\x7d\x00", "offset 3"), (b"a\x7e", "offset 1"),
])
def test_unstuff_rejects_bad_escapes(stuffed, where):
    with pytest.raises(AshError, match=where):
        ash.unstuff(stuffed)


@pytest.mark.parametrize(("raw", "match"), [
    ("c0", "shorter"),
    ("c038bd", "CRC"),
    (ash.AckFrame(1).encode()[:1].hex() + "00" + "0000", "CRC"),
    ("c3" + "", "shorter"),
])
def test_decode_rejects_bad_frames(raw, match):
    with pytest.raises(AshError, match=match):
        ash.decode(bytes.fromhex(raw))


def _with_crc(body: bytes) -> bytes:
    return body + ash.crc16(body).to_bytes(2, "big")


@pytest.mark.parametrize(("body", "match"), [
    (b"\xc3", "unknown control byte 0xc3"),
    (b"\x91", "reserved bit"),
    (b"\x81\x00", "ACK frame has 1 data bytes"),
    (b"\xc0\x00", "RST frame has 1"),
    (b"\xc1\x02", "RSTACK frame has 1"),
    (b"\xc2\x02\x51\x00", "ERROR frame has 3"),
    (b"\x00", "DATA frame has no data"),
])
def test_decode_checks_control_and_lengths(body, match):
    with pytest.raises(AshError, match=match):
        ash.decode(_with_crc(body))


def test_frame_fields_are_checked():
    with pytest.raises(AshError, match="frmNum"):
        DataFrame(8, False, 0, b"x")
    with pytest.raises(AshError, match="ackNum"):
        AckFrame(9)
    with pytest.raises(AshError, match="1-256 bytes"):
        DataFrame(0, False, 0, b"")
    with pytest.raises(AshError, match="reset code"):
        RstAckFrame(2, 256)


@FAST
@given(st.lists(frames, max_size=6))
def test_parser_byte_at_a_time_equals_all_at_once(sent):
    wire = b"".join(f.to_wire() for f in sent)
    whole = AshParser().feed(wire)
    parser = AshParser()
    one_by_one = [item for i in range(len(wire)) for item in parser.feed(wire[i:i + 1])]
    assert whole == one_by_one == sent
    assert parser.frames == len(sent) and parser.bad_frames == 0


@FAST
@given(st.lists(frames, min_size=1, max_size=4), st.data())
def test_parser_ignores_xon_xoff_anywhere(sent, data):
    wire = bytearray(b"".join(f.to_wire() for f in sent))
    for _ in range(data.draw(st.integers(0, 5))):
        wire.insert(data.draw(st.integers(0, len(wire))), data.draw(st.sampled_from([0x11, 0x13])))
    assert AshParser().feed(bytes(wire)) == sent


def test_substitute_loses_the_frame_up_to_the_next_flag():
    parser = AshParser()
    wire = AckFrame(2).to_wire()
    out = parser.feed(wire[:1] + b"\x18" + wire[1:] + NakFrame(3).to_wire())
    assert len(out) == 2 and isinstance(out[0], BadFrame) and "SUBSTITUTE" in out[0].reason
    assert out[1] == NakFrame(3)
    assert parser.bad_frames == 1


def test_bad_crc_data_frame_is_reported_for_a_nak():
    frame = DataFrame(3, False, 5, b"\x01\x02\x03")
    raw = bytearray(frame.encode())
    raw[-1] ^= 0xFF
    parser = AshParser()
    out = parser.feed(ash.stuff(bytes(raw)) + b"\x7e" + frame.to_wire())
    assert isinstance(out[0], BadFrame) and out[0].looks_like_data and "CRC" in out[0].reason
    assert out[1] == frame
    assert parser.bad_frames == 1


def test_escape_before_flag_and_bad_escape_are_bad_frames():
    parser = AshParser()
    out = parser.feed(b"\xc0\x7d\x7e" + b"\xc0\x7d\x00\x7e" + RstFrame().to_wire())
    assert [type(x) for x in out] == [BadFrame, BadFrame, RstFrame]
    assert "ESCAPE directly before FLAG" in out[0].reason and "escaped byte" in out[1].reason


def test_back_to_back_flags_mean_nothing():
    assert AshParser().feed(b"\x7e\x7e\x7e") == []


def test_overlong_frame_is_bounded_and_reported():
    parser = AshParser()
    out = parser.feed(b"\x01" * 100_000)
    assert out == [] and len(parser._buf) <= ash.MAX_FRAME_LEN
    out = parser.feed(b"\x7e" + AckFrame(4).to_wire())
    assert isinstance(out[0], BadFrame) and "longer than" in out[0].reason
    assert out[1] == AckFrame(4)


@settings(deadline=None, max_examples=300)
@given(st.binary(max_size=400), st.lists(frames, min_size=1, max_size=3))
def test_garbage_never_raises_and_frames_after_it_are_recovered(garbage, sent):
    parser = AshParser()
    parser.feed(garbage)
    assert len(parser._buf) <= ash.MAX_FRAME_LEN
    # A CANCEL or FLAG resynchronises; FLAG may close a (bad) frame made of the garbage.
    out = parser.feed(b"\x7e" + b"".join(f.to_wire() for f in sent))
    good = [x for x in out if not isinstance(x, BadFrame)]
    assert good[-len(sent):] == sent
    assert all(not isinstance(x, BadFrame) for x in out[-len(sent):])


@settings(deadline=None, max_examples=300)
@given(st.lists(st.binary(max_size=40), max_size=10))
def test_parser_never_raises_on_chunks(chunks):
    parser = AshParser()
    for chunk in chunks:
        for item in parser.feed(chunk):
            assert isinstance(item, BadFrame | DataFrame | AckFrame | NakFrame | RstFrame | RstAckFrame | ErrorFrame)


# --- against bellows -----------------------------------------------------------------------------------------

def _to_bellows(frame):
    if isinstance(frame, DataFrame):
        return bellows_ash.DataFrame(frm_num=frame.frm_num, re_tx=frame.re_tx, ack_num=frame.ack_num,
                                     ezsp_frame=frame.data)
    if isinstance(frame, AckFrame):
        return bellows_ash.AckFrame(res=0, ncp_ready=frame.n_rdy, ack_num=frame.ack_num)
    if isinstance(frame, NakFrame):
        return bellows_ash.NakFrame(res=0, ncp_ready=frame.n_rdy, ack_num=frame.ack_num)
    if isinstance(frame, RstFrame):
        return bellows_ash.RstFrame()
    if isinstance(frame, RstAckFrame):
        return bellows_ash.RStackFrame(version=frame.version, reset_code=frame.reset_code)
    return bellows_ash.ErrorFrame(version=frame.version, reset_code=frame.code)


def _from_bellows(frame):
    if isinstance(frame, bellows_ash.DataFrame):
        return DataFrame(frame.frm_num, bool(frame.re_tx), frame.ack_num, bytes(frame.ezsp_frame))
    if isinstance(frame, bellows_ash.AckFrame | bellows_ash.NakFrame):
        cls = AckFrame if type(frame) is bellows_ash.AckFrame else NakFrame
        return cls(frame.ack_num, bool(frame.ncp_ready))
    if isinstance(frame, bellows_ash.RstFrame):
        return RstFrame()
    if isinstance(frame, bellows_ash.ErrorFrame):
        return ErrorFrame(frame.version, int(frame.reset_code))
    return RstAckFrame(frame.version, int(frame.reset_code))


# bellows insists on version 2 and a known NcpResetCode in RSTACK/ERROR.
_RESET_CODES = sorted(int(c) for c in bellows_ash.t.NcpResetCode)
bellows_frames = st.one_of(
    st.builds(DataFrame, st.integers(0, 7), st.booleans(), st.integers(0, 7),
              st.binary(min_size=1, max_size=ash.MAX_DATA_LEN)),
    st.builds(AckFrame, st.integers(0, 7), st.booleans()),
    st.builds(NakFrame, st.integers(0, 7), st.booleans()),
    st.just(RstFrame()),
    st.builds(RstAckFrame, st.just(2), st.sampled_from(_RESET_CODES)),
    st.builds(ErrorFrame, st.just(2), st.sampled_from(_RESET_CODES)),
)


@FAST
@given(bellows_frames)
def test_ours_to_bellows(frame):
    parsed = bellows_ash.parse_frame(frame.encode())
    assert _from_bellows(parsed) == frame
    assert bytes(bellows_ash.AshProtocol._unstuff_bytes(frame.to_wire()[:-1])) == frame.encode()


@FAST
@given(bellows_frames)
def test_bellows_to_ours(frame):
    theirs = _to_bellows(frame)
    raw = bytes(theirs.to_bytes())
    assert raw == frame.encode()
    assert ash.decode(raw) == frame
    wire = bytes(bellows_ash.AshProtocol._stuff_bytes(raw)) + b"\x7e"
    assert AshParser().feed(wire) == [frame]
