"""Scenarios: a premises, a timed schedule of what happens to it, and what must
come of it. `bridge-emu run SCENARIO.toml` runs one and exits 1 when an
expectation is not met, so a CI job can hold a rig to it.

    name = "cut-in-the-swap"
    premises = "ihd"                 # a built-in name, or a premises file (relative to this one)
    limit_s = 14400                  # virtual seconds at most (default 4 h)

    [[event]]                        # when: at_s (virtual seconds), or at_block (blocks into the
    at_state = "swap"                #   bridge's download), or at_state: "download" (it starts),
    bridge = "b4"                    #   "swap" (the reboot that installs it), "trial" (the new image
    power_cut = { at_op = 3, tear = "bits" }   # runs unconfirmed); then one action:
                                     #   power_cut = { at_op, tear, seed }: the at_op-th flash operation from then
                                     #   power_off = true          off now, between flash operations
                                     #   brown_out = { dip_ms, tear, seed }   the next flash operation's
                                     #                             current sags the supply below the MCU's
                                     #                             brown-out threshold (BROWN_OUT below)
                                     #   outage_s = 60             its link loses every frame for 60 s
                                     #   link = { loss, latency_ms, jitter_ms, throughput_kbps }  from then on
                                     #   offer = "faulty"          the hub offers it another image (or a path),
                                     #                             stopping a download of the old one (ABORT)
                                     #   hub_restart = true        the hub forgets its sessions and pending CS06
                                     #   clock_jump_s = 3600       the hub's clock jumps
    [expect.b4]
    outcome = "upgraded"             # or a list of outcomes any of which will do
    version = "1.1.0"                # the version it runs at the end
    alerts = ["0x8F72", "0x8F43"]    # raised (at least these)
    max_downtime_s = 10              # total off-network time of its reboots

The same in Python: Scenario(spec, events=[Event(...)], expect={...}, limit_s=...).run(images).

A Schedule arms the events on a Stage: the simulated premises (RunStage, every
action), a premises behind a virtual dongle whose host is the hub (RunStage with
hub=False: not the hub's actions), a bridge attached through a stick
(dongle.attach.AttachStage). A Watch judges a scenario that runs on paced or real
time, where nothing steps it: `bridge-emu dongle|attach SCENARIO.toml`.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import tomllib
from dataclasses import dataclass, field

from bridge_emu.emulator.bridge import Phase
from bridge_emu.errors import BridgeEmuError
from bridge_emu.net.sim import LinkSpec
from bridge_emu.ota.image_store import ImageStore
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.report import bridge_rows
from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.schema import NAME, OFFERS, PremisesError, PremisesSpec, builtin_premises, load_premises

STATES = ("download", "swap", "trial")
ACTIONS = ("power_cut", "brown_out", "power_off", "outage_s", "link", "offer", "hub_restart", "clock_jump_s")
WHENS = ("at_s", "at_block", "at_state")
TRIAL_DELAY_S = 1.0          # "trial": this long into the new image's first boot
# A brown-out, as modelled: a marginal supply sags when a flash program or erase
# draws its current, the MCU's brown-out detector resets it, and the supply is
# back once the dip is over. So it lands on the next flash operation from the
# event, whenever that comes (that one tears; a power cut may be armed at any
# count), RAM is lost as in any reset, and the bridge is off for the dip
# (milliseconds) instead of a cut's off time (BridgeConfig.off_after_cut_s).
BROWN_OUT_DIP_MS = 20.0
_EXPECT_KEYS = {"outcome", "version", "alerts", "max_downtime_s"}
_LINK_KEYS = {"loss", "latency_ms", "jitter_ms", "throughput_kbps"}
_TOP_KEYS = {"name", "description", "premises", "limit_s", "seed", "event", "expect"}


def is_scenario(document: dict) -> bool:
    """A TOML document is a scenario (not a premises) when it names its premises."""
    return isinstance(document.get("premises"), str)


@dataclass(frozen=True)
class Event:
    bridge: str | None
    when: str                      # one of WHENS
    value: float | str             # seconds, blocks, or a state name
    action: str                    # one of ACTIONS
    argument: object = True


@dataclass
class Scenario:
    spec: PremisesSpec
    events: list[Event] = field(default_factory=list)
    expect: dict[str, dict] = field(default_factory=dict)
    limit_s: float = 4 * 3600.0
    name: str = "scenario"
    seed: int | None = None

    def run(self, images: ImageSet, run_dir: pathlib.Path | None = None) -> ScenarioResult:
        run = PremisesRun(self.spec, images, None if run_dir is None else run_dir / self.name, seed=self.seed)
        driver = _Driver(self, run, images)
        settled = driver.go()
        rows = bridge_rows(run)
        failures = [f"{self.name}: {line}" for line in check(self.expect, rows)]
        if not settled:
            failures += [f"{self.name}: {r['bridge']} did not settle within {self.limit_s:g} s: {r.get('stalled')}"
                         for r in rows if "stalled" in r]
        return ScenarioResult(self, rows, failures, driver.applied)


@dataclass
class ScenarioResult:
    scenario: Scenario
    rows: list[dict]
    failures: list[str]
    applied: list[dict]          # the events as they were applied: {"t", "bridge", "action"}

    @property
    def ok(self) -> bool:
        return not self.failures


def check(expect: dict[str, dict], rows: list[dict]) -> list[str]:
    """The expectations a run's rows do not meet, one line each."""
    by_name = {r["bridge"]: r for r in rows}
    out = []
    for name, want in expect.items():
        r = by_name[name]
        if "outcome" in want:
            allowed = [want["outcome"]] if isinstance(want["outcome"], str) else list(want["outcome"])
            if r["outcome"] not in allowed:
                out.append(f"{name}: outcome {r['outcome']!r}, expected {' or '.join(map(repr, allowed))}")
        if "version" in want and r["version_after"].split("+")[0] != str(want["version"]).split("+")[0]:
            out.append(f"{name}: runs {r['version_after']}, expected {want['version']}")
        missing = [a for a in want.get("alerts", []) if a.upper().replace("0X", "0x") not in r["alerts"]]
        if missing:
            out.append(f"{name}: alerts {', '.join(missing)} not raised (raised: {', '.join(r['alerts']) or 'none'})")
        if "max_downtime_s" in want and r["downtime_s"] > want["max_downtime_s"]:
            out.append(f"{name}: {r['downtime_s']} s of downtime, more than {want['max_downtime_s']} s")
    return out


