"""Premises end to end on virtual time: a Communications Hub and Alt HAN
bridges B1-B4 on the simulated network, through the GBCS flow (download,
verification alerts, CS06 activation, trial boot, confirm or rollback), with
faulty and tampered images, power cuts in the download and in the swap, the
self-activating route, future-dated activation, the event log and premises
file errors. Every run is seeded; nothing here measures wall-clock time."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import shutil

import pytest

from bridge_emu.codec import gbcs
from bridge_emu.codec import ota_file as ota
from bridge_emu.codec.zcl import Status
from bridge_emu.core.device import Device
from bridge_emu.emulator.hub import HUB, signed
from bridge_emu.emulator.profiles import ProfileError, profile
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.report import bridge_rows
from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.schema import (
    BridgeSpec,
    PremisesError,
    PremisesSpec,
    builtin_premises,
    load_premises,
    parse_premises,
)
from support.paths import IMAGES

pytestmark = pytest.mark.native

LIMIT_S = 4 * 3600.0
REMOTE_LINK = {"latency_ms": 20, "jitter_ms": 5, "loss": 0.01, "throughput_kbps": 100, "payload_limit": 82}


# ------------------------------------------------------------------ helpers


@pytest.fixture(scope="module")
def images() -> ImageSet:
    return ImageSet(IMAGES)


def bootable(images: ImageSet, bridge_type: str, role: str) -> bytes:
    """The manufacturer image of a committed file: the bootable image a bridge runs."""
    data = images.file(bridge_type, role).read_bytes()
    return ota.read_strict(data, ota.BodyKind.GBCS).body.manufacturer_image


def release(version: str) -> str:
    """'1.1.0+0' -> '1.1.0' (the build number is not part of a release's name)."""
    return version.split("+", 1)[0]


def premises(*bridges: BridgeSpec, hub: dict | None = None, seed: int = 3, name: str = "test") -> PremisesSpec:
    return PremisesSpec(name, "", tuple(bridges), dict(hub or {"personality": "gbcs-ch", "activation": "immediate"}),
                        seed)


def remote(name: str, bridge_type: str, offer: str = "next", **kw) -> BridgeSpec:
    return BridgeSpec(name, bridge_type, parent="b1", offer=offer, link=dict(kw.pop("link", REMOTE_LINK)), **kw)


def settle(run: PremisesRun, limit_s: float = LIMIT_S) -> None:
    assert run.run(limit_s=limit_s), [(r["bridge"], r["outcome"]) for r in bridge_rows(run)]


def continue_until_settled(run: PremisesRun, limit_s: float = LIMIT_S) -> bool:
    """Advance a started run (run() would power the bridges on again) until every bridge settles."""
    t = run.clock.now()
    while t < limit_s:
        t += 10.0
        run.step(t)
        if run.done():
            return True
    return False


def rows(run: PremisesRun) -> dict[str, dict]:
    return {r["bridge"]: r for r in bridge_rows(run)}


def slot(run: PremisesRun, name: str):
    return next(s for s in run.slots if s.spec.name == name)


def events(bridge, kind: str) -> list[dict]:
    return [e for e in bridge.events if e["event"] == kind]


def alert_data(bridge, code: str) -> list[bytes]:
    return [bytes.fromhex(e["data"]) for e in bridge.events if e["event"] == "alert" and e["code"] == code]


def version_bytes(version: str) -> bytes:
    major, minor, revision = (int(x) for x in release(version).split("."))
    return (major << 24 | minor << 16 | revision).to_bytes(4, "little")


def send_cs06(run: PremisesRun, address: int, image_hash: bytes, counter: int, execution_time: int = 0) -> None:
    """A CS06 Activate Firmware from the hub, over the network."""
    cmd = signed(gbcs.ActivateFirmware(counter, image_hash, execution_time), run.images.supplier_signer, address)
    for frame in gbcs.frames(cmd):
        run.hub_driver.transport.send(address, gbcs.GBCS_CLUSTER, frame)


# ------------------------------------------------------------------ built-in premises


@pytest.fixture(scope="module")
def builtin_runs(images) -> dict[str, PremisesRun]:
    out = {}
    for name, spec in builtin_premises().items():
        run = PremisesRun(spec, images)
        settle(run)
        out[name] = run
    return out


def test_every_builtin_premises_upgrades_every_bridge(builtin_runs, images):
    assert len(builtin_runs) == 7
    seen_types = set()
    for name, run in builtin_runs.items():
        for s in run.slots:
            r = rows(run)[s.spec.name]
            b = s.bridge
            seen_types.add(s.spec.type)
            assert run.settled(s), (name, s.spec.name)
            assert release(r["version_before"]) == "1.0.0" and release(r["version_after"]) == "1.1.0", (name, r)
            assert r["outcome"] == "upgraded" and r["alerts"] == ["0x8F72", "0x8F43"], (name, r)
            assert b.confirmed and b.phase == "running" and b.device.state.state == "confirmed"
            new = bootable(images, s.spec.type, "next")
            assert b.device.running_image() == new
            # 0x8F72 carries the manufacturer image hash; 0x8F43 the new running version
            assert alert_data(b, "0x8F72") == [hashlib.sha256(new).digest()]
            assert alert_data(b, "0x8F43") == [version_bytes("1.1.0")]
            # one download, one CS06 answered SUCCESS, one trial boot that installed
            assert len(events(b, "download_started")) == 1 and not r["resumed_from"]
            assert [e["outcome"] for e in events(b, "activation")] == ["SUCCESS"]
            assert [e["actions"] for e in events(b, "boot")] == [[], ["installed"]]
            assert run.hub.outcomes[s.address] == gbcs.Outcome.SUCCESS
            size = images.index[f"{s.spec.type}/next"]["bytes"]
            assert size <= r["bytes"] < 1.2 * size   # retries after link losses only
    assert seen_types == {"B1", "B2", "B3", "B4"}


def test_copy_swap_erases_and_bank_switch_is_down_briefly(builtin_runs):
    compared = 0
    for name, run in builtin_runs.items():
        by_mode: dict[str, list[dict]] = {"copy-swap": [], "bank-switch": []}
        for s in run.slots:
            by_mode[s.bridge.profile.mode].append(rows(run)[s.spec.name])
        for r in by_mode["copy-swap"]:
            assert r["flash_erases"] > 0 and r["downtime_s"] > 0, (name, r)
        for r in by_mode["bank-switch"]:
            assert 0 < r["downtime_s"], (name, r)
            for c in by_mode["copy-swap"]:
                assert r["downtime_s"] < c["downtime_s"], (name, r, c)
                compared += 1
    assert compared >= 4   # every premises with a B2 or B3 has a copy-swap B1 to compare with


def test_battery_bridge_reports_energy_and_polls(builtin_runs):
    for name, run in builtin_runs.items():
        for r in rows(run).values():
            if r["type"] == "B3":
                assert r["energy_mJ"] > 0 and r["polls"] > 0, (name, r)
            else:
                assert "energy_mJ" not in r and "polls" not in r


# ------------------------------------------------------------------ a faulty image rolls back


FAULT_EVENT = {"B1": "self_test_failed", "B2": "firmware_crashed", "B3": "prove_timeout", "B4": "self_test_failed"}


@pytest.mark.parametrize("bridge_type", ["B1", "B2", "B3", "B4"])
def test_faulty_image_rolls_back_and_is_not_offered_again(images, bridge, bridge_type):
    site = bridge(bridge_type, offer="faulty", seed=3, link=REMOTE_LINK)   # the plugin's fixture (behind a B1)
    assert site.run_until_settled(LIMIT_S), site.report()
    run = site.run
    s = site.slot(bridge_type.lower())
    b, r = s.bridge, rows(run)[s.spec.name]
    assert r["offered"] == "faulty 1.1.1"
    assert release(r["version_after"]) == "1.0.0" and r["outcome"] == "rolled back", r
    assert b.device.running_image() == bootable(images, bridge_type, "current")
    assert b.confirmed and b.device.state.state == "confirmed"
    assert events(b, FAULT_EVENT[bridge_type])
    assert [e["actions"] for e in events(b, "boot")] == [[], ["installed"], ["reverted"]]
    assert r["alerts"] == ["0x8F72", "0x8F43", "0x8F43"]
    assert alert_data(b, "0x8F43") == [version_bytes("1.1.1"), version_bytes("1.0.0")]
    # the hub stops offering it: later queries are answered "no image", nothing is downloaded again
    run.step(run.clock.now() + 3 * b.cfg.query_interval_s)
    assert len(events(b, "download_started")) == 1
    assert run.server.overrides[s.address] is None
    queries = [e for e in run.server.events if e[0] == "query" and e[1] == s.address]
    assert len(queries) >= 3 and queries[-1][2] is None
    assert b.device.running_image() == bootable(images, bridge_type, "current") and b.confirmed
    assert run.settled(s)


# ------------------------------------------------------------------ power cut in the download


def watch_cuts(run: PremisesRun) -> dict[str, int]:
    """Bridge name -> the offset its download had reached when the power went."""
    seen: dict[str, int] = {}
    for s in run.slots:
        b = s.bridge
        down = b._down

        def on_down(now, why, b=b, down=down):
            if b.client is not None and b.client.size and b.name not in seen:
                seen[b.name] = b.client.offset
            down(now, why)
        b._down = on_down
    return seen


@pytest.mark.parametrize("name", ["both-apart-battery", "both-apart-mains"])
def test_power_cut_mid_download_resumes_from_the_saved_offset(images, name):
    spec = builtin_premises()[name]
    spec = dataclasses.replace(spec, bridges=tuple(
        dataclasses.replace(b, power_cut={"at_fraction": 0.5}) for b in spec.bridges))
    run = PremisesRun(spec, images)
    cut_at = watch_cuts(run)
    settle(run)
    for s in run.slots:
        b, r = s.bridge, rows(run)[s.spec.name]
        size = images.index[f"{s.spec.type}/next"]["bytes"]
        assert s.cut_done and len(events(b, "power_lost")) == 1
        assert cut_at[s.spec.name] >= 0.5 * size
        geo = b.profile.geometry
        # what a resume may redo: the page the cut tore; on ECC flash the sector
        # it tore (a torn unit cannot be programmed again before an erase)
        redo = max(reg.size for reg in geo.regions) if geo.ecc else geo.page_size
        assert len(r["resumed_from"]) == 1, r
        resumed = r["resumed_from"][0]
        assert 0 < resumed <= cut_at[s.spec.name]
        assert resumed >= cut_at[s.spec.name] - redo, (s.spec.name, resumed, cut_at[s.spec.name], redo)
        started = events(b, "download_started")
        assert [e["offset"] for e in started] == [0, resumed]
        # the image that runs is exactly the offered one
        assert b.device.running_image() == bootable(images, s.spec.type, "next")
        assert r["outcome"] == "upgraded" and r["alerts"] == ["0x8F72", "0x8F43"] and b.confirmed


# ------------------------------------------------------------------ power cut in the swap


def to_activation(images, bridge_type: str):
    """A one-bridge premises driven to the instant the bridge took the CS06
    (the reboot that swaps is 50 ms away)."""
    spec = premises(BridgeSpec("b1", bridge_type), seed=5)
    run = PremisesRun(spec, images)
    b = run.slots[0].bridge
    run.start()
    def took():
        return bool(b.events) and b.events[-1]["event"] == "activation" and b.events[-1]["outcome"] == "SUCCESS"
    assert run.net.scheduler.run(took, limit=LIMIT_S)
    return run, b


def swap_ops(images, bridge_type: str) -> int:
    """Flash writes and erases of the boot that installs the new image."""
    run, b = to_activation(images, bridge_type)
    stats = b.device.flash.stats
    before = stats["writes"] + stats["erases"]
    n = len(b.events)
    assert run.net.scheduler.run(lambda: any(e["event"] == "boot" for e in b.events[n:]), limit=LIMIT_S)
    assert events(b, "boot")[-1]["actions"] == ["installed"]
    stats = b.device.flash.stats
    return stats["writes"] + stats["erases"] - before


@pytest.mark.parametrize("bridge_type", ["B1", "B2", "B3", "B4"])
def test_power_cut_mid_activation_leaves_old_or_new_never_neither(images, bridge_type):
    old, new = bootable(images, bridge_type, "current"), bootable(images, bridge_type, "next")
    n = swap_ops(images, bridge_type)
    assert n >= 1
    # spread over the swap, plus the first operations after it (the confirmation)
    ks = sorted({1, 2, n // 5, 2 * n // 5, 3 * n // 5, 4 * n // 5, n - 1, n, n + 1, n + 2} - {0})
    seen = {}
    for i, k in enumerate(ks):
        run, b = to_activation(images, bridge_type)
        tear = ("none", "bits")[i % 2]
        b.cut_power_at_op(k, tear, seed=k)
        assert continue_until_settled(run), (k, tear, b.record.outcome)
        assert len(events(b, "power_lost")) == 1, (k, tear)   # the cut did happen
        running = b.device.running_image()
        assert running in (old, new), (k, tear)
        assert b.confirmed and b.device.state.state == "confirmed" and b.phase == "running"
        r = rows(run)["b1"]
        if running == new:
            assert release(r["version_after"]) == "1.1.0" and r["outcome"] == "upgraded", (k, r)
        else:
            assert release(r["version_after"]) == "1.0.0" and r["outcome"] == "rolled back", (k, r)
        seen[k] = "new" if running == new else "old"
    # a cut anywhere in the swap itself finishes the swap: the new image then proves itself
    assert all(seen[k] == "new" for k in ks if k < n), seen


# ------------------------------------------------------------------ self-activating route


@pytest.mark.parametrize("personality", ["zigpy", "herdsman"])
def test_self_activating_route_activates_from_the_upgrade_end_response(images, personality):
    spec = dataclasses.replace(builtin_premises()["ihd"], hub={"personality": personality, "activation": "none"})
    run = PremisesRun(spec, images)
    settle(run)
    assert not [e for e in run.hub_log if e["event"] == "cs06_response"]
    for s in run.slots:
        b, r = s.bridge, rows(run)[s.spec.name]
        assert not events(b, "cs06")
        assert r["outcome"] == "upgraded" and release(r["version_after"]) == "1.1.0"
        assert r["alerts"] == ["0x8F72", "0x8F43"]
        assert [e["outcome"] for e in events(b, "activation")] == ["SUCCESS"]
        assert run.server.clients[s.address].upgrade_end_status == Status.SUCCESS
        scheduled = events(b, "upgrade_scheduled")
        if personality == "zigpy":      # upgrade_time 0, current_time 0: now
            assert not scheduled
        else:                           # upgrade_time 1, current_time 0: in a second
            assert len(scheduled) == 1
            act = events(b, "activation")[0]["t"]
            assert act == pytest.approx(scheduled[0]["at"]) and scheduled[0]["at"] - scheduled[0]["t"] == (
                pytest.approx(1.0))
        assert b.device.running_image() == bootable(images, s.spec.type, "next")


@pytest.mark.parametrize("personality, bridge_type", [("zigpy", "B1"), ("zigpy", "B2"), ("zigpy", "B3"),
                                                      ("zigpy", "B4"), ("herdsman", "B4")])
def test_self_activating_route_does_not_push_a_rolled_back_image_again(images, personality, bridge_type):
    """The rolled-back bridge's 0x8F43 alerts and its next query leave together;
    over the remote link the query may arrive first (zigpy/B4 with this seed)."""
    hub = {"personality": personality, "activation": "none"}
    if bridge_type == "B1":
        spec = premises(BridgeSpec("b1", "B1", offer="faulty"), hub=hub)
    else:
        spec = premises(BridgeSpec("b1", "B1", offer="none"), remote("bx", bridge_type, offer="faulty"), hub=hub)
    run = PremisesRun(spec, images)
    settle(run)
    s = run.slots[-1]
    b = s.bridge
    run.step(run.clock.now() + 3 * b.cfg.query_interval_s)
    assert b.record.outcome == "rolled back" and release(b.record.version_after) == "1.0.0"
    assert b.device.running_image() == bootable(images, bridge_type, "current") and b.confirmed
    assert len(events(b, "download_started")) == 1
    assert b.record.alerts == ["0x8F72", "0x8F43", "0x8F43"]
    assert run.server.overrides[s.address] is None


# ------------------------------------------------------------------ future-dated CS06


def test_future_dated_cs06_is_accepted_then_activates_and_raises_0x00ca(images):
    spec = dataclasses.replace(builtin_premises()["ihd"], hub={"personality": "gbcs-ch", "activation": "future:120"})
    run = PremisesRun(spec, images)
    settle(run)
    for s in run.slots:
        b, r = s.bridge, rows(run)[s.spec.name]
        assert run.hub.outcomes[s.address] == gbcs.Outcome.ACCEPTED
        (cs06,) = events(b, "cs06")
        assert cs06["execution_time"] > 0
        (act,) = events(b, "activation")
        assert act["outcome"] == "SUCCESS"
        assert act["t"] - cs06["t"] == pytest.approx(120.0, abs=1.5)
        assert alert_data(b, "0x00CA") == [bytes([gbcs.Outcome.SUCCESS])]
        assert "0x00CA" in [e["code"] for e in run.hub_log if e["from"] == s.address and e["event"] == "alert"]
        assert r["outcome"] == "upgraded" and release(r["version_after"]) == "1.1.0"
        assert sorted(r["alerts"]) == sorted(["0x8F72", "0x00CA", "0x8F43"]) and r["alerts"][0] == "0x8F72"


# ------------------------------------------------------------------ CS06 outcomes


def test_cs06_outcomes_no_image_held_hash_mismatch_then_success(images):
    quiet = dict(REMOTE_LINK, loss=0.0)
    spec = premises(BridgeSpec("b1", "B1"), remote("b4", "B4", offer="none", link=quiet),
                    hub={"personality": "gbcs-ch", "activation": "none"})
    run = PremisesRun(spec, images)
    b1, b4 = slot(run, "b1"), slot(run, "b4")
    run.start()
    run.step(20.0)
    assert b1.bridge.client.size and 0 < b1.bridge.client.offset < b1.bridge.client.size
    good = hashlib.sha256(bootable(images, "B1", "next")).digest()
    # a bridge with nothing downloaded, and one in the middle of a download, hold no image
    send_cs06(run, b4.address, good, 0x5001)
    send_cs06(run, b1.address, good, 0x5002)
    run.step(25.0)
    assert run.hub.outcomes[b4.address] == gbcs.Outcome.NO_IMAGE_HELD
    assert run.hub.outcomes[b1.address] == gbcs.Outcome.NO_IMAGE_HELD
    # the download completes and verifies; with activation "none" the hub sends no CS06 and the bridge waits
    run.net.scheduler.run(lambda: bool(events(b1.bridge, "waiting_for_activation")), limit=LIMIT_S)
    assert alert_data(b1.bridge, "0x8F72") == [good]
    assert len(events(b1.bridge, "cs06")) == 1 and b1.bridge.device.state.state == "downloading"
    wrong = bytes(32 - 1) + b"\x01"
    send_cs06(run, b1.address, wrong, 0x5003)
    run.step(run.clock.now() + 5.0)
    assert run.hub.outcomes[b1.address] == gbcs.Outcome.HASH_MISMATCH
    assert [e["outcome"] for e in events(b1.bridge, "activation")][-1] == "HASH_MISMATCH"
    assert b1.bridge.phase == "running" and release(b1.bridge.record.version_after) == "1.0.0"
    assert b1.bridge.device.state.state == "downloading"   # the image is still held, not pending
    send_cs06(run, b1.address, good, 0x5004)
    assert continue_until_settled(run)
    assert run.hub.outcomes[b1.address] == gbcs.Outcome.SUCCESS
    r = rows(run)
    assert r["b1"]["outcome"] == "upgraded" and release(r["b1"]["version_after"]) == "1.1.0"
    assert b1.bridge.device.running_image() == bootable(images, "B1", "next")
    assert r["b4"]["outcome"] == "no update" and release(r["b4"]["version_after"]) == "1.0.0"


def test_cs06_to_the_bridge_directly(images):
    """The same outcomes through Bridge.receive, with the response read off the bridge."""
    spec = premises(BridgeSpec("b1", "B1", offer="none"))
    run = PremisesRun(spec, images)
    run.start()
    run.step(10.0)
    b = run.slots[0].bridge
    assert b.phase == "running"
    b.pop_outgoing()
    cmd = signed(gbcs.ActivateFirmware(0x77, bytes(32), 0, sequence=9), images.supplier_signer, b.address)
    for frame in gbcs.frames(cmd):
        b.receive(HUB, gbcs.GBCS_CLUSTER, frame, run.clock.now())
    (dst, cluster, payload), = [o for o in b.pop_outgoing() if o[1] == gbcs.GBCS_CLUSTER]
    rsp = gbcs.decode(payload)
    assert (dst, cluster) == (HUB, gbcs.GBCS_CLUSTER)
    assert isinstance(rsp, gbcs.ActivateResponse)
    assert (rsp.originator_counter, rsp.outcome, rsp.sequence) == (0x77, gbcs.Outcome.NO_IMAGE_HELD, 9)
    assert rsp.running_version == 0x01000000
    # a CS06 from anyone but the hub is ignored
    b.receive(0x0042, gbcs.GBCS_CLUSTER, gbcs.encode(cmd), run.clock.now())
    assert not b.pop_outgoing()


# ------------------------------------------------------------------ a tampered image


@pytest.mark.parametrize("bridge_type", ["B1", "B3"])
def test_tampered_image_is_refused_and_discarded(images, tmp_path, bridge_type):
    copy = tmp_path / "images"
    shutil.copytree(IMAGES, copy)
    target = copy / images.index[f"{bridge_type}/next"]["file"]
    data = bytearray(target.read_bytes())
    span = ota.read_strict(bytes(data), ota.BodyKind.GBCS).layout().manufacturer_image
    data[span.offset + span.length // 2] ^= 0x40
    target.write_bytes(bytes(data))
    tampered = ImageSet(copy)
    if bridge_type == "B1":
        spec = premises(BridgeSpec("b1", "B1"))
    else:
        spec = premises(BridgeSpec("b1", "B1", offer="none"), remote("bx", bridge_type))
    run = PremisesRun(spec, tampered)
    s = run.slots[-1]
    b = s.bridge
    run.start()
    assert run.net.scheduler.run(lambda: bool(events(b, "verification_failed")), limit=LIMIT_S)
    run.step(run.clock.now() + 30.0)
    assert b.record.alerts == ["0x8F1C"]
    (reason,) = alert_data(b, "0x8F1C")
    assert reason.decode().startswith("BE_ERR_")
    assert run.server.clients[s.address].upgrade_end_status == Status.INVALID_IMAGE
    assert ("upgrade_end", s.address, Status.INVALID_IMAGE) in [e[:3] for e in run.server.events]
    assert not [e for e in run.hub_log if e["event"] == "cs06_response"]
    # discarded: the slot holds nothing; the bridge runs its old image, confirmed
    assert b.device.state.state == "confirmed"
    assert b.phase == "running" and b.confirmed and release(b.record.version_after) == "1.0.0"
    assert b.device.running_image() == bootable(images, bridge_type, "current")
    assert not events(b, "activation") and [e["actions"] for e in events(b, "boot")] == [[]]


# ------------------------------------------------------------------ the event log


def test_event_log_is_json_lines_next_to_the_flash_file(images, tmp_path):
    run = PremisesRun(builtin_premises()["gsme-battery"], images, run_dir=tmp_path)
    settle(run)
    for s in run.slots:
        folder = tmp_path / s.spec.name
        assert (folder / "flash.bemu").is_file()
        lines = (folder / "events.jsonl").read_text().splitlines()
        logged = [json.loads(line) for line in lines]
        assert logged == s.bridge.events
        assert all(e["bridge"] == s.spec.name and isinstance(e["t"], (int, float)) for e in logged)
        assert [e["t"] for e in logged] == sorted(e["t"] for e in logged)
        kinds = [e["event"] for e in logged]
        for kind in ("boot", "joined", "download_started", "verified", "alert", "cs06", "activation",
                     "reset", "confirmed"):
            assert kind in kinds, (s.spec.name, kind)
        assert [e["code"] for e in logged if e["event"] == "alert"] == ["0x8F72", "0x8F43"]
        assert kinds.index("verified") < kinds.index("cs06") < kinds.index("reset") < kinds.index("confirmed")
    r = rows(run)
    assert r["b3"]["energy_mJ"] > 0 and r["b3"]["polls"] > 0
    # the flash file holds the device: the new image, confirmed
    for s in run.slots:
        s.bridge.device.flash.close()
        dev = Device.open(tmp_path / s.spec.name / "flash.bemu")
        try:
            assert dev.state.state == "confirmed"
            dev.boot()
            assert dev.running_image() == bootable(images, s.spec.type, "next")
        finally:
            dev.close()


# ------------------------------------------------------------------ premises files


GOOD = """
name = "p"
[hub]
personality = "gbcs-ch"
activation = "immediate"
[[bridge]]
name = "b1"
type = "B1"
[[bridge]]
name = "b2"
type = "B2"
parent = "b1"
offer = "faulty"
link = { latency_ms = 20, jitter_ms = 5, loss = 0.01, throughput_kbps = 100, payload_limit = 82 }
power_cut = { at_fraction = 0.5 }
"""


def bridge(name: str, bridge_type: str, extra: str = "") -> str:
    return f'[[bridge]]\nname = "{name}"\ntype = "{bridge_type}"\n{extra}'


BAD = {
    "unknown-type": 'name = "p"\n' + bridge("b1", "B9"),
    "type-not-a-string": 'name = "p"\n' + bridge("b1", "B1").replace('"B1"', "1"),
    "duplicate-names": 'name = "p"\n' + bridge("b1", "B1") + bridge("b1", "B2", 'parent = "b1"\n'),
    "bad-offer": 'name = "p"\n' + bridge("b1", "B1", 'offer = "latest"\n'),
    "unknown-parent": 'name = "p"\n' + bridge("b1", "B1") + bridge("b2", "B2", 'parent = "b7"\n'),
    "b1-with-parent": 'name = "p"\n' + bridge("b2", "B2") + bridge("b1", "B1", 'parent = "b2"\n'),
    "parent-after-child": 'name = "p"\n' + bridge("b2", "B2", 'parent = "b1"\n') + bridge("b1", "B1"),
    "own-parent": 'name = "p"\n' + bridge("b1", "B1") + bridge("b2", "B2", 'parent = "b2"\n'),
    "no-bridges": 'name = "p"\n',
    "four-bridges": 'name = "p"\n' + bridge("b1", "B1") + "".join(
        bridge(f"r{i}", "B2", 'parent = "b1"\n') for i in range(3)),
    "invalid-toml": 'name = "p"\n[[bridge]\nname = "b1"\n',
    "no-name": bridge("b1", "B1"),
    "bad-personality": 'name = "p"\n[hub]\npersonality = "ezsp"\n' + bridge("b1", "B1"),
    "bad-activation": 'name = "p"\n[hub]\nactivation = "future:soon"\n' + bridge("b1", "B1"),
    "bad-cut": 'name = "p"\n' + bridge("b1", "B1", 'power_cut = { at_fraction = "half" }\n'),
    "bad-link": 'name = "p"\n' + bridge("b1", "B1") + bridge("b2", "B2", 'parent = "b1"\nlink = { latency = 5 }\n'),
}


def test_a_good_premises_file_loads(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    spec = load_premises(path)
    assert spec.name == "p" and [b.name for b in spec.bridges] == ["b1", "b2"]
    assert spec.bridges[1] == BridgeSpec("b2", "B2", "b1", "faulty", REMOTE_LINK, {"at_fraction": 0.5})
    assert spec.hub == {"personality": "gbcs-ch", "activation": "immediate"}
    assert parse_premises(GOOD.replace('"immediate"', '"future:120"')).hub["activation"] == "future:120"
    for f in (pathlib.Path(__file__).resolve().parents[2] / "bridge_emu" / "premises" / "builtin").glob("*.toml"):
        assert load_premises(f).bridges


@pytest.mark.parametrize("case", sorted(BAD))
def test_premises_file_errors_name_the_file(tmp_path, case):
    path = tmp_path / f"{case}.toml"
    path.write_text(BAD[case])
    with pytest.raises((PremisesError, ProfileError)) as e:
        load_premises(path)
    assert str(path) in str(e.value)


def test_a_missing_premises_file(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(PremisesError, match="absent.toml"):
        load_premises(path)


def test_every_bridge_type_has_a_profile_and_images(images):
    for t in ("B1", "B2", "B3", "B4"):
        p = profile(t)
        assert p.mode in ("copy-swap", "bank-switch")
        for role in ("current", "next", "faulty"):
            assert images.file(t, role).is_file()
