"""The hostile OTA client through a serial stick (bridge_emu.dongle.fuzz): the stick, a
router-role virtual ZNP or EZSP dongle on socket://127.0.0.1, joins the network of a
premises whose hub runs the project's GBCS OTA server; the client answers the hub's
interview as a B4 would, then plays its plan and checks every answer. Every step must be
answered (a plan played before the stick joined would be lost, so replies prove the plan
waited), and the one finding is the one the hub is built to give: the premises' hub
offers each bridge the image its premises file names for it whatever the query asks
(OtaServer.offer: how a bridge is shown another type's image, to prove it
declines it), so a query for another product is offered the B4's image (rule offer_id)."""
from __future__ import annotations

import asyncio

import pytest

from bridge_emu.codec import zcl
from bridge_emu.dongle.attach import AttachError
from bridge_emu.dongle.fuzz import fuzz_through_dongle
from bridge_emu.dongle.router_rig import RouterDongleRig
from bridge_emu.emulator.profiles import profile
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.ota import hostile
from bridge_emu.premises.images import ImageSet
from bridge_emu.testing import one_bridge_spec
from support.paths import IMAGES

pytestmark = pytest.mark.native

SPEC = one_bridge_spec("B4")
B4 = profile("B4")


def current_file_version() -> int:
    return int.from_bytes(ImageSet(IMAGES).file("B4", "current").read_bytes()[14:18], "little")


async def fuzz(plan, protocol: str, **options):
    link = await serve_tcp("127.0.0.1", 0)
    rig = RouterDongleRig(SPEC, ImageSet(IMAGES), link, "b4", protocol=protocol, speed=30)
    rig.start()
    lines: list[str] = []
    try:
        client = await fuzz_through_dongle(plan, link.url, protocol, settle_s=2.0, join_timeout_s=30.0,
                                           limit_s=60.0, announce=lines.append, warn=lines.append, **options)
    finally:
        rig.stop()
        await asyncio.sleep(0.05)
    return client, lines


@pytest.mark.parametrize("protocol", ["znp", "ezsp"])
def test_a_hostile_client_fuzzes_the_hubs_ota_server_through_a_stick(protocol):
    plan = [hostile.Query(B4.manufacturer, B4.image_type, current_file_version(), B4.hw_version),
            hostile.Block(0, 48),
            hostile.Block(0, 48),                          # the same block again: the same bytes
            hostile.Block(64, 255),                        # oversize: the server sends what fits
            hostile.Block(0, 48, version_delta=7),         # an image never offered
            hostile.Raw(b"\x01\x77"),                      # a frame cut short
            hostile.Pause(0.5),
            hostile.Query(0x1234, 0x0001, 1)]              # another product's query
    client, lines = asyncio.run(fuzz(plan, protocol))
    assert any(line.startswith("joined as router") for line in lines), lines
    assert client.done, lines
    assert [(f.rule, f.detail) for f in client.findings] == [("offer_id", "asked 1234/0001, offered bee0/0b04")]
    frames = [f for _, f in client.heard]
    offers = [f.command for f in frames if isinstance(f.command, zcl.QueryNextImageResponse)]
    assert [o.status for o in offers] == [zcl.Status.SUCCESS, zcl.Status.SUCCESS], offers
    assert offers[0].manufacturer == B4.manufacturer and offers[0].file_version > current_file_version()
    good = [f.command for f in frames if isinstance(f.command, zcl.ImageBlockResponse)]
    assert [(b.file_offset, len(b.data) <= 48) for b in good[:2]] == [(0, True), (0, True)]
    assert good[0].data == good[1].data and good[0].data.startswith(bytes.fromhex("1ef1ee0b"))
    assert any(b.file_offset == 64 for b in good)
    refused = [f.command for f in frames if isinstance(f.command, zcl.ImageBlockAbort)]
    assert refused                                                  # the never-offered image is not served

def test_a_stick_nobody_listens_on_is_a_clear_error():
    async def main():
        link = await serve_tcp("127.0.0.1", 0)           # a port with no stick behind it: nothing answers
        try:
            with pytest.raises(AttachError, match="did not join a network within 2 s"):
                await fuzz_through_dongle([hostile.Pause(0)], link.url, "znp", join_timeout_s=2.0,
                                          announce=lambda _: None, warn=lambda _: None)
        finally:
            link.close()
    asyncio.run(main())
