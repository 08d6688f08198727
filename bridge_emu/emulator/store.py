"""The OTA client's download store on a bridge: the boot core's download slot."""
from __future__ import annotations

from bridge_emu.core.device import Device


class DeviceStore:
    """The OTA client's DownloadStore over the boot core's download slot."""

    def __init__(self, device: Device):
        self.device = device

    def begin(self, size: int, image_offset: int) -> None:
        self.device.begin_download(size, image_offset)

    def write(self, offset: int, data: bytes) -> None:
        self.device.write_download(offset, data)

    def read(self, offset: int, n: int) -> bytes:
        return self.device.read_download(offset, n)

    def held(self) -> tuple[int, int] | None:
        size = self.device.download_size
        return None if size is None else (size, self.device.prepare_resume())

    def discard(self) -> None:
        self.device.discard_download()