HUB_ACTIONS = ("offer", "hub_restart", "clock_jump_s")     # what only bridge-emu's own hub can do
POWER_ACTIONS = ("power_cut", "brown_out", "power_off")    # what any emulated bridge can suffer
BLOCK_CHECK_S = 1.0          # how often an at_block event's bridge is looked at


class Stage:
    """Where a scenario's events land: the bridges they name, on a clock, and the
    actions beyond a bridge's own power that this place can carry out (`actions`).
    The simulated premises can do everything; behind a dongle the hub is a host's
    (or the network is real), so less."""
    place = "the simulated premises"
    actions: tuple[str, ...] = ACTIONS
    clock = None

    def bridge(self, name: str):
        raise NotImplementedError

    def poke(self, name: str) -> None:
        raise NotImplementedError

    def act(self, ev: Event, now: float) -> None:
        """An action that is not a bridge's power (one of `actions`)."""
        raise NotImplementedError


def check_stage(events: list[Event], expect: dict, stage: Stage, names: list[str], where: str) -> None:
    """Refuse, in one line, an event or expectation this stage cannot carry out."""
    for i, ev in enumerate(events):
        if ev.action not in stage.actions:
            raise PremisesError(f"{where}.event[{i + 1}]: {ev.action}: not possible on {stage.place} "
                                f"(there: {', '.join(stage.actions)})")
        if ev.bridge is not None and ev.bridge not in names:
            raise PremisesError(f"{where}.event[{i + 1}].bridge: {ev.bridge!r}: {stage.place} runs "
                                f"{', '.join(names)} only")
    for bridge in expect:
        if bridge not in names:
            raise PremisesError(f"{where}.expect.{bridge}: {stage.place} runs {', '.join(names)} only")


