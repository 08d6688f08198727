"""`attach` (an emulated bridge on a host, its radio a ZNP stick driven as a router) against
the router-role virtual dongle standing in for bridge b4 of a premises with its GBCS hub,
over socket://127.0.0.1 in real time: the bridge joins, downloads the B4 image (120,800
bytes), verifies it, is activated by the hub's CS06, reboots into it and confirms; and,
when the stick is reset and then its port dropped mid-download, the download carries on
from the offset it had reached, never from zero.

The premises' b1-b4 link is the default one but lossless (loss = 0): each lost frame costs
the bridge a 3 s real-time block timeout. The rig's network runs 30 times faster than the
wall clock (RealTimePacer speed), so the host, not the simulated network, sets the pace."""
from __future__ import annotations

import asyncio
import time

import pytest

from bridge_emu.codec.firmware import manifest_from_image
from bridge_emu.core.device import Device
from bridge_emu.dongle.attach import attach
from bridge_emu.dongle.router_rig import RouterDongleRig
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.premises.images import ImageSet
from bridge_emu.testing import one_bridge_spec
from support.paths import IMAGES

pytestmark = pytest.mark.native

SPEC = one_bridge_spec("B4")
SPEED = 30.0
LIMIT_S = 50.0        # wall-clock bound of one run (a full one takes some 25-30 s)


async def run_attach(tmp_path, during=None):
    """attach() against the rig until b4 has upgraded and confirmed; during(attachment, rig) is awaited
    alongside. Returns (attachment, rig, what `during` returned)."""
    images = ImageSet(IMAGES)
    link = await serve_tcp("127.0.0.1", 0)
    rig = RouterDongleRig(SPEC, images, link, "b4", speed=SPEED)
    rig.start()
    stop, ready = asyncio.Event(), asyncio.Future()
    lines = []
    task = asyncio.create_task(attach(SPEC, images, "b4", link.url, "znp", tmp_path / "host", False,
                                      lines.append, lines.append, stop, ready.set_result))
    try:
        a = await asyncio.wait_for(ready, 10)
        side = asyncio.create_task(during(a, rig)) if during is not None else None
        deadline = time.monotonic() + LIMIT_S
        while not (a.bridge.confirmed and a.bridge.record.outcome == "upgraded") and time.monotonic() < deadline:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.1)
        found = await asyncio.wait_for(side, 5) if side is not None else None
        assert not rig.pacer.errors
    finally:
        stop.set()
        attachment = await task
        rig.stop()
        await asyncio.sleep(0.05)
    return attachment, rig, found, lines


def boot_the_flash_file(path) -> tuple[str, bool, tuple[str, ...]]:
    """(version, confirmed, boot actions) of the image the bootloader starts from the file (read-only)."""
    device = Device.open(path, read_only=True)
    try:
        res = device.boot()
        return str(manifest_from_image(device.running_image()).version), res.confirmed, res.actions
    finally:
        device.close()


def test_a_bridge_attached_through_a_router_dongle_takes_its_update_from_the_premises_hub(tmp_path):
    a, rig, _, lines = asyncio.run(run_attach(tmp_path))
    images = ImageSet(IMAGES)
    record = a.bridge.record
    want = images.entry("B4", "next")["version"]
    assert record.outcome == "upgraded" and a.bridge.confirmed, (a.bridge.stalled_at(), lines)
    assert record.version_before.split("+")[0] == images.entry("B4", "current")["version"]
    assert record.version_after.split("+")[0] == want
    assert record.download_bytes == images.file("B4", "next").stat().st_size
    assert record.alerts[:2] == ["0x8F72", "0x8F43"]         # verified, then running the new version
    assert len(record.reboots) == 1 and record.reboots[0][1] is not None
    # joined as b4's node, a router, on the premises' PAN; the hub served it there and signed its CS06 for it
    assert [(j.nwk, j.role) for j in a.joins] == [(rig.slot.address, "router")] and not a.downs
    assert rig.ncp.logical_type == 1 and rig.ncp.stats["joins"] == 1
    assert [e["outcome"] for e in a.bridge.events if e["event"] == "activation"] == ["SUCCESS"]   # by a CS06
    assert any(e["event"] == "cs06" for e in a.bridge.events)
    assert rig.run.server.clients[rig.slot.address].blocks_served >= record.download_bytes // 64
    # the flash file under DIR/PREMISES/BRIDGE boots the new image, confirmed: nothing to install or revert
    version, confirmed, actions = boot_the_flash_file(tmp_path / "host" / SPEC.name / "b4" / "flash.bemu")
    assert (version.split("+")[0], confirmed, actions) == (want, True, ())
    assert any("joined as router 0x0002" in line for line in lines)


