"""Scenarios (issue 10, part 4): a premises, a timed schedule of faults, and the
expectations a CI job holds a rig to, run with `bridge-emu run SCENARIO.toml` as a
user would (exit 0 when every expectation is met, 1 and a line per miss when
not), and the same through the Python API."""
from __future__ import annotations

import json
import pathlib

import pytest

from bridge_emu import cli
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.scenario import Event, Scenario, load_scenario
from bridge_emu.premises.schema import builtin_premises
from support.paths import IMAGES

pytestmark = pytest.mark.native


def run(capsys, tmp_path: pathlib.Path, text: str, name: str = "s.toml", extra: str = "") -> tuple[int, dict, str]:
    path = tmp_path / name
    path.write_text(text + extra)
    capsys.readouterr()
    rc = cli.main(["run", str(path), "--json", "--dir", str(tmp_path / "out")])
    out, err = capsys.readouterr()
    [result] = json.loads(out)
    return rc, result, err


def events(tmp_path, scenario: str, bridge: str) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out" / scenario / bridge / "events.jsonl").open()]


SWAP = """
name = "cut-in-the-swap"
premises = "ihd"
[[event]]
at_state = "swap"
bridge = "b4"
power_cut = { at_op = 3, tear = "bits" }
[expect.b4]
outcome = "upgraded"
version = "1.1.0"
alerts = ["0x8F72", "0x8F43"]
max_downtime_s = 30
"""


def test_a_cut_in_the_swap_lands_in_the_swap_and_the_bridge_still_upgrades(capsys, tmp_path):
    rc, result, err = run(capsys, tmp_path, SWAP)
    assert rc == 0 and result["ok"] and not err, (result["failures"], err)
    log = events(tmp_path, "cut-in-the-swap", "b4")
    kinds = [e["event"] for e in log]
    reset = next(i for i, e in enumerate(log) if e["event"] == "reset" and "activating" in e["reason"])
    assert kinds[reset + 1] == "power_lost"                      # in the reboot's flash work: the swap
    boot = log[reset + 2]
    assert boot["event"] == "boot" and boot["actions"] == ["installed"] and not boot["confirmed"]


def test_power_lost_in_the_trial_rolls_back(capsys, tmp_path):
    rc, result, _ = run(capsys, tmp_path, """
name = "off-in-the-trial"
premises = "ihd"
[[event]]
at_state = "trial"
bridge = "b4"
power_off = true
[expect.b4]
outcome = "rolled back"
version = "1.0.0"
""")
    assert rc == 0 and result["ok"], result["failures"]
    assert [a["action"] for a in result["applied"]] == ["power_off"]


def test_an_image_replaced_mid_download_over_a_worse_link(capsys, tmp_path):
    rc, result, _ = run(capsys, tmp_path, """
name = "image-replaced"
premises = "ihd"
[[event]]
at_s = 10
bridge = "b4"
link = { loss = 0.2, latency_ms = 60 }
[[event]]
at_block = 300
bridge = "b4"
offer = "faulty"
[expect.b4]
outcome = "rolled back"
""")
    assert rc == 0 and result["ok"], result["failures"]
    b4 = next(b for b in result["bridges"] if b["bridge"] == "b4")
    assert b4["offered"] == "next 1.1.1"                          # what it was offered at the end: the faulty


def test_a_hub_clock_jump_delays_a_future_dated_activation(capsys, tmp_path):
    (tmp_path / "p.toml").write_text("""
name = "future"
[hub]
activation = "future:60"
[[bridge]]
name = "b1"
type = "B1"
[[bridge]]
name = "b4"
type = "B4"
parent = "b1"
offer = "none"
""")
    rc, result, _ = run(capsys, tmp_path, """
name = "clock-jump"
premises = "p.toml"
limit_s = 20000
[[event]]
at_s = 1
clock_jump_s = 3600
[[event]]
at_s = 2
hub_restart = true
[expect.b1]
outcome = "upgraded"
""")
    assert rc == 0 and result["ok"], result["failures"]
    [activated] = [e["t"] for e in events(tmp_path, "clock-jump", "b1") if e["event"] == "activation"]
    assert activated > 3600 + 60                                  # the hub's clock ran an hour ahead


def test_an_expectation_not_met_is_exit_1_and_a_line_each(capsys, tmp_path):
    rc, result, err = run(capsys, tmp_path, SWAP.replace('version = "1.1.0"', 'version = "9.9.9"')
                          .replace("max_downtime_s = 30", "max_downtime_s = 0.5"))
    assert rc == 1 and not result["ok"]
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("bridge-emu: expectation not met: cut-in-the-swap: b4:")
                                   for line in lines)
    assert "runs 1.1.0+0, expected 9.9.9" in lines[0] and "more than 0.5 s" in lines[1]


def test_the_python_api_is_the_same():
    spec = builtin_premises()["ihd"]
    result = Scenario(spec, [Event("b1", "at_state", "download", "power_cut", {"at_op": 400, "tear": "prefix"})],
                      {"b1": {"outcome": "upgraded"}}, name="api").run(ImageSet(IMAGES))
    assert result.ok, result.failures
    assert result.applied[0]["action"] == "power_cut"
    b1 = next(r for r in result.rows if r["bridge"] == "b1")
    assert b1["resumed_from"], "the cut landed in the download, which resumed"


