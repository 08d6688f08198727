"""End-to-end OTA through the virtual dongle, with an unmodified host stack on top:
zigpy + zigpy-znp on socket://127.0.0.1 drive `Device.update_firmware` of a B4
(120,802-byte GBCS file, zigpy's 50-byte blocks) behind a B1 of a premises served
by DongleRig. Timed from the first block zigpy sends to the last, in wall
seconds: blocks per second through zigpy, its radio library, the MT codec and
virtual ZNP NCP, the simulated network, the bridge's OTA client and its C flash.

Two runs: `machinery` at speed 100 with no latency on the B1-B4 link (what the software
path costs, the radio model out of the way), and `modelled` at speed 1 on the
same premises with 5 ms links (what a real-time download through the rig
takes; the modelled radio dominates it).
"""
from __future__ import annotations

import asyncio
import pathlib
import sys
import tempfile
import time

from zigpy_znp.zigbee.application import ControllerApplication

from bridge_emu.dongle.rig import DongleRig
from bridge_emu.emulator.zigbee_node import eui64
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.premises.images import DEFAULT_IMAGES, ImageSet
from bridge_emu.testing import one_bridge_spec

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "tests"))
from support.zigpy_host import interviewed, zigpy_image, znp_config  # noqa: E402


def _one(speed: float, latency_ms: float) -> dict:
    spec = one_bridge_spec("B4", offer="none", link={"latency_ms": latency_ms, "jitter_ms": 0, "throughput_kbps": 250})
    images = ImageSet(DEFAULT_IMAGES)
    data = images.file("B4", "next").read_bytes()
    marks: list[tuple[float, int]] = []

    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        with tempfile.TemporaryDirectory() as tmp:
            rig = DongleRig(spec, images, "znp", link, run_dir=pathlib.Path(tmp), speed=speed)
            rig.start()
            app = ControllerApplication(znp_config(link.url))
            try:
                await asyncio.wait_for(app.startup(auto_form=True), 30)
                await app.permit(60)
                ieee = eui64(spec.name, "b4")
                device = (await interviewed(app, [ieee]))[ieee]
                status = await device.update_firmware(
                    zigpy_image(data), lambda cur, total, pct: marks.append((time.perf_counter(), cur)))
                bridge = rig.run.slots[1].bridge
                return status, bridge.record.outcome, rig.pacer.errors
            finally:
                await app.shutdown()
                rig.stop()

    status, outcome, errors = asyncio.run(main())
    if errors or int(status) != 0 or not marks:
        raise RuntimeError(f"update through the dongle failed: status {status}, errors {errors}")
    blocks = len(marks)
    wall = marks[-1][0] - marks[0][0]
    return {"speed": speed, "link_latency_ms": latency_ms, "file_bytes": len(data), "blocks": blocks,
            "download_wall_s": round(wall, 2), "blocks_per_s": round((blocks - 1) / wall, 1),
            "bytes_per_s": round((marks[-1][1] - marks[0][1]) / wall), "outcome": outcome}


def run() -> dict:
    return {"host": "zigpy 2.4 + zigpy-znp 1.1 (unmodified) over socket://127.0.0.1",
            "machinery": _one(100.0, 0.0), "modelled": _one(1.0, 5.0)}