class Schedule:
    """A scenario's events armed on a stage: each is applied when its moment comes,
    on whatever clock the stage runs (virtual time, paced virtual time, the wall
    clock). `applied` lists them as they were: {"t", "bridge", "action"}, t in
    seconds from arming."""

    def __init__(self, events: list[Event], stage: Stage, names: list[str]):
        self.stage = stage
        self.events = list(events)
        self.applied: list[dict] = []
        self.t0 = stage.clock.now()
        self._by_block: list[Event] = []
        self._on_state: dict[tuple[str, str], list[Event]] = {}
        for ev in self.events:
            if ev.when == "at_s":
                stage.clock.call_at(self.t0 + float(ev.value), lambda ev=ev: self._apply(ev))
            elif ev.when == "at_block":
                self._by_block.append(ev)
            else:
                self._on_state.setdefault((ev.bridge, str(ev.value)), []).append(ev)
        for name in names:
            stage.bridge(name).on_log = lambda entry, name=name: self._logged(name, entry)
        if self._by_block:
            stage.clock.call_at(self.t0 + BLOCK_CHECK_S, self._blocks)

    @property
    def finished(self) -> bool:
        """Every event has been applied."""
        return len(self.applied) == len(self.events)

    def last_timed(self) -> float:
        return max((float(e.value) for e in self.events if e.when == "at_s"), default=0.0)

    def _blocks(self) -> None:
        for ev in list(self._by_block):
            client = self.stage.bridge(ev.bridge).client
            if client is not None and client.size and client.offset >= int(ev.value) * client.config.max_data_size:
                self._by_block.remove(ev)
                self._apply(ev)
        if self._by_block:
            self.stage.clock.call_at(self.stage.clock.now() + BLOCK_CHECK_S, self._blocks)

    def _logged(self, name: str, entry: dict) -> None:
        kind = entry["event"]
        state = ("download" if kind == "download_started"
                 else "swap" if kind == "activation" and entry.get("outcome") == "SUCCESS"
                 else "trial" if kind == "boot" and not entry.get("confirmed") else None)
        for ev in self._on_state.pop((name, state), []) if state else []:
            if state == "trial":
                clock = self.stage.clock
                clock.call_at(clock.now() + TRIAL_DELAY_S, lambda ev=ev: self._apply(ev))
            else:
                self._apply(ev)          # the next flash operations are the download's, or the swap's

    def _apply(self, ev: Event) -> None:
        stage = self.stage
        now = stage.clock.now()
        self.applied.append({"t": round(now - self.t0, 3), "bridge": ev.bridge, "action": ev.action})
        if ev.action not in POWER_ACTIONS:
            stage.act(ev, now)
        else:
            bridge = stage.bridge(ev.bridge)
            arg = dict(ev.argument) if isinstance(ev.argument, dict) else {}
            if ev.action == "power_cut":
                bridge.cut_power_at_op(int(arg.get("at_op", 1)), str(arg.get("tear", "bits")),
                                       int(arg.get("seed", 0)))
            elif ev.action == "brown_out":
                bridge.cut_power_at_op(1, str(arg.get("tear", "bits")), int(arg.get("seed", 0)),
                                       off_s=float(arg.get("dip_ms", BROWN_OUT_DIP_MS)) / 1000)
            else:
                bridge.power_off(now, "power off (scenario)")
        if ev.bridge is not None:
            stage.poke(ev.bridge)


