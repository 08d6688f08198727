"""The bridge's state table (bridge_emu.emulator.bridge_states) against real
runs: bridges go through the premises scenarios (upgrade, self-activating and
future-dated activation, faulty images rolled back, power cuts in the download
and in the swap, a hub that goes quiet) and every phase change they make is a
row of the table (fsm.Transitions.go refuses any other, so a stray move fails
the run). Each scenario's moves are counted exactly, and together the
scenarios take every row but those listed in UNREACHABLE_IN_SCENARIOS, which
direct tests below take. Every run is seeded; nothing here measures time."""
from __future__ import annotations

import ast
import dataclasses
import pathlib
import re
from collections import Counter

import pytest

from bridge_emu.core.device import Device
from bridge_emu.emulator import bridge_states
from bridge_emu.emulator.bridge import Bridge, Phase, Timer
from bridge_emu.emulator.bridge_states import TRANSITIONS
from bridge_emu.emulator.profiles import profile
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.report import bridge_rows
from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.schema import BridgeSpec, PremisesSpec, builtin_premises
from support.paths import IMAGES

pytestmark = pytest.mark.native

LIMIT_S = 4 * 3600.0
REMOTE_LINK = {"latency_ms": 20, "jitter_ms": 5, "loss": 0.01, "throughput_kbps": 100, "payload_limit": 82}
EMULATOR = pathlib.Path(bridge_states.__file__).parent

OFF, BOOTING, JOINING, RUNNING, CRASHED, DEAD = (Phase.OFF, Phase.BOOTING, Phase.JOINING, Phase.RUNNING,
                                                 Phase.CRASHED, Phase.DEAD)

# Rows no premises scenario takes, and why:
UNREACHABLE_IN_SCENARIOS = {
    # Bridge.power_off() (power lost between flash operations) is not used by any
    # premises: a premises cuts the power inside a flash operation, and a bridge
    # makes flash operations only while BOOTING or RUNNING.
    (OFF, "power_lost"), (JOINING, "power_lost"), (CRASHED, "power_lost"), (DEAD, "power_lost"),
    # the boot core never loses both images (tests/core and the swap cuts below
    # prove it), and a premises always starts from a factory-programmed device
    (BOOTING, "no_bootable_image"),
    # the self test fails self_test_s after the firmware starts, the rejoin takes
    # rejoin_s: with the default timings (1 s < 3 s) the self test always fails first
    (RUNNING, "self_test_failed"),
}


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def images() -> ImageSet:
    return ImageSet(IMAGES)


def premises(*bridges: BridgeSpec, hub: dict | None = None, seed: int = 3) -> PremisesSpec:
    return PremisesSpec("test", "", tuple(bridges), dict(hub or {"personality": "gbcs-ch", "activation": "immediate"}),
                        seed)


def remote(name: str, bridge_type: str, offer: str = "next") -> BridgeSpec:
    return BridgeSpec(name, bridge_type, parent="b1", offer=offer, link=dict(REMOTE_LINK))


def faulty(bridge_type: str, hub: dict | None = None) -> PremisesSpec:
    if bridge_type == "B1":
        return premises(BridgeSpec("b1", "B1", offer="faulty"), hub=hub)
    return premises(BridgeSpec("b1", "B1", offer="none"), remote("bx", bridge_type, offer="faulty"), hub=hub)


def events(bridge, kind: str) -> list[dict]:
    return [e for e in bridge.events if e["event"] == kind]


def outcomes(run: PremisesRun) -> dict[str, str]:
    return {r["bridge"]: r["outcome"] for r in bridge_rows(run)}


def continue_until_settled(run: PremisesRun, limit_s: float = LIMIT_S) -> bool:
    """Advance a started run until every bridge settles (run() would power them on again)."""
    t = run.clock.now()
    while t < limit_s:
        t += 10.0
        run.step(t)
        if run.done():
            return True
    return False


