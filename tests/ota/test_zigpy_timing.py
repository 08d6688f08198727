"""Our OTA client against zigpy 2.4.0's real OTAManager, in process, on
virtual time, with one frame lost at each step of an update (issue 8, part 2).

zigpy's windows (zigpy/ota/manager.py): after Image Notify it waits 30 s for a
query; 30 s without a block request ends the update (TIMEOUT); after the final
block it waits 60 s for the Upgrade End Request; it answers that with
upgrade_time 0 and is done: later Upgrade End Requests go unheard. Outside an
update its Ota cluster answers every Query Next Image NO_IMAGE_AVAILABLE.

Everything of zigpy that OTAManager touches is the real thing (its manager, its
ZCL schemas, its header codec); only the device object it drives is a stand-in
that turns its cluster calls into frames on a lossy link to our client.
"""
from __future__ import annotations

import asyncio
import dataclasses

import pytest
import zigpy.ota
import zigpy.ota.providers
from zigpy.ota.image import parse_ota_image
from zigpy.ota.manager import FINAL_BLOCK_TIMEOUT, MAX_TIME_WITHOUT_PROGRESS, update_firmware
from zigpy.zcl import foundation

from bridge_emu.codec.ota_file import (
    TAG_UPGRADE_IMAGE,
    BodyKind,
    GenericBody,
    OtaFile,
    SubElement,
    read_strict,
    read_tolerant,
)
from bridge_emu.core.device import Device
from bridge_emu.emulator.profiles import profile
from bridge_emu.emulator.store import DeviceStore
from bridge_emu.keys import key_paths, load_private_key
from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.transport import Driver
from bridge_emu.ota import client as oc
from bridge_emu.tools.imagetool import BuildSpec, build
from support import virtual_loop
from support.paths import IMAGES
from support.zigpy_ota import Link, Lossy

pytestmark = pytest.mark.native

PROFILE = profile("B4")
CURRENT = 0x01000000


@pytest.fixture(scope="module")
def ota_file() -> bytes:
    """A plain ZigBee OTA file (what zigpy serves: a sub-element body) carrying a
    B4 bootable image."""
    keys = IMAGES / "keys"
    _, data = build(BuildSpec("B4", "1.2.0", security_counter=2, payload_size=3000),
                    load_private_key(key_paths(keys, "manufacturer").private),
                    load_private_key(key_paths(keys, "supplier").private))
    gbcs = read_strict(data, BodyKind.GBCS)
    header = dataclasses.replace(gbcs.header, header_length=None, total_image_size=None, field_control=None)
    body = GenericBody([SubElement(TAG_UPGRADE_IMAGE, gbcs.body.manufacturer_image)])
    return OtaFile(header, body).build()


class Bridge:
    """Our client over a device flash, verifying what it downloads at once."""

    def __init__(self, client: oc.OtaClient):
        self.client = client
        self.activated_at: float | None = None
        self.completed_at: float | None = None
        self.events: list = []

    def pop_outgoing(self):
        return self.client.pop_outgoing()

    def next_deadline(self):
        return self.client.next_deadline()

    def receive(self, src, cluster, payload, now):
        self.client.receive(src, cluster, payload, now)
        self._events(now)

    def timer(self, now):
        self.client.timer(now)
        self._events(now)

    def _events(self, now):
        for ev in self.client.pop_events():
            self.events.append(type(ev).__name__)
            if isinstance(ev, oc.DownloadComplete):
                self.completed_at = now
                self.client.verified(True, now)
            elif isinstance(ev, oc.Activate):
                self.activated_at = now


def zigpy_image(data: bytes):
    firmware, _ = parse_ota_image(data)
    h = firmware.header
    meta = zigpy.ota.providers.BaseOtaImageMetadata(file_version=h.file_version, manufacturer_id=h.manufacturer_id,
                                                      image_type=h.image_type)
    return zigpy.ota.OtaImageWithMetadata(metadata=meta, firmware=firmware)