class RunStage(Stage):
    """A premises run on the simulated network. With its hub (`bridge-emu run`) every
    action is possible; with the hub's node taken by a host stack behind a virtual
    dongle (hub=False), the hub's own actions are not: the host serves the images."""

    def __init__(self, run: PremisesRun, images: ImageSet | None, hub: bool = True):
        self.run, self.images, self.clock = run, images, run.clock
        if not hub:
            self.place = "a premises behind a virtual dongle (the host is its hub)"
            self.actions = tuple(a for a in ACTIONS if a not in HUB_ACTIONS)

    def _slot(self, name: str):
        return next(s for s in self.run.slots if s.spec.name == name)

    def bridge(self, name: str):
        return self._slot(name).bridge

    def poke(self, name: str) -> None:
        self._slot(name).driver.poke()

    def act(self, ev: Event, now: float) -> None:
        run = self.run
        if ev.action == "hub_restart":
            run.hub.restart()
            return
        if ev.action == "clock_jump_s":
            run.server.jump_clock(int(ev.argument))
            return
        s = self._slot(ev.bridge)
        if ev.action == "outage_s":
            run.net.link(s.address).outage(now, float(ev.argument))
        elif ev.action == "link":
            link = run.net.link(s.address)
            arg = ev.argument
            old = link.spec
            link.spec = dataclasses.replace(
                old, loss=float(arg.get("loss", old.loss)),
                latency_s=float(arg.get("latency_ms", old.latency_s * 1000)) / 1000,
                jitter_s=float(arg.get("jitter_ms", old.jitter_s * 1000)) / 1000,
                throughput_bps=float(arg.get("throughput_kbps", old.throughput_bps / 1000)) * 1000)
        elif ev.action == "offer":
            offer = str(ev.argument)
            if offer == "none":
                run.server.offer(s.address, None)
            else:
                path = self.images.file(s.spec.type, offer) if offer in OFFERS else pathlib.Path(offer)
                img = run.server.store.add_file(path) or run.server.store.find(str(path))
                run.server.offer(s.address, img)
                s.offered_version = f"{img.file_version:#010x}" if offer not in OFFERS else \
                    self.images.entry(s.spec.type, offer)["version"]
            if s.bridge.client is not None and s.bridge.client.size:
                run.server.abort(s.address)      # the old image's download is stopped: the bridge asks again


class _Driver:
    """Runs the premises on virtual time, its scenario's events armed on it."""

    def __init__(self, scenario: Scenario, run: PremisesRun, images: ImageSet):
        self.scenario, self.run = scenario, run
        self.schedule = Schedule(scenario.events, RunStage(run, images), [s.spec.name for s in run.slots])
        self.applied = self.schedule.applied

    def go(self) -> bool:
        run = self.run
        run.start()
        limit = self.scenario.limit_s
        while run.clock.now() < limit:
            run.step(min(limit, run.clock.now() + 1.0))
            if run.done() and run.clock.now() >= self.schedule.last_timed():
                return True
        return run.done()


class Watch:
    """A scenario on a stage that runs by itself, on paced or real time (a premises
    behind a virtual dongle, a bridge attached through one): its events armed, and
    whether it is over. It is over when its limit has passed, or once every event
    has been applied and every expectation is met with the bridges it names settled
    (running a confirmed image, no download under way; or dead). `result()` judges
    it then, or whenever its owner stops early (a signal). A host stack is no GBCS
    hub: alerts it never acknowledges do not hold a bridge back here."""

    def __init__(self, scenario: Scenario, stage: Stage, names: list[str], rows, where: str | None = None):
        """rows(): the bridges' result rows (report.bridge_rows); names: the bridges the stage runs."""
        check_stage(scenario.events, scenario.expect, stage, names, where or scenario.name)
        self.scenario, self.stage, self.rows = scenario, stage, rows
        self.schedule = Schedule(scenario.events, stage, names)

    def elapsed(self) -> float:
        return self.stage.clock.now() - self.schedule.t0

    def over(self) -> bool:
        if self.elapsed() >= self.scenario.limit_s:
            return True
        if not self.schedule.finished:          # (timed events included: so their time has come)
            return False
        return all(_settled(self.stage.bridge(n)) for n in self.scenario.expect) and not check(
            self.scenario.expect, self.rows())

    def result(self) -> ScenarioResult:
        rows = self.rows()
        sc = self.scenario
        failures = [f"{sc.name}: {line}" for line in check(sc.expect, rows)]
        if failures and self.elapsed() >= sc.limit_s:
            failures.append(f"{sc.name}: not met within {sc.limit_s:g} s")
        unapplied = len(sc.events) - len(self.schedule.applied)
        if unapplied:
            failures.append(f"{sc.name}: {unapplied} of {len(sc.events)} events never came about")
        return ScenarioResult(sc, rows, failures, self.schedule.applied)


def _settled(bridge) -> bool:
    if bridge.phase is Phase.DEAD:
        return True
    return bridge.phase is Phase.RUNNING and bridge.confirmed and bridge.client.status == 0


# ------------------------------------------------------------------ reading one

