"""Hypothesis strategies for property tests against OTA servers, clients and
images: what bridge-emu's own property tests draw from. Each shrinks towards a
small, readable example (the first bridge type, version 0.0.1, short payloads,
no faults). Needs hypothesis (`pip install bridge-emu[testing]`).

    from hypothesis import given
    from bridge_emu import strategies as bs

    @given(bs.ota_files(bridge_type="B4"))
    def test_my_server_serves_any_valid_file(file):        # file.data: the bytes; file.spec: what it is
        ...

    @given(bs.zcl_ota_frames())
    def test_my_parser_never_crashes(frame):                # a bridge_emu.codec.zcl.Frame
        my_parser(bridge_emu.codec.zcl.encode(frame))

What there is:
    zcl_ota_commands(), zcl_ota_frames(commands), zcl_frame_sequences()
                                 OTA cluster commands and ZCL frames of them (every command, both directions,
                                 optional fields present or not, manufacturer-specific global commands)
    mcuboot_images(key)          signed MCUboot images: payload, version, security counter -> McubootImage
    ota_files(bridge_type, profile)
                                 valid signed GBCS OTA files for a bridge type or a user's profile -> OtaFileExample
    bridge_profiles(base)        a user's own device: a premises [profile] table (identity, swap mode, geometry)
    ota_file_mutations(data)     a file with one field or region changed -> Mutation(data, what)
    flash_geometries(), layouts(geometry), flash_configs()
                                 NOR geometries, layouts on one, (geometry, layout) pairs for Device.create
    power_cuts(), fault_schedules()
                                 cuts at a flash operation count or a virtual time, torn or clean
    link_conditions()            a premises `link` table: latency, jitter, loss, throughput, payload limit
    premises_documents()         valid premises documents (TOML tables as dicts): parse_document accepts them
    hostile_plans(manufacturer, image_type, size)
                                 what a misbehaving OTA client does (bridge_emu.ota.hostile steps), to fuzz a
                                 server with bridge_emu.testing.fuzz_server
"""
from __future__ import annotations

from dataclasses import dataclass

try:
    from hypothesis import strategies as st
except ImportError as e:      # a clear line instead of a bare ImportError
    raise ImportError("bridge_emu.strategies needs hypothesis: pip install 'bridge-emu[testing]'") from e

from bridge_emu.codec import zcl
from bridge_emu.codec.zcl import Direction, Frame, Status

__all__ = [
    "zcl_ota_commands", "zcl_ota_frames", "zcl_frame_sequences", "mcuboot_images", "McubootImage", "ota_files",
    "OtaFileExample", "ota_file_mutations", "Mutation", "flash_geometries", "layouts", "flash_configs",
    "power_cuts", "PowerCut", "fault_schedules", "link_conditions", "premises_documents", "hostile_plans",
    "bridge_profiles",
]

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
known_status = st.sampled_from(list(Status))
other_status = known_status.filter(lambda s: s != Status.SUCCESS)
block_status = known_status.filter(lambda s: s not in (Status.SUCCESS, Status.WAIT_FOR_DATA))


def optional(s):
    """The strategy's values, or None (an optional ZCL field left out)."""
    return st.none() | s


# ------------------------------------------------------------------ ZCL OTA frames

@st.composite
def _image_notify(draw):
    n = draw(st.integers(0, 3))
    values = [draw(u16), draw(u16), draw(u32)][:n]
    return zcl.ImageNotify(draw(u8), *values)


def _image_available(cls):
    return st.builds(cls, st.just(Status.SUCCESS), u16, u16, u32, u32) | st.builds(cls, other_status)


_VALUE_FOR = {zcl.DataType.UINT8: u8, zcl.DataType.UINT16: u16, zcl.DataType.UINT32: u32,
              zcl.DataType.ENUM8: u8, zcl.DataType.EUI64: u64}


@st.composite
def _attribute_record(draw):
    if draw(st.booleans()):
        return zcl.ReadAttributeRecord(draw(u16), draw(other_status))
    data_type = draw(st.sampled_from(list(zcl.DataType)))
    return zcl.ReadAttributeRecord(draw(u16), Status.SUCCESS, data_type, draw(_VALUE_FOR[data_type]))


