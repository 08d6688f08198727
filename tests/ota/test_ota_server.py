"""The OTA Upgrade server (bridge_emu.ota.server): the image store and its choice,
every command's answer as real bytes (read back by bridge_emu.codec.zcl and by
zigpy's Ota schemas), throttling, delays and page bursts on deadlines, Upgrade
End timing per policy, malformed input, and full downloads over the simulated
network reproducing the file byte for byte."""
from __future__ import annotations

import math
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest
from zigpy.zcl import foundation as zigpy_foundation
from zigpy.zcl.clusters.general import Ota

from bridge_emu.codec.ota_file import GenericBody, OtaHeader, SubElement
from bridge_emu.codec.zcl import (
    OTA_CLUSTER_ID,
    UPGRADE_TIME_WAIT,
    AttributeId,
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
    OtaCommand,
    QueryDeviceSpecificFileRequest,
    QueryDeviceSpecificFileResponse,
    QueryNextImageRequest,
    QueryNextImageResponse,
    ReadAttributeRecord,
    ReadAttributes,
    ReadAttributesResponse,
    Status,
    UpgradeEndRequest,
    UpgradeEndResponse,
    decode,
    encode,
)
from bridge_emu.net import Driver, LinkSpec, SimNetwork
from bridge_emu.ota.server import (
    BROADCAST_ALL,
    DEFAULT_UTC_AT_ZERO,
    PRESETS,
    BlockErrorForm,
    ClientPhase,
    DelayMode,
    EndFailure,
    ImageStore,
    OtaImage,
    OtaServer,
    PageRefusal,
    Policy,
    Trigger,
    UpgradeTime,
    VersionRule,
    zigbee_utc,
)
from support.paths import IMAGES

C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT
CH, B1, B2, B3, B4 = 0x0000, 0x1001, 0x1002, 0x1003, 0x1004
MANUF = 0xBEE0
B1_TYPE = 0x0B01
V100, V110, V111 = 0x01000000, 0x01010000, 0x01010001


@pytest.fixture(scope="module")
def store() -> ImageStore:
    return ImageStore.from_folder(IMAGES)


def b1(version: int) -> Path:
    return next(IMAGES.glob(f"B1/BEE0-0B01-{version:08X}-*.zigbee"))


def ota_bytes(manufacturer=0x1234, image_type=0x0001, version=1, payload=b"x" * 300,
              hw: tuple[int, int] | None = None, destination: int | None = None) -> bytes:
    """A small generic OTA file (one upgrade-image sub-element)."""
    body = GenericBody((SubElement(0x0000, payload),)).build()
    header = OtaHeader(manufacturer, image_type, version,
                       min_hardware_version=None if hw is None else hw[0],
                       max_hardware_version=None if hw is None else hw[1],
                       upgrade_file_destination=destination)
    return header.build(len(body)) + body


def small_store(*files: bytes) -> ImageStore:
    s = ImageStore()
    for i, data in enumerate(files):
        assert s.add_bytes(data, f"f{i}") is not None
    return s


def send(server: OtaServer, cmd, *, src: int = B1, now: float = 0.0, tsn: int = 7,
         **header) -> list:
    """Feed one client->server frame; the decoded answers (all to src, OTA cluster)."""
    server.receive(src, OTA_CLUSTER_ID, encode(Frame.of(cmd, tsn, **header)), now)
    return answers(server, src)


def answers(server: OtaServer, src: int = B1) -> list:
    out = server.pop_outgoing()
    assert all(dst == src and cluster == OTA_CLUSTER_ID for dst, cluster, _ in out)
    return [decode(payload, S2C) for _, _, payload in out]


def block_req(image: OtaImage, offset: int, size: int = 64, **kw) -> ImageBlockRequest:
    return ImageBlockRequest(*image.key, offset, size, **kw)


def query(version=V100, hw=0x0100, manufacturer=MANUF, image_type=B1_TYPE):
    return QueryNextImageRequest(manufacturer, image_type, version, hw)


# ------------------------------------------------------------------ zigpy's view

def zigpy_read(payload: bytes) -> dict:
    """zigpy's reading of a server->client frame: its fields that are present."""
    hdr, rest = zigpy_foundation.ZCLHeader.deserialize(payload)
    assert int(hdr.direction) == S2C
    if int(hdr.frame_control.frame_type) == FrameType.GLOBAL:
        schema = zigpy_foundation.GENERAL_COMMANDS[hdr.command_id].schema
    else:
        schema = Ota.client_commands[hdr.command_id].schema
    obj, left = schema.deserialize(rest)
    assert left == b""
    return {k: v for k, v in obj.as_dict().items() if v is not None}


# ------------------------------------------------------------------ image store

def test_store_loads_the_project_images(store):
    assert len(store) == 12
    # index.json and the keys are not OTA files: skipped, each with its reason
    assert len(store.skipped) == 6
    assert all("magic" in reason for _, reason in store.skipped)
    for image in store:
        raw = Path(image.name).read_bytes()
        assert image.data == raw and image.size == len(raw) == image.header.total_image_size
        assert store.get(*image.key) is image
    assert store.find(b1(V110).name) is store.find("B1/" + b1(V110).name) \
        is store.get(MANUF, B1_TYPE, V110)
    with pytest.raises(KeyError):
        store.find((MANUF, B1_TYPE, 0x02000000))