def maybe_scenario(name: str) -> Scenario | None:
    """The scenario in file `name`, or None when it is not a scenario file (a premises
    file, a built-in name: the premises reader deals with those and their errors)."""
    path = pathlib.Path(name)
    if not path.is_file():
        return None
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    return parse_scenario(doc, str(path), path.parent) if is_scenario(doc) else None


def load_scenario(path: str | pathlib.Path) -> Scenario:
    path = pathlib.Path(path)
    try:
        doc = tomllib.loads(path.read_text())
    except OSError as e:
        raise PremisesError(f"{path}: cannot read ({e.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise PremisesError(f"{path}: not valid TOML: {e}") from None
    return parse_scenario(doc, str(path), path.parent)


def parse_scenario(doc: dict, where: str = "scenario", base: pathlib.Path | None = None) -> Scenario:
    unknown = set(doc) - _TOP_KEYS
    if unknown:
        raise PremisesError(f"{where}: unknown key {sorted(unknown)[0]!r} "
                            f"(a scenario has {', '.join(sorted(_TOP_KEYS))})")
    name = doc["premises"]
    built = builtin_premises()
    candidate = pathlib.Path(name) if base is None or pathlib.Path(name).is_absolute() else base / name
    if candidate.is_file():
        spec = load_premises(candidate)
    elif name in built:
        spec = built[name]
    else:
        raise PremisesError(f"{where}.premises: {name!r} is neither a premises file nor a built-in premises "
                            f"({', '.join(sorted(built))})")
    names = [b.name for b in spec.bridges]
    limit = doc.get("limit_s", 4 * 3600)
    if not isinstance(limit, int | float) or isinstance(limit, bool) or not (math.isfinite(limit) and limit > 0):
        raise PremisesError(f"{where}.limit_s: {limit!r}: want virtual seconds above 0")
    events = [_event(e, f"{where}.event[{i + 1}]", names, base) for i, e in enumerate(_tables(doc, "event", where))]
    expect = doc.get("expect", {})
    if not isinstance(expect, dict):
        raise PremisesError(f"{where}.expect: want a table of bridges")
    for bridge, want in expect.items():
        path = f"{where}.expect.{bridge}"
        if bridge not in names:
            raise PremisesError(f"{path}: no bridge {bridge!r} in {spec.name} ({', '.join(names)})")
        if not isinstance(want, dict) or set(want) - _EXPECT_KEYS:
            raise PremisesError(f"{path}: want a table of {', '.join(sorted(_EXPECT_KEYS))}")
        alerts = want.get("alerts", [])
        if not (isinstance(alerts, list) and all(isinstance(a, str) for a in alerts)):
            raise PremisesError(f"{path}.alerts: want a list of alert codes such as \"0x8F72\"")
        if "max_downtime_s" in want and (not isinstance(want["max_downtime_s"], int | float)
                                         or isinstance(want["max_downtime_s"], bool) or want["max_downtime_s"] < 0):
            raise PremisesError(f"{path}.max_downtime_s: want seconds, 0 or more")
    title = doc.get("name", spec.name)
    if not isinstance(title, str) or not NAME.fullmatch(title):
        raise PremisesError(f"{where}.name: {title!r}: letters, digits and _ . - (it names a folder)")
    seed = doc.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**32):
        raise PremisesError(f"{where}.seed: {seed!r}: want 0..{2**32 - 1}")
    return Scenario(spec, events, expect, float(limit), title, seed)


def _tables(doc: dict, key: str, where: str) -> list[dict]:
    value = doc.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise PremisesError(f"{where}.{key}: want an array of tables ([[{key}]])")
    return value