def zcl_ota_commands() -> dict[str, st.SearchStrategy]:
    """A strategy per OTA cluster command (and the global commands an OTA exchange
    uses), by class name. Values are any the wire format carries."""
    return {
        "ImageNotify": _image_notify(),
        "QueryNextImageRequest": st.builds(zcl.QueryNextImageRequest, u16, u16, u32, optional(u16)),
        "QueryNextImageResponse": _image_available(zcl.QueryNextImageResponse),
        "ImageBlockRequest": st.builds(zcl.ImageBlockRequest, u16, u16, u32, u32, u8, optional(u64), optional(u16)),
        "ImagePageRequest": st.builds(zcl.ImagePageRequest, u16, u16, u32, u32, u8, u16, u16, optional(u64)),
        "ImageBlockResponse": st.builds(zcl.ImageBlockResponse, u16, u16, u32, u32, st.binary(max_size=254)),
        "ImageBlockWait": st.builds(zcl.ImageBlockWait, u32, u32, u16),
        "ImageBlockAbort": st.builds(zcl.ImageBlockAbort, block_status),
        "UpgradeEndRequest": st.builds(zcl.UpgradeEndRequest, known_status, u16, u16, u32),
        "UpgradeEndResponse": st.builds(zcl.UpgradeEndResponse, u16, u16, u32, u32, u32),
        "QueryDeviceSpecificFileRequest": st.builds(zcl.QueryDeviceSpecificFileRequest, u64, u16, u16, u32, u16),
        "QueryDeviceSpecificFileResponse": _image_available(zcl.QueryDeviceSpecificFileResponse),
        "ReadAttributes": st.builds(zcl.ReadAttributes, st.lists(u16, max_size=8)),
        "ReadAttributesResponse": st.builds(zcl.ReadAttributesResponse, st.lists(_attribute_record(), max_size=6)),
        "DefaultResponse": st.builds(zcl.DefaultResponse, u8, known_status),
    }


# the Image Block Request with the minimum-block-period bit set and the field missing, as lenient servers take it
LENIENT_BLOCK_REQUEST = st.builds(zcl.ImageBlockRequest, u16, u16, u32, u32, u8, optional(u64), st.none(),
                                  st.just(True))


def _any_command():
    return st.one_of(*zcl_ota_commands().values(), LENIENT_BLOCK_REQUEST)


@st.composite
def zcl_ota_frames(draw, commands: st.SearchStrategy | None = None) -> Frame:
    """A ZCL frame (bridge_emu.codec.zcl.Frame) of an OTA command; zcl.encode gives
    its bytes. Global commands go either way and may be manufacturer-specific."""
    cmd = draw(commands if commands is not None else _any_command())
    if cmd.DIRECTION is None:
        return Frame.of(cmd, draw(u8), direction=draw(st.sampled_from(list(Direction))),
                        manufacturer=draw(optional(u16)), disable_default_response=draw(st.booleans()))
    return Frame.of(cmd, draw(u8), disable_default_response=draw(st.booleans()))


def zcl_frame_sequences(max_size: int = 20, commands: st.SearchStrategy | None = None):
    """Lists of OTA frames (as a misbehaving peer might send them, in any order)."""
    return st.lists(zcl_ota_frames(commands), max_size=max_size)


# ------------------------------------------------------------------ images and files

@dataclass(frozen=True)
class McubootImage:
    data: bytes               # the signed image
    payload: bytes
    version: str
    security_counter: int | None


def _versions():
    return st.builds(lambda a, b, c, d: f"{a}.{b}.{c}+{d}", st.integers(0, 255), st.integers(0, 255),
                     st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF))


def _manufacturer_key():
    from bridge_emu.keys import key_paths, load_private_key
    from bridge_emu.premises.images import DEFAULT_IMAGES
    return load_private_key(key_paths(DEFAULT_IMAGES / "keys", "manufacturer").private)


@st.composite
def mcuboot_images(draw, key=None, max_payload: int = 2048) -> McubootImage:
    """A signed MCUboot image as imgtool makes one (header 0x200, SHA256, KEYHASH,
    ECDSA P-256), signed by `key` (default: the bundled TEST-ONLY manufacturer key)."""
    from bridge_emu.tools.signing import sign_image
    payload = draw(st.binary(min_size=1, max_size=max_payload))
    version = draw(_versions())
    counter = draw(st.none() | st.integers(0, 2048))
    data = sign_image(payload, key or _manufacturer_key(), version=version, security_counter=counter)
    return McubootImage(data, payload, version, counter)


