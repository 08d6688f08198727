"""The `bridge-emu` command.

Every failure the project anticipates (a BridgeEmuError) ends as one line on
stderr and exit status 2; a traceback means a bug.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import pathlib
import re
import sys

from bridge_emu.codec.firmware import BEHAVIOUR_BITS
from bridge_emu.errors import BridgeEmuError


def _run_session(specs, args: argparse.Namespace, run_dir) -> int:
    from bridge_emu.cli import present
    from bridge_emu.premises.session import Session

    session = Session.open(specs, images_dir=pathlib.Path(args.images), run_dir=run_dir,
                           seed=getattr(args, "seed", None), resume=args.resume)
    try:
        if args.json:
            session.run(args.limit)
            print(json.dumps({"wall_s": round(session.wall_s, 3), "settled": session.settled,
                              "bridges": session.rows()}, indent=2))
        else:
            con = present.console()
            present.run_with_progress(session, args.limit, con)
            present.print_session(session, args.limit, con)
    finally:
        session.close()
    return 0 if session.settled else 1


def _cmd_demo(args: argparse.Namespace) -> int:
    from bridge_emu.premises.session import demo_premises

    return _run_session(demo_premises(), args, _run_dir(args))


def _run_dir(args: argparse.Namespace):
    from bridge_emu.premises.session import prepare_dir, resume_dir

    if args.resume:
        if args.no_dir:
            raise BridgeEmuError("--resume goes on from the flash files in --dir; it cannot go with --no-dir")
        return resume_dir(pathlib.Path(args.dir))
    return None if args.no_dir else prepare_dir(pathlib.Path(args.dir))


def _cmd_run(args: argparse.Namespace) -> int:
    from bridge_emu.premises.scenario import maybe_scenario
    from bridge_emu.premises.schema import resolve

    scenarios = [maybe_scenario(p) for p in args.premises]
    if any(scenarios):
        if not all(scenarios):
            raise BridgeEmuError("give scenario files or premises, not both in one run")
        if args.seeds is not None or args.resume:
            raise BridgeEmuError("a scenario runs once from the start: no --seeds or --resume")
        return _run_scenarios(scenarios, args)
    specs = [resolve(p) for p in args.premises]
    if args.seeds is not None:
        if args.resume:
            raise BridgeEmuError("--seeds runs in memory; it cannot go with --resume")
        return _sweep(specs, args)
    return _run_session(specs, args, _run_dir(args))


def _run_scenarios(scenarios, args: argparse.Namespace) -> int:
    from bridge_emu.premises.images import ImageSet

    images = ImageSet(pathlib.Path(args.images))
    run_dir = _run_dir(args)
    results = []
    for sc in scenarios:
        if args.seed is not None:
            sc.seed = args.seed
        results.append(sc.run(images, run_dir))
    return _scenario_verdict(results, args)


def _sweep(specs, args: argparse.Namespace) -> int:
    from bridge_emu.cli import present
    from bridge_emu.premises.session import sweep_seeds

    if args.seed is not None:
        raise BridgeEmuError("--seed and --seeds: give one of them")
    con = None if args.json else present.console()
    result = sweep_seeds(specs, images_dir=pathlib.Path(args.images), seeds=args.seeds, limit_s=args.limit,
                         on_seed=None if con is None else lambda seed, s: present.print_seed(con, seed, s))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        present.print_sweep(con, result)
    return 0 if result["settled"] else 1


def _cmd_campaign(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bridge_emu.campaign import load_campaign, run_to
    from bridge_emu.campaign.present import CampaignProgress, print_summary

    spec = load_campaign(args.campaign)
    con = Console(stderr=args.json)
    with CampaignProgress(con) as progress:
        doc, facts, written = run_to(spec, pathlib.Path(args.out), engine_name=args.engine, workers=args.workers,
                                     address=args.ray_address, seed=args.seed, progress=progress)
    if args.json:
        print(json.dumps({"campaign": doc, "run": facts}, indent=1))
    else:
        print_summary(con, doc, facts, written)
    return 0


def _cmd_dongle(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from bridge_emu.dongle.rig import serve
    from bridge_emu.premises.images import ImageSet

    spec, scenario = _premises_or_scenario(args.premises)
    images = ImageSet(pathlib.Path(args.images))
    run_dir = _run_dir(args)

    if args.role == "router":
        if not args.bridge:
            raise BridgeEmuError("--role router needs --bridge NAME: the bridge whose place the dongle takes")
    elif args.bridge:
        raise BridgeEmuError("--bridge goes with --role router")

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        if args.role == "router":
            from bridge_emu.dongle.router_rig import serve_router
            return await serve_router(
                spec, images, args.bridge, listen=args.listen, pty=args.pty, run_dir=run_dir,
                resume=args.resume, allow_remote=args.allow_remote, speed=args.speed, protocol=args.protocol,
                **({} if args.ezsp_version is None else {"ezsp_version": args.ezsp_version}),
                announce=lambda line: print(line, flush=True),
                warn=lambda line: print(f"bridge-emu: warning: {line}", file=sys.stderr, flush=True),
                stop=stop, scenario=scenario)
        return await serve(spec, images, args.protocol, listen=args.listen, pty=args.pty, run_dir=run_dir,
                           resume=args.resume, allow_remote=args.allow_remote, speed=args.speed,
                           **({} if args.ezsp_version is None else {"ezsp_version": args.ezsp_version}),
                           announce=lambda line: print(line, flush=True),
                           warn=lambda line: print(f"bridge-emu: warning: {line}", file=sys.stderr, flush=True),
                           stop=stop, scenario=scenario)

    return _scenario_verdict(asyncio.run(main()), args)


def _premises_or_scenario(name: str):
    """(spec, scenario): a scenario file's premises and the scenario, or a premises and None."""
    from bridge_emu.premises.scenario import maybe_scenario
    from bridge_emu.premises.schema import resolve

    scenario = maybe_scenario(name)
    return (resolve(name), None) if scenario is None else (scenario.spec, scenario)


