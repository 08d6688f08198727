"""Where the data the tests read lives: all of it inside the repository."""
from __future__ import annotations

import pathlib

from bridge_emu.keys import key_paths
from bridge_emu.premises.images import DEFAULT_IMAGES

TESTS = pathlib.Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
IMAGES = DEFAULT_IMAGES                 # the bundled image set (package data)
KEYS = IMAGES / "keys"                  # its TEST-ONLY PKI
VECTORS = TESTS / "vectors" / "gbcs"    # public GBCS vectors, provenance in their README

MANUFACTURER_KEYS = key_paths(KEYS, "manufacturer")
SUPPLIER_KEYS = key_paths(KEYS, "supplier")