@dataclass(frozen=True)
class OtaFileExample:
    data: bytes               # the file
    spec: object              # the bridge_emu.tools.imagetool.BuildSpec it was built from


@st.composite
def ota_files(draw, bridge_type: str | None = None, max_payload: int = 4096, profile=None,
              min_version: tuple[int, int, int] = (0, 0, 0), behaviours: bool = True,
              min_counter: int = 0) -> OtaFileExample:
    """A valid GBCS OTA file for a bridge type (drawn if not given), or for a user's
    profile (a BridgeProfile, or a [profile] table as bridge_profiles draws: its
    manufacturer code, image type and hardware version), signed with the bundled
    TEST-ONLY keys: what such a bridge takes. Its firmware is the emulator's, with
    behaviour switches drawn too (a faulty image is still valid) unless behaviours
    is False; its version is min_version or above, its security counter min_counter or
    above (what a device's anti-rollback counter allows)."""
    from bridge_emu.codec.firmware import MANIFEST_SIZE
    from bridge_emu.emulator.profiles import PROFILES, custom_profile
    from bridge_emu.keys import key_paths, load_private_key
    from bridge_emu.premises.images import DEFAULT_IMAGES
    from bridge_emu.tools.imagetool import BuildSpec, build
    if isinstance(profile, dict):
        table = {k: v for k, v in profile.items() if k in ("manufacturer", "image_type", "hw_version")}
        profile = custom_profile("drawn", profile["base"], **table)
    t = profile.bridge_type if profile is not None else bridge_type or draw(st.sampled_from(sorted(PROFILES)))
    lo = min_version
    major = draw(st.integers(lo[0], 255))
    minor = draw(st.integers(lo[1] if major == lo[0] else 0, 255))
    revision = draw(st.integers(lo[2] if (major, minor) == lo[:2] else 0, 0xFFFF))
    behaviour = draw(st.sampled_from([{}, {"fails_self_test": True}, {"crashes_at_boot": True},
                                      {"never_rejoins": True}])) if behaviours else {}
    ids = {} if profile is None else {"manufacturer": profile.manufacturer, "image_type": profile.image_type,
                                      "hw_range": (profile.hw_version, profile.hw_version)}
    counter = draw(st.integers(min_counter, max(min_counter, 2048)))
    spec = BuildSpec(t, f"{major}.{minor}.{revision}", security_counter=counter,
                     payload_size=draw(st.integers(MANIFEST_SIZE, max(MANIFEST_SIZE, max_payload))),
                     build_id=draw(st.text("abcdefxyz0123456789-", max_size=16)), behaviour=behaviour, **ids)
    keys = DEFAULT_IMAGES / "keys"
    _, data = build(spec, load_private_key(key_paths(keys, "manufacturer").private),
                    load_private_key(key_paths(keys, "supplier").private))
    return OtaFileExample(data, spec)


@dataclass(frozen=True)
class Mutation:
    data: bytes
    what: str                 # e.g. "manufacturer 0x0001", "truncated to 60 bytes", "bit 3 of byte 100"


# the OTA header's fixed fields: (name, offset, size)
_HEADER_FIELDS = (("header_version", 4, 2), ("header_length", 6, 2), ("field_control", 8, 2),
                  ("manufacturer", 10, 2), ("image_type", 12, 2), ("file_version", 14, 4),
                  ("stack_version", 18, 2), ("total_image_size", 52, 4))


