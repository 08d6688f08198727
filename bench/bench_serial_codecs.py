"""Serial codec speed: frames per second through each dongle framing, encode
plus stream-parse plus decode, ours next to the peer library's in the same run.

- MT: an AF.IncomingMsg carrying a 64-byte OTA Image Block Response (what a
  coordinator dongle sends the host most during an update). Ours:
  mt.encode_command -> Frame.encode -> FrameParser.feed -> mt.decode. zigpy-znp:
  Callback(...).to_frame -> TransportFrame.serialize -> TransportFrame.deserialize
  -> Callback.from_frame.
- ASH: a DATA frame carrying a 70-byte EZSP frame. Ours: DataFrame.to_wire (CRC,
  randomise, stuff) -> AshParser.feed. bellows: DataFrame.to_bytes -> stuff ->
  unstuff -> DataFrame.from_bytes (bellows parses frames inside AshProtocol;
  its frame codec is what is timed).

Best of several repetitions, interleaved so that drift hits both.
"""
from __future__ import annotations

import time

import zigpy_znp.commands as znp_c
import zigpy_znp.types as znp_t
from bellows import ash as bellows_ash
from zigpy_znp.frames import TransportFrame

from bridge_emu.codec import ash, mt

LOOPS = 2000
REPS = 9
BLOCK = bytes(range(64))
EZSP = bytes((i * 7) & 0xFF for i in range(70))
INCOMING = dict(group_id=0, cluster_id=0x0019, src_addr=0x1234, src_endpoint=1, dst_endpoint=1,
                was_broadcast=False, lqi=200, security_use=False, time_stamp=123456, tsn=7, data=BLOCK,
                mac_src_addr=0x1234, msg_result_radius=0)


def _mt_ours():
    parser = mt.FrameParser()

    def once():
        wire = mt.encode_command("AF.IncomingMsg", **INCOMING).encode()
        (frame,) = parser.feed(wire)
        return mt.decode(frame)
    return once


def _mt_zigpy_znp():
    cb = znp_c.AF.IncomingMsg.Callback(
        GroupId=0, ClusterId=0x0019, SrcAddr=0x1234, SrcEndpoint=1, DstEndpoint=1, WasBroadcast=znp_t.Bool.false,
        LQI=200, SecurityUse=znp_t.Bool.false, TimeStamp=123456, TSN=7, Data=BLOCK, MacSrcAddr=0x1234,
        MsgResultRadius=0)

    def once():
        wire = TransportFrame(cb.to_frame()).serialize()
        frame, _ = TransportFrame.deserialize(wire)
        return znp_c.AF.IncomingMsg.Callback.from_frame(frame.payload)
    return once


def _ash_ours():
    parser = ash.AshParser()

    def once():
        wire = ash.DataFrame(3, False, 5, EZSP).to_wire()
        (frame,) = parser.feed(wire)
        return frame
    return once


def _ash_bellows():
    frame = bellows_ash.DataFrame(frm_num=3, re_tx=False, ack_num=5, ezsp_frame=EZSP)

    def once():
        wire = bellows_ash.AshProtocol._stuff_bytes(frame.to_bytes())
        return bellows_ash.DataFrame.from_bytes(bellows_ash.AshProtocol._unstuff_bytes(wire))
    return once


def _best_rate(fns: dict, loops: int) -> dict[str, float]:
    best = {name: 0.0 for name in fns}
    for _ in range(REPS):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(loops):
                fn()
            best[name] = max(best[name], loops / (time.perf_counter() - t0))
    return best


def run() -> dict:
    mt_ours, mt_theirs = _mt_ours(), _mt_zigpy_znp()
    ash_ours, ash_theirs = _ash_ours(), _ash_bellows()
    assert mt_ours().fields.data == BLOCK and mt_theirs().Data == BLOCK
    assert ash_ours().data == EZSP and ash_theirs().ezsp_frame == EZSP
    rates = _best_rate({"mt_ours": mt_ours, "mt_zigpy_znp": mt_theirs,
                        "ash_ours": ash_ours, "ash_bellows": ash_theirs}, LOOPS)
    return {
        "mt_af_incoming_msg_frames_per_s": {"ours": round(rates["mt_ours"]),
                                            "zigpy_znp": round(rates["mt_zigpy_znp"])},
        "ash_data_frames_per_s": {"ours": round(rates["ash_ours"]), "bellows": round(rates["ash_bellows"])},
        "what": "encode + stream-parse + decode, one frame per loop, best of 9 x 2000",
    }