class Moves:
    """The table rows taken (and how often) while the block runs."""

    def __enter__(self) -> Counter:
        self._before = TRANSITIONS.taken.copy()
        self.taken: Counter = Counter()
        return self.taken

    def __exit__(self, *exc) -> None:
        self.taken.update(TRANSITIONS.taken - self._before)


def upgrade_moves(bridges: int) -> Counter:
    """Each bridge: a cold boot, the download, the activation reboot, a warm boot into
    the new image, which rejoins and proves itself: nothing else."""
    return Counter({(OFF, "power_on"): bridges, (BOOTING, "booted"): 2 * bridges, (JOINING, "joined"): 2 * bridges,
                    (RUNNING, "activation_reboot"): bridges, (OFF, "restart"): bridges})


def to_activation(images, bridge_type: str) -> tuple[PremisesRun, Bridge]:
    """A one-bridge premises driven to the instant the bridge took the CS06."""
    run = PremisesRun(premises(BridgeSpec("b1", bridge_type), seed=5), images)
    b = run.slots[0].bridge
    run.start()

    def took() -> bool:
        return bool(b.events) and b.events[-1]["event"] == "activation" and b.events[-1]["outcome"] == "SUCCESS"
    assert run.net.scheduler.run(took, limit=LIMIT_S)
    return run, b


# ------------------------------------------------------------------ the scenarios


def _settled_run(spec: PremisesSpec, images) -> PremisesRun:
    run = PremisesRun(spec, images)
    assert run.run(limit_s=LIMIT_S), outcomes(run)
    return run


def _swap_cut(images) -> PremisesRun:
    run, b = to_activation(images, "B1")
    b.cut_power_at_op(2, "bits", seed=2)   # the second flash operation of the swap
    assert continue_until_settled(run)
    return run


def _hub_goes_quiet(images) -> PremisesRun:
    """The hub stops answering once the bridge took its CS06: the new image
    rejoins but never hears from the hub."""
    run, b = to_activation(images, "B1")
    run.hub_driver.stop()
    assert run.net.scheduler.run(lambda: bool(events(b, "prove_timeout")) and b.phase is RUNNING, limit=LIMIT_S)
    return run


def _scenarios(images) -> dict[str, object]:
    out: dict[str, object] = {f"builtin/{name}": (lambda spec=spec: _settled_run(spec, images))
                              for name, spec in builtin_premises().items()}
    ihd = builtin_premises()["ihd"]
    for personality in ("zigpy", "herdsman"):
        hub = {"personality": personality, "activation": "none"}
        out[f"self-activating/{personality}"] = lambda hub=hub: _settled_run(dataclasses.replace(ihd, hub=hub), images)
    future = {"personality": "gbcs-ch", "activation": "future:120"}
    out["future-dated"] = lambda: _settled_run(dataclasses.replace(ihd, hub=future), images)
    for bridge_type in ("B1", "B2", "B3", "B4"):
        out[f"faulty/{bridge_type}"] = lambda t=bridge_type: _settled_run(faulty(t), images)
    mains = builtin_premises()["both-apart-mains"]
    cut = dataclasses.replace(mains, bridges=tuple(dataclasses.replace(b, power_cut={"at_fraction": 0.5})
                                                   for b in mains.bridges))
    out["download-cut"] = lambda: _settled_run(cut, images)
    out["swap-cut"] = lambda: _swap_cut(images)
    out["hub-goes-quiet"] = lambda: _hub_goes_quiet(images)
    return out


@pytest.fixture(scope="module")
def scenario_runs(images) -> dict[str, tuple[Counter, PremisesRun]]:
    out = {}
    for name, make in _scenarios(images).items():
        with Moves() as taken:
            run = make()
        out[name] = (taken, run)
    return out


def test_builtin_premises_and_both_activation_routes_move_only_along_the_upgrade(scenario_runs):
    names = [n for n in scenario_runs if n.startswith(("builtin/", "self-activating/", "future-dated"))]
    assert len(names) == 10
    for name in names:
        taken, run = scenario_runs[name]
        assert taken == upgrade_moves(len(run.slots)), name
        assert set(outcomes(run).values()) == {"upgraded"}, name
        assert all(s.bridge.phase is RUNNING for s in run.slots)


