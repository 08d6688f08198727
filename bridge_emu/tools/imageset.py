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
