"""`bridge-emu attach` and `bridge-emu dongle --role router` as a user runs them, two
commands: the router-role virtual dongle stands in for the IHD's B4 in the
premises' network; attach drives it over socket:// as that B4's radio; the B4
joins as a router; SIGTERM ends both (exit 0) and the B4's flash is under --dir."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading

import pytest

from support.paths import ROOT

pytestmark = pytest.mark.native

ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bridge_emu", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def lines_until(proc: subprocess.Popen, needle: str, timeout_s: float = 30.0) -> list[str]:
    """Read proc's stdout until a line holds needle (or timeout / exit)."""
    seen: list[str] = []
    done = threading.Event()

    def read():
        for line in proc.stdout:
            seen.append(line.rstrip("\n"))
            if needle in line:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    done.wait(timeout_s)
    return seen


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err


def test_attach_joins_a_bridge_through_the_router_dongle_and_both_stop_on_sigterm(tmp_path):
    dongle = start("dongle", "ihd", "--protocol", "znp", "--role", "router", "--bridge", "b4", "--speed", "30",
                   "--dir", str(tmp_path / "site"))
    attach = None
    try:
        first = dongle.stdout.readline().strip()
        assert first.startswith("listening on socket://127.0.0.1:"), (first, dongle.stderr.read())
        url = first.removeprefix("listening on ")
        # the port options reach pyserial (a socket has no baud rate or flow control: it takes and ignores them)
        attach = start("attach", "ihd", "--bridge", "b4", "--port", url, "--protocol", "znp",
                       "--baudrate", "230400", "--flow-control", "software", "--dir", str(tmp_path / "bridge"))
        seen = lines_until(attach, "joined as router")
        assert seen and seen[0].startswith("b4 (B4) of ihd: attaching through socket://"), seen
        assert any("b4: joined as router 0x" in line for line in seen), seen
    finally:
        codes = [stop(p) for p in (attach, dongle) if p is not None]
    assert [rc for rc, _ in codes] == [0, 0], codes
    assert all("Traceback" not in err for _, err in codes), codes
    assert (tmp_path / "bridge" / "ihd" / "b4" / "flash.bemu").is_file()
    assert (tmp_path / "bridge" / "ihd" / "b4" / "events.jsonl").is_file()


@pytest.mark.parametrize(("args", "says"), [
    (["dongle", "ihd", "--protocol", "znp", "--role", "router", "--no-dir"], "--role router needs --bridge"),
    (["dongle", "ihd", "--protocol", "ezsp", "--role", "router", "--bridge", "b4", "--ezsp-version", "15",
      "--no-dir"], "EZSP version 15: want one of"),
    (["dongle", "ihd", "--protocol", "znp", "--bridge", "b4", "--no-dir"], "--bridge goes with --role router"),
    (["attach", "ihd", "--bridge", "b9", "--port", "socket://127.0.0.1:9", "--protocol", "znp", "--no-dir"],
     "no bridge 'b9'"),
    (["attach", "ihd", "--bridge", "b4", "--port", "/dev/nonexistent-stick", "--protocol", "znp", "--no-dir"],
     "/dev/nonexistent-stick: cannot open"),
    (["attach", "ihd", "--bridge", "b4", "--port", "/dev/ttyUSB0", "--protocol", "znp", "--baudrate", "115"],
     "'115': want one of 9600,"),
    (["attach", "ihd", "--bridge", "b4", "--port", "/dev/ttyUSB0", "--protocol", "ezsp", "--flow-control", "rts"],
     "invalid choice: 'rts'"),
])
def test_bad_requests_are_one_line(args, says):
    done = subprocess.run([sys.executable, "-m", "bridge_emu", *args], capture_output=True, text=True, env=ENV,
                          timeout=30)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and says in done.stderr, done.stderr


def test_probe_says_what_a_stick_is_and_writes_nothing(tmp_path):
    """--probe against the router-role virtual dongle: what it is, the roles its build
    can take, and that a mains bridge can be attached through it; nothing is written."""
    dongle = start("dongle", "ihd", "--protocol", "znp", "--role", "router", "--bridge", "b4",
                   "--dir", str(tmp_path / "site"))
    try:
        url = dongle.stdout.readline().strip().removeprefix("listening on ")
        done = subprocess.run([sys.executable, "-m", "bridge_emu", "attach", "ihd", "--bridge", "b4", "--port",
                               url, "--protocol", "znp", "--probe"], capture_output=True, text=True, env=ENV,
                              timeout=30)
    finally:
        stop(dongle)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith(f"{url}: Z-Stack 2.7.1 (product 1") and "state INITIALIZED_NOT_STARTED" in lines[1]
    assert lines[2] == "roles this build can take: coordinator, router, end device"
    assert lines[3] == "b4 (B4) can be attached through it, as a router"


def test_probe_of_a_coordinator_only_build_says_it_cannot_be_a_router():
    from bridge_emu.dongle.probe import probe_znp
    from bridge_emu.net.asyncio_clock import AsyncioClock
    from bridge_emu.net.serial_link import StreamDriver, serve_tcp
    from bridge_emu.uart.znp_ncp import ZnpCoordinator

    async def main():
        loop = asyncio.get_running_loop()
        link = await serve_tcp("127.0.0.1", 0)
        StreamDriver(ZnpCoordinator(0x00124B0001020304, device_types=0x01), link, AsyncioClock(loop)).start()
        try:
            return await loop.run_in_executor(None, probe_znp, link.url)
        finally:
            link.close()

    report = asyncio.run(main())
    assert report.roles == ["coordinator"] and not report.can("router") and report.ieee == 0x00124B0001020304
    assert "it cannot be a router: flash a router or end-device build" in report.lines()[2]
