"""The firmware set a premises run offers: the signed OTA files per bridge type
and role (current, next, faulty) listed in index.json, and the public keys of
the test PKI that signed them. The bundled set is package data
(bridge_emu/images, rebuilt by `make images`)."""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass

from bridge_emu.keys import key_paths, load_public_key
from bridge_emu.premises.schema import PremisesError

DEFAULT_IMAGES = pathlib.Path(__file__).resolve().parents[1] / "images"   # package data: see pyproject.toml


@dataclass
class ImageSet:
    """The firmware files the hub can offer, and the keys of the test PKI."""
    directory: pathlib.Path

    def __post_init__(self):
        index_path = self.directory / "index.json"
        try:
            self.index = json.loads(index_path.read_text())
        except (OSError, ValueError) as e:
            raise PremisesError(f"{index_path}: cannot read the image index ({e})") from None
        keys = self.directory / "keys"
        self.manufacturer_key = load_public_key(key_paths(keys, "manufacturer").public)
        self.supplier_key = load_public_key(key_paths(keys, "supplier").certificate)

    def file(self, bridge_type: str, role: str) -> pathlib.Path:
        return self.directory / self.index[f"{bridge_type}/{role}"]["file"]
