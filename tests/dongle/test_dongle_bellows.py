"""A premises behind the virtual EZSP dongle, against unmodified zigpy + bellows
over socket://127.0.0.1: bellows negotiates the EZSP version the dongle speaks
(v13 by default; v8, v14 and v19 too), zigpy picks a channel by energy scan and
forms its network, permits joining, and every bridge joins (trustCenterJoinHandler,
then its Device_annce) and passes zigpy's interview through sendUnicast /
incomingMessageHandler (node and simple descriptors, Basic manufacturer and
model), with the OTA cluster as an output cluster; a sleepy B3 too. Every command
bellows sends is one the NCP answers (`gaps`). Then zigpy's own OTA updates a B4
with `Device.update_firmware`: the bridge verifies the image, activates on the
Upgrade End Response (upgrade time 0), reboots into it and confirms, and zigpy
reads back the new `current_file_version`; a faulty image (it fails its self test) rolls
back, and zigpy reads back the old one."""
from __future__ import annotations

import asyncio

import pytest
import zigpy.config
from bellows.zigbee.application import ControllerApplication
from zigpy.zcl import foundation

from bridge_emu.codec.firmware import file_version
from bridge_emu.dongle.rig import DongleRig
from bridge_emu.emulator.zigbee_node import eui64
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.schema import builtin_premises
from bridge_emu.testing import one_bridge_spec
from support.paths import IMAGES
from support.zigpy_host import interviewed, zigpy_image

pytestmark = pytest.mark.native

# The update's 2,417 blocks of 50 bytes each cross the hub's hop and B1's; at the wall
# clock's pace that is some 80 s, so the premises runs 8 times faster (the host does not).
OTA_SPEED = 8.0


def app_config(url: str, channel: int | None = None) -> dict:
    """A socket has no flow control; no database, backups, topology scans or OTA
    providers. No channel: zigpy picks one by energy scan and scans again at
    startup, as it does by default; a channel skips both (some 5 s)."""
    return {
        zigpy.config.CONF_DEVICE: {zigpy.config.CONF_DEVICE_PATH: url, "flow_control": None},
        zigpy.config.CONF_DATABASE: None,
        zigpy.config.CONF_NWK: {zigpy.config.CONF_NWK_CHANNEL: channel},
        zigpy.config.CONF_STARTUP_ENERGY_SCAN: channel is None,
        zigpy.config.CONF_NWK_BACKUP_ENABLED: False,
        zigpy.config.CONF_TOPO_SCAN_ENABLED: False,
        zigpy.config.CONF_OTA: {zigpy.config.CONF_OTA_ENABLED: False},
    }


# v8 and v19 (the oldest and newest layouts) in every run; v13 and v14 (where the layouts changed) in `make test-slow`
@pytest.fixture(params=[8, pytest.param(13, marks=pytest.mark.slow), pytest.param(14, marks=pytest.mark.slow), 19],
                ids=lambda v: f"ezsp-v{v}")
def ezsp_version(request):
    """The EZSP version the dongle speaks (bellows takes whatever the NCP answers)."""
    return request.param


def join_all(tmp_path, spec, ezsp_version: int = 13) -> tuple:
    """zigpy + bellows start on the rig with their defaults, permit joining and wait
    until every bridge of the premises has passed the interview."""
    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        rig = DongleRig(spec, ImageSet(IMAGES), "ezsp", link, run_dir=tmp_path, ezsp_version=ezsp_version)
        rig.start()
        app = ControllerApplication(app_config(link.url))
        try:
            await asyncio.wait_for(app.startup(auto_form=True), 30)
            negotiated = app._ezsp.ezsp_version       # what bellows switched to after asking
            formed_on = app.state.network_info.channel
            await app.permit(120)
            want = {eui64(spec.name, b.name): b for b in spec.bridges}
            done = await interviewed(app, want, timeout_s=45)     # the links keep their 1 % loss
            return negotiated, formed_on, want, done, rig.pacer.errors, rig.ncp
        finally:
            await asyncio.wait_for(app.shutdown(), 10)
            rig.stop()
            await asyncio.sleep(0.05)

    return asyncio.run(main())


