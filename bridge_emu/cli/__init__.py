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
    import pathlib

    from bridge_emu.premises.session import run_demo

    return run_demo(run_dir=None if args.no_dir else pathlib.Path(args.dir), images_dir=pathlib.Path(args.images),
                    json_out=args.json, limit_s=args.limit)


def _cmd_run(args: argparse.Namespace) -> int:
    import pathlib

    from bridge_emu.premises.session import prepare_dir, run_premises
    from bridge_emu.premises.runner import builtin_premises, load_premises

    specs = []
    for p in args.premises:
        if not pathlib.Path(p).exists() and p in builtin_premises():
            specs.append(builtin_premises()[p])
        else:
            specs.append(load_premises(p))
    run_dir = None if args.no_dir else prepare_dir(pathlib.Path(args.dir))
    return run_premises(specs, run_dir=run_dir, images_dir=pathlib.Path(args.images), limit_s=args.limit,
                        json_out=args.json)


def _device_paths(path) -> list:
    """A flash file, a device directory (flash.bemu + events.jsonl), or a run
    directory of them: the flash files, in order."""
    import pathlib

    p = pathlib.Path(path)
    if p.is_file():
        return [p]
    if (p / "flash.bemu").is_file():
        return [p / "flash.bemu"]
    found = sorted(p.rglob("flash.bemu")) if p.is_dir() else []
    if not found:
        raise BridgeEmuError(f"{p}: no device here (a flash file, or a directory holding flash.bemu)")
    return found


def _cmd_state(args: argparse.Namespace) -> int:
    from bridge_emu.core.device import Device

    reports = []
    for path in _device_paths(args.path):
        dev = Device.open(path)
        try:
            report = state_report(dev)
        finally:
            dev.close()
        log = path.parent / "events.jsonl"
        if path.name == "flash.bemu" and log.exists():
            lines = log.read_text().splitlines()
            report["events"] = [json.loads(x) for x in lines[-args.events:]] if args.events else []
            report["events_total"] = len(lines)
        reports.append(report)
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    else:
        for r in reports:
            _print_state(r)
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
    if "events" in r:
        con.print(f"event log: {r['events_total']} events" + (f", the last {len(r['events'])}:" if r["events"] else ""))
        for e in r["events"]:
            rest = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("t", "bridge", "event"))
            con.print(f"  {e['t']:10.3f}s  {e['event']:22s} {rest}")
    con.print()


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    from bridge_emu.keys import generate

    for role, files in generate(args.out, args.prefix, force=args.force).items():
        print(f"{role}: {files.private}  {files.public}" + (f"  {files.certificate}" if files.certificate else ""))
    return 0


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (decimal or 0x-hex)") from None


def _cmd_image_build(args: argparse.Namespace) -> int:
    import pathlib

    from bridge_emu.tools.imagetool import BuildSpec, build
    from bridge_emu.keys import load_private_key

    hw = None
    if args.hw_min is not None or args.hw_max is not None:
        if args.hw_min is None or args.hw_max is None:
            raise BridgeEmuError("--hw-min and --hw-max go together")
        hw = (args.hw_min, args.hw_max)
    behaviour = {k: True for k in ("fails_self_test", "crashes_at_boot", "never_rejoins") if getattr(args, k)}
    spec = BuildSpec(args.type, args.version, security_counter=args.security_counter,
                     manufacturer=args.manufacturer, image_type=args.image_type, hw_range=hw,
                     payload_size=args.payload_size, build_id=args.build_id, behaviour=behaviour)
    name, data = build(spec, load_private_key(args.manufacturer_key), load_private_key(args.supplier_key))
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_bytes(data)
    print(out / name)
    return 0


def _image_files(paths: list[str]) -> list:
    import pathlib

    files = []
    for p in map(pathlib.Path, paths):
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*") if q.is_file() and q.suffix in (".zigbee", ".ota", ".bin")))
        else:
            files.append(p)
    return files