def test_a_stick_reset_and_a_dropped_port_mid_download_resume_from_the_offset_reached(tmp_path):
    async def trouble(a, rig):
        seen = []                                    # (offset when the stick went, lowest offset after its rejoin)
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

    a, rig, seen, lines = asyncio.run(run_attach(tmp_path, trouble))
    record = a.bridge.record
    assert record.outcome == "upgraded" and a.bridge.confirmed, (a.bridge.stalled_at(), lines)
    assert [reason for reason, _ in a.downs] == ["the stick reset (SYS.ResetInd)", "the link to the stick was lost"]
    assert len(a.joins) == 3 and all(j.nwk == rig.slot.address for j in a.joins)
    for (at, lowest), (_, offset_at_down) in zip(seen, a.downs):
        assert at > 0 and offset_at_down >= at and lowest >= at      # resumed from where it was, not from 0
    assert [e["offset"] for e in a.bridge.events if e["event"] == "download_started"] == [0]   # one download
    blocks = -(-record.download_bytes // 64)
    assert rig.run.server.clients[rig.slot.address].blocks_served < blocks * 1.05   # nothing fetched twice over
    assert rig.ncp.stats["resets"] == 2 and rig.link.connections == 2
    assert a.link.opens == 2                                   # the host re-opened the vanished port


def test_what_cannot_be_attached_is_a_one_line_error(tmp_path):
    from bridge_emu.dongle.rig import DongleError
    from bridge_emu.errors import BridgeEmuError
    from bridge_emu.premises.runner import PremisesRun

    images = ImageSet(IMAGES)

    async def main():
        errors = []
        for call in (
            lambda: attach(SPEC, images, "b4", "socket://127.0.0.1:1", "zboss", tmp_path),
            lambda: attach(SPEC, images, "b9", "socket://127.0.0.1:1", "znp", tmp_path),
            lambda: attach(SPEC, images, "b4", "socket://127.0.0.1:1", "znp", tmp_path),   # nothing listens there
        ):
            with pytest.raises(BridgeEmuError) as e:
                await call()
            errors.append(e.value)
        link = await serve_tcp("127.0.0.1", 0)
        try:
            for kwargs in ({"bridge": "b9"}, {"bridge": "b4", "protocol": "zboss"}, {"bridge": "b4", "speed": 0}):
                with pytest.raises(DongleError) as e:
                    RouterDongleRig(SPEC, images, link, **kwargs)
                errors.append(e.value)
        finally:
            link.close()
        return errors

    errors = asyncio.run(main())
    assert [type(e).__name__ for e in errors[:2]] == ["AttachError", "AttachError"]
    assert "'zboss': attach drives znp, ezsp dongles only" in str(errors[0])
    assert "no bridge 'b9'" in str(errors[1])
    assert "socket://127.0.0.1:1: cannot open" in str(errors[2])
    assert "no bridge 'b9'" in str(errors[3]) and "emulated for znp and ezsp" in str(errors[4])
    assert "speed 0" in str(errors[5])
    assert all("\n" not in str(e) for e in errors)
    run = PremisesRun(SPEC, images)
    with pytest.raises(BridgeEmuError, match="no bridge 'b9' to replace") as e:
        run.replace_bridge("b9", object())
    assert "\n" not in str(e.value)


def test_a_sleepy_bridge_makes_the_stick_an_end_device_and_its_download_starts(tmp_path):
    spec = one_bridge_spec("B3")
    images = ImageSet(IMAGES)

    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        rig = RouterDongleRig(spec, images, link, "b3", speed=SPEED)
        rig.start()
        stop, ready = asyncio.Event(), asyncio.Future()
        task = asyncio.create_task(attach(spec, images, "b3", link.url, "znp", tmp_path, False,
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
    assert rig.ncp.logical_type == 2 and offset >= 2048          # blocks reach it through its parent's polls
    assert polling == a.bridge.profile.fast_poll_s               # the stand-in polls as the end device does
