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
    slots = []
    for i, (addr, size) in enumerate(cfg.layout.slots):
        info, err = dev.slot_image(i)
        slots.append({
            "slot": i, "addr": addr, "size": size,
            "image": None if info is None else {
                "version": info.version, "security_counter": info.security_counter,
                "total_size": info.total_size, "sha256": info.sha256.hex()},
            "valid": err is None, "error": err,
        })
    st = dev.state
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


def report_file(path: pathlib.Path, last_events: int) -> dict:
    """device_report of the flash file at path, with the last events of the
    event log beside it (a bridge's device directory)."""
    dev = Device.open(path)
    try:
        report = device_report(dev)
    finally:
        dev.close()
    log = path.parent / EVENT_LOG
    if path.name == FLASH_FILE and log.exists():
        lines = log.read_text().splitlines()
        report["events"] = [json.loads(x) for x in lines[-last_events:]] if last_events else []
        report["events_total"] = len(lines)
    return report
