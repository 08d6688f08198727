"""zigpy-cli, unmodified, against `bridge-emu dongle` run as a user runs both:
the dongle as a subprocess listening on socket://127.0.0.1, each `zigpy radio`
command as another process. `form` writes a network, `info` and `backup` read
it back, and a dongle restarted from its --dir still has it (its NV is kept);
`restore` writes a given network, which `info` and `backup` then show."""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest
import zigpy.backups

from bridge_emu.emulator.zigbee_node import eui64

pytestmark = pytest.mark.native
ROOT = pathlib.Path(__file__).resolve().parents[2]
ZIGPY = pathlib.Path(sys.executable).parent / "zigpy"          # zigpy-cli's console script
CLI_TIMEOUT_S = 60


@contextlib.contextmanager
def dongle(run_dir: pathlib.Path, protocol: str):
    """`bridge-emu dongle ihd` as a subprocess; yields its socket:// URL; SIGTERM ends it (exit 0)."""
    proc = subprocess.Popen([sys.executable, "-m", "bridge_emu.cli", "dongle", "ihd", "--protocol", protocol,
                             "--listen", "127.0.0.1:0", "--dir", str(run_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    clean = False
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on socket://127.0.0.1:"), first
        yield first.removeprefix("listening on ")
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


def zigpy_radio(protocol: str, url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ZIGPY), "radio", protocol, url, *args], capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)


def info(protocol: str, url: str) -> dict[str, str]:
    """`zigpy radio P URL info` as {field: value}."""
    done = zigpy_radio(protocol, url, "info")
    assert done.returncode == 0, done.stderr[-2000:]
    fields = dict(re.findall(r"^([A-Za-z][A-Za-z0-9 ]*?):\s+(.*)$", done.stdout, re.M))
    assert {"PAN ID", "Extended PAN ID", "Channel", "Device IEEE", "Network key"} <= set(fields), done.stdout
    return fields


def colon_hex(text: str) -> str:
    """'fa0cfb86...' -> 'fa:0c:fb:86:...' as zigpy prints an EUI-64 or key."""
    return ":".join(text[i:i + 2] for i in range(0, len(text), 2))


def backup(protocol: str, url: str, out: pathlib.Path) -> dict:
    done = zigpy_radio(protocol, url, "backup", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    obj = json.loads(out.read_text())
    assert obj["metadata"]["format"] == "zigpy/open-coordinator-backup" and obj["metadata"]["version"] == 1
    zigpy.backups.NetworkBackup.from_dict(obj)         # zigpy itself accepts it as a backup
    return obj


def assert_backup_matches_info(obj: dict, fields: dict[str, str]) -> None:
    assert f"0x{obj['pan_id'].upper()}" == fields["PAN ID"]
    assert colon_hex(obj["extended_pan_id"]) == fields["Extended PAN ID"]
    assert str(obj["channel"]) == fields["Channel"] and obj["channel_mask"] == [obj["channel"]]
    assert colon_hex(obj["network_key"]["key"]) == fields["Network key"]
    assert colon_hex(obj["coordinator_ieee"]) == fields["Device IEEE"]
    assert obj["security_level"] == 5


SOURCE = {"znp": "zigpy-znp@", "ezsp": "bellows@"}


@pytest.mark.parametrize("protocol", ["znp", "ezsp"])
def test_zigpy_cli_forms_a_network_reads_it_backs_it_up_and_finds_it_after_a_restart(tmp_path, protocol):
    run_dir = tmp_path / "rig"
    ieee = f"{eui64('ihd', f'dongle-{protocol}'):016x}"
    with dongle(run_dir, protocol) as url:
        fresh = zigpy_radio(protocol, url, "info")
        assert fresh.returncode != 0 and "NetworkNotFormed" in fresh.stderr     # nothing formed yet
        formed = zigpy_radio(protocol, url, "form")        # (zigpy picks the channel by an energy scan)
        assert formed.returncode == 0, formed.stderr[-2000:]
        first = info(protocol, url)
        obj = backup(protocol, url, tmp_path / "backup.json")
    assert first["Device IEEE"] == colon_hex(ieee) and first["Device NWK"] == "0x0000"
    assert 11 <= int(first["Channel"]) <= 26 and first["PAN ID"] not in ("0x0000", "0xFFFF")
    assert first["Network key"] != colon_hex("00" * 16)
    assert_backup_matches_info(obj, first)
    assert obj["metadata"]["internal"]["node"]["type"] == "coordinator"
    assert obj["metadata"]["source"].startswith(SOURCE[protocol])

    assert (run_dir / "ihd" / f"dongle-{protocol}.json").exists()
    with dongle(run_dir, protocol) as url:             # the same --dir: the dongle's NV is read back
        again = info(protocol, url)
    assert again == first


def given_backup(protocol: str, *, frame_counter: int = 0) -> dict:
    """A network to restore, on the dongle's own IEEE (bellows will not rewrite an EFR32's EUI-64 twice)."""
    return {
        "metadata": {"version": 1, "format": "zigpy/open-coordinator-backup", "source": "bridge-emu-test@1",
                     "internal": {}},
        "stack_specific": {}, "coordinator_ieee": f"{eui64('ihd', f'dongle-{protocol}'):016x}", "pan_id": "1a2b",
        "extended_pan_id": "0011223344556677", "nwk_update_id": 0, "security_level": 5, "channel": 15,
        "channel_mask": [15], "devices": [],
        "network_key": {"key": "000102030405060708090a0b0c0d0e0f", "sequence_number": 0,
                        "frame_counter": frame_counter}}


def test_zigpy_cli_restores_an_ezsp_network_reads_it_back_and_finds_it_after_a_restart(tmp_path):
    run_dir = tmp_path / "rig"
    given = given_backup("ezsp")
    (tmp_path / "given.json").write_text(json.dumps(given))
    with dongle(run_dir, "ezsp") as url:
        restored = zigpy_radio("ezsp", url, "restore", str(tmp_path / "given.json"))
        assert restored.returncode == 0, restored.stderr[-2000:]
        first = info("ezsp", url)
        obj = backup("ezsp", url, tmp_path / "backup.json")
    assert first["PAN ID"] == "0x1A2B" and first["Extended PAN ID"] == "00:11:22:33:44:55:66:77"
    assert first["Channel"] == "15" and first["Network key"] == colon_hex("000102030405060708090a0b0c0d0e0f")
    assert first["Device IEEE"] == colon_hex(given["coordinator_ieee"])
    assert_backup_matches_info(obj, first)
    assert obj["metadata"]["source"].startswith("bellows@")
    with dongle(run_dir, "ezsp") as url:
        again = info("ezsp", url)
    assert again == first




@pytest.mark.parametrize("protocol", ["znp", "ezsp"])
def test_a_restored_network_keeps_its_frame_counter(tmp_path, protocol):
    # zigpy-cli's restore adds 5000 (its default -c) to the counter it is given, so that devices which
    # heard the old coordinator accept the new one's frames; a dongle that forgets it is not restorable
    (tmp_path / "given.json").write_text(json.dumps(given_backup(protocol, frame_counter=1000)))
    with dongle(tmp_path / "rig", protocol) as url:
        restored = zigpy_radio(protocol, url, "restore", str(tmp_path / "given.json"))
        assert restored.returncode == 0, restored.stderr[-2000:]
        obj = backup(protocol, url, tmp_path / "backup.json")
    assert obj["pan_id"] == "1a2b" and obj["network_key"]["key"] == "000102030405060708090a0b0c0d0e0f"
    assert obj["network_key"]["frame_counter"] == 6000


def test_bridges_that_joined_the_znp_dongle_are_in_a_zigpy_cli_backup_and_stay_after_a_restart(tmp_path):
    """The coordinator writes every device that joins to its address manager table in NV, where
    zigpy-znp's backup reads the network's devices: their NWK addresses, and which are its children."""
    from bridge_emu.premises.schema import resolve

    run_dir = tmp_path / "rig"
    spec = resolve("ihd")
    with dongle(run_dir, "znp") as url:
        formed = zigpy_radio("znp", url, "form")
        assert formed.returncode == 0, formed.stderr[-2000:]
        permitted = zigpy_radio("znp", url, "permit", "-t", "10")    # the bridges join while it runs
        assert permitted.returncode == 0, permitted.stderr[-2000:]
        obj = backup("znp", url, tmp_path / "backup.json")
    devices = {d["ieee_address"]: d for d in obj["devices"]}
    want = {f"{eui64(spec.name, b.name):016x}": b for b in spec.bridges}
    assert set(devices) == set(want), (sorted(devices), sorted(want))
    nwks = {d["nwk_address"] for d in devices.values()}
    assert len(nwks) == len(want) and all(n not in (None, "0000", "fffe") for n in nwks)
    # mains bridges are routers (not children); an end device that joined through the hub would be
    assert all(not d["is_child"] for d in devices.values())
    with dongle(run_dir, "znp") as url:              # NV kept in --dir: the devices are still there
        again = backup("znp", url, tmp_path / "again.json")
    assert {d["ieee_address"]: d["nwk_address"] for d in again["devices"]} == {
        ieee: d["nwk_address"] for ieee, d in devices.items()}
