"""Premises: a Communications Hub and two or three Alt HAN bridges on a
simulated network, run on virtual time.

A premises is described in TOML (built-in ones in bridge_emu/premises/*.toml
cover every configuration of the seed):

    name = "gsme-mains"
    description = "..."
    seed = 1
    [hub]
    personality = "gbcs-ch"     # or "zigpy", "herdsman"
    activation = "immediate"    # CS06 at once; "future:SECONDS" future-dated; "none" (self-activating route)
    [[bridge]]
    name = "b1"
    type = "B1"
    offer = "next"              # what the hub offers it: "next", "faulty", "none", or a path:
                                # an OTA file, or a folder of them (the newest that fits the bridge)
    [[bridge]]
    name = "b2"
    type = "B2"
    parent = "b1"               # remote bridges hang off B1 over the point-to-point link
    offer = "next"
    link = { latency_ms = 20, jitter_ms = 5, loss = 0.01, throughput_kbps = 100, payload_limit = 82 }
    power_cut = { at_fraction = 0.5 }   # optional: cut power when half the download is in
    authority_key = "keys/ops.pub.pem"  # optional: whose signature its CS06 must carry

A user's own device is a profile: a bridge type's model (its place in the
premises, power, radio role) with the user's identity, flash and keys:

    [profile.acme]
    base = "B4"                         # the type it stands in for
    manufacturer = 0x1234               # what its Query Next Image carries
    image_type = 0x0042
    hw_version = 0x0101
    mode = "copy-swap"                  # or "bank-switch"
    body = "gbcs"                       # or "zigbee": plain ZCL OTA files, the image as tag 0x0000
    geometry = { sector_size = 4096, sectors = 256, write_align = 4 }   # uniform NOR
    model = "ACME-DISPLAY-1"            # its Basic cluster model identifier
    manufacturer_key = "keys/acme-mfr.pub.pem"   # the bootloader's image key
    supplier_key = "keys/acme-supplier.cert.pem" # whose OTA files it accepts
    factory = "fw/acme-1.0.0.zigbee"    # the OTA file the factory programs
    [[bridge]]
    name = "display"
    profile = "acme"                    # type defaults to the profile's base
    parent = "b1"
    offer = "fw/acme-1.1.0.zigbee"

Every profile field but base is optional (the base type's value, the image
set's keys and current image). A profile whose identity differs from its
base takes offers as files or folders: the bundled roles are the base's.

Keys: the hub signs every CS06 with `[hub] signing_key` (a PEM P-256 private
key, or "none" for a hub that signs nothing), and each bridge accepts CS06
signed by its `authority_key` (a public key, private key or certificate);
both default to the image set's supplier key. Relative paths are taken from
the premises file's folder.

The network model: B1 talks to the hub over ZigBee (250 kbit/s, 82-byte
payloads); each remote bridge reaches B1 over the point-to-point link given.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import math
import pathlib
import re
import tomllib
from dataclasses import dataclass, field

from bridge_emu.codec import gbcs
from bridge_emu.core.flash import TEAR, Geometry, Layout, Region
from bridge_emu.emulator.profiles import BridgeProfile, ProfileError, custom_profile, profile
from bridge_emu.errors import BridgeEmuError
from bridge_emu.keys import load_private_key, load_public_key
from bridge_emu.net.sim import LinkSpec
from bridge_emu.ota.server import PRESETS
from bridge_emu.tools.imageset import read_index

OFFERS = ("next", "faulty", "none")

# Names become directory names under the run directory: no separators, no "..".
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
# The largest frame the flow sends is a fragment of a signed CS06 Activate
# Firmware (68 bytes); ZigBee's APS payload (82) is the most the simulated
# network carries.
MIN_PAYLOAD, MAX_PAYLOAD = gbcs.FRAGMENT_DATA + gbcs.FRAGMENT_HEAD, 82

# Every key a document may hold, with its type and allowed range (None: any).
_NUMBER = (int, float)
_TOP = {"name": str, "description": str, "seed": int, "hub": dict, "profile": dict, "bridge": list}
_HUB = {"personality": str, "activation": str, "signing_key": str}
_BRIDGE = {"name": str, "type": str, "profile": str, "parent": str, "offer": str, "link": dict,
           "power_cut": dict, "authority_key": str}
_PROFILE = {"base": str, "manufacturer": (int, 0, 0xFFFE), "image_type": (int, 0, 0xFFFE),
            "hw_version": (int, 0, 0xFFFF), "mode": str, "geometry": dict, "model": str,
            "manufacturer_key": str, "supplier_key": str, "factory": str, "body": str, "layout": dict}
# A uniform NOR part: sizes as datasheets give them; timings default to a W25Q-class part's.
_GEOMETRY = {"sector_size": (int, 256, 1 << 20), "sectors": (int, 4, 1 << 16), "write_align": (int, 1, 256),
             "page_size": (int, 1, 1 << 16), "page_program_us": (int, 0, 1_000_000),
             "erase_us": (int, 0, 10_000_000), "ecc": bool, "regions": list}
# A part of mixed sector sizes (internal flash such as STM32F4's 16/64/128 KiB): runs of equal sectors in order.
_REGION = {"count": (int, 1, 1 << 16), "sector_size": (int, 256, 1 << 24), "erase_us": (int, 0, 10_000_000)}
# Where the state log, the two slots and (copy-swap) the plan area lie: what a mixed part needs spelled out.
_LAYOUT = {"log": list, "slots": list, "plan": list}
_LINK = {"latency_ms": (_NUMBER, 0, 10_000), "jitter_ms": (_NUMBER, 0, 10_000), "loss": (_NUMBER, 0, 0.5),
         "throughput_kbps": (_NUMBER, 1, 100_000), "payload_limit": (int, MIN_PAYLOAD, MAX_PAYLOAD)}
_POWER_CUT = {"at_fraction": (_NUMBER, 0, 1), "tear": (str, None, None), "seed": (int, 0, 2**32 - 1)}
_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", dict: "a table", list: "an array of tables",
               _NUMBER: "a number", bool: "true or false"}


class PremisesError(BridgeEmuError):
    """A premises file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class ProfileSpec:
    """A user's own device ([profile.NAME]): its model, and the files it is made from."""
    profile: BridgeProfile
    manufacturer_key: pathlib.Path | None = None   # None: the image set's
    supplier_key: pathlib.Path | None = None       # None: the image set's
    factory: pathlib.Path | None = None            # None: the image set's current image of the base type

    @property
    def name(self) -> str:
        return self.profile.name