def _event(e: dict, path: str, names: list[str], base: pathlib.Path | None) -> Event:
    whens = [k for k in WHENS if k in e]
    actions = [k for k in ACTIONS if k in e]
    unknown = set(e) - set(WHENS) - set(ACTIONS) - {"bridge"}
    if unknown:
        raise PremisesError(f"{path}: unknown key {sorted(unknown)[0]!r}")
    if len(whens) != 1:
        raise PremisesError(f"{path}: want exactly one of {', '.join(WHENS)}")
    if len(actions) != 1:
        raise PremisesError(f"{path}: want exactly one action: {', '.join(ACTIONS)}")
    when, action = whens[0], actions[0]
    value, arg = e[when], e[action]
    bridge = e.get("bridge")
    if action not in ("hub_restart", "clock_jump_s") and bridge not in names:
        raise PremisesError(f"{path}.bridge: {bridge!r}: want one of {', '.join(names)}")
    if when != "at_s" and bridge not in names:
        raise PremisesError(f"{path}.bridge: {when} needs a bridge ({', '.join(names)})")
    if when == "at_state" and value not in STATES:
        raise PremisesError(f"{path}.at_state: {value!r}: want one of {', '.join(STATES)}")
    if when in ("at_s", "at_block") and (not isinstance(value, int | float) or isinstance(value, bool)
                                          or not math.isfinite(value) or value < 0):
        raise PremisesError(f"{path}.{when}: {value!r}: want a number, 0 or more")
    if action == "power_cut":
        if arg is True:
            arg = {}
        if not isinstance(arg, dict) or set(arg) - {"at_op", "tear", "seed"}:
            raise PremisesError(f"{path}.power_cut: want true or {{ at_op, tear, seed }}")
        if "tear" in arg and arg["tear"] not in ("none", "bits", "prefix"):
            raise PremisesError(f"{path}.power_cut.tear: {arg['tear']!r}: want none, bits or prefix")
        if not isinstance(arg.get("at_op", 1), int) or arg.get("at_op", 1) < 1:
            raise PremisesError(f"{path}.power_cut.at_op: want a flash operation count, 1 or more")
    elif action == "brown_out":
        if arg is True:
            arg = {}
        if not isinstance(arg, dict) or set(arg) - {"dip_ms", "tear", "seed"}:
            raise PremisesError(f"{path}.brown_out: want true or {{ dip_ms, tear, seed }}")
        if "tear" in arg and arg["tear"] not in ("none", "bits", "prefix"):
            raise PremisesError(f"{path}.brown_out.tear: {arg['tear']!r}: want none, bits or prefix")
        dip = arg.get("dip_ms", BROWN_OUT_DIP_MS)
        if not isinstance(dip, int | float) or isinstance(dip, bool) or not (math.isfinite(dip) and 0 < dip <= 1000):
            raise PremisesError(f"{path}.brown_out.dip_ms: {dip!r}: want milliseconds, above 0 and at most 1000")
    elif action in ("power_off", "hub_restart"):
        if arg is not True:
            raise PremisesError(f"{path}.{action}: want true")
    elif action in ("outage_s", "clock_jump_s"):
        if not isinstance(arg, int | float) or isinstance(arg, bool) or not math.isfinite(arg) or (
                action == "outage_s" and arg <= 0):
            above = " above 0" if action == "outage_s" else ""
            raise PremisesError(f"{path}.{action}: {arg!r}: want seconds{above}")
    elif action == "link":
        if not isinstance(arg, dict) or not arg or set(arg) - _LINK_KEYS:
            raise PremisesError(f"{path}.link: want a table of {', '.join(sorted(_LINK_KEYS))}")
        try:
            LinkSpec(float(arg.get("latency_ms", 0)) / 1000, float(arg.get("jitter_ms", 0)) / 1000,
                     float(arg.get("loss", 0)), float(arg.get("throughput_kbps", 250)) * 1000)
        except (TypeError, ValueError, BridgeEmuError) as err:
            raise PremisesError(f"{path}.link: {err}") from None
    elif action == "offer":
        if not isinstance(arg, str):
            raise PremisesError(f"{path}.offer: want next, faulty, none or an OTA file's path")
        if arg not in OFFERS:
            file = pathlib.Path(arg) if base is None or pathlib.Path(arg).is_absolute() else base / arg
            if not file.is_file():
                raise PremisesError(f"{path}.offer: {arg!r} is neither one of {', '.join(OFFERS)} nor a file")
            store = ImageStore()
            if store.add_file(file) is None:
                raise PremisesError(f"{path}.offer: {file}: not an OTA file the hub can serve "
                                    f"({store.skipped[-1][1]})")
            arg = str(file)
    return Event(bridge, when, value, action, arg)