def test_store_select_newer_hardware_and_any(store):
    # newest first; the faulty 1.1.1 is the newest B1 file in images/
    assert store.select(MANUF, B1_TYPE, V100, 0x0100).file_version == V111
    assert store.select(MANUF, B1_TYPE, V110, 0x01FF).file_version == V111
    assert store.select(MANUF, B1_TYPE, V111, 0x0100) is None
    # hardware outside the file's range (B1 files: 0x100..0x1FF)
    assert store.select(MANUF, B1_TYPE, V100, 0x0200) is None
    assert store.select(MANUF, B1_TYPE, V100, 0x00FF) is None
    assert store.select(MANUF, B1_TYPE, V100, None).file_version == V111   # not given: any
    # wrong manufacturer or image type
    assert store.select(0x1234, B1_TYPE, V100, 0x0100) is None
    assert store.select(MANUF, 0x0B05, V100, 0x0100) is None
    # "any different": a client on the newest gets the next one down
    assert store.select(MANUF, B1_TYPE, V111, 0x0100, version="any").file_version == V110
    assert store.select(MANUF, B1_TYPE, V110, 0x0100, version="any").file_version == V111


def test_store_wildcards_device_specific_and_ranges():
    s = small_store(ota_bytes(0xFFFF, 0x0001, 5),                    # any manufacturer
                    ota_bytes(0x1234, 0x0001, 4, hw=(2, 3)),
                    ota_bytes(0x1234, 0x0001, 9, destination=0x1122334455667788))
    assert s.select(0x4321, 0x0001, 1).file_version == 5
    assert s.select(0x1234, 0x0001, 1, 2).file_version == 5          # 5 beats 4; 9 is device-specific
    assert s.select(0x1234, 0x0001, 4, 2).file_version == 5
    assert s.select(0x1234, 0x0001, 5, 3) is None
    assert s.select(0x1234, 0x0001, 3, 9, version="any").file_version == 5
    s2 = small_store(ota_bytes(0x1234, 0x0001, 4, hw=(2, 3)))
    assert s2.select(0x1234, 0x0001, 1, 3).file_version == 4
    assert s2.select(0x1234, 0x0001, 1, 4) is None
    assert s2.select(0x1234, 0x0001, 1, None).file_version == 4


def test_store_skips_what_it_cannot_serve_and_strips_wrappers(caplog):
    good = ota_bytes(version=1)
    s = ImageStore()
    assert s.add_bytes(good[:-10], "cut") is None                     # truncated
    assert s.add_bytes(b"not an ota file", "junk") is None
    wrapped = s.add_bytes(len(good).to_bytes(4, "little") + good + b"tail", "wrapped")
    assert wrapped is not None and wrapped.data == good               # prefix and tail dropped
    assert any("prefix" in n for n in wrapped.notes) and any("trailing" in n for n in wrapped.notes)
    assert s.add_bytes(good, "again") is None                         # same bytes
    assert s.add_bytes(ota_bytes(version=1, payload=b"y" * 300), "clash") is None
    assert [name for name, _ in s.skipped] == ["cut", "junk", "again", "clash"]
    assert "truncated" in s.skipped[0][1] and "already held" in s.skipped[3][1]
    assert "cut" in caplog.text and "clash" in caplog.text
    assert len(s) == 1


# ------------------------------------------------------------------ Query Next Image

def test_query_next_image(store):
    server = OtaServer(store, "gbcs-ch")
    [f] = send(server, query(V100), tsn=42)
    newest = store.get(MANUF, B1_TYPE, V111)
    assert f.header.tsn == 42 and f.header.disable_default_response
    assert f.command == QueryNextImageResponse(Status.SUCCESS, *newest.key, newest.size)
    assert server.clients[B1].offered is newest
    assert zigpy_read(encode(f))["image_size"] == newest.size
    # up to date, foreign hardware, unknown image type: nothing
    for q in (query(V111), query(V100, hw=0x0200), query(V100, image_type=0x0BFF)):
        [f] = send(server, q)
        assert f.command == QueryNextImageResponse(Status.NO_IMAGE_AVAILABLE)
        assert zigpy_read(encode(f))["status"] == Status.NO_IMAGE_AVAILABLE
    assert server.clients[B1].offered is None
    assert [e[0] for e in server.events] == ["query"] * 4
    assert server.events[0] == ("query", B1, V111, 0.0)


def test_override_per_client_wins(store):
    server = OtaServer(store, "gbcs-ch")
    nxt = server.offer(B2, b1(V110).name)
    down = server.offer(B3, (MANUF, B1_TYPE, V100))
    assert send(server, query(V100), src=B2)[0].command.file_version == V110
    assert send(server, query(V100), src=B1)[0].command.file_version == V111   # no override
    # an override bypasses version and hardware rules: a downgrade, other hardware
    assert send(server, query(V110, hw=0x0300), src=B3)[0].command.file_version == V100
    # a client already running the override is offered nothing
    assert send(server, query(V110), src=B2)[0].command.status == Status.NO_IMAGE_AVAILABLE
    assert server.clients[B2].offered is None and server.clients[B3].offered is down
    server.clear_offer(B2)
    assert send(server, query(V110), src=B2)[0].command.file_version == V111
    assert nxt.file_version == V110
    with pytest.raises(KeyError):
        server.offer(B4, "no-such-file.zigbee")


# ------------------------------------------------------------------ Image Block

