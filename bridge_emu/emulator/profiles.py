"""The model of the Alt HAN bridge types B1-B4.

No public document details B1-B4 (see docs/bridge-model.md), so this is
the project's own model: documented assumptions, one frozen BridgeProfile per
type that code may replace (dataclasses.replace) for a device of its own.

Placement and power follow the seed's configurations: B1 sits by the
Communications Hub (CH); the remote bridges reach the CH through B1 over the
point-to-point link. B2 sits at a gas meter with mains nearby, B3 at a gas
meter on battery (a sleepy end device that polls its parent), B4 at the
in-home display.

Flash parts and swap modes are chosen to cover what such products use:
- B1 and B4: external 4 KiB-sector serial NOR with copy-swap (the common
  low-cost design: the MCU executes from one slot).
- B2: a dual-bank internal flash, 8 KiB pages, write alignment 8, bank-switch.
- B3: battery powered, so it avoids copying: bank-switch on a dual-bank
  internal flash of mixed sector sizes (16 KiB then 64 KiB), write alignment
  16. Energy per update is reported from flash-busy time and radio time.

The manufacturer code 0xBEE0 is made up for the emulator (it is not a
CSA-assigned code); image types 0x0B01-0x0B04 likewise.

A user's own device is one of these with its identity and flash replaced
(`custom_profile`): it keeps the base type's place in the premises, power
and radio role, and takes the user's manufacturer code, image type, hardware
version, swap mode, flash geometry (uniform, or of mixed sectors with its
layout given) and the OTA body it takes (GBCS, or a plain ZigBee one).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from bridge_emu.codec.ota_file import SUB_ELEMENT_HEADER_SIZE
from bridge_emu.core.device import Device
from bridge_emu.core.flash import Geometry, Layout, Region
from bridge_emu.errors import BridgeEmuError

MANUFACTURER = 0xBEE0

# The OTA files a device takes, and how far into the body its bootable image
# starts: "gbcs", GBCS 11.2 (the manufacturer image, then the supplier's
# signature); "zigbee", a plain ZCL body whose first sub-element is the
# upgrade image (tag 0x0000, after its 6-byte tag and length), with an
# optional AES-MMO integrity code: no supplier signature, so only the
# bootloader's own image signature stands between it and what boots.
BODIES = {"gbcs": 0, "zigbee": SUB_ELEMENT_HEADER_SIZE}


class ProfileError(BridgeEmuError):
    """Unknown bridge type or impossible profile."""


@dataclass(frozen=True)
class BridgeProfile:
    bridge_type: str            # "B1".."B4"
    placement: str
    power: str                  # "mains" or "battery"
    radio_role: str             # ZigBee role towards the HAN
    sleepy: bool                # polls its parent instead of listening
    manufacturer: int
    image_type: int
    hw_version: int             # the device's hardware version
    hw_range: tuple[int, int]   # the range its firmware images declare
    mode: str                   # swap mode of its bootloader
    flash_part: str             # what the geometry models
    geometry: Geometry
    payload_size: int           # emulated firmware payload bytes
    name: str = ""              # the profile's name: the type's own, or a user's ("" = bridge_type)
    model: str = ""             # Basic cluster model identifier ("" = ALT-HAN-<type>)
    fixed_layout: Layout | None = None   # a layout that Layout.simple cannot derive (mixed sectors)
    poll_interval_s: float = 0.0  # sleepy devices: how often they poll their parent
    fast_poll_s: float = 0.0      # ... and how often while they expect replies (a download)
    active_ma: float = 0.0      # battery model: current while radio/flash busy
    sleep_ua: float = 0.0
    body: str = "gbcs"          # the OTA files it takes (BODIES)

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.bridge_type)
        if not self.model:
            object.__setattr__(self, "model", f"ALT-HAN-{self.bridge_type}")

    def layout(self) -> Layout:
        return self.fixed_layout or Layout.simple(self.geometry, self.mode)

    def image_offset(self, header_length: int) -> int:
        """Where the bootable image starts in an OTA file of this device's body
        whose header is header_length bytes: the download is placed so that it
        lands on the slot's image address."""
        return header_length + BODIES[self.body]


# B3: 2 x 16 KiB log sectors, then two banks of 16 KiB + 4 x 64 KiB each
_B3_LAYOUT = Layout("bank-switch", (0, 16 * 1024), ((32 * 1024, 272 * 1024), (304 * 1024, 272 * 1024)))


def _b3_geometry() -> Geometry:
    """16 KiB sectors for the state log and each bank's head (where a download's
    OTA header lands), 64 KiB sectors for each bank's body: 2 x 16 KiB log,
    bank A = 16 KiB + 4 x 64 KiB at 32 KiB, bank B the same at 304 KiB."""
    head, body = Region(1, 16384, 250_000), Region(4, 65536, 700_000)
    return Geometry((Region(2, 16384, 250_000), head, body, head, body),
                    write_align=16, page_size=256, page_program_us=50, ecc=True)


