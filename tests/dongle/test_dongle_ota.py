"""zigpy's real OTA through the virtual ZNP dongle: unmodified zigpy + zigpy-znp
update an emulated bridge with `Device.update_firmware`. The bridge verifies the
image in C, activates on zigpy's Upgrade End Response (upgrade time 0: the
self-activating route, no CS06 from a host stack), swaps, proves itself by
getting an answer to its next query and confirms; zigpy reads back
`current_file_version` as it does after every update. A faulty image (it fails
its self test) rolls back, and zigpy reads back the old version.

The premises runs at SPEED times the wall clock (`bridge-emu dongle --speed`): at
real speed the modelled radio takes about a minute for the 2,416 blocks, which is
the premises' own timing, not zigpy's. zigpy's timers (its 10 s wait before the
read-back among them) stay real."""
from __future__ import annotations

import asyncio

import pytest
import zigpy.ota.image
from zigpy.zcl import foundation
from zigpy_znp.zigbee.application import ControllerApplication

from bridge_emu.codec.firmware import file_version
from bridge_emu.dongle.rig import DongleRig
from bridge_emu.emulator.zigbee_node import eui64
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.premises.images import ImageSet
from bridge_emu.testing import one_bridge_spec
from support.paths import IMAGES
from support.zigpy_host import interviewed, zigpy_image, znp_config

pytestmark = pytest.mark.native
SPEED = 8.0



def run_update(tmp_path, offer: str):
    spec = one_bridge_spec("B4", offer="none", link={"latency_ms": 5, "jitter_ms": 1, "throughput_kbps": 250})
    images = ImageSet(IMAGES)
    data = images.file("B4", offer).read_bytes()
    with pytest.raises(ValueError):
        zigpy.ota.image.parse_ota_image(data)        # zigpy's parser refuses a GBCS body (support.zigpy_host)
    progress: list[int] = []

    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        rig = DongleRig(spec, images, "znp", link, run_dir=tmp_path, speed=SPEED)
        rig.start()
        app = ControllerApplication(znp_config(link.url))
        try:
            await asyncio.wait_for(app.startup(auto_form=True), 30)
            await app.permit(60)
            ieee = eui64(spec.name, "b4")
            device = (await interviewed(app, [ieee]))[ieee]
            status = await asyncio.wait_for(
                device.update_firmware(zigpy_image(data), lambda cur, total, pct: progress.append(cur)), 240)
            ota = device.endpoints[1].out_clusters[0x0019]
            read_back = ota.get("current_file_version")
            return status, read_back, rig.run.slots[1].bridge, rig.pacer.errors
        finally:
            await app.shutdown()
            rig.stop()
            await asyncio.sleep(0.05)

    status, read_back, bridge, errors = asyncio.run(main())
    return status, read_back, bridge, errors, progress, images


def test_zigpy_updates_a_bridge_through_the_dongle_and_reads_back_the_new_version(tmp_path):
    status, read_back, bridge, errors, progress, images = run_update(tmp_path, "next")
    assert not errors
    assert status == foundation.Status.SUCCESS
    new = file_version(images.entry("B4", "next")["version"])
    assert read_back == new, f"zigpy read back {read_back!r}, want {new:08x}"
    assert progress[-1] == images.entry("B4", "next")["bytes"]
    assert bridge.confirmed and bridge.record.outcome == "upgraded"
    assert file_version(str(bridge.manifest.version)) == new            # what the flash now boots


def test_a_faulty_image_from_zigpy_rolls_back_and_zigpy_reads_back_the_old_version(tmp_path):
    status, read_back, bridge, errors, progress, images = run_update(tmp_path, "faulty")
    assert not errors
    assert status == foundation.Status.SUCCESS          # the download and Upgrade End went through
    old = file_version(images.entry("B4", "current")["version"])
    assert read_back == old, f"zigpy read back {read_back!r}, want the old {old:08x}"
    assert bridge.record.outcome == "rolled back"
    assert file_version(str(bridge.manifest.version)) == old