@pytest.mark.parametrize("preset,cap", [("gbcs-ch", 64), ("zigpy", 50), ("herdsman", 50)])
def test_block_cap_and_max_data_size(store, preset, cap):
    server = OtaServer(store, Policy.preset(preset, response_delay_s=0))
    image = store.get(MANUF, B1_TYPE, V110)
    [f] = send(server, block_req(image, 1000, 200), tsn=9)
    assert f.header.tsn == 9 and f.header.disable_default_response
    assert f.command == ImageBlockResponse(*image.key, 1000, image.data[1000:1000 + cap])
    [f] = send(server, block_req(image, 1000, 20))
    assert f.command.data == image.data[1000:1020]
    got = zigpy_read(encode(f))
    assert got["status"] == Status.SUCCESS and bytes(got["image_data"]) == image.data[1000:1020]
    st = server.clients[B1]
    assert (st.blocks_served, st.bytes_served, st.last_offset, st.serving) == (2, cap + 20, 1000,
                                                                              image)


def test_block_bytes_equal_the_codec(store):
    """A block response is what the codec encodes for it (the server's header
    cache included)."""
    server = OtaServer(store, "gbcs-ch")
    image = store.get(MANUF, B1_TYPE, V110)
    server.receive(B1, OTA_CLUSTER_ID, encode(Frame.of(block_req(image, 64), 200)), 0.0)
    [(_, _, payload)] = server.pop_outgoing()
    expect = Frame.of(ImageBlockResponse(*image.key, 64, image.data[64:128]), 200,
                      disable_default_response=True)
    assert payload == encode(expect)


def test_last_block_shorter_and_past_the_end(store):
    image = store.get(MANUF, B1_TYPE, V110)
    last = image.size - 10
    for preset, past_end in (("gbcs-ch", Status.NO_IMAGE_AVAILABLE),
                             ("zigpy", Status.MALFORMED_COMMAND)):
        server = OtaServer(store, preset)
        [f] = send(server, block_req(image, last))
        assert f.command == ImageBlockResponse(*image.key, last, image.data[-10:])
        for offset, size in ((image.size, 64), (image.size + 1000, 64), (0xFFFFFFFF, 64), (0, 0)):
            [f] = send(server, block_req(image, offset, size))
            assert f.command == ImageBlockAbort(past_end)
            assert zigpy_read(encode(f)) == {"status": past_end}
        assert server.clients[B1].block_errors == 4
        assert server.events[-1] == ("block_error", B1, past_end, 0.0)


def test_block_for_unknown_image_and_error_forms(store):
    image = store.get(MANUF, B1_TYPE, V110)
    other = store.get(MANUF, 0x0B02, V100)
    server = OtaServer(store, "gbcs-ch")
    # stateless: any stored image is served by its id, offered or not
    assert send(server, block_req(other, 0))[0].command.data == other.data[:64]
    [f] = send(server, ImageBlockRequest(MANUF, B1_TYPE, 0x05000000, 0, 64))
    assert f.command == ImageBlockAbort(Status.NO_IMAGE_AVAILABLE)
    server = OtaServer(store, Policy.preset("gbcs-ch", block_error_form="default-response",
                                            unknown_image_status=Status.ABORT))
    [f] = send(server, ImageBlockRequest(MANUF, B1_TYPE, 0x05000000, 0, 64), tsn=3)
    assert f.header.frame_type == FrameType.GLOBAL and f.header.tsn == 3
    assert f.command == DefaultResponse(OtaCommand.IMAGE_BLOCK_REQUEST, Status.ABORT)
    [f] = send(server, block_req(image, image.size))
    assert f.command == DefaultResponse(OtaCommand.IMAGE_BLOCK_REQUEST, Status.NO_IMAGE_AVAILABLE)
    assert zigpy_read(encode(f))["status"] == Status.NO_IMAGE_AVAILABLE


def test_lenient_and_full_block_request_forms(store):
    image = store.get(MANUF, B1_TYPE, V110)
    server = OtaServer(store, "gbcs-ch")
    for kw in ({"request_node_addr": 0x0011223344556677}, {"minimum_block_period": 250},
               {"period_missing": True},
               {"request_node_addr": 1, "minimum_block_period": 0}):
        [f] = send(server, block_req(image, 128, **kw))
        assert f.command.data == image.data[128:192]
    assert server.clients[B1].minimum_block_period == 0


def test_abort_answers_abort_once(store):
    image = store.get(MANUF, B1_TYPE, V110)
    server = OtaServer(store, "gbcs-ch")
    server.abort(B1)
    assert send(server, block_req(image, 0))[0].command == ImageBlockAbort(Status.ABORT)
    assert send(server, block_req(image, 0))[0].command.data == image.data[:64]


# ------------------------------------------------------------------ WAIT_FOR_DATA

def test_min_block_period_throttling(store):
    image = store.get(MANUF, B1_TYPE, V110)
    server = OtaServer(store, Policy.preset("gbcs-ch", min_block_period_ms=1500))
    assert isinstance(send(server, block_req(image, 0), now=10.0)[0].command, ImageBlockResponse)
    [f] = send(server, block_req(image, 64), now=10.25)
    utc = DEFAULT_UTC_AT_ZERO + 10
    # 1.25 s of the period left: come back in 2 whole seconds, then every 1500 ms
    assert f.command == ImageBlockWait(utc, utc + 2, 1500)
    assert zigpy_read(encode(f))["minimum_block_period"] == 1500
    assert server.next_deadline() is None           # a WAIT is an answer, at once
    [f] = send(server, block_req(image, 64), now=11.5)
    assert f.command.file_offset == 64
    assert server.clients[B1].waits == 1
    # relative time (a server with no clock): current_time 0, request_time a delay
    server = OtaServer(store, Policy.preset("gbcs-ch", min_block_period_ms=500, wait_utc=False))
    send(server, block_req(image, 0), now=0.0)
    assert send(server, block_req(image, 64), now=0.1)[0].command == ImageBlockWait(0, 1, 500)