PROFILES: dict[str, BridgeProfile] = {
    "B1": BridgeProfile(
        "B1", placement="at the Communications Hub", power="mains", radio_role="router",
        sleepy=False, manufacturer=MANUFACTURER, image_type=0x0B01, hw_version=0x0102,
        hw_range=(0x0100, 0x01FF), mode="copy-swap",
        flash_part="external serial NOR, 4 KiB sectors (W25Q-class), 1 MiB",
        geometry=Geometry.uniform(4096, 256, write_align=4), payload_size=180_000),
    "B2": BridgeProfile(
        "B2", placement="at the gas meter, mains nearby", power="mains", radio_role="router",
        sleepy=False, manufacturer=MANUFACTURER, image_type=0x0B02, hw_version=0x0201,
        hw_range=(0x0200, 0x02FF), mode="bank-switch",
        flash_part="internal dual-bank flash, 8 KiB pages, 8-byte ECC write unit",
        geometry=Geometry.uniform(8192, 2 + 2 * 32, write_align=8, page_program_us=60,
                                  erase_us=20_000, ecc=True), payload_size=160_000),
    "B3": BridgeProfile(
        "B3", placement="at the gas meter, battery powered", power="battery",
        radio_role="sleepy end device", sleepy=True, manufacturer=MANUFACTURER, image_type=0x0B03,
        hw_version=0x0301, hw_range=(0x0300, 0x03FF), mode="bank-switch",
        flash_part="internal dual-bank flash, 16 KiB then 64 KiB sectors, 16-byte ECC write unit",
        geometry=_b3_geometry(), payload_size=140_000, fixed_layout=_B3_LAYOUT, poll_interval_s=7.5, fast_poll_s=0.25,
        active_ma=18.0, sleep_ua=2.0),
    "B4": BridgeProfile(
        "B4", placement="at the in-home display", power="mains", radio_role="router",
        sleepy=False, manufacturer=MANUFACTURER, image_type=0x0B04, hw_version=0x0401,
        hw_range=(0x0400, 0x04FF), mode="copy-swap",
        flash_part="external serial NOR, 4 KiB sectors, byte-writable, 512 KiB",
        geometry=Geometry.uniform(4096, 128, write_align=1), payload_size=120_000),
}


def profile(bridge_type: str) -> BridgeProfile:
    try:
        return PROFILES[bridge_type.upper()]
    except KeyError:
        raise ProfileError(f"unknown bridge type {bridge_type!r}; expected one of {sorted(PROFILES)}") from None


# What a user's profile may set, beyond its base type's model.
CUSTOM_FIELDS = ("manufacturer", "image_type", "hw_version", "mode", "geometry", "model", "body", "layout")


def custom_profile(name: str, base: str, **fields) -> BridgeProfile:
    """A user's own device: the base type's model with `fields` (CUSTOM_FIELDS)
    replaced. A new uniform geometry's layout is derived (log, plan area for
    copy-swap, two slots) unless a layout is given (its mode is the profile's);
    a part of mixed sectors needs one. The C core checks the layout against the
    geometry now, and one that cannot hold them is refused."""
    unknown = set(fields) - set(CUSTOM_FIELDS)
    if unknown:
        raise ProfileError(f"profile {name}: unknown field(s) {sorted(unknown)}; known: {', '.join(CUSTOM_FIELDS)}")
    base_profile = profile(base)
    for key, top in (("manufacturer", 0xFFFE), ("image_type", 0xFFFE), ("hw_version", 0xFFFF)):
        value = fields.get(key)
        # 0xFFFF is the wildcard a Query Next Image must not carry as its own code
        if value is not None and not (isinstance(value, int) and 0 <= value <= top):
            raise ProfileError(f"profile {name}: {key} {value!r} is outside 0x0000..0x{top:04X}")
    model = fields.get("model", "")
    if not (isinstance(model, str) and model.isascii() and len(model) <= 32):
        # the Basic cluster's ModelIdentifier is a character string of up to 32 bytes
        raise ProfileError(f"profile {name}: model {model!r} is not up to 32 ASCII characters")
    mode = fields.get("mode", base_profile.mode)
    if mode not in ("copy-swap", "bank-switch"):
        raise ProfileError(f"profile {name}: mode {mode!r} is not copy-swap or bank-switch")
    body = fields.get("body", base_profile.body)
    if body not in BODIES:
        raise ProfileError(f"profile {name}: body {body!r} is not {' or '.join(BODIES)}")
    hw = fields.get("hw_version", base_profile.hw_version)
    changes = dict(fields, name=name, hw_range=(hw, hw) if "hw_version" in fields else base_profile.hw_range)
    given = changes.pop("layout", None)
    if given is not None:
        changes["fixed_layout"] = replace(given, mode=mode)
    elif "geometry" in fields or mode != base_profile.mode:
        changes["fixed_layout"] = None      # derived from the new geometry or mode
    made = replace(base_profile, **changes)
    try:
        layout = made.layout()
        if given is not None:
            Device.create(None, made.geometry, layout).close()   # what the boot core makes of it
    except BridgeEmuError as e:
        raise ProfileError(f"profile {name}: {e}") from None
    return made