async def update(data: bytes, lossy: Lossy, *, attempts: int = 1, settle_s: float = 3600.0):
    loop = asyncio.get_running_loop()
    link = Link(loop, lossy, len(data))
    dev = Device.create(None, PROFILE.geometry, PROFILE.layout())
    header = read_tolerant(data).file.header
    client = oc.OtaClient(oc.ClientConfig(manufacturer=header.manufacturer, image_type=header.image_type,
                                          current_file_version=CURRENT, hardware_version=PROFILE.hw_version,
                                          max_data_size=oc.max_data_size_for(82), seed=7),
                          DeviceStore(dev), loop.time())
    bridge = Bridge(client)
    Driver(bridge, link, AsyncioClock(loop)).start()
    await asyncio.sleep(60.0)          # the device has joined and asked once (NO_IMAGE_AVAILABLE)
    statuses = []
    for _ in range(attempts):
        statuses.append(await update_firmware(link.device, zigpy_image(data)))
        if statuses[-1] == foundation.Status.SUCCESS:
            break
    done_at = loop.time()
    await asyncio.sleep(settle_s)      # what the client does after zigpy is done
    return statuses, bridge, link, done_at


CASES = [
    # (lost frame, zigpy's verdict) -- one frame of the update lost
    (None, 1),
    ("query_next_image", 1), ("query_next_image_response", 1),
    ("image_block", 1), ("image_block", 30), ("image_block", -1),
    ("image_block_response", 1), ("image_block_response", 30), ("image_block_response", -1),
    ("upgrade_end", 1),
]


@pytest.mark.parametrize("command, nth", CASES)
def test_an_update_with_one_frame_lost_completes_within_zigpys_windows(ota_file, command, nth):
    lossy = Lossy(command, nth)
    statuses, bridge, link, done_at = virtual_loop.run(update(ota_file, lossy))
    assert link.device.errors == []
    assert statuses == [foundation.Status.SUCCESS], (command, nth, link.heard[-5:])
    assert lossy.lost == ([] if command is None else [command])
    assert bridge.completed_at is not None and bridge.activated_at is not None
    # zigpy answered the Upgrade End with upgrade time 0: activation at once
    assert bridge.activated_at <= done_at + 1.0


def test_a_lost_upgrade_end_response_still_activates_under_the_timeout_policy(ota_file):
    """zigpy reports SUCCESS and then hears no more of it (its later Upgrade End
    Requests go unanswered): the client applies the image once its retries run out."""
    cfg = oc.ClientConfig(0, 0, 0)
    lossy = Lossy("upgrade_end_response", 1)
    statuses, bridge, link, done_at = virtual_loop.run(update(ota_file, lossy))
    assert statuses == [foundation.Status.SUCCESS] and lossy.lost == ["upgrade_end_response"]
    assert link.heard.count("upgrade_end") == cfg.end_max_tries
    waited = bridge.activated_at - bridge.completed_at
    bound = sum(cfg.end_backoff.nominal(k) for k in range(cfg.end_max_tries)) + 1.0
    assert 0 < waited <= bound and bound < 300, (waited, bound)


def test_a_lost_image_notify_times_out_at_zigpy_and_a_second_try_succeeds(ota_file):
    """No client can answer a notify it never heard: zigpy gives up after its 30 s;
    the client's own periodic query meanwhile gets NO_IMAGE_AVAILABLE and nothing
    is harmed, and the user's second try goes through."""
    lossy = Lossy("image_notify", 1)
    statuses, bridge, link, done_at = virtual_loop.run(update(ota_file, lossy, attempts=2))
    assert statuses == [foundation.Status.TIMEOUT, foundation.Status.SUCCESS]
    assert bridge.activated_at is not None


def test_zigpys_windows_are_the_ones_this_test_models():
    assert (MAX_TIME_WITHOUT_PROGRESS, FINAL_BLOCK_TIMEOUT) == (30, 60)
    cfg = oc.ClientConfig(0, 0, 0)
    # the client's retries come inside them
    assert cfg.response_timeout_s < MAX_TIME_WITHOUT_PROGRESS
    assert cfg.query_retry_s + cfg.response_timeout_s < MAX_TIME_WITHOUT_PROGRESS
    assert cfg.end_retry_s < FINAL_BLOCK_TIMEOUT