def test_every_nth_request_waits(store):
    image = store.get(MANUF, B1_TYPE, V110)
    server = OtaServer(store, Policy.preset("gbcs-ch", wait_every=3, wait_s=5,
                                            utc_at_zero=1000))
    kinds = []
    for i in range(7):
        [f] = send(server, block_req(image, 0), now=float(i))
        kinds.append(type(f.command).__name__)
        if isinstance(f.command, ImageBlockWait):
            assert f.command == ImageBlockWait(1000 + i, 1005 + i, 0)
    assert kinds == ["ImageBlockResponse", "ImageBlockResponse", "ImageBlockWait"] * 2 + \
        ["ImageBlockResponse"]


# ------------------------------------------------------------------ response delay

def test_herdsman_response_delay_since_last(store):
    image = store.get(MANUF, B1_TYPE, V110)
    server = OtaServer(store, "herdsman")
    assert len(send(server, block_req(image, 0), now=0.0)) == 1      # nothing sent before: at once
    assert send(server, block_req(image, 50), now=0.125) == []
    assert server.next_deadline() == 0.25
    server.timer(0.2)                                                  # early: nothing
    assert server.pop_outgoing() == []
    server.timer(0.25)
    [f] = answers(server)
    assert f.command.file_offset == 50 and server.next_deadline() is None
    # a request long after the last response is answered at once
    assert len(send(server, block_req(image, 100), now=5.0)) == 1


def test_fixed_response_delay(store):
    image = store.get(MANUF, B1_TYPE, V110)
    server = OtaServer(store, Policy.preset("gbcs-ch", response_delay_s=0.5,
                                            response_delay_mode="fixed"))
    assert send(server, block_req(image, 0), now=1.0) == []
    assert send(server, block_req(image, 64), now=1.25, tsn=8) == []
    assert server.next_deadline() == 1.5
    server.timer(1.5)
    [f] = answers(server)
    assert f.command.file_offset == 0 and server.next_deadline() == 1.75
    server.timer(2.0)
    [f] = answers(server)
    assert (f.command.file_offset, f.header.tsn) == (64, 8)
    assert server.clients[B1].blocks_served == 2


# ------------------------------------------------------------------ Image Page Request

def drain(server: OtaServer, until: float, src: int = B1) -> list[tuple[float, Frame]]:
    """Run the server's deadlines up to `until`: (time, frame) of what it sent."""
    got = [(None, f) for f in answers(server, src)]
    while (t := server.next_deadline()) is not None and t <= until:
        server.timer(t)
        got += [(t, f) for f in answers(server, src)]
    return got


def test_page_burst_spacing(store):
    image = store.get(MANUF, B1_TYPE, V110)
    server = OtaServer(store, "zigpy")
    server.receive(B1, OTA_CLUSTER_ID, encode(Frame.of(
        ImagePageRequest(*image.key, 1000, 64, 200, 50), 77)), 3.0)
    got = drain(server, 10.0)
    times = [t for t, _ in got]
    assert times[0] is None and times[1:] == pytest.approx([3.05, 3.10, 3.15])
    assert [f.command.file_offset for _, f in got] == [1000, 1050, 1100, 1150]
    assert all(f.header.tsn == 77 for _, f in got)
    assert b"".join(f.command.data for _, f in got) == image.data[1000:1200]
    assert server.clients[B1].bytes_served == 200 and server.clients[B1].pages == 1
    # the last page of the file is cut at its end
    server.receive(B1, OTA_CLUSTER_ID, encode(Frame.of(
        ImagePageRequest(*image.key, image.size - 70, 64, 1024, 0), 78)), 20.0)
    got = drain(server, 30.0)
    assert [len(f.command.data) for _, f in got] == [50, 20]


def test_new_page_replaces_the_burst_and_abort_stops_it(store):
    image = store.get(MANUF, B1_TYPE, V110)
    server = OtaServer(store, "zigpy")

    def page(off, tsn):
        return encode(Frame.of(ImagePageRequest(*image.key, off, 50, 500, 100), tsn))
    server.receive(B1, OTA_CLUSTER_ID, page(0, 1), 0.0)
    server.receive(B1, OTA_CLUSTER_ID, page(1000, 2), 0.05)
    assert server.clients[B1].phase is ClientPhase.PAGING
    got = drain(server, 10.0)
    assert [f.command.file_offset for _, f in got] == [0] + list(range(1000, 1500, 50))
    assert server.clients[B1].phase is ClientPhase.DOWNLOADING      # the burst ran out
    server.receive(B1, OTA_CLUSTER_ID, page(2000, 3), 20.0)
    server.abort(B1)
    assert server.clients[B1].phase is ClientPhase.ABORTING
    assert len(drain(server, 30.0)) == 1                             # only the first went


def test_herdsman_paces_pages_by_its_delay(store):
    image = store.get(MANUF, B1_TYPE, V110)
    server = OtaServer(store, "herdsman")
    server.receive(B1, OTA_CLUSTER_ID, encode(Frame.of(
        ImagePageRequest(*image.key, 0, 64, 150, 10), 5)), 0.0)
    got = drain(server, 10.0)
    assert [t for t, _ in got] == [None, 0.25, 0.5]
    assert [len(f.command.data) for _, f in got] == [50, 50, 50]


def test_pages_disabled(store):
    image = store.get(MANUF, B1_TYPE, V110)
    req = ImagePageRequest(*image.key, 0, 64, 1024, 50)
    server = OtaServer(store, "gbcs-ch")
    [f] = send(server, req, tsn=12)
    assert f.command == DefaultResponse(OtaCommand.IMAGE_PAGE_REQUEST, Status.UNSUP_CLUSTER_COMMAND)
    assert f.header.tsn == 12 and server.next_deadline() is None
    server = OtaServer(store, Policy.preset("gbcs-ch", page_refusal="silent"))
    assert send(server, req) == [] and server.next_deadline() is None
    assert server.events[-1] == ("page_refused", B1, 0, 0.0)


