"""The OTA server's images: `OtaImage` (one servable file) and `ImageStore`
(images by id and by manufacturer and image type, and the choice of which to
offer a client).

This is the one part of the server that touches the file system (from_folder,
load_folder, add_file); the machine (server_machine) is handed a store and
only looks images up in it, so it runs on bytes and time alone.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from bridge_emu.codec.ota_file import OtaFileError, OtaHeader, read_tolerant
from bridge_emu.codec.zcl import WILDCARD_IMAGE_TYPE, WILDCARD_MANUFACTURER
from bridge_emu.ota.policy import VersionRule

log = logging.getLogger("bridge_emu.ota.server")

ImageKey = tuple[int, int, int]     # (manufacturer, image_type, file_version): an image's id


class OtaImage:
    """One servable OTA image: the file's bytes from the magic to total_image_size.

    name: the file name (or the name given with the bytes); header: the OtaHeader;
    notes: the tolerant reader's findings (a wrapper before the magic, trailing
    bytes, header-string notes...), as text.
    """
    __slots__ = ("name", "header", "data", "size", "manufacturer", "image_type",
                 "file_version", "min_hardware_version", "max_hardware_version",
                 "device_specific", "notes", "key")

    def __init__(self, name: str, header: OtaHeader, data: bytes, notes: tuple[str, ...] = ()):
        self.name = name
        self.header = header
        self.data = data
        self.size = len(data)
        self.manufacturer = header.manufacturer
        self.image_type = header.image_type
        self.file_version = header.file_version
        self.min_hardware_version = header.min_hardware_version
        self.max_hardware_version = header.max_hardware_version
        self.device_specific = header.upgrade_file_destination is not None
        self.notes = notes
        self.key: ImageKey = (self.manufacturer, self.image_type, self.file_version)

    def fits_hardware(self, hardware_version: int | None) -> bool:
        """True unless both the client's version and the file's range are known
        and the version is outside the range."""
        if hardware_version is None or self.min_hardware_version is None:
            return True
        return self.min_hardware_version <= hardware_version <= self.max_hardware_version

    def __repr__(self) -> str:
        hw = ("" if self.min_hardware_version is None else
              f" hw {self.min_hardware_version:#x}..{self.max_hardware_version:#x}")
        return (f"<OtaImage {self.name} {self.manufacturer:04X}-{self.image_type:04X}-"
                f"{self.file_version:08X}{hw} {self.size} bytes>")


class ImageStore:
    """OTA images indexed by id and by (manufacturer, image_type).

    Files are read with the tolerant reader; a file is skipped (logged, and
    listed in `skipped` as (name, reason)) when it has no readable header,
    holds fewer bytes than its total_image_size, or repeats an id already held
    with other bytes (the first one stays). A wrapper before the magic and
    bytes after total_image_size are dropped: what is served is the OTA file.

    by_id: id -> image, the dict the server's block path looks ids up in
    (read it; add images through add / add_bytes / add_file).
    """

    def __init__(self, images: Iterable[OtaImage] = ()):
        self.images: list[OtaImage] = []
        self.skipped: list[tuple[str, str]] = []
        self.by_id: dict[ImageKey, OtaImage] = {}
        self._by_type: dict[tuple[int, int], list[OtaImage]] = {}
        for image in images:
            self.add(image)

    @classmethod
    def from_folder(cls, path: str | os.PathLike, recursive: bool = True) -> ImageStore:
        store = cls()
        store.load_folder(path, recursive)
        return store

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[OtaImage]:
        return iter(self.images)

    def __repr__(self) -> str:
        return f"<ImageStore {len(self.images)} images, {len(self.skipped)} skipped>"

    # -- loading

    def load_folder(self, path: str | os.PathLike, recursive: bool = True) -> list[OtaImage]:
        """Add every readable OTA file under path (sorted by name); returns those added."""
        root = Path(path)
        files = root.rglob("*") if recursive else root.iterdir()
        added = []
        for p in sorted(f for f in files if f.is_file()):
            image = self.add_file(p)
            if image is not None:
                added.append(image)
        return added

    def add_file(self, path: str | os.PathLike) -> OtaImage | None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            return self._skip(str(path), f"cannot read: {e}", found_magic=True)
        return self.add_bytes(data, str(path))

    def add_bytes(self, data: bytes, name: str = "<bytes>") -> OtaImage | None:
        """Read one OTA file from bytes; the OtaImage added, or None if skipped."""
        try:
            found = read_tolerant(data)
        except OtaFileError as e:
            return self._skip(name, e.reason, found_magic=e.kind != "magic")
        except Exception as e:          # the reader promises OtaFileError; stay safe anyway
            return self._skip(name, f"reader failed: {e!r}", found_magic=True)
        header = found.file.header
        total = header.total_image_size
        start = found.start
        data = bytes(data)
        if total is None or total < (header.header_length or 0):
            return self._skip(name, f"total_image_size {total} is shorter than the header",
                              found_magic=True)
        if len(data) - start < total:
            return self._skip(name, f"truncated: {len(data) - start} bytes after the magic, "
                                    f"total_image_size says {total}", found_magic=True)
        notes = tuple(f"{a.kind} at {a.offset}: {a.message}" for a in found.anomalies)
        return self.add(OtaImage(name, header, data[start:start + total], notes))

    def add(self, image: OtaImage) -> OtaImage | None:
        held = self.by_id.get(image.key)
        if held is not None:
            if held.data == image.data:
                return self._skip(image.name, f"same file as {held.name}", found_magic=False)
            return self._skip(image.name, f"id {image.key[0]:04X}-{image.key[1]:04X}-"
                                          f"{image.key[2]:08X} already held by {held.name} "
                                          "with other bytes", found_magic=True)
        self.images.append(image)
        self.by_id[image.key] = image
        same = self._by_type.setdefault((image.manufacturer, image.image_type), [])
        same.append(image)
        same.sort(key=lambda i: i.file_version, reverse=True)
        for note in image.notes:
            log.info("OTA image %s: %s", image.name, note)
        return image

    def _skip(self, name: str, reason: str, found_magic: bool) -> None:
        self.skipped.append((name, reason))
        (log.warning if found_magic else log.info)("OTA image %s skipped: %s", name, reason)
        return None

    # -- lookup

    def get(self, manufacturer: int, image_type: int, file_version: int) -> OtaImage | None:
        return self.by_id.get((manufacturer, image_type, file_version))

    def find(self, spec: OtaImage | ImageKey | str) -> OtaImage:
        """An image by OtaImage, id tuple, or file name (full, or its last part).
        Raises KeyError if the store does not hold it."""
        if isinstance(spec, OtaImage):
            if self.by_id.get(spec.key) is spec:
                return spec
            raise KeyError(f"{spec!r} is not in this store")
        if isinstance(spec, tuple):
            image = self.by_id.get(tuple(spec))
            if image is None:
                raise KeyError(f"no image with id {spec!r}")
            return image
        matches = [i for i in self.images
                   if i.name == spec or Path(i.name).name == spec or i.name.endswith(os.sep + spec)]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} images named {spec!r}")
        return matches[0]

    def select(self, manufacturer: int, image_type: int, current_version: int,
               hardware_version: int | None = None,
               version: VersionRule | str = VersionRule.NEWER) -> OtaImage | None:
        """The image to offer a client, or None (rule in bridge_emu.ota.server's docstring)."""
        newer_only = VersionRule(version) is VersionRule.NEWER
        best = None
        for key in ((manufacturer, image_type), (WILDCARD_MANUFACTURER, image_type),
                    (manufacturer, WILDCARD_IMAGE_TYPE),
                    (WILDCARD_MANUFACTURER, WILDCARD_IMAGE_TYPE)):
            for image in self._by_type.get(key, ()):        # highest version first
                v = image.file_version
                if best is not None and v <= best.file_version:
                    break
                if image.device_specific or not image.fits_hardware(hardware_version):
                    continue
                if v > current_version if newer_only else v != current_version:
                    best = image
                    break
        return best