@pytest.mark.parametrize(("doc", "says"), [
    ('premises = "nowhere"', "neither a premises file nor a built-in"),
    ('premises = "ihd"\nfoo = 1', "unknown key 'foo'"),
    ('premises = "ihd"\n[[event]]\nbridge = "b4"\npower_off = true', "exactly one of at_s, at_block, at_state"),
    ('premises = "ihd"\n[[event]]\nat_s = 1\nbridge = "b9"\npower_off = true', "'b9': want one of b1, b4"),
    ('premises = "ihd"\n[[event]]\nat_state = "lunch"\nbridge = "b4"\npower_off = true', "'lunch'"),
    ('premises = "ihd"\n[[event]]\nat_s = 1\nbridge = "b4"\npower_cut = { tear = "half" }', "want none, bits"),
    ('premises = "ihd"\n[[event]]\nat_s = 1\nbridge = "b4"\nlink = { loss = 2.0 }', ".link:"),
    ('premises = "ihd"\n[[event]]\nat_s = 1\nbridge = "b4"\noffer = "nofile.zigbee"', "neither one of"),
    ('premises = "ihd"\n[expect.b9]\noutcome = "upgraded"', "no bridge 'b9'"),
    ('premises = "ihd"\n[[event]]\nat_s = 1\nbridge = "b4"\noffer = "junk.bin"', "not an OTA file the hub can serve"),
    ('premises = "ihd"\n[expect.b4]\nwhen = 1', "want a table of alerts"),
    ('premises = "ihd"\nlimit_s = -1', "limit_s"),
])
def test_a_bad_scenario_is_one_line(capsys, tmp_path, doc, says):
    path = tmp_path / "bad.toml"
    path.write_text(doc + "\n")
    (tmp_path / "junk.bin").write_bytes(b"not an OTA file")
    rc = cli.main(["run", str(path), "--no-dir"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and says in err, err


def test_loading_a_scenario_file_names_it(tmp_path):
    (tmp_path / "s.toml").write_text(SWAP)
    sc = load_scenario(tmp_path / "s.toml")
    assert sc.name == "cut-in-the-swap" and sc.events[0].when == "at_state" and sc.spec.name == "ihd"


EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[2] / "examples" / "scenarios").glob("*.toml"))


def test_there_are_example_scenarios():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_example_scenarios_pass(capsys, tmp_path, example):
    assert cli.main(["run", str(example), "--dir", str(tmp_path / "out")]) == 0, capsys.readouterr().err


BROWN = """
name = "{name}"
premises = "ihd"
[[event]]
at_block = 100
bridge = "b4"
{action}
[expect.b4]
outcome = "upgraded"
version = "1.1.0"
"""


def test_a_brown_out_tears_the_next_flash_operation_and_is_over_in_its_dip(capsys, tmp_path):
    rc, dip, _ = run(capsys, tmp_path, BROWN.format(name="dip", action="brown_out = { dip_ms = 30 }"), "dip.toml")
    assert rc == 0 and dip["ok"], dip["failures"]
    log = events(tmp_path, "dip", "b4")
    rc, cut, _ = run(capsys, tmp_path, BROWN.format(name="cut", action="power_cut = { at_op = 1 }"), "cut.toml")
    assert rc == 0 and cut["ok"], cut["failures"]
    lost = next(i for i, e in enumerate(log) if e["event"] == "power_lost")
    assert "flash operation" in log[lost]["reason"]        # it tore a flash operation: the dip is its current
    back = log[lost + 1]
    assert back["event"] == "boot" and back["t"] - log[lost]["t"] == pytest.approx(0.03)   # back after the dip
    [b4_dip] = [b for b in dip["bridges"] if b["bridge"] == "b4"]
    [b4_cut] = [b for b in cut["bridges"] if b["bridge"] == "b4"]
    assert b4_dip["resumed_from"]                          # RAM lost: the download went on from what flash kept
    # the same moment as a cut, shorter by the cut's off time (2 s) less the dip
    assert b4_cut["downtime_s"] - b4_dip["downtime_s"] == pytest.approx(2.0 - 0.03, abs=0.05)


@pytest.mark.parametrize(("arg", "says"), [
    ("brown_out = { dip_ms = 0 }", "dip_ms: 0: want milliseconds"),
    ("brown_out = { dip_ms = 5000 }", "at most 1000"),
    ("brown_out = { at_op = 3 }", "want true or { dip_ms, tear, seed }"),
    ("brown_out = { tear = \"half\" }", "brown_out.tear"),
])
def test_a_bad_brown_out_is_one_line(capsys, tmp_path, arg, says):
    path = tmp_path / "bad.toml"
    path.write_text(f'premises = "ihd"\n[[event]]\nat_s = 1\nbridge = "b4"\n{arg}\n')
    rc = cli.main(["run", str(path), "--no-dir"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and says in err, err


def test_a_power_off_before_an_armed_brown_out_fires_takes_it_away(capsys, tmp_path):
    """The supply dips for the brown-out only while it is on: a power off first is
    a power off (the configured off time), and the armed dip dies with the power."""
    rc, result, _ = run(capsys, tmp_path, """
name = "off-first"
premises = "ihd"
[[event]]
at_s = 0.5
bridge = "b4"
brown_out = { dip_ms = 30 }
[[event]]
at_s = 0.6
bridge = "b4"
power_off = true
[expect.b4]
outcome = "upgraded"
""")
    assert rc == 0 and result["ok"], result["failures"]
    log = events(tmp_path, "off-first", "b4")
    lost = [i for i, e in enumerate(log) if e["event"] == "power_lost"]
    assert [log[i]["reason"] for i in lost] == ["power off (scenario)"]
    assert log[lost[0] + 1]["event"] == "boot"
    assert log[lost[0] + 1]["t"] - log[lost[0]]["t"] == pytest.approx(2.0)   # not the 30 ms dip
