"""ZCL OTA frame codec speed: Image Block Request and Image Block Response
(SUCCESS, 50 data bytes) encode + decode, ZCL header included, with our codec
(bridge_emu.codec.zcl) and through zigpy's Ota cluster schemas in the same run
(zigpy: ZCLHeader + schema serialize, then ZCLHeader.deserialize + schema
deserialize). Best of several repetitions, interleaved so that drift hits both.

A full block exchange is the client encoding a request, the server decoding it
and encoding the response, the client decoding that: the codec's share of the
>= 20,000 exchanges/s per core budget (50 us per exchange) is full_exchange_us.
"""
from __future__ import annotations

import time

from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Ota

from bridge_emu.codec.zcl import Direction, Frame, ImageBlockRequest, ImageBlockResponse, decode, encode

LOOPS = 5000           # per timed loop, ours
ZIGPY_LOOPS = 500      # zigpy is ~50x slower: fewer loops, same repetitions
REPS = 15
DATA = bytes(range(50))
MANUFACTURER, IMAGE_TYPE, FILE_VERSION, OFFSET = 0x1234, 0x0001, 0x01020304, 0x00012340
EXCHANGE_BUDGET_US = 1e6 / 20_000


def _ours():
    req = Frame.of(ImageBlockRequest(MANUFACTURER, IMAGE_TYPE, FILE_VERSION, OFFSET, 50), 0x42)
    rsp = Frame.of(ImageBlockResponse(MANUFACTURER, IMAGE_TYPE, FILE_VERSION, OFFSET, DATA), 0x42,
                   disable_default_response=True)       # as zigpy's ZCLHeader.cluster sets it
    c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT

    def request():
        return decode(encode(req), c2s)

    def response():
        return decode(encode(rsp), s2c)

    def exchange():
        server_got = decode(encode(req), c2s)
        return server_got, decode(encode(rsp), s2c)

    assert request() == req and response() == rsp
    return req, rsp, request, response, exchange


def _zigpy():
    req_schema = Ota.server_commands[0x03].schema
    rsp_schema = Ota.client_commands[0x05].schema
    zdir = foundation.Direction
    req_hdr = foundation.ZCLHeader.cluster(0x42, 0x03, direction=zdir.Client_to_Server)
    rsp_hdr = foundation.ZCLHeader.cluster(0x42, 0x05, direction=zdir.Server_to_Client)
    req = req_schema(field_control=0, manufacturer_code=MANUFACTURER, image_type=IMAGE_TYPE,
                     file_version=FILE_VERSION, file_offset=OFFSET, maximum_data_size=50)
    rsp = rsp_schema(status=foundation.Status.SUCCESS, manufacturer_code=MANUFACTURER,
                     image_type=IMAGE_TYPE, file_version=FILE_VERSION, file_offset=OFFSET,
                     image_data=DATA)
    deser_hdr = foundation.ZCLHeader.deserialize

    def round_trip(hdr, obj, schema):
        data = hdr.serialize() + obj.serialize()
        h, rest = deser_hdr(data)
        return h, schema.deserialize(rest)[0]

    def request():
        return round_trip(req_hdr, req, req_schema)

    def response():
        return round_trip(rsp_hdr, rsp, rsp_schema)

    def exchange():
        return request(), response()

    assert request()[1] == req and response()[1] == rsp
    return req_hdr, req, rsp_hdr, rsp, request, response, exchange


def _per_call_seconds(fn, loops: int) -> float:
    t0 = time.perf_counter()
    for _ in range(loops):
        fn()
    return (time.perf_counter() - t0) / loops


def run() -> dict:
    o_req, o_rsp, o_request, o_response, o_exchange = _ours()
    z_req_hdr, z_req, z_rsp_hdr, z_rsp, z_request, z_response, z_exchange = _zigpy()
    # Correctness first: both codecs write the same bytes.
    if encode(o_req) != z_req_hdr.serialize() + z_req.serialize():
        raise AssertionError("Image Block Request bytes differ from zigpy's")
    if encode(o_rsp) != z_rsp_hdr.serialize() + z_rsp.serialize():
        raise AssertionError("Image Block Response bytes differ from zigpy's")

    req_bytes, rsp_bytes = encode(o_req), encode(o_rsp)
    c2s, s2c = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
    fns = {
        "ours_block_request": o_request,
        "ours_block_response": o_response,
        "ours_full_exchange": o_exchange,
        "ours_encode_request": lambda: encode(o_req),
        "ours_decode_request": lambda: decode(req_bytes, c2s),
        "ours_encode_response": lambda: encode(o_rsp),
        "ours_decode_response": lambda: decode(rsp_bytes, s2c),
        "zigpy_block_request": z_request,
        "zigpy_block_response": z_response,
        "zigpy_full_exchange": z_exchange,
    }
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(REPS):
        for name, fn in fns.items():
            loops = ZIGPY_LOOPS if name.startswith("zigpy") else LOOPS
            best[name] = min(best[name], _per_call_seconds(fn, loops))
    us = {name: round(s * 1e6, 3) for name, s in best.items()}

    def ratio(kind: str) -> float:
        return round(best[f"zigpy_{kind}"] / best[f"ours_{kind}"], 1)

    exchange_us = best["ours_full_exchange"] * 1e6
    return {
        "unit": "microseconds per operation (encode + decode, ZCL header included), best of "
                f"{REPS} loops of {LOOPS} (zigpy {ZIGPY_LOOPS})",
        "data_bytes": len(DATA),
        "request_frame_bytes": len(req_bytes),
        "response_frame_bytes": len(rsp_bytes),
        "us": us,
        "zigpy_over_ours": {k: ratio(k) for k in ("block_request", "block_response",
                                                    "full_exchange")},
        "codec_exchanges_per_s": round(1e6 / exchange_us),
        "codec_share_of_20k_budget": round(exchange_us / EXCHANGE_BUDGET_US, 3),
    }
