"""The firmware set a premises run offers: the signed OTA files per bridge type
and role (current, next, faulty) listed in index.json, and the public keys of
the test PKI that signed them. The bundled set is package data
(bridge_emu/images, rebuilt by `make images`)."""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass

from bridge_emu.codec import ota_file
from bridge_emu.codec.mcuboot import parse_image
from bridge_emu.emulator.profiles import BridgeProfile
from bridge_emu.errors import BridgeEmuError
from bridge_emu.keys import key_paths, load_private_key, load_public_key
from bridge_emu.premises.schema import BridgeSpec, PremisesError

DEFAULT_IMAGES = pathlib.Path(__file__).resolve().parents[1] / "images"   # package data: see pyproject.toml


@dataclass
class ImageSet:
    """The firmware files the hub can offer, and the keys of the test PKI."""
    directory: pathlib.Path

    def __post_init__(self):
        self.directory = pathlib.Path(self.directory)
        index_path = self.index_path = self.directory / "index.json"
        if not self.directory.is_dir():
            raise PremisesError(f"{self.directory}: not an image folder (index.json and keys/)")
        try:
            self.index = json.loads(index_path.read_bytes().decode("utf-8"))
        except (OSError, ValueError) as e:
            raise PremisesError(f"{index_path}: cannot read the image index ({getattr(e, 'strerror', None) or e})"
                                ) from None
        if not isinstance(self.index, dict):
            raise PremisesError(f"{index_path}: the image index is a JSON object of \"TYPE/ROLE\" entries")
        for key, entry in self.index.items():
            if (not isinstance(entry, dict) or not isinstance(entry.get("file"), str)
                    or not isinstance(entry.get("version"), str)):
                raise PremisesError(f"{index_path}: entry {key!r} needs a \"file\" and a \"version\" (strings)")
            rel = pathlib.PurePosixPath(entry["file"])
            if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                raise PremisesError(f"{index_path}: entry {key!r} names {entry['file']!r}, not a file in the folder")
        keys = self.directory / "keys"
        self.manufacturer_key = load_public_key(key_paths(keys, "manufacturer").public)
        self.supplier_key = load_public_key(key_paths(keys, "supplier").certificate)
        # the authorising party that signs CS06 (a test key, shipped with the images);
        # a folder without it has a hub that cannot sign, whose CS06 bridges refuse
        signer = key_paths(keys, "supplier").private
        self.supplier_signer = load_private_key(signer) if signer.exists() else None

    def entry(self, bridge_type: str, role: str) -> dict:
        """The index entry of a type's image in a role; a clear error if there is none."""
        key = f"{bridge_type}/{role}"
        if key not in self.index:
            listed = ", ".join(sorted(self.index)) or "nothing"
            raise PremisesError(f"{self.index_path}: no entry {key!r} (it lists {listed})")
        return self.index[key]

    def file(self, bridge_type: str, role: str) -> pathlib.Path:
        path = self.directory / self.entry(bridge_type, role)["file"]
        if not path.is_file():
            raise PremisesError(f"{path}: missing (index.json names it for {bridge_type}/{role})")
        return path


@dataclass(frozen=True)
class BridgeKit:
    """What a bridge is made from: its model, the keys it trusts (its bootloader's
    image key, the supplier whose OTA files it takes) and its factory image."""
    profile: BridgeProfile
    manufacturer_key: object
    supplier_key: object
    factory: pathlib.Path

    def factory_version(self) -> str:
        """The version the factory image runs (what a bridge ran before any update)."""
        try:
            f = ota_file.read_strict(self.factory.read_bytes(), ota_file.BodyKind.GBCS)
            return str(parse_image(f.body.manufacturer_image).version)
        except (OSError, BridgeEmuError) as e:
            raise PremisesError(f"{self.factory}: cannot read the factory image's version ({e})") from None


def bridge_kit(b: BridgeSpec, images: ImageSet) -> BridgeKit:
    """A bridge's kit: its profile's files where it gives them, the image set's otherwise."""
    p = b.profile
    if p is None:
        return BridgeKit(b.model, images.manufacturer_key, images.supplier_key, images.file(b.type, "current"))
    return BridgeKit(
        p.profile,
        images.manufacturer_key if p.manufacturer_key is None else load_public_key(p.manufacturer_key),
        images.supplier_key if p.supplier_key is None else load_public_key(p.supplier_key),
        p.factory or images.file(b.type, "current"))