def _scenario_verdict(results, args: argparse.Namespace) -> int:
    """Scenario results (a list, one, or None: no scenario) shown as a table each, or as
    one JSON list with --json; the exit status a CI job reads: 1 if an expectation was
    not met, else 0."""
    if results is None:
        return 0
    if not isinstance(results, list):
        results = [results]
    if args.json:
        print(json.dumps([{"scenario": r.scenario.name, "ok": r.ok, "failures": r.failures, "applied": r.applied,
                           "bridges": r.rows} for r in results], indent=2))
    else:
        from bridge_emu.cli import present
        con = present.console()
        for r in results:
            present.print_scenario(con, r)
    for r in results:
        for line in r.failures:
            print(f"bridge-emu: expectation not met: {line}", file=sys.stderr)
    return 0 if all(r.ok for r in results) else 1


def _cmd_attach(args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from bridge_emu.dongle.attach import attach
    from bridge_emu.premises.images import ImageSet

    spec, scenario = _premises_or_scenario(args.premises)
    if args.probe:
        from bridge_emu.dongle.probe import probe_ezsp, probe_znp
        bridge = next((b for b in spec.bridges if b.name == args.bridge), None)
        if bridge is None:
            raise BridgeEmuError(f"premises {spec.name}: no bridge {args.bridge!r}")
        report = (probe_znp if args.protocol == "znp" else probe_ezsp)(args.port, baudrate=args.baudrate)
        for line in report.lines():
            print(line)
        role = "end device" if bridge.model.sleepy else "router"
        if not report.can(role):
            raise BridgeEmuError(f"{args.port}: this stick cannot join as {role}, which {args.bridge} "
                                 f"({bridge.type}) needs")
        print(f"{args.bridge} ({bridge.type}) can be attached through it, as a {role}")
        return 0
    images = ImageSet(pathlib.Path(args.images))
    run_dir = _run_dir(args)

    async def main():
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        attachment = await attach(
            spec, images, args.bridge, args.port, args.protocol, run_dir, args.resume,
            announce=lambda line: print(line, flush=True),
            warn=lambda line: print(f"bridge-emu: warning: {line}", file=sys.stderr, flush=True), stop=stop,
            scenario=scenario, baudrate=args.baudrate, flow_control=args.flow_control)
        return attachment.result

    return _scenario_verdict(asyncio.run(main()), args)


def _cmd_state(args: argparse.Namespace) -> int:
    from bridge_emu.cli.present import print_state
    from bridge_emu.tools.devices import find_devices, report_file

    reports, complaints = [], []
    for path in find_devices(args.path):
        try:
            reports.append(report_file(path, args.events))
        except BridgeEmuError as e:
            complaints.append(str(e))
    if args.json:
        print(json.dumps(reports, indent=2))    # always a list: one shape for one device or many
    else:
        for r in reports:
            print_state(r)
    for c in complaints:
        print(f"bridge-emu: error: {c}", file=sys.stderr)
    return 2 if complaints else 0


def _cmd_keys_generate(args: argparse.Namespace) -> int:
    from bridge_emu.keys import generate

    for role, files in generate(args.out, args.prefix, force=args.force).items():
        print(f"{role}: {files.private}  {files.public}" + (f"  {files.certificate}" if files.certificate else ""))
    return 0


def _cmd_keys_export(args: argparse.Namespace) -> int:
    from bridge_emu.keys import load_public_key
    from bridge_emu.tools import keyexport

    if (args.key is None) == (args.key_option is None):
        raise BridgeEmuError(f"keys {args.keys_command}: name the key once, as KEY or -k KEY")
    if not re.fullmatch(r"[A-Za-z0-9_]*", args.name_suffix):
        raise BridgeEmuError(f"--name-suffix {args.name_suffix!r}: letters, digits and _ only (it ends a C name)")
    key = load_public_key(args.key or args.key_option)
    export = keyexport.public_key if args.keys_command == "getpub" else keyexport.public_key_hash
    data = export(key, args.encoding, args.name_suffix)
    if args.output is None:
        if args.encoding == "raw":
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(data.decode())
        return 0
    out = pathlib.Path(args.output)
    if out.is_dir():
        raise BridgeEmuError(f"{out}: a folder; -o names the file to write")
    _write_atomically(out, data)
    return 0


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r} (decimal or 0x-hex)") from None


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error on one line like every other refusal."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seed(text: str) -> int:
    n = _int(text)
    if not 0 <= n < 1 << 32:
        raise argparse.ArgumentTypeError(f"a seed is 0..{(1 << 32) - 1}, not {text!r}")
    return n


