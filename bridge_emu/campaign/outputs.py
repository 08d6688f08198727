"""The --out folder: campaign.json, run.json and the plots, and nothing else.

Only the files named in OUR_FILES are ever written, each through a temporary
file in the folder renamed over the old one (a link there is replaced, never
followed out of the folder). A file of those names that an earlier campaign did
not write (no marker listing it) is refused, not overwritten: nothing the user
put in the folder is deleted.
"""
from __future__ import annotations

import json
import os
import pathlib
import tempfile

from bridge_emu.campaign.spec import CampaignError

MARKER = ".bridge-emu-campaign"
PLOTS = ("completion.png", "offline.png", "waves.png")
OUR_FILES = ("campaign.json", "run.json") + PLOTS
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def prepare_out(out: pathlib.Path) -> pathlib.Path:
    try:
        if out.exists() and not out.is_dir():
            raise CampaignError(f"{out}: is a file, not a folder for the campaign's outputs")
        ours = (out / MARKER).is_file() and not (out / MARKER).is_symlink()
        if not ours:
            clash = [n for n in OUR_FILES if os.path.lexists(out / n)]
            if clash:
                raise CampaignError(f"{out / clash[0]}: exists and no earlier campaign wrote it; refusing to "
                                    "overwrite (choose another --out)")
        out.mkdir(parents=True, exist_ok=True)
        if not ours:
            write_bytes(out, MARKER, b"made by bridge-emu campaign; it writes only: " + " ".join(OUR_FILES).encode()
                        + b"\n")
    except OSError as e:
        raise CampaignError(f"{e.filename or out}: cannot prepare the output folder ({e.strerror})") from None
    return out


def write_bytes(out: pathlib.Path, name: str, data: bytes) -> pathlib.Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes 0600; a report is as readable as any file
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out / name)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return out / name


def write_json(out: pathlib.Path, name: str, doc: dict) -> pathlib.Path:
    return write_bytes(out, name, (json.dumps(doc, indent=1, sort_keys=False) + "\n").encode())
