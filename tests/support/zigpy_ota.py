"""zigpy's real OTAManager in process: what it drives of a zigpy device, its
application and its Ota cluster, as a stand-in that turns its cluster calls into
frames on a (lossy) link to a client of ours. Everything of zigpy that
OTAManager touches is the real thing (its manager, its ZCL schemas, its header
codec). zigpy is a GPL-3.0 test dependency; nothing under bridge_emu/ imports it."""
from __future__ import annotations

import asyncio
import contextlib

from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Ota

from bridge_emu.codec import zcl

LATENCY_S = 0.02
CLIENT, SERVER = 0x2B04, 0x0000


class Lossy:
    """Which frames the link loses: the n-th (1-based; -1: the last of the
    update) of one command, in one direction."""

    def __init__(self, command: str | None = None, nth: int = 1):
        self.command, self.nth, self.seen, self.lost = command, nth, 0, []

    def drops(self, name: str, cmd, size: int) -> bool:
        if name != self.command:
            return False
        self.seen += 1
        if self.nth == -1:
            last = getattr(cmd, "file_offset", 0) + len(getattr(cmd, "image_data", b"")) >= size
            hit = last if name == "image_block_response" else (
                getattr(cmd, "file_offset", 0) + getattr(cmd, "maximum_data_size", 0) >= size)
        else:
            hit = self.seen == self.nth
        if hit and not self.lost:
            self.lost.append(name)
            return True
        return False


class ZigpyDevice:
    """What OTAManager uses of a zigpy device, its application and its Ota cluster."""

    def __init__(self, link: Link):
        self.link = link
        self._application = self.application = self
        self._callbacks: list = []
        self.model, self.manufacturer = "bridge", "bridge-emu"
        self.tsn = 0
        self.errors: list[BaseException] = []

    ImageNotifyCommand = Ota.ImageNotifyCommand

    # -- the device and application
    def find_cluster(self, cluster_id, cluster_type):
        assert cluster_id == Ota.cluster_id
        return self

    @contextlib.contextmanager
    def callback_for_response(self, src, filters, callback):
        entry = (tuple(type(f) for f in filters), callback)
        self._callbacks.append(entry)
        try:
            yield
        finally:
            self._callbacks.remove(entry)

    @contextlib.asynccontextmanager
    async def request_priority(self, priority):
        yield

    @contextlib.asynccontextmanager
    async def fast_poll_mode(self):
        yield

    def debug(self, *args, **kwargs):
        if kwargs.get("exc_info"):           # OTAManager logs its handlers' failures here
            self.errors.append(kwargs["exc_info"])

    info = debug

    # -- the Ota cluster: commands to the client, as zigpy frames them
    async def request(self, general, command_id, schema, expect_reply=True, tsn=None, **kwargs):
        if tsn is None:
            self.tsn = (self.tsn + 1) & 0xFF
            tsn = self.tsn
        hdr = foundation.ZCLHeader.cluster(tsn, command_id, direction=foundation.Direction.Server_to_Client)
        self.link.to_client(Ota.client_commands[command_id].name, schema(**kwargs), hdr.serialize()
                            + schema(**kwargs).serialize())

    def _command(name: str):
        async def send(self, *args, tsn=None, **kwargs):
            d = getattr(Ota.ClientCommandDefs, name)
            if args:   # positional, as zigpy's own cluster calls them (status first)
                kwargs = dict(zip([f.name for f in d.schema.fields], args)) | kwargs
            await self.request(False, d.id, d.schema, expect_reply=False, tsn=tsn, **kwargs)
        return send

    image_notify = _command("image_notify")
    query_next_image_response = _command("query_next_image_response")
    image_block_response = _command("image_block_response")
    upgrade_end_response = _command("upgrade_end_response")

    # -- frames from the client, as zigpy reads them
    def from_client(self, hdr, cmd) -> None:
        handlers = [cb for types, cb in self._callbacks if type(cmd) in types]
        for cb in handlers:
            asyncio.ensure_future(cb(hdr, cmd))
        if not handlers and hdr.command_id == Ota.ServerCommandDefs.query_next_image.id:
            # outside an update zigpy's Ota cluster answers every query so
            asyncio.ensure_future(self.query_next_image_response(
                status=foundation.Status.NO_IMAGE_AVAILABLE, tsn=hdr.tsn))


class Link:
    """The radio between zigpy and our client: a little latency, and the losses asked for."""

    def __init__(self, loop, lossy: Lossy, size: int):
        self.loop, self.lossy, self.size = loop, lossy, size
        self.device = ZigpyDevice(self)
        self.on_receive = None        # set by our client's Driver
        self.heard: list[str] = []    # commands zigpy received, in order
        self.unreadable = 0           # frames zigpy could not read

    # our client's Transport
    address, max_payload = CLIENT, 82

    def send(self, dst, cluster, payload) -> None:
        try:
            hdr, rest = foundation.ZCLHeader.deserialize(payload)
            if hdr.frame_control.frame_type != foundation.FrameType.CLUSTER_COMMAND:
                return    # attribute reports and the like: zigpy's OTAManager does not read them
            d = Ota.server_commands[hdr.command_id]
            cmd, _ = d.schema.deserialize(rest)
        except (ValueError, KeyError):
            self.unreadable += 1
            return        # zigpy drops a frame it cannot deserialize (it logs it)
        if self.lossy.drops(d.name, cmd, self.size):
            return
        self.heard.append(d.name)
        self.loop.call_later(LATENCY_S, self.device.from_client, hdr, cmd)

    def to_client(self, name: str, cmd, payload: bytes) -> None:
        if self.lossy.drops(name, cmd, self.size):
            return
        self.loop.call_later(LATENCY_S, lambda: self.on_receive(SERVER, zcl.OTA_CLUSTER_ID, payload))