FAULT_MOVES = {
    "B1": {(JOINING, "self_test_failed"): 1},
    "B2": {(JOINING, "crash"): 1, (CRASHED, "watchdog"): 1},
    "B3": {(JOINING, "prove_timeout"): 1},    # it never rejoins
    "B4": {(JOINING, "self_test_failed"): 1},
}


@pytest.mark.parametrize("bridge_type", sorted(FAULT_MOVES))
def test_a_faulty_image_leaves_through_its_fault_and_the_old_image_rejoins(scenario_runs, bridge_type):
    taken, run = scenario_runs[f"faulty/{bridge_type}"]
    # the faulty bridge: cold boot, activation reboot, warm boot into the faulty
    # image, its fault, a warm boot that reverts, and the old image rejoins
    expected = Counter({(OFF, "power_on"): 1, (BOOTING, "booted"): 3, (JOINING, "joined"): 2,
                        (RUNNING, "activation_reboot"): 1, (OFF, "restart"): 2})
    expected.update(FAULT_MOVES[bridge_type])
    if bridge_type != "B1":   # the B1 it hangs off, not offered anything
        expected.update({(OFF, "power_on"): 1, (BOOTING, "booted"): 1, (JOINING, "joined"): 1})
    assert taken == expected
    b = run.slots[-1].bridge
    assert b.record.outcome == "rolled back" and b.phase is RUNNING and b.confirmed
    assert [e["actions"] for e in events(b, "boot")] == [[], ["installed"], ["reverted"]]


def test_a_cut_mid_download_is_a_power_loss_while_running_and_a_cold_boot(scenario_runs):
    taken, run = scenario_runs["download-cut"]
    n = len(run.slots)
    expected = upgrade_moves(n)
    expected.update({(RUNNING, "power_lost"): n, (OFF, "power_on"): n, (BOOTING, "booted"): n,
                     (JOINING, "joined"): n})
    assert taken == expected
    assert set(outcomes(run).values()) == {"upgraded"}
    for s in run.slots:
        assert [e["reason"] for e in events(s.bridge, "power_lost")] == ["power cut during a flash operation"]


def test_a_cut_in_the_swap_is_a_power_loss_while_booting_and_the_swap_finishes(scenario_runs, images):
    taken, run = scenario_runs["swap-cut"]
    expected = upgrade_moves(1)
    expected.update({(BOOTING, "power_lost"): 1, (OFF, "power_on"): 1})
    assert taken == expected
    b = run.slots[0].bridge
    assert b.record.outcome == "upgraded" and b.phase is RUNNING and b.confirmed
    # the warm boot into the new image was cut; the cold boot after it finished the install
    assert [e["actions"] for e in events(b, "boot")] == [[], ["installed"]]


def test_a_new_image_the_hub_never_answers_is_reset_while_running_and_reverted(scenario_runs):
    taken, run = scenario_runs["hub-goes-quiet"]
    b = run.slots[0].bridge
    assert taken == Counter({(OFF, "power_on"): 1, (BOOTING, "booted"): 3, (JOINING, "joined"): 3,
                             (RUNNING, "activation_reboot"): 1, (OFF, "restart"): 2,
                             (RUNNING, "prove_timeout"): 1})
    assert [e["actions"] for e in events(b, "boot")] == [[], ["installed"], ["reverted"]]
    # the old image runs confirmed, as it did before; the new one never confirmed
    assert b.record.outcome == "rolled back" and b.confirmed and not events(b, "confirmed")


def test_the_scenarios_take_every_row_but_the_listed_ones(scenario_runs):
    taken = set()
    for moves, _ in scenario_runs.values():
        taken |= set(moves)
    assert taken <= set(TRANSITIONS)          # go() refuses anything else; this says it never had to
    assert UNREACHABLE_IN_SCENARIOS <= set(TRANSITIONS)
    assert taken == set(TRANSITIONS) - UNREACHABLE_IN_SCENARIOS, sorted(
        (s.name, t) for s, t in set(TRANSITIONS) - UNREACHABLE_IN_SCENARIOS - taken)