def _cmd_image_info(args: argparse.Namespace) -> int:
    from bridge_emu.tools.imagetool import inspect
    from bridge_emu.keys import load_public_key

    supplier = load_public_key(args.supplier_cert or args.supplier_key) if (args.supplier_cert or args.supplier_key) else None
    manufacturer = load_public_key(args.manufacturer_key) if args.manufacturer_key else None
    files = _image_files(args.files)
    reports, status = [], 0
    for f in files:
        try:
            data = f.read_bytes()
        except OSError as e:
            reports.append({"file": str(f), "error": f"cannot read ({e.strerror})"})
            status = 2
            continue
        try:
            reports.append({"file": str(f), **inspect(data, supplier_key=supplier, manufacturer_key=manufacturer)})
        except BridgeEmuError as e:
            reports.append({"file": str(f), "error": str(e)})
            status = 2
    if args.json:
        print(json.dumps(reports[0] if len(args.files) == 1 and len(reports) == 1 and not
                         __import__("pathlib").Path(args.files[0]).is_dir() else reports, indent=2))
    else:
        for r in reports:
            _print_info(r)
    return status


def _print_info(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.rule(r["file"])
    if "error" in r:
        con.print(f"[red]unreadable[/]: {r['error']}")
        return
    h = r["header"]
    t = Table("field", "value", show_header=False, box=None)
    for k, v in h.items():
        if v is None:
            continue
        t.add_row(k, f"0x{v:X} ({v})" if isinstance(v, int) and k not in ("header_length", "total_image_size") else str(v))
    con.print(t)
    con.print(f"file {r['size']} bytes, sha256 {r['sha256']}, body: {r['body_kind']}")
    if "gbcs" in r:
        g = r["gbcs"]
        con.print(f"manufacturer image {g['manufacturer_image_size']} bytes, hash {g['manufacturer_image_hash']},"
                  f" force_replace {g['force_replace']}, {'signed' if g['signed'] else '[yellow]unsigned[/]'}")
        inner = r["inner_image"]
        if inner.get("format") == "mcuboot":
            fw = inner.get("firmware", {})
            flags = [k for k in ("fails_self_test", "crashes_at_boot", "never_rejoins") if fw.get(k)]
            con.print(f"bootable image {inner['version']}, security counter {inner['security_counter']},"
                      f" payload {inner['payload_size']} bytes; firmware {fw.get('bridge_type', '?')}"
                      f" {fw.get('version', '')} {' '.join(flags)}")
        else:
            con.print(f"bootable image: {inner.get('error')}")
    for name, ok in r["signatures"].items():
        con.print(f"{name} signature: " + ("[green]verifies[/]" if ok else "[red]does not verify[/]"))
    for a in r["anomalies"]:
        con.print(f"[yellow]anomaly[/] {a['kind']} at offset {a['offset']}: {a['message']}")


def _cmd_image_verify(args: argparse.Namespace) -> int:
    import pathlib

    from bridge_emu.codec.ota_file import OtaFileError
    from bridge_emu.tools.imagetool import verify
    from bridge_emu.keys import load_public_key

    supplier = load_public_key(args.supplier_cert or args.supplier_key)
    manufacturer = load_public_key(args.manufacturer_key) if args.manufacturer_key else None
    path = pathlib.Path(args.file)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BridgeEmuError(f"{path}: cannot read ({e.strerror})") from None
    try:
        v = verify(data, supplier_key=supplier, manufacturer_key=manufacturer, hw_version=args.hw_version)
    except OtaFileError as e:
        raise BridgeEmuError(f"{path}: unreadable: {e}") from None
    if args.json:
        print(json.dumps({"file": str(path), "valid": v.valid, "reasons": v.reasons, "checks": v.checks}, indent=2))
    else:
        print(f"{path}: {'valid' if v.valid else 'INVALID'}")
        for reason in v.reasons:
            print(f"  - {reason}")
    return 0 if v.valid else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bridge-emu", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    from bridge_emu.premises.runner import DEFAULT_IMAGES

    def run_options(q, default_dir: str) -> None:
        q.add_argument("--dir", default=default_dir, help=f"where the devices' flash files and event logs go "
                       f"(default {default_dir}; emptied if an earlier run made it)")
        q.add_argument("--no-dir", action="store_true", help="keep the devices in memory")
        q.add_argument("--images", default=str(DEFAULT_IMAGES), help="image folder with index.json and keys/")
        q.add_argument("--limit", type=float, default=4 * 3600, help="virtual seconds to run at most")
        q.add_argument("--json", action="store_true", help="print the results as JSON")

    d = sub.add_parser("demo", help="run the demonstration (the main job)")
    run_options(d, "out/demo")
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="run premises (TOML files, or built-in names)")
    r.add_argument("premises", nargs="+", help="premises TOML file(s) or built-in name(s): "
                   "ihd, gsme-mains, gsme-battery, both-close-mains, both-close-battery, "
                   "both-apart-mains, both-apart-battery")
    run_options(r, "out/run")
    r.set_defaults(func=_cmd_run)

    s = sub.add_parser("state", help="show a device's slots, versions, counters and event log")
    s.add_argument("path", help="a flash file, a device directory, or a run directory")
    s.add_argument("--events", type=int, default=20, help="how many of the last events to show (default 20)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_state)

    k = sub.add_parser("keys", help="test key pairs").add_subparsers(dest="keys_command", required=True)
    kg = k.add_parser("generate", help="write TEST-ONLY manufacturer and supplier P-256 key pairs (PEM)")
    kg.add_argument("--out", default=".", help="directory (default: current)")
    kg.add_argument("--prefix", default="TEST-ONLY", help="file name prefix (default: TEST-ONLY)")
    kg.add_argument("--force", action="store_true", help="overwrite existing key files")
    kg.set_defaults(func=_cmd_keys_generate)

    im = sub.add_parser("image", help="firmware files").add_subparsers(dest="image_command", required=True)
    b = im.add_parser("build", help="build a signed GBCS OTA file for a bridge type")
    b.add_argument("--type", required=True, help="bridge type B1..B4 (gives the defaults below)")
    b.add_argument("--version", required=True, help="firmware version major.minor.revision[+build]")
    b.add_argument("--manufacturer-key", required=True, help="PEM private key signing the bootable image")
    b.add_argument("--supplier-key", required=True, help="PEM private key signing the GBCS Upgrade Image")
    b.add_argument("--security-counter", type=_int, default=1)
    b.add_argument("--manufacturer", type=_int, help="manufacturer code (default: the profile's)")
    b.add_argument("--image-type", type=_int, help="image type (default: the profile's)")
    b.add_argument("--hw-min", type=_int, help="minimum hardware version")
    b.add_argument("--hw-max", type=_int, help="maximum hardware version")
    b.add_argument("--payload-size", type=_int, help="emulated firmware payload bytes")
    b.add_argument("--build-id", default="", help="up to 16 ASCII characters")
    for flag in ("fails-self-test", "crashes-at-boot", "never-rejoins"):
        b.add_argument(f"--{flag}", action="store_true", help="behaviour switch of the emulated firmware")
    b.add_argument("-o", "--out", default=".", help="output directory (file named MMMM-TTTT-VVVVVVVV-hash.zigbee)")
    b.set_defaults(func=_cmd_image_build)

    i = im.add_parser("info", help="every header field, body layout, hashes, anomalies")
    i.add_argument("files", nargs="+", help="OTA files or directories of them")
    i.add_argument("--json", action="store_true")
    i.add_argument("--supplier-cert", help="X.509 certificate (PEM/DER) to check the supplier signature")
    i.add_argument("--supplier-key", help="public (or private) key to check the supplier signature")
    i.add_argument("--manufacturer-key", help="key to check the bootable image's signature")
    i.set_defaults(func=_cmd_image_info)

    v = im.add_parser("verify", help="verify as a bridge does: exit 0 valid, 1 invalid, 2 unreadable")
    v.add_argument("file")
    sk = v.add_mutually_exclusive_group(required=True)
    sk.add_argument("--supplier-cert", help="X.509 certificate (PEM/DER) of the supplier")
    sk.add_argument("--supplier-key", help="supplier public (or private) key, PEM/DER")
    v.add_argument("--manufacturer-key", help="also verify the bootable image with this key")
    v.add_argument("--hw-version", type=_int, help="check this hardware version against the file's range")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=_cmd_image_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse: bad arguments are exit status 2
        return int(e.code or 0)
    try:
        return args.func(args)
    except BridgeEmuError as e:
        print(f"bridge-emu: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
