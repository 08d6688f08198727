"""Scenarios over a dongle: the same scenario file `bridge-emu run` takes, its events
applied as they come while a real host stack serves the bridges (`bridge-emu dongle
SCENARIO.toml`), or while a bridge runs through a stick on a network with a hub of its
own (`bridge-emu attach SCENARIO.toml`). Either ends by itself once the scenario is
over and judges its expectations, with the exit status a CI job reads; an event the
place cannot carry out (the hub's, behind a host's dongle) is a one-line refusal."""
from __future__ import annotations

import asyncio
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest
from zigpy_znp.zigbee.application import ControllerApplication

from bridge_emu import cli
from bridge_emu.dongle.attach import attach
from bridge_emu.dongle.rig import serve
from bridge_emu.dongle.router_rig import RouterDongleRig
from bridge_emu.emulator.zigbee_node import eui64
from bridge_emu.errors import BridgeEmuError
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.scenario import load_scenario
from support.paths import IMAGES
from support.zigpy_host import interviewed, zigpy_image, znp_config

pytestmark = pytest.mark.native
ROOT = pathlib.Path(__file__).resolve().parents[2]

# a B4 behind its B1, on a lossless link (zigpy's interview wants one: test_dongle_zigpy)
PREMISES = """
name = "site"
[[bridge]]
name = "b1"
type = "B1"
offer = "none"
[[bridge]]
name = "b4"
type = "B4"
parent = "b1"
offer = "OFFER"
link = { latency_ms = 5, jitter_ms = 1, loss = 0.0, throughput_kbps = 250 }
"""


def write_scenario(folder: pathlib.Path, body: str, offer: str = "none") -> pathlib.Path:
    """A scenario file around PREMISES, whose hub offers b4 `offer` (none: a host stack serves it)."""
    (folder / "site.toml").write_text(PREMISES.replace("OFFER", offer))
    path = folder / "scenario.toml"
    path.write_text('premises = "site.toml"\n' + body)
    return path