@st.composite
def ota_file_mutations(draw, data: bytes) -> Mutation:
    """The file with one thing changed: a header field set to another value, the
    magic broken, a truncation, trailing or leading bytes, or one bit flipped
    anywhere (header, image, signature). Some leave a file that still verifies on
    its own terms (GBCS signs the Manufacturer Image, not the OTA header: a new
    manufacturer code is for the device to refuse); `what` says what changed."""
    kind = draw(st.sampled_from(["field", "magic", "truncate", "append", "prepend", "flip"]))
    if kind == "field":
        name, offset, size = draw(st.sampled_from(_HEADER_FIELDS))
        old = int.from_bytes(data[offset:offset + size], "little")
        new = draw(st.integers(0, (1 << (8 * size)) - 1).filter(lambda v: v != old))
        return Mutation(data[:offset] + new.to_bytes(size, "little") + data[offset + size:], f"{name} {new:#x}")
    if kind == "magic":
        return Mutation(b"\x00\x00\x00\x00" + data[4:], "magic zeroed")
    if kind == "truncate":
        n = draw(st.integers(0, len(data) - 1))
        return Mutation(data[:n], f"truncated to {n} bytes")
    if kind == "append":
        extra = draw(st.binary(min_size=1, max_size=64))
        return Mutation(data + extra, f"{len(extra)} bytes appended")
    if kind == "prepend":
        extra = draw(st.binary(min_size=1, max_size=64))
        return Mutation(extra + data, f"{len(extra)} bytes before the magic")
    i = draw(st.integers(0, len(data) - 1))
    bit = draw(st.integers(0, 7))
    return Mutation(data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1:], f"bit {bit} of byte {i}")