@dataclass(frozen=True)
class BridgeSpec:
    name: str
    type: str                                   # B1..B4: a profile's base
    parent: str | None = None
    offer: str = "next"
    link: dict = field(default_factory=dict)
    power_cut: dict = field(default_factory=dict)
    authority_key: pathlib.Path | None = None   # None: the image set's supplier key
    # offer given as a path: the OTA file, or the files of the folder (an empty tuple for a role)
    offer_files: tuple[pathlib.Path, ...] = ()
    offer_folder: bool = False
    offer_sha256: tuple[str, ...] = ()          # a folder with its ota-index.json: each file's SHA-256 there
    profile: ProfileSpec | None = None          # a user's own device; None: the type's own model

    @property
    def model(self) -> BridgeProfile:
        """What the bridge is: its profile's model, or its type's."""
        return profile(self.type) if self.profile is None else self.profile.profile


@dataclass(frozen=True)
class PremisesSpec:
    name: str
    description: str
    bridges: tuple[BridgeSpec, ...]
    hub: dict = field(default_factory=dict)
    seed: int = 1
    signing_key: pathlib.Path | str | None = None   # None: the image set's supplier key; "none": unsigned
    profiles: dict[str, ProfileSpec] = field(default_factory=dict)


def parse_premises(text: str, where: str = "premises", base: pathlib.Path | None = None) -> PremisesSpec:
    try:
        d = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PremisesError(f"{where}: not valid TOML: {e}") from None
    return parse_document(d, where, base)


