"""Looking at emulated devices on disk: find their flash files, and report
everything persistent about one, read through the flash model (reading never
changes a device)."""
from __future__ import annotations

import json
import pathlib

from bridge_emu.core.device import Device
from bridge_emu.errors import BridgeEmuError

FLASH_FILE = "flash.bemu"
EVENT_LOG = "events.jsonl"
EVENT_TAIL_BYTES = 1 << 20     # the events shown come from at most the log's last MiB


def find_devices(path: str | pathlib.Path) -> list[pathlib.Path]:
    """A flash file, a device directory (flash.bemu + events.jsonl), or a run
    directory of them: the flash files, in order."""
    p = pathlib.Path(path)
    if p.is_file():
        return [p]
    if (p / FLASH_FILE).is_file():
        return [p / FLASH_FILE]
    found = sorted(p.rglob(FLASH_FILE)) if p.is_dir() else []
    if not found:
        raise BridgeEmuError(f"{p}: no device here (a flash file, or a directory holding {FLASH_FILE})")
    return found


def device_report(dev: Device) -> dict:
    """Everything persistent about a device, read through the flash model."""
    cfg = dev.config
    st = dev.state
    download = _download(dev) if st.state == "downloading" else None
    slots = []
    for i, (addr, size) in enumerate(cfg.layout.slots):
        if download is not None and addr <= download["addr"] < addr + size:
            # a partial download: there is no image to validate yet
            slots.append({"slot": i, "addr": addr, "size": size, "image": None, "valid": False,
                          "error": None, "download": {"bytes": download["bytes"], "of": download["of"]}})
            continue
        info, err = dev.slot_image(i)
        slots.append({
            "slot": i, "addr": addr, "size": size,
            "image": None if info is None else {
                "version": info.version, "security_counter": info.security_counter,
                "total_size": info.total_size, "sha256": info.sha256.hex()},
            "valid": err is None, "error": err,
        })
    return {
        "path": str(dev.flash.path) if dev.flash.path else None,
        "mode": cfg.layout.mode,
        "geometry": cfg.geometry.to_json(),
        "state": {"state": st.state, "seq": st.seq, "permanent": st.permanent, "bank": st.bank,
                  "attempts": st.attempts},
        "security_counter": dev.security_counter,
        "provisioned_keys": dev.n_keys,
        "slots": slots,
        "flash": dev.flash.stats,
        "max_sector_erases": max(dev.flash.erase_counts()),
        "notes": cfg.notes,
    }


def _download(dev: Device) -> dict:
    """Where a download in progress stands: its address, bytes safely in flash, its size."""
    return {"addr": dev.download_addr(), "bytes": dev.resume_offset(), "of": dev.download_size}


def report_file(path: pathlib.Path, last_events: int) -> dict:
    """device_report of the flash file at path, opened read-only (looking at a
    device never changes it), with the last events of the event log beside it
    (a bridge's device directory)."""
    dev = Device.open(path, read_only=True)
    try:
        report = device_report(dev)
    finally:
        dev.close()
    log = path.parent / EVENT_LOG
    if path.name == FLASH_FILE and log.is_file():
        report.update(read_events(log, last_events))
    return report


def read_events(log: pathlib.Path, last: int) -> dict:
    """The last `last` events of an event log, as far as they can be read: a torn
    last line (a kill in mid-append leaves one), bytes that are not UTF-8 or a
    line that is not a JSON object are counted as unreadable, not fatal."""
    try:
        with open(log, "rb") as f:
            size = f.seek(0, 2)
            total = _count_lines(f)
            f.seek(max(0, size - EVENT_TAIL_BYTES))
            tail = f.read()
    except OSError as e:
        raise BridgeEmuError(f"{log}: cannot read the event log ({e.strerror})") from None
    lines = tail.split(b"\n")
    if size > EVENT_TAIL_BYTES:
        lines = lines[1:]          # the first may be cut by the window
    events, unreadable = [], 0
    for raw in lines:
        if not raw.strip():
            continue
        try:
            e = json.loads(raw.decode("utf-8"))
            if not isinstance(e, dict):
                raise ValueError("not an object")
        except ValueError:          # UnicodeDecodeError and JSONDecodeError are ValueErrors
            unreadable += 1
            continue
        events.append(e)
    return {"events": events[-last:] if last else [], "events_total": total, "events_unreadable": unreadable}


def _count_lines(f) -> int:
    f.seek(0)
    n, last = 0, b"\n"
    while chunk := f.read(1 << 16):
        n += chunk.count(b"\n")
        last = chunk[-1:]
    return n + (last != b"\n")