# ------------------------------------------------------------------ Upgrade End

@pytest.mark.parametrize("mode,expect", [
    ("now", lambda utc: (0, 0)),
    ("plus_one", lambda utc: (0, 1)),
    ("delay:3600", lambda utc: (utc, utc + 3600)),
    ("wait", lambda utc: (utc, UPGRADE_TIME_WAIT)),
])
def test_upgrade_end_response_per_mode(store, mode, expect):
    origin = zigbee_utc(datetime(2030, 6, 1, tzinfo=UTC))
    server = OtaServer(store, Policy(upgrade_time=mode, utc_at_zero=origin))
    [f] = send(server, UpgradeEndRequest(Status.SUCCESS, MANUF, B1_TYPE, V110), now=125.75,
               tsn=33)
    utc = origin + 125
    assert f.header.tsn == 33
    assert f.command == UpgradeEndResponse(MANUF, B1_TYPE, V110, *expect(utc))
    z = zigpy_read(encode(f))
    assert (int(z["current_time"]), int(z["upgrade_time"])) == expect(utc)
    st = server.clients[B1]
    assert (st.upgrade_end_status, st.upgrade_end_at, st.upgrade_end_version) == \
        (Status.SUCCESS, 125.75, V110)
    assert server.events[-1] == ("upgrade_end", B1, Status.SUCCESS, 125.75)


def test_presets_upgrade_times(store):
    end = UpgradeEndRequest(Status.SUCCESS, MANUF, B1_TYPE, V110)
    got = {name: send(OtaServer(store, name), end, now=10.0)[0].command for name in PRESETS}
    assert (got["zigpy"].current_time, got["zigpy"].upgrade_time) == (0, 0)
    assert (got["herdsman"].current_time, got["herdsman"].upgrade_time) == (0, 1)
    assert (got["gbcs-ch"].current_time, got["gbcs-ch"].upgrade_time) == \
        (DEFAULT_UTC_AT_ZERO + 10, 0xFFFFFFFF)


@pytest.mark.parametrize("status", [Status.INVALID_IMAGE, Status.ABORT, Status.REQUIRE_MORE_IMAGE])
def test_upgrade_end_failures(store, status):
    req = UpgradeEndRequest(status, MANUF, B1_TYPE, V110)
    server = OtaServer(store, "gbcs-ch")
    [f] = send(server, req, tsn=4)
    assert f.command == DefaultResponse(OtaCommand.UPGRADE_END_REQUEST, Status.SUCCESS)
    assert zigpy_read(encode(f))["status"] == Status.SUCCESS
    assert send(server, req, disable_default_response=True) == []
    assert server.clients[B1].upgrade_end_status == status
    assert [e for e in server.events if e[0] == "upgrade_end"] == [("upgrade_end", B1, status,
                                                                     0.0)] * 2
    assert send(OtaServer(store, "herdsman"), req) == []
    [f] = send(OtaServer(store, "zigpy"), req)
    assert f.command == UpgradeEndResponse(MANUF, B1_TYPE, V110, 0, 0)


# ------------------------------------------------------------------ other commands

def test_query_device_specific_file(store):
    server = OtaServer(store, "gbcs-ch")
    [f] = send(server, QueryDeviceSpecificFileRequest(0x0011223344556677, MANUF, B1_TYPE, V100, 2))
    assert f.command == QueryDeviceSpecificFileResponse(Status.NO_IMAGE_AVAILABLE)
    assert zigpy_read(encode(f)) == {"status": Status.NO_IMAGE_AVAILABLE}


def test_read_attributes_both_ways(store):
    server = OtaServer(store, "gbcs-ch")
    [f] = send(server, ReadAttributes((0xFFFD, 0x0001)), direction=C2S)
    assert f.command == ReadAttributesResponse((
        ReadAttributeRecord.of(AttributeId.CLUSTER_REVISION, 3),
        ReadAttributeRecord(0x0001, Status.UNSUPPORTED_ATTRIBUTE)))
    payload = server.read_attributes(B2, [AttributeId.CURRENT_FILE_VERSION])
    assert decode(payload, S2C).command == ReadAttributes((AttributeId.CURRENT_FILE_VERSION,))
    assert server.pop_outgoing() == [(B2, OTA_CLUSTER_ID, payload)]
    rsp = ReadAttributesResponse((ReadAttributeRecord.of(AttributeId.CURRENT_FILE_VERSION, V110),
                                  ReadAttributeRecord(0x0009, Status.UNSUPPORTED_ATTRIBUTE)))
    assert send(server, rsp, src=B2, direction=C2S) == []
    assert server.clients[B2].attributes == {AttributeId.CURRENT_FILE_VERSION: V110}