def parse_document(d: dict, where: str = "premises", base: pathlib.Path | None = None) -> PremisesSpec:
    """A premises from its TOML document, decoded (tables as dicts). base: the
    folder relative key paths are taken from (the premises file's; None: the
    current folder)."""
    if not isinstance(d, dict):
        raise _type_error(where, dict, d)
    _check_document(d, where)
    hub = d.get("hub", {})
    signing = _signing_key(hub, base, f"{where}.hub.signing_key")
    profiles = {name: parse_profile(name, table, base, f"{where}.profile.{name}")
                for name, table in d.get("profile", {}).items()}
    try:
        bridges = tuple(BridgeSpec(
            name=str(b["name"]), type=_bridge_type(b, profiles, f"{where}.bridge[{i + 1}]"),
            profile=profiles.get(b.get("profile")), parent=b.get("parent"),
            offer=str(b.get("offer", "next")), link=dict(b.get("link", {})),
            power_cut=dict(b.get("power_cut", {})),
            authority_key=None if "authority_key" not in b else _key_file(
                b["authority_key"], base, f"{where}.bridge[{i + 1}].authority_key", load_public_key),
            **_offer_files(str(b.get("offer", "next")), base, f"{where}.bridge[{i + 1}].offer"))
            for i, b in enumerate(d.get("bridge", [])))
        spec = PremisesSpec(str(d["name"]), str(d.get("description", "")), bridges, dict(hub),
                            int(d.get("seed", 1)), signing, profiles)
    except (KeyError, TypeError, ValueError) as e:
        raise PremisesError(f"{where}: missing or bad field: {e}") from None
    names = [b.name for b in bridges]
    if not 2 <= len(bridges) <= 3:
        raise PremisesError(f"{where}: a premises has 2 or 3 bridges, not {len(bridges)}")
    b1s = sum(b.type == "B1" for b in bridges)
    if b1s != 1:
        raise PremisesError(f"{where}: a premises has exactly one B1 (at the hub), not {b1s}")
    if len(set(names)) != len(names):
        raise PremisesError(f"{where}: bridge names repeat: {names}")
    _check_hub(spec.hub, where)
    for i, b in enumerate(bridges):
        try:
            profile(b.type)
        except ProfileError as e:
            raise PremisesError(f"{where}: bridge {b.name}: {e}") from None
        if b.parent is not None and b.parent not in names:
            raise PremisesError(f"{where}: bridge {b.name}: parent {b.parent!r} is not a bridge here")
        if b.parent is not None and b.parent not in names[:i]:
            # the network is built in file order, from the hub outwards (no loops)
            raise PremisesError(f"{where}: bridge {b.name}: parent {b.parent!r} must be listed before it")
        if b.type == "B1" and b.parent is not None:
            raise PremisesError(f"{where}: bridge {b.name}: B1 sits at the hub; it has no parent")
        if b.type != "B1" and b.parent is None:
            raise PremisesError(f"{where}: bridge {b.name}: a {b.type} reaches the hub through a parent bridge")
        _check_bridge_tables(b, f"{where}: bridge {b.name}")
    return spec


def with_hub(spec: PremisesSpec, hub: dict, where: str = "hub") -> PremisesSpec:
    """The premises with [hub] keys replaced (a test's or a scenario's override),
    checked as a document's are; relative key paths from the current folder."""
    _check_table(hub, _HUB, where)
    merged = {**spec.hub, **hub}
    _check_hub(merged, where)
    signing = _signing_key(hub, None, f"{where}.signing_key") if "signing_key" in hub else spec.signing_key
    return dataclasses.replace(spec, hub=merged, signing_key=signing)


def _signing_key(hub: dict, base: pathlib.Path | None, path: str) -> pathlib.Path | str | None:
    """[hub] signing_key: None (the image set's supplier key), "none" (the hub signs nothing), or a key file."""
    signing = hub.get("signing_key")
    if signing is None or signing == "none":
        return signing
    return _key_file(signing, base, path, load_private_key)