@st.composite
def bridge_profiles(draw, base: str | None = None, min_slot: int = 256 * 1024) -> dict:
    """A user's own device as a premises [profile] table (parse_profile and
    one_bridge(profile=...) take it): a base type (drawn if not given), a manufacturer
    code, image type and hardware version of its own, a swap mode, and a uniform
    geometry whose slots hold at least min_slot bytes (the bundled factory images
    need up to 181 KiB). No keys or factory image: the image set's apply."""
    t = base or draw(st.sampled_from(["B1", "B2", "B3", "B4"]))
    mode = draw(st.sampled_from(["copy-swap", "bank-switch"]))
    sector = draw(st.sampled_from([4096, 8192, 16384, 65536]))
    align = draw(st.sampled_from([4, 1, 2, 8, 16]))
    # two state-log sectors; copy-swap adds a plan sector and one more for the secondary
    sectors = 2 * -(-min_slot // sector) + (4 if mode == "copy-swap" else 2) + draw(st.integers(0, 16))
    geometry = {"sector_size": sector, "sectors": sectors, "write_align": align,
                "ecc": draw(st.booleans()) and align >= 8}
    return {"base": t, "manufacturer": draw(st.integers(0, 0xFFFE)), "image_type": draw(st.integers(0, 0xFFBF)),
            "hw_version": draw(u16), "mode": mode, "geometry": geometry}


# ------------------------------------------------------------------ flash

@st.composite
def flash_geometries(draw, max_sectors: int = 64):
    """A uniform NOR geometry (sector size 1-64 KiB, 8 to max_sectors sectors, write
    alignment 1-16, ECC or not) that a device can be created with."""
    from bridge_emu.core.flash import Geometry
    sector = draw(st.sampled_from([4096, 1024, 2048, 8192, 16384, 65536]))
    count = draw(st.integers(8, max(8, max_sectors)))
    align = draw(st.sampled_from([4, 1, 2, 8, 16]))
    return Geometry.uniform(sector, count, write_align=align, ecc=draw(st.booleans()) and align >= 8)


def layouts(geometry):
    """Layouts bridge-emu's boot core takes on a geometry: copy-swap or bank-switch."""
    from bridge_emu.core.flash import Layout
    return st.sampled_from(["copy-swap", "bank-switch"]).map(lambda mode: Layout.simple(geometry, mode))


def flash_configs(max_sectors: int = 64):
    """(Geometry, Layout) pairs: Device.create(path, *pair) makes a device of them."""
    return flash_geometries(max_sectors).flatmap(lambda g: st.tuples(st.just(g), layouts(g)))


# ------------------------------------------------------------------ faults and networks

@dataclass(frozen=True)
class PowerCut:
    """A power cut: at a virtual time, then at the at_op-th flash operation after it
    (1: the next), tearing the write or erase under way as `tear` says."""
    at_s: float
    at_op: int = 1
    tear: str = "none"
    seed: int = 0


def power_cuts(max_time_s: float = 600.0, max_op: int = 200):
    return st.builds(PowerCut, st.floats(0, max_time_s, allow_nan=False).map(lambda t: round(t, 3)),
                     st.integers(1, max_op), st.sampled_from(["none", "bits", "prefix"]), st.integers(0, 2**16))


def fault_schedules(max_cuts: int = 3, **kw):
    """Power cuts in time order (the empty schedule first when shrinking)."""
    return st.lists(power_cuts(**kw), max_size=max_cuts).map(lambda cuts: sorted(cuts, key=lambda c: c.at_s))


def link_conditions():
    """A premises `link` table within the schema's ranges (loss at most 0.3, so a run can finish)."""
    return st.fixed_dictionaries({}, optional={
        "latency_ms": st.integers(0, 200), "jitter_ms": st.integers(0, 50),
        "loss": st.floats(0, 0.3, allow_nan=False).map(lambda x: round(x, 3)),
        "throughput_kbps": st.integers(10, 250), "payload_limit": st.integers(68, 82)})


@st.composite
def premises_documents(draw, offers=("next", "faulty", "none")):
    """A premises document (the TOML tables as dicts) that bridge_emu.premises.schema
    parse_document accepts: a B1 at the hub and one or two remote bridges behind
    it, offers, links, a hub personality and activation, maybe a power cut."""
    remote = draw(st.lists(st.sampled_from(["B2", "B3", "B4"]), min_size=1, max_size=2))
    bridges = [{"name": "b1", "type": "B1", "offer": draw(st.sampled_from(offers))}]
    for i, t in enumerate(remote):
        b = {"name": f"r{i + 1}", "type": t, "parent": "b1", "offer": draw(st.sampled_from(offers)),
             "link": draw(link_conditions())}
        if draw(st.booleans()):
            b["power_cut"] = {"at_fraction": draw(st.floats(0, 1).map(lambda x: round(x, 2))),
                              "tear": draw(st.sampled_from(["none", "bits", "prefix"]))}
        bridges.append(b)
    hub = {"personality": draw(st.sampled_from(["gbcs-ch", "zigpy", "herdsman"])),
           "activation": draw(st.sampled_from(["immediate", "none", "future:60"]))}
    return {"name": draw(st.from_regex(r"[a-z][a-z0-9-]{0,11}", fullmatch=True)), "seed": draw(st.integers(0, 999)),
            "hub": hub, "bridge": bridges}


# ------------------------------------------------------------------ hostile OTA clients

def hostile_plans(manufacturer: int = 0xBEE0, image_type: int = 0x0B04, size: int = 4096, max_steps: int = 30,
                  hardware_version: int | None = 0x0401):
    """A plan for bridge_emu.ota.hostile.HostileClient: a query for the image (so there
    is a session to abuse), then any of wrong, overlapping and past-the-end offsets,
    oversize and zero maximum_data_size, pages of odd sizes and spacing, early and
    repeated Upgrade End, queries for other images, bursts, raw malformed frames,
    and pauses (an abandoned session is a plan that just stops). Shrinks to the lone query."""
    from bridge_emu.ota import hostile as h
    offsets = st.integers(0, size + 256) | st.sampled_from([0, size - 1, size, 0xFFFFFFFF])
    steps = st.one_of(
        st.builds(h.Block, offsets, st.integers(0, 255), st.sampled_from([0, 0, 0, 1, -1])),
        st.builds(h.Page, offsets, st.integers(0, 4096), st.integers(0, 255), st.integers(0, 2000),
                  st.sampled_from([0, 0, 1])),
        st.builds(h.End, st.sampled_from([Status.SUCCESS, Status.INVALID_IMAGE, Status.ABORT,
                                          Status.REQUIRE_MORE_IMAGE, 0x7F]), st.sampled_from([0, 0, 1])),
        st.builds(h.Query, st.sampled_from([manufacturer, 0xFFFF, 0x1234]),
                  st.sampled_from([image_type, 0xFFFF, 0x0001]), st.sampled_from([0, 1, 0xFFFFFFFF]),
                  st.none() | u16),
        st.builds(h.Raw, st.binary(min_size=0, max_size=12)),
        st.builds(h.Pause, st.sampled_from([0.5, 5.0, 40.0])),
    )
    first = st.builds(h.Query, st.just(manufacturer), st.just(image_type), st.integers(0, 0x00FFFFFF),
                      st.just(hardware_version))
    return st.tuples(first, st.lists(steps, max_size=max_steps)).map(lambda t: [t[0], *t[1]])