def test_image_notify(store):
    server = OtaServer(store, "gbcs-ch")
    image = store.get(MANUF, B1_TYPE, V110)
    for ptype in range(4):
        payload = server.notify(B1, 1.0, payload_type=ptype, query_jitter=100, image=image)
        f = decode(payload, S2C)
        assert f.command == ImageNotify(100, *image.key[:ptype])
        assert f.header.disable_default_response
        z = zigpy_read(payload)
        assert int(z["payload_type"]) == ptype and z["query_jitter"] == 100
    assert len(server.pop_outgoing()) == 4
    server.notify_all(2.0, query_jitter=40)
    [(dst, _, payload)] = server.pop_outgoing()
    assert dst == BROADCAST_ALL and decode(payload, S2C).command == ImageNotify(40)
    server.offer(B3, image)
    server.notify_all(3.0, [B2, B3], payload_type=3, image=image)
    assert [d for d, _, _ in server.pop_outgoing()] == [B2, B3]
    assert decode(server.notify(B3, 4.0, payload_type=3), S2C).command.file_version == V110
    tsns = {decode(p, S2C).header.tsn for _, _, p in server.pop_outgoing()}
    assert len(tsns) == 1
    with pytest.raises(ValueError):
        server.notify(B4, 0.0, payload_type=1)            # no image, no override
    with pytest.raises(ValueError):
        server.notify(B4, 0.0, payload_type=4)
    assert ("notify", BROADCAST_ALL, 0, 2.0) in server.events


# ------------------------------------------------------------------ malformed input

def test_malformed_frames_get_default_responses(store):
    server = OtaServer(store, "gbcs-ch")
    image = store.get(MANUF, B1_TYPE, V110)
    good = encode(Frame.of(block_req(image, 0), 9))
    cases = [
        (good[:-1], Status.MALFORMED_COMMAND),                        # short payload
        (good + b"\x00", Status.MALFORMED_COMMAND),                   # trailing byte
        (bytes([0x01, 9, 0x0A]), Status.UNSUP_CLUSTER_COMMAND),        # unknown command
        (bytes([0x01, 9, 0x00, 0, 100]), Status.UNSUP_CLUSTER_COMMAND),   # notify, wrong way
        (bytes([0x05, 0x34, 0x12, 9, 0x03]) + good[3:], Status.UNSUP_MANUF_CLUSTER_COMMAND),
        (bytes([0x00, 9, 0x77]), Status.UNSUP_GENERAL_COMMAND),       # unknown global command
    ]
    for data, status in cases:
        server.receive(B1, OTA_CLUSTER_ID, data, 0.0)
        [f] = answers(server)
        assert f.header.frame_type == FrameType.GLOBAL and f.header.tsn == 9
        assert f.command == DefaultResponse(data[4] if data[0] & 0x04 else data[2], status)
    # no answer due: no header, the wrong direction, a malformed Default Response
    for data in (b"", b"\x01", bytes([0x19, 9, 0x05, 0x95]), bytes([0x00, 9, 0x0B, 1])):
        server.receive(B1, OTA_CLUSTER_ID, data, 0.0)
        assert server.pop_outgoing() == []
    # other clusters are not ours
    server.receive(B1, 0x0702, good, 0.0)
    assert server.pop_outgoing() == [] and server.ignored == 1
    assert server.malformed == len(cases) + 4 and server.errors == 0


def test_fuzz_never_raises(store):
    """Random and mutated frames: receive() never raises, every answer decodes."""
    rng = random.Random(1)
    image = store.get(MANUF, B1_TYPE, V110)
    seeds = [encode(Frame.of(c, 1)) for c in (
        query(), block_req(image, 100), ImagePageRequest(*image.key, 0, 64, 256, 5),
        UpgradeEndRequest(Status.SUCCESS, *image.key),
        QueryDeviceSpecificFileRequest(1, *image.key, 2))]
    seeds.append(encode(Frame.of(ReadAttributes((1, 2)), 1, direction=C2S)))
    for name in PRESETS:
        server = OtaServer(store, Policy.preset(name, min_block_period_ms=10, wait_every=5))
        now = 0.0
        for i in range(3000):
            if i % 3 == 0:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(24)))
            else:
                data = bytearray(rng.choice(seeds))
                for _ in range(rng.randrange(1, 4)):
                    op = rng.randrange(3)
                    if op == 0 and data:
                        data[rng.randrange(len(data))] = rng.randrange(256)
                    elif op == 1 and data:
                        del data[rng.randrange(len(data)):]
                    else:
                        data += bytes([rng.randrange(256)])
                data = bytes(data)
            now += 0.01
            server.receive(rng.choice([B1, B2]), OTA_CLUSTER_ID, data, now)
            server.timer(now)
            for _, _, payload in server.pop_outgoing():
                decode(payload, S2C)
        assert server.errors == 0, name
        assert server.malformed > 100


def test_internal_errors_are_contained(store, caplog):
    server = OtaServer(store, "gbcs-ch")

    def boom(*_):
        raise RuntimeError("observer bug")
    server.on_event = boom                                 # an observer's bug: logged, ignored
    assert len(send(server, query())) == 1
    server._handlers[QueryNextImageRequest] = boom         # a handler's bug: logged, counted
    assert send(server, query()) == []
    assert server.errors == 1 and server.events[-1][0] == "error"
    assert "observer bug" in caplog.text


# ------------------------------------------------------------------ policy

def test_policy_validation_and_presets():
    assert Policy.preset("zigpy").block_cap == 50 and Policy.preset("gbcs-ch").block_cap == 64
    assert Policy.preset("gbcs-ch", min_block_period_ms=250).min_block_period_ms == 250
    assert Policy.preset("herdsman").response_delay_s > 0
    assert Policy(upgrade_time="delay:90").upgrade_times(0.0) == (DEFAULT_UTC_AT_ZERO,
                                                                 DEFAULT_UTC_AT_ZERO + 90)
    for bad in (dict(block_cap=0), dict(block_cap=255), dict(upgrade_time="later"),
                dict(upgrade_time="delay:x"), dict(version="older"), dict(page_refusal="x"),
                dict(min_block_period_ms=70000), dict(response_delay_s=-1),
                dict(past_end_status=Status.SUCCESS), dict(end_failure="x")):
        with pytest.raises(ValueError):
            Policy(**bad)
    with pytest.raises(ValueError):
        Policy.preset("ember")
    assert DEFAULT_UTC_AT_ZERO == 820540800        # 2026-01-01 in ZigBee UTC


