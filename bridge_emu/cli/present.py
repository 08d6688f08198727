"""What the command line shows: rich tables and progress bars over the
plain data the tools and the premises session return."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn
from rich.table import Table

from bridge_emu.codec.firmware import BEHAVIOUR_BITS


def print_state(r: dict) -> None:
    con = Console()
    st = r["state"]
    con.print(f"[bold]{r['path'] or 'device'}[/]  mode {r['mode']}  state [bold]{st['state']}[/]"
              f" (seq {st['seq']}, bank {st['bank']}, attempts {st['attempts']})"
              f"  security counter {r['security_counter']}  keys {r['provisioned_keys']}")
    t = Table("slot", "address", "size", "image", "security counter", "sha256", "status")
    for s in r["slots"]:
        img = s["image"] or {}
        if "download" in s:
            d = s["download"]
            status = f"[yellow]partial download ({d['bytes'] * 100 // max(1, d['of'])} %)[/]"
        else:
            status = "valid" if s["valid"] else f"[red]{s['error']}[/]"
        t.add_row(str(s["slot"]), f"0x{s['addr']:x}", str(s["size"]), img.get("version", "-"),
                  str(img.get("security_counter", "-")), img.get("sha256", "-")[:16], status)
    con.print(t)
    for s in r["slots"]:
        if "download" in s:
            d = s["download"]
            con.print(f"slot {s['slot']}: partial download, {d['bytes']} of {d['of']} bytes in flash"
                      " (resumes from there)", highlight=False, soft_wrap=True)
    f = r["flash"]
    con.print(f"flash: {f['writes']} writes, {f['erases']} erases, {f['busy_us'] / 1e6:.2f} s busy;"
              f" most-erased sector {r['max_sector_erases']} times")
    if "events" in r:
        bad = r.get("events_unreadable", 0)
        con.print(f"event log: {r['events_total']} events" + (f" ({bad} unreadable lines skipped)" if bad else "")
                  + (f", the last {len(r['events'])}:" if r["events"] else ""))
        for e in r["events"]:
            rest = " ".join(f"{k}={v}" for k, v in e.items() if k not in ("t", "bridge", "event"))
            t = e.get("t")
            when = f"{t:10.3f}s" if isinstance(t, int | float) and not isinstance(t, bool) else f"{'?':>10s} "
            con.print(f"  {when}  {str(e.get('event', '?')):22s} {rest}", markup=False, highlight=False)
    con.print()


def print_info(r: dict) -> None:
    con = Console()
    con.rule(r["file"])
    if "error" in r:
        con.print(f"[red]unreadable[/]: {r['error']}")
        return
    if r.get("format") == "mcuboot":
        _print_mcuboot(con, r)
        return
    h = r["header"]
    t = Table("field", "value", show_header=False, box=None)
    for k, v in h.items():
        if v is None:
            continue
        as_hex = isinstance(v, int) and k not in ("header_length", "total_image_size")
        t.add_row(k, f"0x{v:X} ({v})" if as_hex else str(v))
    con.print(t)
    con.print(f"file {r['size']} bytes, sha256 {r['sha256']}, body: {r['body_kind']}")
    if "gbcs" in r:
        g = r["gbcs"]
        con.print(f"manufacturer image {g['manufacturer_image_size']} bytes, hash {g['manufacturer_image_hash']},"
                  f" force_replace {g['force_replace']}, {'signed' if g['signed'] else '[yellow]unsigned[/]'}")
        inner = r["inner_image"]
        if inner.get("format") == "mcuboot":
            fw = inner.get("firmware", {})
            flags = [k for k in BEHAVIOUR_BITS if fw.get(k)]
            con.print(f"bootable image {inner['version']}, security counter {inner['security_counter']},"
                      f" payload {inner['payload_size']} bytes; firmware {fw.get('bridge_type', '?')}"
                      f" {fw.get('version', '')} {' '.join(flags)}")
        else:
            con.print(f"bootable image: {inner.get('error')}")
    integrity = r.get("generic", {}).get("integrity")
    if integrity is not None:
        if not integrity["present"]:
            con.print("image integrity code (tag 0x0003): none in the file")
        elif integrity["ok"]:
            con.print(f"image integrity code (tag 0x0003, {integrity['form']}) {integrity['code']}: [green]matches[/]")
        else:
            con.print(f"image integrity code (tag 0x0003): [red]{integrity['detail']}[/]")
    for name, ok in r["signatures"].items():
        con.print(f"{name} signature: " + ("[green]verifies[/]" if ok else "[red]does not verify[/]"))
    for a in r["anomalies"]:
        con.print(f"[yellow]anomaly[/] {a['kind']} at offset {a['offset']}: {a['message']}")




def _print_mcuboot(con: Console, r: dict) -> None:
    """A bare MCUboot image (imgtool sign's output)."""
    i = r["image"]
    con.print(f"MCUboot image {r['size']} bytes, sha256 {r['sha256']}")
    con.print(f"version {i['version']}, header {i['header_size']} bytes, payload {i['payload_size']} bytes, "
              f"security counter {i['security_counter']}, image hash "
              + ("[green]matches[/]" if i["hash_ok"] else "[red]does not match[/]"))
    t = Table("TLV type", "length", "area", box=None)
    for tlv in i["tlvs"]:
        t.add_row(f"0x{tlv['type']:02X}", str(tlv["length"]), "protected" if tlv["protected"] else "")
    con.print(t)
    fw = i.get("firmware", {})
    if "bridge_type" in fw:
        flags = [k for k in BEHAVIOUR_BITS if fw.get(k)]
        con.print(f"firmware {fw['bridge_type']} {fw['version']} {' '.join(flags)}")
    if i["trailing_bytes"]:
        con.print(f"[yellow]{i['trailing_bytes']} bytes after the TLV area[/]")
    for name, ok in r["signatures"].items():
        con.print(f"{name} signature: " + ("[green]verifies[/]" if ok else "[red]does not verify[/]"))


def console() -> Console:
    con = Console()
    return con if con.is_terminal else Console(width=120)


def run_with_progress(session, limit_s: float, con: Console) -> bool:
    """Run a premises session with one progress bar per bridge."""
    # the times shown are virtual: the run's own clock, not the wall clock
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                  console=con, transient=False) as progress:
        tasks, done_at = {}, {}
        for r in session.runs:
            for s in r.slots:
                tasks[(r.spec.name, s.spec.name)] = progress.add_task(
                    f"{r.spec.name}/{s.spec.name} ({s.spec.type})", total=1, info="")

        def update(r) -> None:
            for s in r.slots:
                done, size = r.progress(s)
                b = s.bridge
                settled = r.settled(s)
                if settled and (r.spec.name, s.spec.name) not in done_at:
                    done_at[(r.spec.name, s.spec.name)] = r.net.scheduler.time
                t = done_at.get((r.spec.name, s.spec.name), r.net.scheduler.time)
                info = (f"{done / 1024:7.1f}/{size / 1024:.1f} KiB  t={_clock(t)} virtual  "
                        + (b.record.outcome if settled else f"{b.phase.value} {b.record.outcome}"))
                progress.update(tasks[(r.spec.name, s.spec.name)], completed=done, total=max(size, 1), info=info)

        return session.run(limit_s, on_slice=update)