# ------------------------------------------------------------------ rows no premises takes


def _running_bridge(images, bridge_type: str = "B1"):
    run = PremisesRun(premises(BridgeSpec("b1", bridge_type, offer="none")), images)
    run.start()
    s = run.slots[0]
    assert run.net.scheduler.run(lambda: s.bridge.phase is RUNNING and s.bridge.confirmed, limit=LIMIT_S)
    return run, s


def test_power_off_while_off_starts_the_off_time_again(images):
    run, s = _running_bridge(images)
    b = s.bridge
    t, n = run.clock.now(), len(b.events)
    with Moves() as taken:
        b.power_off(t)
        s.driver.poke()
        assert b.phase is OFF and b.next_deadline() == pytest.approx(t + b.cfg.off_after_cut_s)
        b.power_off(t + 1.0)
        s.driver.poke()
        assert b.next_deadline() == pytest.approx(t + 1.0 + b.cfg.off_after_cut_s)
        assert run.net.scheduler.run(lambda: b.phase is RUNNING, limit=t + 60.0)
    assert taken == Counter({(RUNNING, "power_lost"): 1, (OFF, "power_lost"): 1, (OFF, "power_on"): 1,
                             (BOOTING, "booted"): 1, (JOINING, "joined"): 1})
    assert [e["event"] for e in b.events[n:]] == ["power_lost", "power_lost", "boot", "joined"]
    assert events(b, "boot")[-1]["t"] == pytest.approx(t + 1.0 + b.cfg.off_after_cut_s)
    assert b.record.outcome == "no update" and b.confirmed


def test_power_off_while_rejoining_a_new_image_reverts_it(images):
    run, b = to_activation(images, "B1")
    s = run.slots[0]
    assert run.net.scheduler.run(lambda: b.phase is JOINING, limit=LIMIT_S)
    assert events(b, "boot")[-1]["actions"] == ["installed"] and not b.confirmed
    with Moves() as taken:
        b.power_off(run.clock.now())
        s.driver.poke()
        assert continue_until_settled(run)
    assert taken[(JOINING, "power_lost")] == 1 and taken[(OFF, "power_on")] == 1
    # it never reached the hub, so the cold boot treats it as a failed trial
    assert [e["actions"] for e in events(b, "boot")] == [[], ["installed"], ["reverted"]]
    assert b.record.outcome == "rolled back" and b.phase is RUNNING and b.confirmed


def test_power_off_while_crashed_skips_the_watchdog_and_reverts(images):
    run = PremisesRun(faulty("B2"), images)
    run.start()
    s = run.slots[-1]
    b = s.bridge
    assert run.net.scheduler.run(lambda: b.phase is CRASHED, limit=LIMIT_S)
    with Moves() as taken:
        b.power_off(run.clock.now())
        s.driver.poke()
        assert continue_until_settled(run)
    assert taken[(CRASHED, "power_lost")] == 1 and taken[(CRASHED, "watchdog")] == 0
    assert [e["reason"] for e in events(b, "reset")] == ["activating new firmware"]   # no watchdog reset
    assert [e["actions"] for e in events(b, "boot")] == [[], ["installed"], ["reverted"]]
    assert b.record.outcome == "rolled back" and b.phase is RUNNING and b.confirmed


def test_a_device_with_no_image_is_dead_and_tries_again_after_a_power_loss(images):
    prof = profile("B2")
    device = Device.create(None, prof.geometry, prof.layout(), keys=[images.manufacturer_key])
    b = Bridge("blank", prof, device, supplier_key=images.supplier_key)
    with Moves() as taken:
        b.power_on(0.0)
        assert b.phase is DEAD and b.record.outcome == "bricked"
        assert b.next_deadline() is None          # nothing will ever happen by itself
        b.power_off(5.0)
        assert b.phase is OFF
        b.timer(b.next_deadline())
    assert b.phase is DEAD and len(events(b, "no_bootable_image")) == 2 and b.client is None
    assert taken == Counter({(OFF, "power_on"): 2, (BOOTING, "no_bootable_image"): 2, (DEAD, "power_lost"): 1})


