"""zigbee-herdsman, unmodified (the stack behind zigbee2mqtt, its `zstack` adapter),
against `bridge-emu dongle --protocol znp` run as a user runs both: the dongle as a
subprocess listening on 127.0.0.1, herdsman in Node.js on `tcp://127.0.0.1:PORT`
(tests/peers/herdsman/run.mjs, herdsman pinned by its package-lock.json; `make test`
installs it with `npm ci`).

Herdsman probes the stick (SYS.Ping, SYS.Version), tells its NV alignment from
ZCD_NV_NWKKEY, finds no network, clears the stick (startup option 3, reset), writes
its network settings, forms by BDB commissioning, checks the PAN id with
ZDO.ExtNwkInfo, registers its endpoints and its Green Power group, backs the stick
up and permits joining; every bridge joins and passes herdsman's interview (node
descriptor, active endpoints, simple descriptor, Basic reads), which waits on the MT
ZDO callbacks (ZDO.NodeDescRsp, ActiveEpRsp, SimpleDescRsp), not ZDO.MsgCbIncoming.

The premises is built-in both-apart-battery (B1, the sleepy B3 and B4 behind it) with
its bridge-to-bridge links made loss-free: herdsman retries a lost ZDO or ZCL request,
but only after its 10 s timeout, which would make the wall time depend on luck.

The slow test drives herdsman's own OTA server (Device.updateOta) with the B4 image:
herdsman parses the GBCS file as it is (its parser accepts the body), serves the
blocks, answers the Upgrade End Request (current time 0, upgrade time 1); the bridge
activates a second later, reboots into the image and confirms once its next query is
answered, as run.mjs answers it (what zigbee2mqtt's OTA extension does: NO_IMAGE_AVAILABLE)."""
from __future__ import annotations

import contextlib
import importlib.resources
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest

from bridge_emu.codec.firmware import manifest_from_image
from bridge_emu.core.device import Device
from bridge_emu.emulator.zigbee_node import eui64
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.schema import load_premises, resolve
from support.paths import IMAGES

pytestmark = pytest.mark.native
ROOT = pathlib.Path(__file__).resolve().parents[2]
PEER = ROOT / "tests" / "peers" / "herdsman"
NODE = shutil.which("node")
PAN_ID, EXTENDED_PAN_ID, CHANNEL = 0x1A62, "0xddee112233445566", 15        # what run.mjs configures
HERDSMAN_TIMEOUT_S = 45          # run.mjs gives up (and says so) after this
PROCESS_TIMEOUT_S = 90           # and this process after that


def pinned_herdsman() -> str:
    """The zigbee-herdsman version package.json pins, after checking `npm ci` installed that one."""
    pinned = json.loads((PEER / "package.json").read_text())["dependencies"]["zigbee-herdsman"]
    installed = PEER / "node_modules" / "zigbee-herdsman" / "package.json"
    assert NODE is not None, "node is not on PATH (zigbee-herdsman needs Node.js 20+)"
    assert installed.is_file(), f"zigbee-herdsman is not installed: run `npm ci --prefix {PEER.relative_to(ROOT)}`"
    assert json.loads(installed.read_text())["version"] == pinned, "node_modules is stale: run `npm ci` again"
    return pinned


def loss_free(builtin: str, out: pathlib.Path) -> pathlib.Path:
    """A built-in premises file with its bridge-to-bridge links made loss-free (see the module docstring)."""
    text = (importlib.resources.files("bridge_emu.premises.builtin") / f"{builtin}.toml").read_text()
    assert "loss = 0.01" in text
    out.write_text(text.replace("loss = 0.01", "loss = 0.0"))
    assert all(b.link.get("loss", 0.0) == 0.0 for b in load_premises(out).bridges if b.parent)
    return out