def _clock(t: float) -> str:
    t = int(t)
    return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"


def print_timelines(con: Console, rows: list[dict]) -> None:
    """Each bridge's update, step by step, in virtual time."""
    for r in rows:
        con.print(f"[bold]timeline {r['premises']}/{r['bridge']} ({kind(r)})[/]", highlight=False)
        for e in r["timeline"]:
            t = e["t"]
            when = f"{t:9.1f} s" if isinstance(t, int | float) else f"{'?':>9s}  "
            con.print(f"  {when}  {e['step']:<16s} {e['detail']}", markup=False, highlight=False)


def print_session(session, limit_s: float, con: Console) -> None:
    rows = session.rows()
    premises_tables(con, rows)
    print_timelines(con, rows)
    run_dir = session.run_dir
    con.print(f"wall time {session.wall_s:.2f} s for {session.virtual_s():.0f} s of virtual time"
              + (f"; devices and event logs in {run_dir} (see `bridge-emu state {run_dir}`)"
                 if run_dir is not None else ""))
    if not session.settled:
        con.print(f"[red]not every bridge settled within {limit_s:.0f} s of virtual time[/]")
        for r in rows:
            if "stalled" in r:
                con.print(f"[red]{r['premises']}/{r['bridge']}: stalled: {r['stalled']}[/]",
                          highlight=False, soft_wrap=True)