def check_joined(tmp_path, spec, result) -> None:
    negotiated, formed_on, want, done, errors, ncp = result
    assert negotiated == ncp.version
    assert formed_on == ncp.network.channel and 11 <= formed_on <= 26      # picked by energy scan
    assert not errors
    assert not ncp.gaps, ncp.gaps
    assert ncp.stats["malformed"] == 0
    assert set(done) == set(want), (sorted(done), sorted(want))
    for ieee, device in done.items():
        bridge = want[ieee]
        assert device.model == f"ALT-HAN-{bridge.type}" and device.manufacturer == "bridge-emu"
        assert 0x0019 in device.endpoints[1].out_clusters and 0x0000 in device.endpoints[1].in_clusters
    assert (tmp_path / spec.name / "dongle-ezsp.json").exists()


def test_bellows_sees_every_bridge_of_a_premises_join_and_pass_the_interview(tmp_path, ezsp_version):
    spec = builtin_premises()["both-apart-mains"]
    result = join_all(tmp_path, spec, ezsp_version)
    assert result[0] == ezsp_version
    check_joined(tmp_path, spec, result)


def test_a_sleepy_bridge_joins_and_passes_the_interview_too(tmp_path):
    spec = builtin_premises()["both-apart-battery"]     # B1 at the hub, B3 (battery) and B4 behind it
    assert any(b.type == "B3" for b in spec.bridges)
    check_joined(tmp_path, spec, join_all(tmp_path, spec))


def run_update(tmp_path, offer: str, speed: float = OTA_SPEED):
    """zigpy + bellows update b4 with the image `offer` ("next", "faulty"); returns (status zigpy
    reports, the current_file_version it reads back, the bridge, pacer errors, the NCP, progress)."""
    spec = one_bridge_spec("B4", offer="none", link={"latency_ms": 5, "jitter_ms": 1, "throughput_kbps": 250})
    images = ImageSet(IMAGES)
    data = images.file("B4", offer).read_bytes()
    progress: list[int] = []

    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        rig = DongleRig(spec, images, "ezsp", link, run_dir=tmp_path, speed=speed)
        rig.start()
        app = ControllerApplication(app_config(link.url, channel=15))
        try:
            await asyncio.wait_for(app.startup(auto_form=True), 30)
            await app.permit(60)
            b4 = eui64(spec.name, "b4")
            device = (await interviewed(app, [b4])).get(b4)
            assert device is not None, "b4 never passed zigpy's interview"
            status = await asyncio.wait_for(
                device.update_firmware(zigpy_image(data), lambda cur, total, pct: progress.append(cur)), 240)
            read_back = device.endpoints[1].out_clusters[0x0019].get("current_file_version")
            return status, read_back, rig.run.slots[1].bridge, rig.pacer.errors, rig.ncp
        finally:
            await asyncio.wait_for(app.shutdown(), 10)
            rig.stop()
            await asyncio.sleep(0.05)

    return (*asyncio.run(main()), progress, images, data)


def test_bellows_updates_a_bridge_and_reads_back_the_new_version(tmp_path):
    status, read_back, bridge, errors, ncp, progress, images, data = run_update(tmp_path, "next")
    assert not errors and not ncp.gaps, ncp.gaps
    assert status == foundation.Status.SUCCESS
    new = file_version(images.entry("B4", "next")["version"])
    assert read_back == new, f"zigpy read back {read_back!r}, want {new:08x}"
    assert progress[-1] == images.entry("B4", "next")["bytes"] == len(data)
    # the bridge verified and swapped the image, rebooted into it and confirmed it
    assert bridge.confirmed and bridge.record.outcome == "upgraded"
    assert bridge.record.download_bytes == len(data) and len(bridge.record.reboots) == 1
    assert file_version(bridge.record.version_before) == file_version(images.entry("B4", "current")["version"])
    assert file_version(str(bridge.manifest.version)) == file_version(bridge.record.version_after) == new


@pytest.mark.slow      # about 60 s; the same rollback through ZNP runs in every run (test_dongle_ota.py)
def test_a_faulty_image_through_bellows_rolls_back_and_zigpy_reads_back_the_old_version(tmp_path):
    status, read_back, bridge, errors, ncp, progress, images, data = run_update(tmp_path, "faulty")
    assert not errors and not ncp.gaps, ncp.gaps
    assert status == foundation.Status.SUCCESS          # the download and Upgrade End went through
    assert progress[-1] == len(data)
    old = file_version(images.entry("B4", "current")["version"])
    assert file_version(images.entry("B4", "faulty")["version"]) != old
    assert read_back == old, f"zigpy read back {read_back!r}, want the old {old:08x}"
    assert bridge.record.outcome == "rolled back"
    assert len(bridge.record.reboots) >= 1                # it did boot the faulty image, then reverted
    assert file_version(str(bridge.manifest.version)) == old