def parse_profile(name: str, table: dict, base: pathlib.Path | None = None, path: str = "profile") -> ProfileSpec:
    """[profile.NAME]: the model, made and checked now; its files resolved (from base,
    else the current folder) and read once."""
    if not NAME.fullmatch(name):
        raise PremisesError(f"{path}: {name!r} is not a plain name (letters, digits, _ . -; up to 32)")
    if not isinstance(table, dict):
        raise _type_error(path, dict, table)
    _check_table(table, _PROFILE, path)
    if "base" not in table:
        raise PremisesError(f"{path}.base: missing (the bridge type it stands in for: B1..B4)")
    fields = {k: table[k] for k in ("manufacturer", "image_type", "hw_version", "mode", "model", "body") if k in table}
    if "geometry" in table:
        fields["geometry"] = _geometry(table["geometry"], f"{path}.geometry")
    if "layout" in table:
        fields["layout"] = _layout(table["layout"], f"{path}.layout")
    try:
        model = custom_profile(name, str(table["base"]), **fields)
    except ProfileError as e:
        raise PremisesError(f"{path}: {e}") from None
    factory = None
    if "factory" in table:
        factory = _resolved(table["factory"], base)
        if not factory.is_file():
            raise PremisesError(f"{path}.factory: {factory} is not a file (the OTA file the factory programs)")
    keys = {key: _key_file(table[key], base, f"{path}.{key}", load_public_key)
            for key in ("manufacturer_key", "supplier_key") if key in table}
    return ProfileSpec(model, factory=factory, **keys)


def _geometry(g: dict, path: str) -> Geometry:
    """A uniform part (sector_size, sectors) or one of mixed sectors (regions)."""
    _check_table(g, _GEOMETRY, path)
    common = {"write_align": g.get("write_align", 4), "page_size": g.get("page_size", 256), "ecc": g.get("ecc", False),
              **({"page_program_us": g["page_program_us"]} if "page_program_us" in g else {})}
    if "regions" not in g:
        for key in ("sector_size", "sectors"):
            if key not in g:
                raise PremisesError(f"{path}.{key}: missing (or give regions, for mixed sector sizes)")
        return Geometry.uniform(g["sector_size"], g["sectors"], **common,
                                **({"erase_us": g["erase_us"]} if "erase_us" in g else {}))
    for key in ("sector_size", "sectors", "erase_us"):
        if key in g:
            raise PremisesError(f"{path}.{key}: goes in each of regions when regions are given")
    runs = g["regions"]
    if not 1 <= len(runs) <= 8:
        raise PremisesError(f"{path}.regions: {len(runs)} regions, want 1 to 8")
    regions = []
    for i, r in enumerate(runs):
        where = f"{path}.regions[{i}]"
        if not isinstance(r, dict):
            raise _type_error(where, dict, r)
        _check_table(r, _REGION, where)
        for key in ("count", "sector_size"):
            if key not in r:
                raise PremisesError(f"{where}.{key}: missing")
        regions.append(Region(r["count"], r["sector_size"],
                              r.get("erase_us", Geometry.uniform(r["sector_size"], 1).regions[0].erase_us)))
    return Geometry(tuple(regions), **common)