def test_a_late_wake_up_fires_only_the_timers_still_armed(images):
    """A transport that wakes the bridge late (past several deadlines) fires them
    in time order, and one that resets the bridge cancels the rest: the faulty
    image's self test fails before it could have rejoined."""
    run = PremisesRun(faulty("B1"), images)
    run.start()
    s = run.slots[0]
    b = s.bridge
    assert run.net.scheduler.run(lambda: b.phase is JOINING and Timer.SELF_TEST_FAILED in b._timers, limit=LIMIT_S)
    late = b._timers[Timer.JOINED] + 0.5
    n = len(b.events)
    with Moves() as taken:
        b.timer(late)
    assert [e["event"] for e in b.events[n:]] == ["self_test_failed", "reset"]
    assert b.phase is OFF and b.client is None and taken == Counter({(JOINING, "self_test_failed"): 1})
    s.driver.poke()
    assert continue_until_settled(run)
    assert b.record.outcome == "rolled back" and b.phase is RUNNING


# ------------------------------------------------------------------ the table as written


def test_the_states_docstring_shows_the_table():
    rows = {}
    for line in bridge_states.__doc__.splitlines():
        m = re.match(r"^    ([A-Z]+) +([a-z_]+) +([A-Z]+)\b", line)
        if m and m[1] in Phase.__members__:
            rows[(Phase[m[1]], m[2])] = Phase[m[3]]
    assert rows == dict(TRANSITIONS)


def _string_args(node: ast.expr) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def test_the_bridge_code_uses_exactly_the_triggers_of_the_table():
    tree = ast.parse((EMULATOR / "bridge.py").read_text())
    used, goes, phase_set_in = set(), [], set()
    for fn in ast.walk(tree):
        if not isinstance(fn, ast.FunctionDef):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "_move":
                    used |= _string_args(node.args[0])
                elif node.func.attr == "_reset":
                    used |= _string_args(node.args[1])
                elif node.func.attr == "go":
                    goes.append(fn.name)
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Attribute) and t.attr == "phase" for t in node.targets):
                phase_set_in.add(fn.name)
    assert used == TRANSITIONS.triggers()
    # one place changes the phase, through the table (and __init__ sets the first one)
    assert goes == ["_move"] and phase_set_in == {"__init__", "_move"}


def test_every_timer_has_its_handler(images):
    prof = profile("B1")
    device = Device.create(None, prof.geometry, prof.layout(), keys=[images.manufacturer_key])
    b = Bridge("b", prof, device, supplier_key=images.supplier_key)
    assert set(b._on_timer) == set(Timer)
    assert all(callable(fn) for fn in b._on_timer.values())


ALLOWED_IMPORTS = {"bridge_emu.codec", "bridge_emu.core", "bridge_emu.ota", "bridge_emu.errors", "bridge_emu.fsm",
                   "bridge_emu.keys", "bridge_emu.retry", "bridge_emu.emulator"}


def test_the_bridge_imports_only_the_layers_below_it():
    """bridge.py and the emulator modules it pulls in stay off net, premises, tools and cli."""
    todo, seen = ["bridge_emu.emulator.bridge"], set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        tree = ast.parse((EMULATOR / (mod.rsplit(".", 1)[1] + ".py")).read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bridge_emu"):
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                assert ".".join(node.module.split(".")[:2]) in ALLOWED_IMPORTS, (mod, node.module)
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
                assert all(".".join(n.split(".")[:2]) in ALLOWED_IMPORTS
                           for n in names if n.startswith("bridge_emu")), (mod, names)
            for n in names:
                if n.startswith("bridge_emu.emulator.") and (EMULATOR / (n.split(".")[2] + ".py")).is_file():
                    todo.append(".".join(n.split(".")[:3]))
    assert {"bridge_emu.emulator.bridge_states", "bridge_emu.emulator.bridge_events"} <= seen