def test_policy_choices_are_enums_given_as_strings_or_members():
    p = Policy(version="any", page_refusal="default-response", response_delay_mode="fixed",
               block_error_form="default-response", end_failure="silent", upgrade_time="wait",
               unknown_image_status=0x95)
    assert (p.version, p.page_refusal, p.response_delay_mode, p.block_error_form, p.end_failure,
            p.upgrade_time, p.upgrade_mode) == (
        VersionRule.ANY, PageRefusal.DEFAULT_RESPONSE, DelayMode.FIXED,
        BlockErrorForm.DEFAULT_RESPONSE, EndFailure.SILENT, UpgradeTime.WAIT, UpgradeTime.WAIT)
    assert p.version is VersionRule.ANY and p.version == "any"        # members, equal to strings
    assert p.unknown_image_status is Status.ABORT
    assert p == Policy(version=VersionRule.ANY, page_refusal=PageRefusal.DEFAULT_RESPONSE,
                       response_delay_mode=DelayMode.FIXED,
                       block_error_form=BlockErrorForm.DEFAULT_RESPONSE,
                       end_failure=EndFailure.SILENT, upgrade_time=UpgradeTime.WAIT,
                       unknown_image_status=Status.ABORT)
    # the parametrised mode keeps its spelling; its parse is derived (and redone by replace)
    d = Policy(upgrade_time="delay:90")
    assert (d.upgrade_time, d.upgrade_mode, d.upgrade_delay_s) == ("delay:90", UpgradeTime.DELAY, 90)
    assert Policy.preset("zigpy", upgrade_time="delay:5").upgrade_delay_s == 5
    assert d != Policy(upgrade_time="delay:91")
    assert not Policy().throttled and Policy.preset("gbcs-ch", wait_every=3).throttled
    with pytest.raises(ValueError, match="want one of newer, any"):
        Policy(version="older")


# ------------------------------------------------------------------ over the simulated network

class TinyClient:
    """A scripted OTA client Machine: query, blocks (or pages), WAIT_FOR_DATA, end."""

    def __init__(self, server: int, current: int, hw: int, max_data: int = 64,
                 page_size: int = 0, spacing_ms: int = 0, timeout: float = 2.0):
        self.server, self.current, self.hw = server, current, hw
        self.max_data, self.page_size, self.spacing_ms = max_data, page_size, spacing_ms
        self.timeout = timeout
        self.out: list = []
        self.deadline: float | None = None
        self.tsn = 0
        self.image = None
        self.size = 0
        self.data = bytearray()
        self.waits: list[tuple[float, float]] = []      # (when asked to wait, retry at)
        self.block_times: list[float] = []
        self.end: UpgradeEndResponse | None = None
        self._last = None

    def start(self, now: float) -> None:
        self._ask(QueryNextImageRequest(MANUF, B1_TYPE, self.current, self.hw), now)

    def _ask(self, cmd, now: float) -> None:
        self.tsn = (self.tsn + 1) & 0xFF
        self._last = cmd
        self.out.append((self.server, OTA_CLUSTER_ID, encode(Frame.of(cmd, self.tsn))))
        self.deadline = now + self.timeout

    def _next(self, now: float) -> None:
        off = len(self.data)
        if off == self.size:
            self._ask(UpgradeEndRequest(Status.SUCCESS, *self.image), now)
        elif self.page_size:
            self._ask(ImagePageRequest(*self.image, off, self.max_data, self.page_size,
                                       self.spacing_ms), now)
        else:
            self._ask(ImageBlockRequest(*self.image, off, self.max_data), now)

    def receive(self, src, cluster, payload, now):
        c = decode(payload, S2C).command
        if isinstance(c, QueryNextImageResponse):
            assert c.status == Status.SUCCESS
            self.image, self.size = (c.manufacturer, c.image_type, c.file_version), c.image_size
            self._next(now)
        elif isinstance(c, ImageBlockResponse):
            if c.file_offset != len(self.data):
                return                                   # a stale or repeated block
            self.data += c.data
            self.block_times.append(now)
            page_end = (self.page_size and len(self.data) < self.size
                        and (len(self.data) - self._last.file_offset) < self.page_size)
            if page_end:
                self.deadline = now + self.timeout       # more of this page is coming
            else:
                self._next(now)
        elif isinstance(c, ImageBlockWait):
            retry = now + (c.request_time - c.current_time)
            self.waits.append((now, retry))
            self.deadline = retry
        elif isinstance(c, UpgradeEndResponse):
            self.end, self.deadline = c, None
        else:
            raise AssertionError(f"unexpected {c!r}")

    def timer(self, now):
        self.deadline = None
        if self.image is None:
            self.start(now)
        else:
            self._next(now)

    def pop_outgoing(self):
        out, self.out = self.out, []
        return out

    def next_deadline(self):
        return self.deadline


def download(store: ImageStore, policy: Policy, client: TinyClient, link: LinkSpec,
             limit: float = 10_000.0) -> tuple[OtaServer, TinyClient, SimNetwork]:
    net = SimNetwork(seed=3)
    ch = net.add_node(CH, "CH")
    b1_node = net.add_node(B1, "B1", parent=CH, link=link)
    server = OtaServer(store, policy)
    Driver(server, ch, net.clock).start()
    driver = Driver(client, b1_node, net.clock)
    client.start(0.0)
    driver.start()
    assert net.scheduler.run(lambda: client.end is not None, limit=limit)
    return server, client, net