def _layout(lay: dict, path: str) -> Layout:
    """log = [addr, addr] (its two sectors), slots = [[addr, size], [addr, size]], plan = [addr, size]
    (copy-swap). The mode is the profile's; the C core checks it fits the geometry."""
    _check_table(lay, _LAYOUT, path)
    def pairs(key: str, n: int) -> list:
        v = lay.get(key)
        if v is None:
            raise PremisesError(f"{path}.{key}: missing")
        if len(v) != n:
            raise PremisesError(f"{path}.{key}: {len(v)} entries, want {n}")
        return v

    def address(v, where: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 1 << 32:
            raise PremisesError(f"{where}: {v!r} is not an address or size (a whole number below 2^32)")
        return v

    log = pairs("log", 2)
    slots = pairs("slots", 2)
    for i, slot in enumerate(slots):
        if not (isinstance(slot, list) and len(slot) == 2):
            raise PremisesError(f"{path}.slots[{i}]: want [address, size]")
    plan = lay.get("plan", [0, 0])
    if len(plan) != 2:
        raise PremisesError(f"{path}.plan: want [address, size]")
    return Layout("bank-switch", (address(log[0], f"{path}.log[0]"), address(log[1], f"{path}.log[1]")),
                  tuple((address(a, f"{path}.slots[{i}][0]"), address(n, f"{path}.slots[{i}][1]"))
                        for i, (a, n) in enumerate(slots)),
                  plan=(address(plan[0], f"{path}.plan[0]"), address(plan[1], f"{path}.plan[1]")))


def _bridge_type(b: dict, profiles: dict[str, ProfileSpec], path: str) -> str:
    """A bridge's type: its own, or its profile's base (which a type given beside it must match)."""
    name = b.get("profile")
    if name is None:
        if "type" not in b:
            raise PremisesError(f"{path}.type: missing (B1..B4, or give a profile)")
        return str(b["type"]).upper()
    if name not in profiles:
        listed = ", ".join(sorted(profiles)) or "none are defined"
        raise PremisesError(f"{path}.profile: no [profile.{name}] in this premises ({listed})")
    base = profiles[name].profile.bridge_type
    if "type" in b and str(b["type"]).upper() != base:
        raise PremisesError(f"{path}.type: {b['type']!r}, but profile {name!r} stands in for a {base}")
    own = profiles[name].profile
    if b.get("offer", "next") in ("next", "faulty") and _identity(own) != _identity(profile(base)):
        raise PremisesError(f"{path}.offer: {b.get('offer', 'next')!r} is the bundled {base} image, which profile "
                            f"{name!r} (its own manufacturer and image type) would not take; give an OTA file "
                            "or folder, or \"none\"")
    return base


def _identity(p: BridgeProfile) -> tuple[int, int]:
    return p.manufacturer, p.image_type


def _offer_files(value: str, base: pathlib.Path | None, path: str) -> dict:
    """offer = a role of the image set, or the path of an OTA file or a folder of them
    (relative to the premises file's folder; hidden files are left out). A folder
    with the ota-index.json `image index` wrote offers the files it lists."""
    if value in OFFERS:
        return {}
    found = _resolved(value, base)
    if found.is_file():
        return {"offer_files": (found,)}
    if found.is_dir():
        try:
            indexed = read_index(found)      # an indexed folder offers what its index lists, as indexed
        except BridgeEmuError as e:
            raise PremisesError(f"{path}: {e}") from None
        if indexed is not None:
            return {"offer_files": tuple(f for f, _ in indexed), "offer_folder": True,
                    "offer_sha256": tuple(h for _, h in indexed)}
        files = tuple(sorted(f for f in found.rglob("*") if f.is_file()
                             and not any(part.startswith(".") for part in f.relative_to(found).parts)))
        if not files:
            raise PremisesError(f"{path}: {found} is an empty folder: no OTA files to offer")
        return {"offer_files": files, "offer_folder": True}
    raise PremisesError(f"{path}: {value!r} is neither one of {', '.join(OFFERS)} nor an OTA file or folder "
                        f"({found} does not exist)")


def _key_file(value: str, base: pathlib.Path | None, path: str, loader) -> pathlib.Path:
    """A key file named by the document, resolved and loaded once here so a bad
    one is refused before anything runs."""
    file = _resolved(value, base)
    try:
        loader(file)
    except BridgeEmuError as e:
        raise PremisesError(f"{path}: {e}") from None
    return file


def _resolved(value: str, base: pathlib.Path | None) -> pathlib.Path:
    """A path the document gives, taken from the premises file's folder when relative."""
    found = pathlib.Path(value).expanduser()
    return base / found if base is not None and not found.is_absolute() else found


def _type_error(path: str, want, value) -> PremisesError:
    got = "a boolean" if isinstance(value, bool) else _TYPE_NAMES.get(type(value), type(value).__name__)
    return PremisesError(f"{path}: expected {_TYPE_NAMES[want]}, got {got}")


def _check_table(table: dict, keys: dict, path: str) -> None:
    """Unknown keys and wrong types, named by their path in the document."""
    for key, value in table.items():
        if key not in keys:
            near = difflib.get_close_matches(key, list(keys), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f"; known keys: {', '.join(keys)}"
            raise PremisesError(f"{path}.{key}: unknown key{hint}")
        want = keys[key]
        lo = hi = None
        if isinstance(want, tuple) and len(want) == 3:
            want, lo, hi = want
        if (isinstance(value, bool) and want is not bool) or not isinstance(value, want):
            raise _type_error(f"{path}.{key}", want, value)
        if lo is not None and not (math.isfinite(value) and lo <= value <= hi):
            raise PremisesError(f"{path}.{key}: {value!r} is outside {lo}..{hi}")


def _check_document(d: dict, where: str) -> None:
    _check_table(d, _TOP, where)
    if "name" not in d:
        raise PremisesError(f"{where}.name: missing (the premises' name)")
    if not NAME.fullmatch(d["name"]):
        raise PremisesError(f"{where}.name: {d['name']!r} is not a plain name (letters, digits, _ . -; "
                            "up to 32; it names a directory)")
    if d.get("seed", 0) < 0:
        raise PremisesError(f"{where}.seed: {d['seed']} is negative")
    _check_table(d.get("hub", {}), _HUB, f"{where}.hub")
    for name, table in d.get("profile", {}).items():
        if not isinstance(table, dict):
            raise _type_error(f"{where}.profile.{name}", dict, table)
    for i, b in enumerate(d.get("bridge", [])):
        path = f"{where}.bridge[{i + 1}]"
        if not isinstance(b, dict):
            raise _type_error(path, dict, b)
        _check_table(b, _BRIDGE, path)
        if "name" not in b:
            raise PremisesError(f"{path}.name: missing")
        if not NAME.fullmatch(b["name"]):
            raise PremisesError(f"{path}.name: {b['name']!r} is not a plain name (letters, digits, _ . -; "
                                "up to 32; it names a directory)")
        _check_table(b.get("link", {}), _LINK, f"{path}.link")
        _check_table(b.get("power_cut", {}), _POWER_CUT, f"{path}.power_cut")


def _check_hub(hub: dict, where: str) -> None:
    """What the run reads from [hub], checked here rather than failing mid-run."""
    personality = hub.get("personality", "gbcs-ch")
    if personality not in PRESETS:
        raise PremisesError(f"{where}: hub personality {personality!r} not one of {tuple(PRESETS)}")
    activation = hub.get("activation", "immediate")
    ok = activation in ("immediate", "none")
    if isinstance(activation, str) and activation.startswith("future:"):
        seconds = activation.split(":", 1)[1]
        ok = seconds.isascii() and seconds.isdigit()
    if not ok:
        raise PremisesError(f"{where}: hub activation {activation!r}: want immediate, none or future:SECONDS")


def _check_bridge_tables(b: BridgeSpec, where: str) -> None:
    """What the key table (_check_document) cannot say: the link as the network
    takes it, and the tear a power cut leaves."""
    try:
        link_spec(b.link)
    except (TypeError, ValueError, BridgeEmuError) as e:
        raise PremisesError(f"{where}: link: {e}") from None
    if b.power_cut.get("tear", "bits") not in TEAR:
        raise PremisesError(f"{where}: power_cut: tear {b.power_cut['tear']!r} not one of {tuple(TEAR)}")


def read_text_file(path: pathlib.Path, error: type[BridgeEmuError] = PremisesError) -> str:
    """A settings file's text, or one line naming the file and why not (premises, scenario and campaign files)."""
    try:
        return path.read_text()
    except OSError as e:
        raise error(f"{path}: cannot read ({e.strerror})") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start})") from None


def load_premises(path: str | pathlib.Path) -> PremisesSpec:
    path = pathlib.Path(path)
    return parse_premises(read_text_file(path), str(path), path.parent)


def builtin_premises() -> dict[str, PremisesSpec]:
    out = {}
    for f in sorted(importlib.resources.files("bridge_emu.premises.builtin").iterdir()):
        if f.name.endswith(".toml"):
            spec = parse_premises(f.read_text(), f"built-in {f.name}")
            out[spec.name] = spec
    return out




def resolve(name_or_path: str) -> PremisesSpec:
    """A premises file, or the name of a built-in premises when no such file exists."""
    if not pathlib.Path(name_or_path).exists():
        built = builtin_premises()
        if name_or_path in built:
            return built[name_or_path]
    return load_premises(name_or_path)


def link_spec(d: dict) -> LinkSpec:
    """The point-to-point link of a remote bridge (defaults: a sub-GHz style link)."""
    return LinkSpec(latency_s=d.get("latency_ms", 20) / 1000, jitter_s=d.get("jitter_ms", 5) / 1000,
                    loss=float(d.get("loss", 0.01)), throughput_bps=d.get("throughput_kbps", 100) * 1000,
                    payload_limit=int(d.get("payload_limit", 82)))