def test_zigpy_updates_a_bridge_through_the_dongle_while_the_scenario_cuts_its_link_and_its_power(tmp_path):
    images = ImageSet(IMAGES)
    new = images.entry("B4", "next")["version"]
    # the README's example, on a premises like ihd whose b4 link loses nothing
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- example: dongle-scenario .*?-->\n```toml\n(.*?)```", readme, re.S)
    assert found, "README has no dongle-scenario example"
    body = found.group(1)
    assert body.startswith('premises = "ihd"\n')
    scenario = load_scenario(write_scenario(tmp_path, body.removeprefix('premises = "ihd"\n')))
    assert scenario.expect["b4"]["outcome"] == "upgraded" and len(scenario.events) == 2

    async def main():
        urls: asyncio.Queue = asyncio.Queue()
        dongle = asyncio.create_task(serve(
            scenario.spec, images, "znp", listen="127.0.0.1:0", pty=False, run_dir=tmp_path / "rig", resume=False,
            allow_remote=False, announce=lambda line: urls.put_nowait(line.split()[-1]), warn=print, speed=8.0,
            scenario=scenario))
        url = await asyncio.wait_for(urls.get(), 10)
        app = ControllerApplication(znp_config(url))
        update = None
        try:
            await asyncio.wait_for(app.startup(auto_form=True), 30)
            await app.permit(60)
            ieee = eui64(scenario.spec.name, "b4")
            device = (await interviewed(app, [ieee]))[ieee]
            update = asyncio.create_task(device.update_firmware(
                zigpy_image(images.file("B4", "next").read_bytes()), lambda *progress: None))
            return await asyncio.wait_for(dongle, 240)        # the dongle stops once the scenario is over
        finally:
            if update is not None:
                update.cancel()                               # zigpy may still wait on its read-back
            dongle.cancel()
            await asyncio.wait_for(app.shutdown(), 10)

    result = asyncio.run(main())
    assert result.ok, result.failures
    assert [(a["bridge"], a["action"]) for a in result.applied] == [("b4", "outage_s"), ("b4", "power_cut")]
    b4 = next(r for r in result.rows if r["bridge"] == "b4")
    assert b4["outcome"] == "upgraded" and b4["version_after"].split("+")[0] == new
    # the cut came in the swap: the power went after the activation, and the bridge came back on the new image
    log = [json.loads(line) for line in (tmp_path / "rig" / "site" / "b4" / "events.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in log]
    after = log[kinds.index("activation"):]
    lost = next(i for i, e in enumerate(after) if e["event"] == "power_lost")
    assert not any(e["event"] == "boot" for e in after[:lost]), kinds      # before the new image's first boot
    boots = [e for e in after[lost:] if e["event"] == "boot"]
    assert boots and boots[-1]["version"].split("+")[0] == new
    assert any(e["event"] == "confirmed" and e["version"].split("+")[0] == new for e in after[lost:])


def test_the_dongle_command_judges_a_scenario_at_its_limit_and_exits_1(tmp_path):
    """No host connects: nothing updates the bridge, so at the scenario's limit (20 s of the
    premises' time, 0.4 s at --speed 50) the expectation is not met."""
    path = write_scenario(tmp_path, """
limit_s = 20
[expect.b4]
outcome = "upgraded"
""")
    proc = subprocess.run([sys.executable, "-m", "bridge_emu", "dongle", str(path), "--protocol", "znp", "--no-dir",
                           "--speed", "50", "--json"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 1, proc.stderr
    first, rest = proc.stdout.split("\n", 1)
    assert first.startswith("listening on socket://127.0.0.1:")
    [doc] = json.loads(rest)
    assert doc["ok"] is False and doc["scenario"] == "site"
    assert "b4: outcome 'no update', expected 'upgraded'" in proc.stderr
    assert "not met within 20 s" in proc.stderr


def test_what_a_dongle_cannot_carry_out_is_refused_in_one_line(tmp_path, capsys):
    hub = write_scenario(tmp_path, """
[[event]]
at_s = 10
hub_restart = true
""")
    assert cli.main(["dongle", str(hub), "--protocol", "znp", "--no-dir"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "event[1]: hub_restart: not possible on a premises behind a virtual dongle" in err
    other = write_scenario(tmp_path, """
[[event]]
at_s = 1
bridge = "b1"
power_off = true
""")
    assert cli.main(["attach", str(other), "--bridge", "b4", "--port", "socket://127.0.0.1:1", "--protocol", "znp",
                     "--no-dir"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "event[1].bridge: 'b1': a bridge attached through a dongle" in err


def test_an_attached_bridge_takes_its_update_through_a_scenario_of_cuts_and_an_outage(tmp_path):
    """attach against the router-role virtual dongle (test_attach_znp): the scenario cuts the
    attached bridge's power mid-download (it resumes from its flash) and drops its frames both
    ways for 5 s (the wall clock's: its block timeouts repeat them); attach ends by itself."""
    images = ImageSet(IMAGES)
    new = images.entry("B4", "next")["version"]
    scenario = load_scenario(write_scenario(tmp_path, f"""
name = "attached"
limit_s = 120
[[event]]
at_block = 400
bridge = "b4"
power_cut = {{ at_op = 1, tear = "bits" }}
[[event]]
at_block = 1200
bridge = "b4"
outage_s = 5
[expect.b4]
outcome = "upgraded"
version = "{new}"
alerts = ["0x8F72", "0x8F43"]
""", offer="next"))

    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        rig = RouterDongleRig(scenario.spec, images, link, "b4", speed=30.0)
        rig.start()
        try:
            started = time.monotonic()
            a = await asyncio.wait_for(attach(scenario.spec, images, "b4", link.url, "znp", tmp_path / "host",
                                              False, lambda line: None, lambda line: None, scenario=scenario), 150)
            return a, time.monotonic() - started
        finally:
            rig.stop()
            await asyncio.sleep(0.05)

    a, took = asyncio.run(main())
    assert a.result is not None and a.result.ok, (a.result and a.result.failures, a.bridge.stalled_at())
    assert took < scenario.limit_s                     # it ended because the scenario was over, not at the limit
    assert [x["action"] for x in a.result.applied] == ["power_cut", "outage_s"]
    starts = [e["offset"] for e in a.bridge.events if e["event"] == "download_started"]
    assert starts[0] == 0 and len(a.bridge.record.resumed_from) >= 1 and a.bridge.record.resumed_from[0] > 0
    assert a.transport.outage_dropped > 0              # the outage took frames


def test_a_router_dongle_scenario_acts_on_the_premises_hub_and_its_other_bridges(tmp_path):
    """--role router: the premises' own hub stays, so its actions are there; the bridge whose place
    the stick takes is the host's, not the scenario's. No host joins here: b1, offered nothing,
    settles on its own image, and the scenario ends once its events are in (not at its limit)."""
    from bridge_emu.dongle.router_rig import serve_router

    images = ImageSet(IMAGES)
    current = images.entry("B1", "current")["version"]
    scenario = load_scenario(write_scenario(tmp_path, f"""
limit_s = 600
[[event]]
at_s = 5
hub_restart = true
[[event]]
at_s = 8
bridge = "b1"
power_off = true
[expect.b1]
version = "{current}"
max_downtime_s = 10
""", offer="next"))

    async def main(scenario):
        return await asyncio.wait_for(serve_router(
            scenario.spec, images, "b4", listen="127.0.0.1:0", pty=False, run_dir=None, resume=False,
            allow_remote=False, announce=lambda line: None, warn=print, speed=20.0, scenario=scenario), 30)

    result = asyncio.run(main(scenario))
    assert result.ok, result.failures
    assert [(a["t"], a["bridge"], a["action"]) for a in result.applied] == [
        (5.0, None, "hub_restart"), (8.0, "b1", "power_off")]
    b1 = next(r for r in result.rows if r["bridge"] == "b1")
    assert 0 < b1["downtime_s"] <= 10 and [r["bridge"] for r in result.rows] == ["b1"]   # b4 is the host's

    bad = load_scenario(write_scenario(tmp_path, """
[[event]]
at_s = 1
bridge = "b4"
power_off = true
"""))
    refusal = r"event\[1\]\.bridge: 'b4': the premises around the dongle in b4's place runs b1 only"
    with pytest.raises(BridgeEmuError, match=refusal) as e:
        asyncio.run(main(bad))
    assert "\n" not in str(e.value)


def test_a_virtual_dongle_in_a_users_test_runs_a_scenario_to_its_verdict(tmp_path):
    from bridge_emu.testing.dongle import VirtualDongle

    path = write_scenario(tmp_path, """
limit_s = 20
[[event]]
at_s = 2
bridge = "b4"
power_off = true
[expect.b4]
outcome = "upgraded"
""")
    with VirtualDongle(path, protocol="ezsp", speed=50, run_dir=tmp_path / "rig") as dongle:
        assert dongle.url.startswith("socket://127.0.0.1:")
        result = dongle.wait(30)
    assert result is not None and not result.ok                  # nobody served b4 within its 20 s
    assert [a["action"] for a in result.applied] == ["power_off"]
    assert any("not met within 20 s" in f for f in result.failures)
    assert any(e["event"] == "power_lost" for e in dongle.events("b4"))
    assert (tmp_path / "rig" / "site" / "b4" / "flash.bemu").is_file()
