"""The OTA client's download store on a bridge: the boot core's download slot."""
from __future__ import annotations

from bridge_emu.core.device import Device
from bridge_emu.errors import StateError


class DeviceStore:
    """The OTA client's DownloadStore over the boot core's download slot.

    While a download runs, each write also erases at most one sector of the
    area the install will save the running image into (Device.prepare_download;
    copy-swap parts with room for it), so the boot that installs the image
    has that many fewer erases: the downtime it saves.
    """

    def __init__(self, device: Device, body_offset: int = 0):
        """body_offset: where the bootable image starts after the OTA header
        (BridgeProfile.image_offset: a plain ZigBee body's sub-element header)."""
        self.device = device
        self.body_offset = body_offset
        self._prepare = False

    def begin(self, size: int, header_length: int) -> None:
        self.device.begin_download(size, header_length + self.body_offset)
        self._prepare = True

    def write(self, offset: int, data: bytes) -> None:
        self.device.write_download(offset, data)
        if self._prepare:
            self._step()

    def _step(self) -> None:
        try:
            self._prepare = self.device.prepare_download(1)
        except StateError:
            self._prepare = False       # no running image to make room for

    def read(self, offset: int, n: int) -> bytes:
        return self.device.read_download(offset, n)

    def held(self) -> tuple[int, int] | None:
        size = self.device.download_size
        if size is None:
            return None
        self._prepare = True            # after a power cut: look again (RAM was lost)
        return size, self.device.prepare_resume()

    def discard(self) -> None:
        self._prepare = False
        self.device.discard_download()