def _seeds(text: str) -> list[int]:
    """"1-50" (inclusive) or "3,7,12": the seeds of a sweep."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, sep, hi = part.strip().partition("-")
        first = _seed(lo)
        last = _seed(hi) if sep else first
        if last < first or last - first >= 10_000:
            raise argparse.ArgumentTypeError(f"{part.strip()!r}: want A-B with A <= B, at most 10000 seeds")
        seeds.extend(range(first, last + 1))
    if len(seeds) > 10_000:
        raise argparse.ArgumentTypeError("at most 10000 seeds in one sweep")
    return seeds


def _speed(text: str) -> float:
    from bridge_emu.dongle.rig import MAX_SPEED, MIN_SPEED
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"a speed is {MIN_SPEED:g} to {MAX_SPEED:g} times the wall clock, "
                                         f"not {text!r}")
    return value


def _positive_int(text: str) -> int:
    n = _int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text!r}")
    return n


BAUDRATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)


def _baudrate(text: str) -> int:
    n = _int(text) if text.strip().isdigit() else 0
    if n not in BAUDRATES:
        raise argparse.ArgumentTypeError(f"{text!r}: want one of {', '.join(map(str, BAUDRATES))}")
    return n


def _limit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: want a finite number of virtual seconds above 0")
    return value


def _version() -> str:
    try:
        return importlib.metadata.version("bridge-emu")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _key(args: argparse.Namespace, *options: str, private: bool = False):
    """The key the first given of `options` names (None if none is given); a
    refusal names the option as well as the file."""
    from bridge_emu.keys import KeyFileError, load_private_key, load_public_key

    for option in options:
        value = getattr(args, option)
        if value:
            try:
                return (load_private_key if private else load_public_key)(value)
            except KeyFileError as e:
                raise BridgeEmuError(f"--{option.replace('_', '-')}: {e}") from None
    return None


def _cmd_image_build(args: argparse.Namespace) -> int:
    from bridge_emu.tools.imagetool import BuildSpec, build

    hw = None
    if args.hw_min is not None or args.hw_max is not None:
        if args.hw_min is None or args.hw_max is None:
            raise BridgeEmuError("--hw-min and --hw-max go together")
        hw = (args.hw_min, args.hw_max)
    behaviour = {k: True for k in BEHAVIOUR_BITS if getattr(args, k)}
    spec = BuildSpec(args.type, args.version, security_counter=args.security_counter,
                     manufacturer=args.manufacturer, image_type=args.image_type, hw_range=hw,
                     payload_size=args.payload_size, build_id=args.build_id, behaviour=behaviour)
    name, data = build(spec, _key(args, "manufacturer_key", private=True), _key(args, "supplier_key", private=True))
    out = pathlib.Path(args.out)
    target = out / name
    try:
        out.mkdir(parents=True, exist_ok=True)
        if target.exists() and target.read_bytes() != data:
            # the GBCS name carries the manufacturer image hash only: another header
            # (hardware range, image type) gives the same name, and must not replace it
            raise BridgeEmuError(f"{target}: exists and holds another build of the same manufacturer image; "
                                 "remove it or choose another -o")
        target.write_bytes(data)
    except OSError as e:
        raise BridgeEmuError(f"{e.filename or target}: cannot write the image ({e.strerror})") from None
    print(target)
    return 0


def _cmd_image_sign(args: argparse.Namespace) -> int:
    from bridge_emu.tools.imagetool import MAX_FILE_SIZE, SignSpec, read_file, sign_firmware

    if (args.hw_min is None) != (args.hw_max is None):
        raise BridgeEmuError("--hw-min and --hw-max go together")
    ota_options = [o for o in ("supplier_key", "manufacturer", "image_type", "hw_min", "header_string")
                   if getattr(args, o) is not None]
    if ota_options and not args.ota:
        raise BridgeEmuError(f"--{ota_options[0].replace('_', '-')} is for the OTA file: add --ota")
    if args.body != "gbcs" and not args.ota:
        raise BridgeEmuError("--body is for the OTA file: add --ota")
    if args.ota and args.body == "gbcs" and not args.supplier_key:
        raise BridgeEmuError("--ota needs --supplier-key (the key that signs the GBCS Upgrade Image)")
    if args.body == "zigbee" and args.supplier_key:
        raise BridgeEmuError("--supplier-key: a plain ZigBee OTA file (--body zigbee) carries no supplier signature")
    spec = SignSpec(args.version, args.security_counter, args.header_size, args.pad_header, args.slot_size,
                    args.pad_sig, args.ota, args.manufacturer, args.image_type,
                    (0x0000, 0xFFFF) if args.hw_min is None else (args.hw_min, args.hw_max),
                    args.header_string or "", args.body)
    out = pathlib.Path(args.output)
    if out.is_dir():
        raise BridgeEmuError(f"{out}: a folder; -o names the file to write")
    if args.file != "-" and out.exists() and out.resolve() == pathlib.Path(args.file).resolve():
        raise BridgeEmuError(f"{out}: is the input file; write the signed image somewhere else")
    binary = read_file(args.file, MAX_FILE_SIZE)
    name, data = sign_firmware(binary, spec, _key(args, "key", private=True),
                               _key(args, "supplier_key", private=True))
    _write_atomically(out, data)
    print(f"{out}: {'OTA file' if args.ota else 'MCUboot image'}, {len(data)} bytes"
          + (f" (GBCS name {name})" if name else ""))
    return 0


def _image_version(text: str) -> str:
    from bridge_emu.codec.mcuboot import ImageVersion
    try:
        return str(ImageVersion.parse(text))
    except (ValueError, BridgeEmuError) as e:
        raise argparse.ArgumentTypeError(f"{text!r}: want major.minor.revision[+build] ({e})") from None


def _cmd_image_info(args: argparse.Namespace) -> int:
    from bridge_emu.cli.present import print_info
    from bridge_emu.tools.imagetool import MAX_FILE_SIZE, image_files, inspect, read_file

    supplier = _key(args, "supplier_cert", "supplier_key")
    manufacturer = _key(args, "manufacturer_key")
    files, complaints = image_files(args.files)
    reports = []
    for name in files:
        try:
            data = read_file(name, MAX_FILE_SIZE if args.max_size is None else args.max_size)
            reports.append({"file": name, **inspect(data, supplier_key=supplier, manufacturer_key=manufacturer)})
        except BridgeEmuError as e:
            message = str(e)
            complaints.append(message if message.startswith(name) else f"{name}: {message}")
            reports.append({"file": name, "error": message})
    if args.json:
        print(json.dumps(reports, indent=2))    # always a list: one shape for one file or many
    else:
        for r in reports:
            if "error" not in r:
                print_info(r)
    for c in complaints:
        print(f"bridge-emu: error: {c}", file=sys.stderr)
    return 2 if complaints else 0


def _cmd_image_index(args: argparse.Namespace) -> int:
    from bridge_emu.tools.imageset import index_folder
    index, skipped = index_folder(args.folder, force=args.force)
    for name, why in skipped:
        print(f"bridge-emu: skipped {pathlib.Path(args.folder) / name}: {why}", file=sys.stderr)
    print(f"{pathlib.Path(args.folder) / 'ota-index.json'}: {len(index['images'])} OTA files indexed, "
          f"{len(skipped)} skipped")
    return 0


def _cmd_image_extract(args: argparse.Namespace) -> int:
    from bridge_emu.tools.imagetool import MAX_FILE_SIZE, extract, read_file

    out = pathlib.Path(args.output)
    if out.is_dir():
        raise BridgeEmuError(f"{out}: a folder; -o names the file to write")
    if args.file != "-" and out.exists() and out.resolve() == pathlib.Path(args.file).resolve():
        raise BridgeEmuError(f"{out}: is the input file; write the part somewhere else")
    data = read_file(args.file, MAX_FILE_SIZE)
    try:
        part = extract(data, args.part)
    except BridgeEmuError as e:
        raise BridgeEmuError(f"{args.file}: {e}") from None
    _write_atomically(out, part)
    print(f"{out}: {args.part}, {len(part)} bytes")
    return 0


def _write_atomically(out: pathlib.Path, data: bytes) -> None:
    """Write a file whole or not at all: a half-written part never stands in its place."""
    tmp = out.with_name(out.name + ".tmp")
    try:
        tmp.write_bytes(data)
        tmp.replace(out)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BridgeEmuError(f"{out}: cannot write ({e.strerror or e})") from None


def _cmd_image_verify(args: argparse.Namespace) -> int:
    from bridge_emu.codec.ota_file import OtaFileError
    from bridge_emu.tools.imagetool import MAX_FILE_SIZE, read_file, verify

    supplier = _key(args, "supplier_cert", "supplier_key")
    manufacturer = _key(args, "manufacturer_key")
    path = args.file
    data = read_file(path, MAX_FILE_SIZE)
    try:
        v = verify(data, supplier_key=supplier, manufacturer_key=manufacturer, hw_version=args.hw_version)
    except OtaFileError as e:
        raise BridgeEmuError(f"{path}: unreadable: {e}") from None
    except BridgeEmuError as e:
        raise BridgeEmuError(f"{path}: {e}") from None
    if args.json:
        print(json.dumps({"file": str(path), "valid": v.valid, "reasons": v.reasons, "checks": v.checks}, indent=2))
    else:
        print(f"{path}: {'valid' if v.valid else 'INVALID'}")
        for reason in v.reasons:
            print(f"  - {reason}")
    return 0 if v.valid else 1


def build_parser() -> argparse.ArgumentParser:
    from bridge_emu.net.serial_link import FLOW_CONTROL
    p = _Parser(prog="bridge-emu", description=(
        "Emulates the GB smart-metering Alt HAN bridges (B1-B4) taking firmware over the air: a ZigBee OTA "
        "Upgrade client over a C boot core with two flash banks, swap, confirm and rollback, on a simulated "
        "premises network. Start with `bridge-emu demo`."))
    p.add_argument("--version", action="version", version=f"bridge-emu {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    from bridge_emu.premises.images import DEFAULT_IMAGES
    from bridge_emu.premises.session import DEFAULT_LIMIT_S

    def run_options(q, default_dir: str) -> None:
        q.add_argument("--dir", default=default_dir, help=f"where the devices' flash files and event logs go "
                       f"(default {default_dir}; an earlier run's device files there are replaced, nothing else)")
        q.add_argument("--no-dir", action="store_true", help="keep the devices in memory")
        q.add_argument("--resume", action="store_true", help="go on from the flash files a killed run left in "
                       "--dir (what a power cut of the whole rig is): each bridge powers on from its flash")
        q.add_argument("--images", default=str(DEFAULT_IMAGES), help="image folder with index.json and keys/")
        q.add_argument("--limit", type=_limit, default=DEFAULT_LIMIT_S, help="virtual seconds to run at most")
        q.add_argument("--json", action="store_true", help="print the results as JSON")

    d = sub.add_parser("demo", help="run the demonstration (the main job)")
    run_options(d, "out/demo")
    d.set_defaults(func=_cmd_demo)

    r = sub.add_parser("run", help="run premises (TOML files, or built-in names)")
    r.add_argument("premises", nargs="+", help="premises TOML file(s) or built-in name(s): "
                   "ihd, gsme-mains, gsme-battery, both-close-mains, both-close-battery, "
                   "both-apart-mains, both-apart-battery")
    run_options(r, "out/run")
    r.add_argument("--seed", type=_seed, help="the network's seed (loss, jitter, timing draws) for every premises, "
                   "instead of each premises' own")
    r.add_argument("--seeds", type=_seeds, help="sweep seeds, e.g. 1-50 or 3,7,12: run once per seed in memory and "
                   "summarise each bridge's outcomes (exit 1 if any run did not settle)")
    r.set_defaults(func=_cmd_run)

    c = sub.add_parser("campaign", help="a firmware rollout over many homes: full fidelity for a sample, a "
                       "calibrated fast model for the rest")
    c.add_argument("campaign", help="campaign TOML file (see examples/campaigns/)")
    c.add_argument("--engine", choices=("local", "processes", "ray"), default="local",
                   help="where the homes run: this process, a pool of processes, or Ray (bridge-emu[ray])")
    c.add_argument("--workers", type=_positive_int, help="processes, or the CPUs of a local Ray (default: all)")
    c.add_argument("--ray-address", help="an existing Ray cluster to connect to (default: start a local one)")
    c.add_argument("--out", default="out/campaign", help="where campaign.json, run.json and the plots go "
                   "(default out/campaign; nothing else there is touched)")
    c.add_argument("--seed", type=_seed, help="the campaign seed, instead of the file's")
    c.add_argument("--json", action="store_true", help="print the document as JSON (progress goes to stderr)")
    c.set_defaults(func=_cmd_campaign)

    g = sub.add_parser("dongle", help="serve a virtual coordinator dongle: a host ZigBee stack meets a premises")
    g.add_argument("premises", help="a premises TOML file or built-in name, or a scenario file: its events are "
                   "applied as they come (on the premises' virtual time) and the dongle stops once it is over, "
                   "exit status 1 if an expectation was not met")
    g.add_argument("--protocol", choices=("znp", "ezsp"), required=True,
                   help="znp: TI Z-Stack MT (zigpy-znp); ezsp: Silicon Labs EZSP over ASH (bellows)")
    where = g.add_mutually_exclusive_group()
    where.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT of the socket:// it serves "
                       "(default 127.0.0.1, any free port)")
    where.add_argument("--pty", action="store_true", help="serve a pseudo-terminal instead")
    g.add_argument("--allow-remote", action="store_true",
                   help="allow --listen on a non-loopback address (whoever connects controls the devices)")
    g.add_argument("--dir", default="out/dongle", help="where the bridges' flash files, event logs and the "
                   "dongle's NV are kept")
    g.add_argument("--no-dir", action="store_true", help="keep everything in memory")
    g.add_argument("--resume", action="store_true", help="go on from the flash files and NV in --dir")
    g.add_argument("--images", default=str(DEFAULT_IMAGES), help="image folder with index.json and keys/")
    g.add_argument("--speed", type=_speed, default=1.0, help="run the premises (radio, bridges, flash) this many "
                   "times faster than the wall clock, 0.1 to 100 (default 1: real time); the host's timers are "
                   "its own")
    g.add_argument("--ezsp-version", type=_int, help="with --protocol ezsp: the EZSP protocol version the NCP "
                   "speaks, 8 to 19 (default 13, EmberZNet 7.4); the host negotiates it at connect")
    g.add_argument("--role", choices=("coordinator", "router"), default="coordinator",
                   help="coordinator (default): a host stack's coordinator stick in front of the premises; router: "
                   "a stick in the place of --bridge NAME that a host (bridge-emu attach) joins to the premises' "
                   "network as a router or end device")
    g.add_argument("--bridge", help="with --role router: the bridge whose place the dongle takes")
    g.add_argument("--json", action="store_true", help="with a scenario: its result as JSON, as run --json prints it")
    g.set_defaults(func=_cmd_dongle)

    a = sub.add_parser("attach", help="run one bridge of a premises through a serial ZigBee dongle that joins a "
                       "network as a router (a sleepy bridge: as an end device)")
    a.add_argument("premises", help="a premises TOML file or built-in name (the bridge's type, keys, name), or a "
                   "scenario file: its events for the bridge are applied as they come (at_s: wall-clock seconds) "
                   "and attach stops once it is over, exit status 1 if an expectation was not met")
    a.add_argument("--bridge", required=True, help="the bridge of the premises to run")
    a.add_argument("--port", required=True, help="the dongle: a pyserial URL (/dev/ttyUSB0, socket://HOST:PORT, "
                   "rfc2217://HOST:PORT)")
    a.add_argument("--protocol", choices=("znp", "ezsp"), required=True, help="znp: a TI Z-Stack 3.x stick (MT over "
                   "UART); ezsp: a Silicon Labs EmberZNet NCP stick (EZSP v8-v19 over ASH)")
    a.add_argument("--baudrate", type=_baudrate, default=115200, help="the serial port's speed (default 115200, "
                   "what Z-Stack and EmberZNet NCP UART images use)")
    a.add_argument("--flow-control", choices=FLOW_CONTROL, default="none", help="none (default); hardware: "
                   "RTS/CTS, for EmberZNet NCP images built for it; software: XON/XOFF")
    a.add_argument("--dir", default="out/attach", help="where the bridge's flash file and event log are kept")
    a.add_argument("--no-dir", action="store_true", help="keep the bridge in memory")
    a.add_argument("--resume", action="store_true", help="go on from the flash file in --dir")
    a.add_argument("--images", default=str(DEFAULT_IMAGES), help="image folder with index.json and keys/")
    a.add_argument("--probe", action="store_true", help="only ask the stick what it is and which roles it can "
                   "take (reads; writes nothing to it), then exit: 0 if the bridge can be attached through it")
    a.add_argument("--json", action="store_true", help="with a scenario: its result as JSON, as run --json prints it")
    a.set_defaults(func=_cmd_attach)

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
    from bridge_emu.tools.keyexport import HASH_ENCODINGS, PUB_ENCODINGS
    for name, encodings, text in (
            ("getpub", PUB_ENCODINGS, "the public key of a key file, as imgtool getpub writes it (C array by default)"),
            ("hash", HASH_ENCODINGS, "SHA-256 of the public key (the KEYHASH TLV), as imgtool getpubhash writes it")):
        kx = k.add_parser(name, help=text)
        kx.add_argument("key", nargs="?", help="PEM private key, public key or certificate (P-256)")
        kx.add_argument("-k", "--key", dest="key_option", metavar="KEY", help="the same, imgtool's way")
        kx.add_argument("-e", "--encoding", choices=encodings, default="lang-c")
        kx.add_argument("-o", "--output", help="write this file instead of standard output")
        kx.add_argument("--name-suffix", default="", help="append to the C/Rust symbol names (e.g. _2)")
        kx.set_defaults(func=_cmd_keys_export)

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
    b.add_argument("--payload-size", type=_positive_int, help="emulated firmware payload bytes")
    b.add_argument("--build-id", default="", help="up to 16 ASCII characters")
    for switch in BEHAVIOUR_BITS:
        b.add_argument(f"--{switch.replace('_', '-')}", action="store_true",
                       help="behaviour switch of the emulated firmware")
    b.add_argument("-o", "--out", default=".", help="output directory (file named MMMM-TTTT-VVVVVVVV-hash.zigbee)")
    b.set_defaults(func=_cmd_image_build)

    i = im.add_parser("info", help="every header field, body layout, hashes, anomalies")
    i.add_argument("files", nargs="+", help="OTA files or directories of them; - reads one from stdin")
    i.add_argument("--json", action="store_true")
    i.add_argument("--supplier-cert", help="X.509 certificate (PEM/DER) to check the supplier signature")
    i.add_argument("--supplier-key", help="public (or private) key to check the supplier signature")
    i.add_argument("--manufacturer-key", help="key to check the bootable image's signature")
    i.add_argument("--max-size", type=_positive_int, default=None,
                   help="read at most this many bytes of a file (default 64 MiB); longer ones are skipped")
    i.set_defaults(func=_cmd_image_info)

    sg = im.add_parser("sign", help="sign a raw firmware binary as an MCUboot image (as imgtool sign does), "
                       "and with --ota wrap it in a GBCS OTA file signed by the supplier")
    sg.add_argument("file", help="the firmware binary; - reads it from stdin")
    sg.add_argument("-o", "--output", required=True, help="the file to write")
    sg.add_argument("-k", "--key", required=True, help="the manufacturer's PEM private key (P-256) signing the image")
    sg.add_argument("-v", "--version", type=_image_version, required=True, help="major.minor.revision[+build]")
    sg.add_argument("-s", "--security-counter", type=_int, help="the SEC_CNT TLV (anti-rollback; none if not given)")
    sg.add_argument("-H", "--header-size", type=_int, default=0x200, help="MCUboot header size (default 0x200)")
    sg.add_argument("--pad-header", action="store_true", help="add the header's room in front of the binary "
                    "(without it the binary must start with header-size zero bytes, as imgtool wants)")
    sg.add_argument("-S", "--slot-size", type=_int, help="refuse an image larger than this slot")
    sg.add_argument("--pad-sig", action="store_true", help="pad the signature to 72 bytes (fixed image size)")
    sg.add_argument("--ota", action="store_true", help="write a GBCS OTA file of the image instead")
    sg.add_argument("--supplier-key", help="with --ota: the supplier's PEM private key signing the Upgrade Image")
    sg.add_argument("--manufacturer", type=_int, help="with --ota: the manufacturer code")
    sg.add_argument("--image-type", type=_int, help="with --ota: the image type")
    sg.add_argument("--hw-min", type=_int, help="with --ota: minimum hardware version (default 0x0000)")
    sg.add_argument("--hw-max", type=_int, help="with --ota: maximum hardware version (default 0xFFFF)")
    sg.add_argument("--header-string", help="with --ota: the OTA header string (32 bytes at most)")
    sg.add_argument("--body", choices=("gbcs", "zigbee"), default="gbcs",
                    help="with --ota: gbcs (default; signed by --supplier-key) or zigbee, a plain ZigBee OTA file "
                    "(the image as tag 0x0000, then its AES-MMO integrity code, tag 0x0003)")
    sg.set_defaults(func=_cmd_image_sign)

    x = im.add_parser("extract", help="write one part of a firmware file: the bootable MCUboot image, the "
                      "manufacturer image, or the OTA file without a vendor wrapper")
    x.add_argument("file", help="an OTA file or a bare MCUboot image; - reads it from stdin")
    x.add_argument("-o", "--output", required=True, help="the file to write")
    from bridge_emu.tools.imagetool import PARTS
    x.add_argument("--part", choices=PARTS, default="bootable",
                   help="bootable (default): the MCUboot image; manufacturer-image: the GBCS Manufacturer Image "
                   "or the Upgrade Image sub-element; ota: the OTA file, wrapper and trailing bytes dropped")
    x.set_defaults(func=_cmd_image_extract)

    ix = im.add_parser("index", help="write ota-index.json for a folder of OTA files (only that file; "
                       "unreadable files are a line each on stderr and left out)")
    ix.add_argument("folder", help="the folder of OTA files")
    ix.add_argument("--force", action="store_true", help="replace an ota-index.json bridge-emu did not write")
    ix.set_defaults(func=_cmd_image_index)

    v = im.add_parser("verify", help="verify as a bridge does: exit 0 valid, 1 invalid, 2 unreadable")
    v.add_argument("file", help="an OTA file; - reads it from stdin")
    sk = v.add_mutually_exclusive_group()
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
    except OSError as e:  # the file system refused (read-only, full, not a folder): name the path
        print(f"bridge-emu: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