@contextlib.contextmanager
def dongle(premises: str, run_dir: pathlib.Path, *extra: str):
    """`bridge-emu dongle PREMISES --protocol znp` as a subprocess; yields its tcp:// URL; SIGTERM ends it (exit 0)."""
    proc = subprocess.Popen([sys.executable, "-m", "bridge_emu.cli", "dongle", premises, "--protocol", "znp",
                             "--listen", "127.0.0.1:0", "--dir", str(run_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    clean = False
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on socket://127.0.0.1:"), first
        yield "tcp://" + first.removeprefix("listening on socket://")
        clean = True
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        if clean:
            assert rc == 0, err


def herdsman(url: str, state_dir: pathlib.Path, expect: int, *extra: str) -> tuple[int, list[dict], str]:
    """run.mjs against the dongle: (exit code, its JSON events, the tail of herdsman's log)."""
    done = subprocess.run([NODE, str(PEER / "run.mjs"), "--url", url, "--dir", str(state_dir), "--expect",
                           str(expect), "--timeout", str(HERDSMAN_TIMEOUT_S), *extra],
                          cwd=PEER, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, events, done.stderr[-3000:]


def by_event(events: list[dict], name: str) -> list[dict]:
    return [e for e in events if e["event"] == name]


def test_herdsman_forms_a_network_and_every_bridge_joins_and_passes_its_interview(tmp_path):
    pinned_herdsman()
    premises = loss_free("both-apart-battery", tmp_path / "premises.toml")
    spec = resolve(str(premises))
    want = {f"0x{eui64(spec.name, b.name):016x}": b for b in spec.bridges}
    with dongle(str(premises), tmp_path / "rig") as url:
        rc, events, log = herdsman(url, tmp_path / "herdsman", len(want))
    assert rc == 0 and events and events[-1]["event"] == "done", (events[-3:], log)

    (started,) = by_event(events, "started")
    assert started["result"] == "reset"                          # a fresh stick: herdsman formed its network
    assert started["coordinator"] == f"0x{eui64(spec.name, 'dongle-znp'):016x}"
    assert started["version"]["type"] == "ZStack3x0" and started["version"]["meta"]["revision"] == 20230507
    assert started["network"] == {"panID": PAN_ID, "extendedPanID": EXTENDED_PAN_ID, "channel": CHANNEL,
                                  "nwkUpdateID": 0}
    assert {e["ieee"] for e in by_event(events, "joined")} == set(want)

    interviews = {e["ieee"]: e for e in by_event(events, "interview")}
    assert set(interviews) == set(want), (sorted(interviews), sorted(want))
    for ieee, seen in interviews.items():
        bridge = want[ieee]
        assert seen["status"] == "successful", seen
        assert (seen["modelID"], seen["manufacturerName"]) == (f"ALT-HAN-{bridge.type}", "bridge-emu")
        sleepy = bridge.type == "B3"
        assert seen["type"] == ("EndDevice" if sleepy else "Router")
        assert seen["powerSource"] == ("Battery" if sleepy else "Mains (single phase)")
        (endpoint,) = seen["endpoints"]
        assert endpoint["id"] == 1 and endpoint["profile"] == 0x0104
        assert 0x0019 in endpoint["outputClusters"] and 0x0000 in endpoint["inputClusters"]

    # herdsman's coordinator backup of the stick (Z-Stack NV read back): the network it formed
    backup = json.loads((tmp_path / "herdsman" / "coordinator_backup.json").read_text())
    assert backup["metadata"]["format"] == "zigpy/open-coordinator-backup"
    assert backup["pan_id"] == f"{PAN_ID:04x}" and backup["channel"] == CHANNEL
    assert backup["network_key"]["key"] == "01030507090b0d0f00020406080a0c0d"
    assert {d["ieee_address"] for d in backup["devices"]} == {ieee.removeprefix("0x") for ieee in want}
    assert (tmp_path / "rig" / spec.name / "dongle-znp.json").exists()          # the dongle kept its NV


def boot_the_flash_file(path: pathlib.Path) -> tuple[str, bool]:
    """(version, confirmed) of the image the bootloader starts from the bridge's flash file (read-only)."""
    device = Device.open(path, read_only=True)
    try:
        res = device.boot()
        return str(manifest_from_image(device.running_image()).version), res.confirmed
    finally:
        device.close()


def wait_for_event(log: pathlib.Path, kind: str, version: str, timeout_s: float) -> dict:
    """The first record of that kind and version in a bridge's events.jsonl, waiting for it while the dongle runs:
    herdsman exits as soon as it has sent its answer, which the bridge may not yet have had."""
    deadline = time.monotonic() + timeout_s
    while True:
        if log.exists():
            for line in log.read_text().splitlines():
                rec = json.loads(line) if line.endswith("}") else {}       # the last line may be half written
                if rec.get("event") == kind and str(rec.get("version", "")).split("+")[0] == version:
                    return rec
        assert time.monotonic() < deadline, f"no {kind!r} {version} event in {log} after {timeout_s} s"
        time.sleep(0.1)


@pytest.mark.slow
def test_herdsman_updates_a_b4_over_ota_and_the_bridge_confirms_the_new_image(tmp_path):
    pinned_herdsman()
    spec = resolve("ihd")                                # b1 and b4, mains
    ieee = f"0x{eui64(spec.name, 'b4'):016x}"
    image = ImageSet(IMAGES).file("B4", "next")
    # the premises at 30 times the wall clock: the bridge's radio model is not what is measured here
    with dongle("ihd", tmp_path / "rig", "--speed", "30") as url:
        rc, events, log = herdsman(url, tmp_path / "herdsman", len(spec.bridges), "--ota", f"{ieee}={image}")
        assert rc == 0 and events[-1]["event"] == "done", (events[-3:], log)
        # the answer to its query reaches the bridge after herdsman has gone: then it confirms
        wait_for_event(tmp_path / "rig" / spec.name / "b4" / "events.jsonl", "confirmed", "1.1.0", 20)
    assert [e["progress"] for e in by_event(events, "ota_progress")][-1] == 100     # the Upgrade End was answered
    queries = by_event(events, "ota_query")
    want_version = int.from_bytes(image.read_bytes()[14:18], "little")              # the OTA header's file version
    assert queries and queries[-1]["fileVersion"] == want_version                   # the bridge runs the new image
    version, confirmed = boot_the_flash_file(tmp_path / "rig" / spec.name / "b4" / "flash.bemu")
    assert version.split("+")[0] == "1.1.0" and confirmed
