"""The `bridge-emu` command.

Every failure the project anticipates (a BridgeEmuError) ends as one line on
stderr and exit status 2; a traceback means a bug.
"""
from __future__ import annotations

import argparse
import json
import sys

from bridge_emu.errors import BridgeEmuError


def _cmd_demo(args: argparse.Namespace) -> int:
    from bridge_emu.demo import run_demo

    return run_demo(seed=args.seed, json_out=args.json)


def _cmd_state(args: argparse.Namespace) -> int:
    from bridge_emu.device import Device

    dev = Device.open(args.path)
    try:
        report = state_report(dev)
    finally:
        dev.close()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_state(report)
    return 0


def state_report(dev) -> dict:
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


def _print_state(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    st = r["state"]
    con.print(f"[bold]{r['path'] or 'device'}[/]  mode {r['mode']}  state [bold]{st['state']}[/]"
              f" (seq {st['seq']}, bank {st['bank']}, attempts {st['attempts']})"
              f"  security counter {r['security_counter']}  keys {r['provisioned_keys']}")
    t = Table("slot", "address", "size", "image", "security counter", "sha256", "status")
    for s in r["slots"]:
        img = s["image"] or {}
        t.add_row(str(s["slot"]), f"0x{s['addr']:x}", str(s["size"]), img.get("version", "-"),
                  str(img.get("security_counter", "-")), img.get("sha256", "-")[:16],
                  "valid" if s["valid"] else f"[red]{s['error']}[/]")
    con.print(t)
    f = r["flash"]
    con.print(f"flash: {f['writes']} writes, {f['erases']} erases, {f['busy_us'] / 1e6:.2f} s busy;"
              f" most-erased sector {r['max_sector_erases']} times")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bridge-emu", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="run the demonstration (the main job)")
    d.add_argument("--seed", type=int, default=1)
    d.add_argument("--json", action="store_true", help="print the results as JSON")
    d.set_defaults(func=_cmd_demo)

    s = sub.add_parser("state", help="show a device's slots, versions, counters")
    s.add_argument("path", help="the device's flash file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_state)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BridgeEmuError as e:
        print(f"bridge-emu: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
