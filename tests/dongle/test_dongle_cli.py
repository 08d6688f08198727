"""`bridge-emu dongle` as a user runs it: its first line says where it listens,
a host stack connects there, SIGTERM ends it cleanly with the devices' files and
the dongle's NV kept under --dir; a non-loopback address needs --allow-remote."""
from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import subprocess
import sys

import pytest
from zigpy_znp.zigbee.application import ControllerApplication

from bridge_emu import cli

pytestmark = pytest.mark.native
ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_the_dongle_command_serves_zigpy_and_stops_on_sigterm(tmp_path):
    out = tmp_path / "rig"
    proc = subprocess.Popen([sys.executable, "-m", "bridge_emu", "dongle", "ihd", "--protocol", "znp",
                             "--dir", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on socket://127.0.0.1:"), (first, proc.stderr.read())
        url = first.removeprefix("listening on ")

        async def host():
            app = ControllerApplication({
                "device": {"path": url}, "database_path": None, "backup_enabled": False,
                "topo_scan_enabled": False, "ota": {"enabled": False},
                "znp_config": {"connect_rts_pin_states": [], "connect_dtr_pin_states": []}})
            await asyncio.wait_for(app.startup(auto_form=True), 30)
            try:
                await app.permit(60)
                for _ in range(1000):
                    models = sorted(d.model for d in app.devices.values()
                                    if d.is_initialized and (d.model or "").startswith("ALT-HAN"))
                    if len(models) == 2:
                        return models
                    await asyncio.sleep(0.02)
                return models
            finally:
                await app.shutdown()
        assert asyncio.run(host()) == ["ALT-HAN-B1", "ALT-HAN-B4"]
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=20)
    assert rc == 0, proc.stderr.read()
    assert (out / "ihd" / "dongle-znp.json").exists()
    assert sorted(p.name for p in (out / "ihd").iterdir() if p.is_dir()) == ["b1", "b4"]
    assert (out / "ihd" / "b1" / "flash.bemu").exists()


def test_a_non_loopback_address_needs_allow_remote(tmp_path, capsys):
    rc = cli.main(["dongle", "ihd", "--protocol", "ezsp", "--listen", "0.0.0.0:0", "--no-dir"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--allow-remote" in err
    rc = cli.main(["dongle", "ihd", "--protocol", "znp", "--listen", "nonsense", "--no-dir"])
    err = capsys.readouterr().err
    assert rc == 2 and "want HOST:PORT" in err


@pytest.mark.parametrize("speed", ["0", "-2", "1000", "fast", "nan"])
def test_a_speed_out_of_range_is_refused_in_one_line(speed, capsys):
    rc = cli.main(["dongle", "ihd", "--protocol", "znp", "--speed", speed, "--no-dir"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "0.1 to 100 times the wall clock" in err


def test_an_ezsp_version_the_ncp_does_not_speak_is_refused_in_one_line(capsys):
    rc = cli.main(["dongle", "ihd", "--protocol", "ezsp", "--ezsp-version", "15", "--no-dir"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "EZSP version 15: want one of 8, 9" in err, err


def test_a_damaged_dongle_nv_is_refused_in_one_line(tmp_path, capsys):
    assert cli.main(["run", "ihd", "--dir", str(tmp_path)]) == 0       # a run directory to resume in
    (tmp_path / "ihd" / "dongle-ezsp.json").write_text('{"format": "nonsense"}')
    capsys.readouterr()
    rc = cli.main(["dongle", "ihd", "--protocol", "ezsp", "--dir", str(tmp_path), "--resume"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "dongle-ezsp.json" in err, err
