"""The hostile OTA client (bridge_emu.ota.hostile) with its plans from
bridge_emu.strategies.hostile_plans, as a user fuzzing an OTA server runs it:
against bridge-emu's own server (every personality: no finding), against servers
broken on purpose (each rule catches its fault), and against zigpy 2.4's real
OTAManager, where it finds three things (results about zigpy, kept visible):

- reply_malformed: a Query Next Image Response NO_IMAGE_AVAILABLE that carries the
  image's manufacturer, type, version and size (12 bytes ZCL does not allow after a
  status other than SUCCESS), sent when a query in a session does not fit its image;
- block_id: an Image Block Request for a file version it never offered is answered
  with its own image's bytes under its own version (ZCL: NO_IMAGE_AVAILABLE);
- end_id: an Upgrade End Request for another image is answered for its own.
"""
from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from zigpy.ota.manager import update_firmware

from bridge_emu import strategies as bs
from bridge_emu.codec import zcl
from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.transport import Driver
from bridge_emu.ota import hostile as h
from bridge_emu.premises.images import ImageSet
from bridge_emu.testing import fuzz_server, ota_server
from support import virtual_loop
from support.paths import IMAGES
from support.zigpy_host import zigpy_image
from support.zigpy_ota import Link, Lossy

pytestmark = pytest.mark.native

DATA = ImageSet(IMAGES).file("B4", "next").read_bytes()
B4 = (0xBEE0, 0x0B04)
# derandomized: the same examples every run, so a finding is one to read, not a flaky CI
SOME = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
SESSION = [h.Query(*B4, 0x01000000, 0x0401), h.Block(0, 40), h.Block(40, 40), h.Page(80, 500, 40, 5),
           h.Block(len(DATA) - 10, 40), h.Block(len(DATA), 40), h.Block(0, 40), h.Block(0, 255), h.End(), h.End()]


@SOME
@given(bs.hostile_plans(*B4, size=len(DATA)), st.sampled_from(["zigpy", "herdsman", "gbcs-ch"]))
def test_our_server_answers_any_hostile_plan_by_the_rules(plan, personality):
    client = fuzz_server(ota_server([DATA], personality), plan)
    assert client.done and not client.findings, client.findings


def test_a_plain_session_is_answered_and_checked():
    client = fuzz_server(ota_server([DATA], "zigpy"), SESSION)
    kinds = [type(f.command).__name__ for _, f in client.heard]
    assert kinds[0] == "QueryNextImageResponse" and kinds.count("ImageBlockResponse") >= 10
    assert "ImageBlockAbort" in kinds and not client.findings       # past the end: not SUCCESS


class Broken:
    """Our server with one fault put into what it sends."""

    def __init__(self, fault: str):
        self.server, self.fault = ota_server([DATA], "zigpy"), fault

    def receive(self, *a):
        self.server.receive(*a)

    def timer(self, now):
        self.server.timer(now)

    def next_deadline(self):
        return self.server.next_deadline()

    def pop_outgoing(self):
        out = []
        for dst, cluster, payload in self.server.pop_outgoing():
            frame = zcl.decode(payload, None)
            cmd = frame.command
            if isinstance(cmd, zcl.ImageBlockResponse):
                if self.fault == "offset":
                    cmd = zcl.ImageBlockResponse(cmd.manufacturer, cmd.image_type, cmd.file_version,
                                                 cmd.file_offset + 1, cmd.data)
                elif self.fault == "size":
                    cmd = zcl.ImageBlockResponse(cmd.manufacturer, cmd.image_type, cmd.file_version,
                                                 cmd.file_offset, cmd.data + bytes(5))   # fits an 82-byte frame
                elif self.fault == "bytes" and cmd.file_offset == 0 and frame.header.tsn > 2:
                    cmd = zcl.ImageBlockResponse(cmd.manufacturer, cmd.image_type, cmd.file_version,
                                                 0, bytes(len(cmd.data)))
                frame = zcl.Frame(frame.header, cmd)
            if self.fault == "tsn":
                frame = zcl.Frame(zcl.ZclHeader(frame.header.frame_type, frame.header.direction,
                                                (frame.header.tsn + 100) & 0xFF, frame.header.command_id), cmd)
            payload = b"\xff\xff" if self.fault == "garbage" else zcl.encode(frame)
            out.append((dst, cluster, payload))
        return out


@pytest.mark.parametrize(("fault", "rule"), [("offset", "block_offset"), ("size", "block_size"),
                                             ("bytes", "block_consistent"), ("tsn", "tsn"),
                                             ("garbage", "reply_malformed")])
def test_each_rule_catches_its_fault(fault, rule):
    client = fuzz_server(Broken(fault), SESSION)
    assert rule in h.summary(client.findings), client.findings


def against_zigpy(plan):
    """The plan against zigpy's real OTAManager (update_firmware under way), on virtual time."""
    async def main():
        loop = asyncio.get_running_loop()
        link = Link(loop, Lossy(), len(DATA))
        client = h.HostileClient(list(plan), server=0x0000, start=loop.time() + 1.0)
        Driver(client, link, AsyncioClock(loop)).start()
        update = asyncio.ensure_future(update_firmware(link.device, zigpy_image(DATA)))
        while not client.done:
            await asyncio.sleep(1.0)
        await asyncio.sleep(120.0)          # past zigpy's 30 s and 60 s windows
        update.cancel()
        return client, link
    return virtual_loop.run(main())


def test_zigpy_serves_its_image_for_any_version_and_ends_its_own():
    client, link = against_zigpy([h.Query(*B4, 0x01000000, 0x0401), h.Block(0, 64), h.Block(0, 64, version_delta=1),
                                  h.End(version_delta=1)])
    assert h.summary(client.findings) == {"block_id": 1, "end_id": 1}, client.findings
    assert not link.device.errors


def test_zigpy_sends_image_fields_with_no_image_available():
    client, _ = against_zigpy([h.Query(*B4, 0x01000000, 0x0401), h.Query(0xFFFF, 0xFFFF, 0, None)])
    [finding] = client.findings
    assert finding.rule == "reply_malformed" and "bytes after the last field" in finding.detail
    assert bytes.fromhex(finding.detail.split(":")[0])[3] == zcl.Status.NO_IMAGE_AVAILABLE


# no shrinking: a zigpy update per example makes a long shrink; the plan is printed as drawn
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True,
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(bs.hostile_plans(*B4, size=len(DATA), max_steps=15))
def test_against_zigpy_any_plan_finds_only_what_is_known(plan):
    client, _ = against_zigpy(plan)
    assert client.done
    assert set(h.summary(client.findings)) <= {"reply_malformed", "block_id", "end_id"}, client.findings
