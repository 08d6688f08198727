"""`attach --protocol ezsp` (an emulated bridge on a host, its radio an EZSP stick driven as a
router) against the router-role virtual EZSP stick standing in for bridge b4 of a premises
with its GBCS hub, over socket://127.0.0.1 in real time: the bridge's stick is reset over
ASH, negotiates EZSP, registers endpoint 1, scans, hears the premises' beacon, joins as a
router, and the bridge downloads the B4 image, verifies it, takes the hub's CS06, reboots
and confirms; with the stick reset (an unasked RSTACK) and then its port dropped
mid-download, the download carries on from the offset reached. A stick whose stack cannot
be a router is refused in one line, and `--probe` says what the stick is.

As in test_attach_znp: the b1-b4 link is lossless, and the rig's network runs 30 times the
wall clock so that the host, not the simulated radio, sets the pace."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

import pytest
from test_attach_znp import boot_the_flash_file

from bridge_emu.dongle.attach import attach
from bridge_emu.dongle.router_rig import RouterDongleRig
from bridge_emu.errors import BridgeEmuError
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.premises.images import ImageSet
from bridge_emu.testing import one_bridge_spec
from support.paths import IMAGES, ROOT

pytestmark = pytest.mark.native

SPEC = one_bridge_spec("B4")
SPEED = 30.0
LIMIT_S = 60.0        # wall-clock bound of one run (a full one takes some 25-35 s)


async def run_attach(tmp_path, during=None, *, ezsp_version: int = 13):
    images = ImageSet(IMAGES)
    link = await serve_tcp("127.0.0.1", 0)
    rig = RouterDongleRig(SPEC, images, link, "b4", protocol="ezsp", speed=SPEED, ezsp_version=ezsp_version)
    rig.start()
    stop, ready = asyncio.Event(), asyncio.Future()
    lines = []
    task = asyncio.create_task(attach(SPEC, images, "b4", link.url, "ezsp", tmp_path / "host", False,
                                      lines.append, lines.append, stop, ready.set_result))
    try:
        a = await asyncio.wait_for(ready, 10)
        side = asyncio.create_task(during(a, rig)) if during is not None else None
        deadline = time.monotonic() + LIMIT_S
        while not (a.bridge.confirmed and a.bridge.record.outcome == "upgraded") and time.monotonic() < deadline:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
        found = await asyncio.wait_for(side, 5) if side is not None else None
        assert not rig.pacer.errors and not rig.stream.errors
    finally:
        stop.set()
        attachment = await task
        rig.stop()
        await asyncio.sleep(0.05)
    return attachment, rig, found, lines


def test_a_sleepy_bridge_makes_the_ezsp_stick_a_sleepy_end_device_and_its_download_starts(tmp_path):
    spec = one_bridge_spec("B3")
    images = ImageSet(IMAGES)

    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        rig = RouterDongleRig(spec, images, link, "b3", protocol="ezsp", speed=SPEED)
        rig.start()
        stop, ready = asyncio.Event(), asyncio.Future()
        task = asyncio.create_task(attach(spec, images, "b3", link.url, "ezsp", tmp_path, False,
                                          lambda line: None, lambda line: None, stop, ready.set_result))
        try:
            a = await asyncio.wait_for(ready, 10)
            deadline = time.monotonic() + 20
            while (a.offset or 0) < 2048 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return a, rig, a.offset, rig.radio.transport.poll_interval_s
        finally:
            stop.set()
            await task
            rig.stop()
            await asyncio.sleep(0.05)

    a, rig, offset, polling = asyncio.run(main())
    assert [(j.nwk, j.role) for j in a.joins] == [(rig.slot.address, "end device")]
    assert rig.ncp.node_type == 4 and rig.ncp.end_device and offset >= 2048      # SLEEPY_END_DEVICE
    assert polling == a.bridge.profile.fast_poll_s               # the stand-in polls as the end device does


def test_an_attached_b4_updates_through_an_ncp_reset_and_a_dropped_port_resuming_from_the_offset(tmp_path):
    """The whole update (join, download, verify, CS06, reboot, confirm), with the stick reset at 30 %
    and its port dropped at 60 %."""
    async def trouble(a, rig):
        seen = []
        for fraction, act in ((0.3, rig.reset_dongle), (0.6, rig.drop_link)):
            while (a.offset or 0) < fraction * 120_802:
                await asyncio.sleep(0.02)
            joins = len(a.joins)
            at = a.offset
            act()
            while len(a.joins) == joins:
                await asyncio.sleep(0.02)
            lowest = a.offset
            for _ in range(20):                      # the first blocks after the rejoin
                await asyncio.sleep(0.02)
                lowest = min(lowest, a.offset if a.offset is not None else lowest)
            seen.append((at, lowest))
        return seen

    a, rig, seen, lines = asyncio.run(run_attach(tmp_path, trouble, ezsp_version=14))
    images = ImageSet(IMAGES)
    record = a.bridge.record
    want = images.entry("B4", "next")["version"]
    assert record.outcome == "upgraded" and a.bridge.confirmed, (a.bridge.stalled_at(), lines)
    assert record.version_after.split("+")[0] == want
    assert record.download_bytes == images.file("B4", "next").stat().st_size
    assert record.alerts[:2] == ["0x8F72", "0x8F43"]         # verified, then running the new version
    assert len(record.reboots) == 1
    assert [e["outcome"] for e in a.bridge.events if e["event"] == "activation"] == ["SUCCESS"]   # by a CS06
    version, confirmed, actions = boot_the_flash_file(tmp_path / "host" / SPEC.name / "b4" / "flash.bemu")
    assert (version.split("+")[0], confirmed, actions) == (want, True, ())
    assert any("joined as router 0x0002" in line for line in lines)
    # joined as b4's node, a router, through the EZSP session the stick speaks, endpoint 1 registered as asked
    joiner, ncp = a.joiner, rig.ncp
    assert a.joins[0].role == "router" and joiner.version == ncp.version == 14 and ncp.node_type == 2
    assert ncp._endpoints[1]["output_clusters"] == [0x0019] and 0x0000 in ncp._endpoints[1]["input_clusters"]
    assert not ncp.gaps and ncp.stats["malformed"] == 0       # every command the host sent is one the NCP knows
    assert joiner.stats["send_failed"] == joiner.stats["confirm_failed"] == 0
    assert [reason for reason, _ in a.downs] == ["the stick reset (RSTACK, reset code 0x01)",
                                                 "the link to the stick was lost"]
    assert len(a.joins) == 3 and all(j.nwk == rig.slot.address for j in a.joins)
    for (at, lowest), (_, offset_at_down) in zip(seen, a.downs):
        assert at > 0 and offset_at_down >= at and lowest >= at      # resumed from where it was, not from 0
    assert [e["offset"] for e in a.bridge.events if e["event"] == "download_started"] == [0]   # one download
    blocks = -(-record.download_bytes // 64)
    assert rig.run.server.clients[rig.slot.address].blocks_served < blocks * 1.05
    # the reset was heard as an unasked RSTACK; the stick came back from its tokens (no second join, no scan)
    assert a.joiner.stats["ncp_resets"] == 1 and rig.ncp.stats["resets"] == 1
    assert rig.ncp.stats["joins"] == 1 and a.joiner.stats["scans"] == 1
    assert rig.link.connections == 2 and a.link.opens == 2


def test_a_stick_whose_stack_cannot_route_is_refused_in_one_line(tmp_path):
    images = ImageSet(IMAGES)

    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        rig = RouterDongleRig(SPEC, images, link, "b4", protocol="ezsp", speed=SPEED, device_types=0x04)
        rig.start()
        try:
            with pytest.raises(BridgeEmuError) as e:
                await asyncio.wait_for(attach(SPEC, images, "b4", link.url, "ezsp", tmp_path, False,
                                              lambda line: None, lambda line: None), 30)
            return e.value, rig.ncp
        finally:
            rig.stop()
            await asyncio.sleep(0.05)

    error, ncp = asyncio.run(main())
    assert type(error).__name__ == "AttachError" and "\n" not in str(error)
    assert str(error).endswith("the stick cannot join as router: getLibraryStatus reports 0x80 (an "
                               "end-device-only ZigBee PRO stack)")
    assert ncp.network is None and ncp.stats["joins"] == 0        # nothing joined, nothing written


ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def test_probe_says_what_an_ezsp_stick_is_and_attach_runs_from_the_command_line(tmp_path):
    from test_attach_cli import lines_until, start, stop

    dongle = start("dongle", "ihd", "--protocol", "ezsp", "--role", "router", "--bridge", "b4", "--speed", "30",
                   "--ezsp-version", "8", "--dir", str(tmp_path / "site"))
    attached = None
    try:
        url = dongle.stdout.readline().strip().removeprefix("listening on ")
        assert url.startswith("socket://127.0.0.1:"), dongle.stderr.read()
        done = subprocess.run([sys.executable, "-m", "bridge_emu", "attach", "ihd", "--bridge", "b4", "--port", url,
                               "--protocol", "ezsp", "--probe"], capture_output=True, text=True, env=ENV, timeout=30)
        attached = start("attach", "ihd", "--bridge", "b4", "--port", url, "--protocol", "ezsp",
                         "--dir", str(tmp_path / "bridge"))
        seen = lines_until(attached, "joined as router")
    finally:
        codes = [stop(p) for p in (attached, dongle) if p is not None]
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{url}: EmberZNet 7.4.4.0 (EZSP v8)"
    assert lines[1].endswith("ZigBee PRO library status 0x81")
    assert lines[2] == "roles this build can take: coordinator, router, end device"
    assert lines[3] == "b4 (B4) can be attached through it, as a router"
    assert any("b4: joined as router 0x" in line for line in seen), seen
    assert [rc for rc, _ in codes] == [0, 0] and all("Traceback" not in err for _, err in codes), codes
    assert (tmp_path / "bridge" / "ihd" / "b4" / "flash.bemu").is_file()


def test_probe_of_an_end_device_only_stack_says_it_cannot_be_a_router():
    from bridge_emu.dongle.probe import probe_ezsp
    from bridge_emu.net.asyncio_clock import AsyncioClock
    from bridge_emu.net.serial_link import StreamDriver
    from bridge_emu.uart.ezsp_ncp import EzspCoordinator

    async def main():
        loop = asyncio.get_running_loop()
        link = await serve_tcp("127.0.0.1", 0)
        StreamDriver(EzspCoordinator(0x000B57FFFE010203, device_types=0x04, version=19), link,
                     AsyncioClock(loop)).start()
        try:
            return await loop.run_in_executor(None, probe_ezsp, link.url)
        finally:
            link.close()

    report = asyncio.run(main())
    assert report.roles == ["end device"] and not report.can("router") and report.ieee == 0x000B57FFFE010203
    assert report.ezsp_version == 19
    assert "it cannot be a router: flash an NCP build with the router" in report.lines()[2]