def test_full_download_over_the_sim_reproduces_the_file(store):
    server, client, net = download(
        store, Policy.preset("gbcs-ch"), TinyClient(CH, V100, 0x0100, max_data=65),
        LinkSpec.zigbee(latency_s=0.004, jitter_s=0.002))
    assert client.image == (MANUF, B1_TYPE, V111)                 # the newest, as offered
    want = b1(V111).read_bytes()
    assert bytes(client.data) == want
    st = server.clients[B1]
    assert st.bytes_served == len(want) and st.blocks_served == math.ceil(len(want) / 64)
    assert st.progress == 1.0 and st.upgrade_end_status == Status.SUCCESS
    assert client.end.upgrade_time == UPGRADE_TIME_WAIT
    assert net.link(B1).stats.oversize == 0 and server.errors == 0


def test_full_download_with_override_pages_and_loss(store):
    server_policy = Policy.preset("zigpy")
    client = TinyClient(CH, V100, 0x0100, max_data=64, page_size=1024, spacing_ms=20,
                        timeout=0.5)
    net_link = LinkSpec.zigbee(latency_s=0.002, loss=0.01)
    # the override: this bridge gets 1.1.0, not the newest
    net = SimNetwork(seed=5)
    ch = net.add_node(CH, "CH")
    node = net.add_node(B1, "B1", parent=CH, link=net_link)
    server = OtaServer(store, server_policy)
    server.offer(B1, (MANUF, B1_TYPE, V110))
    Driver(server, ch, net.clock).start()
    driver = Driver(client, node, net.clock)
    client.start(0.0)
    driver.start()
    assert net.scheduler.run(lambda: client.end is not None, limit=10_000.0)
    assert bytes(client.data) == b1(V110).read_bytes()
    assert server.clients[B1].pages > 0 and client.end.upgrade_time == 0
    assert net.link(B1).stats.lost > 0                               # loss happened, and healed


def test_full_download_throttled_by_wait_for_data(store):
    period_ms = 1000
    policy = Policy.preset("gbcs-ch", min_block_period_ms=period_ms, wait_every=7)
    image = store.get(MANUF, 0x0B04, V110)
    # a short image keeps virtual time small: the first 3000 bytes of a file, as B1 1.1.0
    cut = OtaImage("short", OtaHeader(MANUF, B1_TYPE, V110), image.data[:3000])
    small = ImageStore([cut])
    client = TinyClient(CH, V100, 0x0100, max_data=64)
    server, client, net = download(small, policy, client, LinkSpec.zigbee(latency_s=0.01))
    assert bytes(client.data) == image.data[:3000]
    assert client.waits and server.clients[B1].waits == len(client.waits)
    gaps = [b - a for a, b in zip(client.block_times, client.block_times[1:])]
    assert min(gaps) >= period_ms / 1000 - 1e-9                       # the period held
    assert all(retry > asked for asked, retry in client.waits)


def test_scenarios_stay_inside_the_phase_table(store):
    """The downloads above, rerun: every move their client made is a row of the
    phase table (Transitions.go refuses any other, and receive() would count it
    in errors), and a download takes the rows it should, ending UPGRADING.
    tests/ota/test_ota_server_states.py reaches every row of the table."""
    P, T = ClientPhase, Trigger
    # blocks: offered, downloading (the stay on each block takes no lookup), ended
    server, _, _ = download(store, Policy.preset("gbcs-ch"), TinyClient(CH, V100, 0x0100),
                            LinkSpec.zigbee(latency_s=0.004))
    assert server.transitions.taken == {(P.IDLE, T.QUERY_OFFERED): 1, (P.OFFERED, T.BLOCK_SENT): 1,
                                        (P.DOWNLOADING, T.END_SUCCESS): 1}
    assert server.clients[B1].phase is P.UPGRADING and server.errors == 0
    # pages with loss: one burst per page request, each run to its end before the next
    client = TinyClient(CH, V100, 0x0100, page_size=1024, spacing_ms=20, timeout=0.5)
    server, _, _ = download(store, Policy.preset("zigpy"), client,
                            LinkSpec.zigbee(latency_s=0.002, loss=0.01))
    pages = server.clients[B1].pages
    assert server.transitions.taken == {(P.IDLE, T.QUERY_OFFERED): 1, (P.OFFERED, T.PAGE_STARTED): 1,
                                        (P.PAGING, T.BURST_DONE): pages,
                                        (P.DOWNLOADING, T.PAGE_STARTED): pages - 1,
                                        (P.DOWNLOADING, T.END_SUCCESS): 1}
    assert pages > 100 and server.clients[B1].phase is P.UPGRADING and server.errors == 0
    # throttled: WAIT_FOR_DATA keeps it downloading
    cut = OtaImage("short", OtaHeader(MANUF, B1_TYPE, V110),
                   store.get(MANUF, 0x0B04, V110).data[:1000])
    server, client, _ = download(ImageStore([cut]), Policy.preset("gbcs-ch", min_block_period_ms=1000),
                                 TinyClient(CH, V100, 0x0100), LinkSpec.zigbee(latency_s=0.01))
    assert server.transitions.taken == {(P.IDLE, T.QUERY_OFFERED): 1, (P.OFFERED, T.BLOCK_SENT): 1,
                                        (P.DOWNLOADING, T.WAIT_SENT): len(client.waits),
                                        (P.DOWNLOADING, T.END_SUCCESS): 1}
    assert client.waits and server.errors == 0
