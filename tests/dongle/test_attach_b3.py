"""Issue 9: a full B3 download through a stick. `attach` runs the battery-powered B3 (a
sleepy end device) on a host, its radio a virtual stick that joins the premises as an end
device under b1, b3's parent; every frame for it waits at b1 until the stick's radio polls.
The bridge downloads the whole B3 image (140,802 bytes) block by block, at the pace of
those polls, verifies it, takes the hub's CS06 activation, reboots into it and confirms.

Each block costs a poll: the parent holds the hub's Image Block Response until the end
device's next poll (the stand-in polls every fast_poll_s, 0.25 s, as B3 does while it
downloads), and the bridge asks for the next block only once it has this one. So the
download takes at least blocks x 0.25 s of the premises' time: some 9.5 virtual minutes,
which the rig's network runs 60 times faster than the wall clock (RealTimePacer speed)."""
from __future__ import annotations

import asyncio
import time

import pytest
from test_attach_znp import boot_the_flash_file

from bridge_emu.dongle.attach import attach
from bridge_emu.dongle.router_rig import RouterDongleRig
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.premises.images import ImageSet
from bridge_emu.testing import one_bridge_spec
from support.paths import IMAGES

pytestmark = pytest.mark.native

SPEC = one_bridge_spec("B3")
OTA = 0x0019
SPEED = 60.0
LIMIT_S = 120.0       # wall-clock bound of one run


async def run_b3(tmp_path, protocol: str):
    """attach() against the rig until b3 has upgraded and confirmed, the rig's network traced. Returns
    (attachment, rig, the poll intervals the stand-in had while b3 downloaded, the trace, lines)."""
    images = ImageSet(IMAGES)
    link = await serve_tcp("127.0.0.1", 0)
    rig = RouterDongleRig(SPEC, images, link, "b3", protocol=protocol, speed=SPEED)
    trace = rig.run.net.enable_trace()
    rig.start()
    stop, ready = asyncio.Event(), asyncio.Future()
    lines: list[str] = []
    task = asyncio.create_task(attach(SPEC, images, "b3", link.url, protocol, tmp_path / "host", False,
                                      lines.append, lines.append, stop, ready.set_result))
    intervals = set()
    try:
        a = await asyncio.wait_for(ready, 10)
        deadline = time.monotonic() + LIMIT_S
        while not (a.bridge.confirmed and a.bridge.record.outcome == "upgraded") and time.monotonic() < deadline:
            assert not task.done(), task.exception()
            if a.offset:
                intervals.add(rig.radio.transport.poll_interval_s)
            await asyncio.sleep(0.05)
        assert not rig.pacer.errors and not rig.stream.errors
    finally:
        stop.set()
        attachment = await task
        rig.stop()
        await asyncio.sleep(0.05)
    return attachment, rig, intervals, trace, lines


@pytest.mark.parametrize("protocol", ["znp", "ezsp"])
def test_a_b3_attached_as_an_end_device_downloads_its_whole_image_at_its_poll_pace_and_confirms(tmp_path, protocol):
    a, rig, intervals, trace, lines = asyncio.run(run_b3(tmp_path, protocol))
    images = ImageSet(IMAGES)
    record = a.bridge.record
    want = images.entry("B3", "next")["version"]
    assert record.outcome == "upgraded" and a.bridge.confirmed, (a.bridge.stalled_at(), lines)
    assert record.version_before.split("+")[0] == images.entry("B3", "current")["version"]
    assert record.version_after.split("+")[0] == want
    assert record.download_bytes == images.file("B3", "next").stat().st_size
    assert record.alerts[:2] == ["0x8F72", "0x8F43"]         # verified, then running the new version
    assert len(record.reboots) == 1 and record.reboots[0][1] is not None
    assert [e["outcome"] for e in a.bridge.events if e["event"] == "activation"] == ["SUCCESS"]   # by a CS06
    assert any(e["event"] == "cs06" for e in a.bridge.events)
    assert [e["offset"] for e in a.bridge.events if e["event"] == "download_started"] == [0]     # one download
    version, confirmed, actions = boot_the_flash_file(tmp_path / "host" / SPEC.name / "b3" / "flash.bemu")
    assert (version.split("+")[0], confirmed, actions) == (want, True, ())
    # joined once, as an end device (ZNP: logical type 2; EZSP: SLEEPY_END_DEVICE) at b3's address under b1
    assert [(j.nwk, j.role) for j in a.joins] == [(rig.slot.address, "end device")] and not a.downs
    assert rig.ncp.end_device and rig.radio.transport.parent.name == "b1"
    assert rig.ncp.logical_type == 2 if protocol == "znp" else rig.ncp.node_type == 4
    assert any("joined as end device 0x0002" in line for line in lines)
    # the pace: the stand-in polled as B3 does while it downloads, and every block the hub served waited at
    # b1 for a poll of it; the polls that fetched them came a poll period apart, one block each at most
    fast = a.bridge.profile.fast_poll_s
    assert intervals == {fast}
    me = rig.slot.address
    served = rig.run.server.clients[me].blocks_served
    assert served >= -(-record.download_bytes // 64)
    held = [t for t, kind, _, _, dst, cluster, _ in trace if kind == "wait" and dst == me and cluster == OTA]
    fetching = [t for t, kind, _, src, _, _, waiting in trace if kind == "poll" and src == me and waiting]
    assert len(held) >= served and len(fetching) >= served
    assert all(later - earlier >= fast - 1e-9 for earlier, later in zip(fetching, fetching[1:]))
    assert held[-1] - held[0] >= (served - 1) * fast        # some 9 minutes of the premises' time
