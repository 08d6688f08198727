"""The committed firmware set in images/: for each bridge type a current, a
next and a faulty image, signed with the test-only keys in images/keys/.
`make images` rebuilds every file byte for byte (deterministic ECDSA).
"""
from __future__ import annotations

import json
import pathlib
import sys

from bridge_emu.emulator.profiles import PROFILES
from bridge_emu.keys import key_paths, load_private_key
from bridge_emu.tools.imagetool import BuildSpec, build

# The faulty image is validly signed and newer than the current one, but its
# firmware misbehaves after the swap, so the bridge must roll back.
FAULT = {"B1": "fails_self_test", "B2": "crashes_at_boot", "B3": "never_rejoins", "B4": "fails_self_test"}


def specs() -> list[tuple[str, BuildSpec]]:
    out = []
    for t in PROFILES:
        out.append(("current", BuildSpec(t, "1.0.0", security_counter=1, build_id=f"{t}-current")))
        out.append(("next", BuildSpec(t, "1.1.0", security_counter=2, build_id=f"{t}-next")))
        out.append(("faulty", BuildSpec(t, "1.1.1", security_counter=2, build_id=f"{t}-faulty",
                                        behaviour={FAULT[t]: True})))
    return out


def rebuild(directory: str | pathlib.Path) -> dict:
    """Write every image under directory/<type>/ and directory/index.json; return the index."""
    directory = pathlib.Path(directory)
    mkey = load_private_key(key_paths(directory / "keys", "manufacturer").private.read_bytes())
    skey = load_private_key(key_paths(directory / "keys", "supplier").private.read_bytes())
    index = {}
    for role, spec in specs():
        name, data = build(spec, mkey, skey)
        target = directory / spec.bridge_type / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        index[f"{spec.bridge_type}/{role}"] = {
            "file": f"{spec.bridge_type}/{name}", "version": spec.version,
            "security_counter": spec.security_counter, "behaviour": spec.behaviour, "bytes": len(data)}
    # images/ holds exactly the set: files of earlier builds go
    wanted = {directory / e["file"] for e in index.values()}
    for stale in directory.glob("B*/*.zigbee"):
        if stale not in wanted:
            stale.unlink()
    (directory / "index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


if __name__ == "__main__":
    rebuild(sys.argv[1] if len(sys.argv) > 1 else "images")


# -- the index of a folder of a user's own OTA files (`bridge-emu image index`)

USER_INDEX = "ota-index.json"
_WRITTEN_BY = "bridge-emu image index"     # the mark that says an index is ours to replace


def _ours(index) -> bool:
    """An index document `image index` wrote (ours to replace, and an image set to offer)."""
    return isinstance(index, dict) and index.get("written_by") == _WRITTEN_BY


def index_folder(folder: str | pathlib.Path, *, force: bool = False) -> tuple[dict, list[tuple[str, str]]]:
    """Write FOLDER/ota-index.json listing every OTA file under the folder (hidden
    files and the index itself left out): (the index, [(file, why it was skipped)]).
    Only the index is written, atomically (a temp file in the folder, renamed over
    it); no user file is touched. An existing index without our mark is refused
    unless force."""
    import hashlib
    import os
    import tempfile

    from bridge_emu.errors import BridgeEmuError
    from bridge_emu.ota.image_store import ImageStore

    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise BridgeEmuError(f"{folder}: not a folder of OTA files")
    target = folder / USER_INDEX
    if target.exists() and not force:
        try:
            ours = _ours(json.loads(target.read_bytes()))
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise BridgeEmuError(f"{target}: exists and was not written by bridge-emu image index; "
                                 "--force replaces it")
    store = ImageStore()
    entries, skipped = [], []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or path == target or any(p.startswith(".") for p in rel.parts):
            continue
        image = store.add_file(path)        # an unreadable file is skipped, with why
        if image is None:
            skipped.append((str(rel), store.skipped[-1][1]))
            continue
        entries.append({"file": rel.as_posix(), "manufacturer": f"{image.manufacturer:#06x}",
                        "image_type": f"{image.image_type:#06x}", "file_version": f"{image.file_version:#010x}",
                        "hw_min": image.min_hardware_version, "hw_max": image.max_hardware_version,
                        "bytes": image.size, "sha256": hashlib.sha256(image.data).hexdigest()})   # as the hub serves it
    index = {"written_by": _WRITTEN_BY, "images": entries}
    fd, tmp = tempfile.mkstemp(prefix=f".{USER_INDEX}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(json.dumps(index, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, target)          # readers see the old index or the new one, never half of one
    except BaseException:
        os.unlink(tmp)
        raise
    return index, skipped


def read_index(folder: str | pathlib.Path) -> list[tuple[pathlib.Path, str]] | None:
    """The image set an indexed folder names: [(file, SHA-256 of the image as the hub
    serves it)] in the index's order, or None when the folder has no index that
    `image index` wrote (then every file in it is offered). A listed file that is
    missing, or a path that leaves the folder, is refused here, before anything runs."""
    from bridge_emu.errors import BridgeEmuError

    folder = pathlib.Path(folder)
    target = folder / USER_INDEX
    if not target.is_file():
        return None
    try:
        index = json.loads(target.read_bytes())
    except (OSError, ValueError) as e:
        raise BridgeEmuError(f"{target}: not a readable index ({e})") from None
    if not _ours(index):
        return None                      # somebody else's file of that name: not our image set
    out = []
    images = index.get("images")
    if not isinstance(images, list):
        raise BridgeEmuError(f"{target}: 'images' is not a list; re-run bridge-emu image index {folder}")
    for i, entry in enumerate(images):
        where = f"{target}: images[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str) \
                or not isinstance(entry.get("sha256"), str):
            raise BridgeEmuError(f"{where} has no file and sha256; re-run bridge-emu image index {folder}")
        rel = pathlib.PurePosixPath(entry["file"])
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise BridgeEmuError(f"{where}: {entry['file']!r} is not a path inside the folder")
        path = folder.joinpath(*rel.parts)
        if not path.is_file():
            raise BridgeEmuError(f"{where}: {path} is listed but missing; re-run bridge-emu image index {folder}")
        out.append((path, entry["sha256"].lower()))
    if not out:
        raise BridgeEmuError(f"{target}: lists no OTA files to offer")
    return out