def print_seed(con: Console, seed: int, session) -> None:
    """One line per seed of a sweep, as it finishes."""
    bad = [f"{r['premises']}/{r['bridge']} {r['outcome']}" for r in session.rows() if "stalled" in r]
    con.print(f"seed {seed}: " + ("settled" if session.settled else "[red]not settled[/]: " + ", ".join(bad))
              + f"  ({session.virtual_s():.0f} s virtual, {session.wall_s:.2f} s wall)", highlight=False)


def print_sweep(con: Console, result: dict) -> None:
    seeds = result["seeds"]
    t = Table(title=f"{len(seeds)} seeds, {seeds[0]}..{seeds[-1]}" if seeds else "no seeds", title_justify="left")
    for c in ("premises", "bridge", "offered", "outcomes", "did not settle (seed: step)"):
        t.add_column(c)
    for e in result["summary"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(e["outcomes"].items(), key=lambda kv: -kv[1]))
        stalls = "; ".join(f"{u['seed']}: {u['stalled']}" for u in e["unsettled"][:3])
        if len(e["unsettled"]) > 3:
            stalls += f"; and {len(e['unsettled']) - 3} more"
        t.add_row(e["premises"], f"{e['bridge']} {e['type']}", e["offered"], outcomes, stalls or "-")
    con.print(t)
    con.print("every run settled" if result["settled"] else "[red]some runs did not settle[/]")


def print_scenario(con: Console, result) -> None:
    """A scenario's events as applied, its bridges, and each expectation's verdict."""
    sc = result.scenario
    con.rule(f"scenario {sc.name} (premises {sc.spec.name})")
    names = {"power_cut": "power cut", "power_off": "power off", "outage_s": "link outage", "link": "link changed",
             "offer": "offer changed", "hub_restart": "hub restarted", "clock_jump_s": "hub clock jumped"}
    for a in result.applied:
        con.print(f"  t={a['t']:>9.1f} s  {a['bridge'] or 'hub'}: {names.get(a['action'], a['action'])}")
    premises_tables(con, result.rows)
    for name in sc.expect:
        bad = [f for f in result.failures if f.split(": ", 2)[1] == name]
        con.print(f"  {name}: " + ("[green]as expected[/]" if not bad else "[red]" + "; ".join(
            f.split(": ", 2)[2] for f in bad) + "[/]"))
    con.print("[green]all expectations met[/]" if result.ok else "[red]expectations not met[/]")


def premises_tables(con: Console, rows: list[dict]) -> None:
    for premises in dict.fromkeys(r["premises"] for r in rows):
        t = Table(title=f"premises {premises}", title_justify="left")
        for c in ("bridge", "offered", "firmware", "bytes / blocks", "download", "downtime", "erases",
                  "alerts", "outcome"):
            t.add_column(c, justify="right" if c in ("bytes / blocks", "download", "downtime", "erases")
                         else "left")
        for r in (r for r in rows if r["premises"] == premises):
            extra = []
            if r["resumed_from"]:
                extra.append("resumed at byte " + ", ".join(str(o) for o in r["resumed_from"]))
            if "energy_mJ" in r:
                extra.append(f"{r['energy_mJ'] / 1000:.2f} J, {r['polls']} polls")
            colour = {"upgraded": "green", "rolled back": "yellow"}.get(r["outcome"], "red")
            t.add_row(f"{r['bridge']} {kind(r)}", r["offered"],
                      f"{r['version_before'].split('+')[0]} -> {r['version_after'].split('+')[0]}",
                      f"{r['bytes']} / {r['blocks']}",
                      "-" if r["download_s"] is None else f"{r['download_s']:.0f} s", f"{r['downtime_s']:.1f} s",
                      str(r["flash_erases"]), " ".join(a.replace("0x", "") for a in r["alerts"]),
                      f"[{colour}]{r['outcome']}[/]" + ("\n" + "\n".join(extra) if extra else ""))
        con.print(t)
    con.print("download and downtime in virtual time. Downtime: from a reboot until the bridge routes "
              "again (flash work, boot, rejoin). Alerts: 8F72 verified, 8F1C refused, 8F43 running "
              "version changed, 8F1B refused at power-on.")


def kind(row: dict) -> str:
    """What a bridge is: its type, or the user's profile standing in for it."""
    return f"{row['profile']} ({row['type']})" if row.get("profile") else row["type"]
