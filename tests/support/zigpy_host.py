"""A real zigpy host against bridge-emu's virtual dongles: the configuration,
and the small steps every dongle test and benchmark takes. zigpy and its radio
libraries are GPL-3.0 test dependencies; nothing under bridge_emu/ imports them."""
from __future__ import annotations

import asyncio
import dataclasses

import zigpy.ota
import zigpy.ota.image
import zigpy.ota.providers


def znp_config(url: str) -> dict:
    """zigpy + zigpy-znp on socket://: no database, backups, topology scans or OTA
    provider; sockets have no DTR/RTS pins, so no toggling, just ping."""
    return {"device": {"path": url}, "database_path": None, "backup_enabled": False, "topo_scan_enabled": False,
            "ota": {"enabled": False},
            "znp_config": {"connect_rts_pin_states": [], "connect_dtr_pin_states": []}}


def as_int(ieee) -> int:
    return int.from_bytes(ieee.serialize(), "little")


def without_loss(spec):
    """A premises whose bridge-to-bridge links lose nothing (see test_dongle_zigpy
    for why interviews want that)."""
    return dataclasses.replace(spec, bridges=tuple(
        dataclasses.replace(b, link={**b.link, "loss": 0.0}) if b.parent else b for b in spec.bridges))


async def interviewed(app, ieees, *, timeout_s: float = 30.0) -> dict:
    """Wait until every device named (EUI-64 as int) has passed zigpy's interview
    (initialized, with a model); returns {ieee: zigpy device} of those that did."""
    want = set(ieees)
    done: dict = {}
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while loop.time() < give_up:
        done = {as_int(d.ieee): d for d in app.devices.values()
                if as_int(d.ieee) in want and d.is_initialized and d.model is not None}
        if len(done) == len(want):
            break
        await asyncio.sleep(0.02)
    return done


def zigpy_image(data: bytes) -> zigpy.ota.OtaImageWithMetadata:
    """A GBCS OTA file as zigpy serves it. Its body has no ZigBee sub-element framing
    (GBCS puts the Manufacturer Image and its signature trailer straight after the
    header), which zigpy's parse_ota_image refuses ("Data is too short"), so it goes
    in zigpy's own header-plus-raw-body container, as a host would serve it."""
    h, body = zigpy.ota.image.OTAImageHeader.deserialize(data)
    firmware = zigpy.ota.image.HueSBLOTAImage(header=h, data=body)
    assert firmware.serialize() == data
    return zigpy.ota.OtaImageWithMetadata(
        metadata=zigpy.ota.providers.BaseOtaImageMetadata(
            file_version=h.file_version, manufacturer_id=h.manufacturer_id, image_type=h.image_type),
        firmware=firmware)
