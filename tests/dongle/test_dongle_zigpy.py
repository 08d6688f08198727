"""A 3-bridge premises behind the virtual ZNP dongle, against unmodified zigpy +
zigpy-znp over socket://127.0.0.1: zigpy forms its network, permits joining,
and every bridge joins and passes zigpy's interview (node and simple
descriptors, Basic manufacturer and model), with the OTA cluster as an output
cluster, which zigpy needs before it will offer an update.

The premises is all mains (B1, B2, B4): the interview of the sleepy B3 through
the dongle does not complete reliably yet (zigpy never gets its node
descriptor in some runs), which is an open gap of issue 9."""
from __future__ import annotations

import asyncio

import pytest
from zigpy_znp.zigbee.application import ControllerApplication

from bridge_emu.dongle.rig import DongleRig
from bridge_emu.emulator.zigbee_node import eui64
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.schema import builtin_premises
from support.paths import IMAGES

pytestmark = pytest.mark.native


def app_config(url: str) -> dict:
    # sockets have no DTR/RTS pins: no toggling, just ping
    return {"device": {"path": url}, "database_path": None, "backup_enabled": False, "topo_scan_enabled": False,
            "ota": {"enabled": False},
            "znp_config": {"connect_rts_pin_states": [], "connect_dtr_pin_states": []}}


def as_int(ieee) -> int:
    return int.from_bytes(ieee.serialize(), "little")


def test_zigpy_sees_every_bridge_of_a_premises_join_and_pass_the_interview(tmp_path):
    spec = builtin_premises()["both-apart-mains"]

    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        rig = DongleRig(spec, ImageSet(IMAGES), "znp", link, run_dir=tmp_path)
        rig.start()
        app = ControllerApplication(app_config(link.url))
        try:
            await asyncio.wait_for(app.startup(auto_form=True), 30)
            await app.permit(120)
            want = {eui64(spec.name, b.name): b for b in spec.bridges}
            done = {}
            for _ in range(1500):
                done = {as_int(d.ieee): d for d in app.devices.values()
                        if as_int(d.ieee) in want and d.is_initialized and d.model is not None}
                if len(done) == len(want):
                    break
                await asyncio.sleep(0.02)
            return want, done, rig.pacer.errors
        finally:
            await app.shutdown()
            rig.stop()
            await asyncio.sleep(0.05)

    want, done, errors = asyncio.run(main())
    assert not errors
    assert set(done) == set(want), (sorted(done), sorted(want))
    for ieee, device in done.items():
        bridge = want[ieee]
        assert device.model == f"ALT-HAN-{bridge.type}" and device.manufacturer == "bridge-emu"
        assert 0x0019 in device.endpoints[1].out_clusters and 0x0000 in device.endpoints[1].in_clusters
    assert (tmp_path / spec.name / "dongle-znp.json").exists()       # the dongle's NV is kept under --dir
