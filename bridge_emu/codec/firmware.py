"""The emulated firmware: what runs inside a bridge's MCUboot image.

An emulated bridge runs no code from its image; the image's payload says what
the firmware is and how it behaves. The payload is

    manifest (fixed binary structure below) ‖ fill

where fill is SHAKE-256 output seeded by the manifest, so a payload of any
requested size is deterministic, differs between builds, and does not compress
away (realistic transfer and flash times).

Manifest, little-endian (MANIFEST):
    magic "BEFW" | length u16 (of the manifest) | bridge_type u8 (1..4 = B1..B4)
    | reserved u8 (0) | behaviours u32 (bit per switch, BEHAVIOUR_BITS)
    | version: major u8, minor u8, revision u16, build u32 (as MCUboot's)
    | build_id 16 bytes ASCII, NUL-padded
A later format appends fields and raises `length`; this reader skips what it
does not know. An unknown behaviour bit is refused instead: ignoring a switch
would emulate the wrong firmware.

To add a switch: a bool field on FirmwareManifest and its bit in BEHAVIOUR_BITS.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

from construct import Bytes, Const, ConstructError, Int8ul, Int16ul, Int32ul, Padding, Struct

from bridge_emu.codec.mcuboot import ImageVersion, parse_image
from bridge_emu.errors import BridgeEmuError

MANIFEST_MAGIC = b"BEFW"
BRIDGE_TYPES = ("B1", "B2", "B3", "B4")
BUILD_ID_SIZE = 16
BEHAVIOUR_BITS = {
    "fails_self_test": 0x1,     # the post-swap self test fails: the image is never confirmed
    "crashes_at_boot": 0x2,     # resets before it can run
    "never_rejoins": 0x4,       # boots, but never rejoins the ZigBee network
}
_FILL_DOMAIN = b"bridge-emu firmware fill\0"

MANIFEST = Struct(
    "magic" / Const(MANIFEST_MAGIC),
    "length" / Int16ul,
    "bridge_type" / Int8ul,
    Padding(1),
    "behaviours" / Int32ul,
    "version" / Struct("major" / Int8ul, "minor" / Int8ul, "revision" / Int16ul,
                       "build" / Int32ul),
    "build_id" / Bytes(BUILD_ID_SIZE),
)
MANIFEST_SIZE = MANIFEST.sizeof()   # 36


class ManifestError(BridgeEmuError):
    """A firmware manifest is absent, malformed or cannot be encoded."""


@dataclass(frozen=True)
class FirmwareManifest:
    bridge_type: str                    # "B1".."B4"
    version: ImageVersion               # a "1.2.3+4" string is accepted
    build_id: str = ""                  # up to 16 ASCII characters
    fails_self_test: bool = False
    crashes_at_boot: bool = False
    never_rejoins: bool = False

    def __post_init__(self) -> None:
        if self.bridge_type not in BRIDGE_TYPES:
            raise ManifestError(f"bridge type {self.bridge_type!r} not one of {BRIDGE_TYPES}")
        try:
            object.__setattr__(self, "version", ImageVersion.parse(self.version))
        except BridgeEmuError as e:
            raise ManifestError(str(e)) from None
        bid = self.build_id
        if not isinstance(bid, str) or not bid.isascii() or len(bid) > BUILD_ID_SIZE or "\0" in bid:
            raise ManifestError(f"build id {self.build_id!r}: want up to {BUILD_ID_SIZE} ASCII "
                                "characters, no NUL")
        for name in BEHAVIOUR_BITS:
            if not isinstance(getattr(self, name), bool):
                raise ManifestError(f"{name} must be a bool")

    @property
    def behaviours(self) -> int:
        return sum(bit for name, bit in BEHAVIOUR_BITS.items() if getattr(self, name))

    def encode(self) -> bytes:
        v = self.version
        return MANIFEST.build(dict(
            length=MANIFEST_SIZE, bridge_type=BRIDGE_TYPES.index(self.bridge_type) + 1,
            behaviours=self.behaviours,
            version=dict(major=v.major, minor=v.minor, revision=v.revision, build=v.build),
            build_id=self.build_id.encode("ascii").ljust(BUILD_ID_SIZE, b"\0")))


# Every switch has its field (a switch added to one and not the other fails at import).
assert set(BEHAVIOUR_BITS) <= {f.name for f in fields(FirmwareManifest)}


def parse_manifest(payload: bytes) -> FirmwareManifest:
    """The manifest at the start of a firmware payload; ManifestError if there is none."""
    payload = bytes(payload)
    if not payload.startswith(MANIFEST_MAGIC):
        raise ManifestError(f"no firmware manifest: payload starts with "
                            f"{payload[:4].hex() or 'nothing'}, want {MANIFEST_MAGIC.hex()} "
                            f"({MANIFEST_MAGIC.decode()})")
    if len(payload) < MANIFEST_SIZE:
        raise ManifestError(f"firmware manifest truncated: {len(payload)} bytes, "
                            f"want {MANIFEST_SIZE}")
    try:
        m = MANIFEST.parse(payload[:MANIFEST_SIZE])
    except ConstructError as e:     # unreachable after the checks above; kept as a guard
        raise ManifestError(f"malformed firmware manifest: {e}") from None
    if not MANIFEST_SIZE <= m.length <= len(payload):
        raise ManifestError(f"firmware manifest length {m.length} not in "
                            f"{MANIFEST_SIZE}..{len(payload)}")
    if not 1 <= m.bridge_type <= len(BRIDGE_TYPES):
        raise ManifestError(f"firmware manifest bridge type {m.bridge_type} not in "
                            f"1..{len(BRIDGE_TYPES)}")
    known = sum(BEHAVIOUR_BITS.values())
    if m.behaviours & ~known:
        raise ManifestError(f"firmware manifest sets behaviour bits {m.behaviours & ~known:#x} "
                            "this emulator does not know")
    build_id = m.build_id.rstrip(b"\0")
    if b"\0" in build_id or not build_id.isascii():
        raise ManifestError(f"firmware manifest build id {m.build_id!r} is not NUL-padded ASCII")
    v = m.version
    return FirmwareManifest(
        bridge_type=BRIDGE_TYPES[m.bridge_type - 1],
        version=ImageVersion(v.major, v.minor, v.revision, v.build),
        build_id=build_id.decode("ascii"),
        **{name: bool(m.behaviours & bit) for name, bit in BEHAVIOUR_BITS.items()})


def firmware_payload(manifest: FirmwareManifest, size: int) -> bytes:
    """manifest ‖ deterministic fill, exactly `size` bytes."""
    head = manifest.encode()
    if size < len(head):
        raise ManifestError(f"payload size {size} cannot hold the {len(head)}-byte manifest")
    return head + hashlib.shake_256(_FILL_DOMAIN + head).digest(size - len(head))


def manifest_from_image(image: bytes) -> FirmwareManifest:
    """The manifest inside an MCUboot image's payload (the image is parsed, not verified)."""
    return parse_manifest(parse_image(image).payload)


def running_manifest(image: bytes, bridge_type: str) -> FirmwareManifest:
    """What an emulated bridge runs: the manifest of our emulated firmware, or, for a
    user's own firmware (a payload without one), well-behaved firmware of the
    version in its MCUboot header."""
    parsed = parse_image(image)
    if not bytes(parsed.payload[:len(MANIFEST_MAGIC)]) == MANIFEST_MAGIC:
        return FirmwareManifest(bridge_type, parsed.version, "foreign")
    return parse_manifest(parsed.payload)


def file_version(version: str) -> int:
    """OTA file_version of an image version: major << 24 | minor << 16 | revision
    (the build number is not part of it)."""
    v = ImageVersion.parse(version)
    if v.revision > 0xFFFF:
        raise ManifestError(f"version {version}: revision above 65535 does not fit the OTA file version")
    return v.major << 24 | v.minor << 16 | v.revision
