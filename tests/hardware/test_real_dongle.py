"""Against a real stick, opt in: BRIDGE_EMU_DONGLE names its port (a pyserial URL:
/dev/ttyUSB0, /dev/serial/by-id/..., socket://HOST:PORT); BRIDGE_EMU_DONGLE_PROTOCOL is
znp (TI Z-Stack, the default) or ezsp (Silicon Labs EmberZNet). Without a port these are
reported as skipped, with the reason. The probe only reads (ZNP: SYS.Ping, SYS.Version,
UTIL.GetDeviceInfo; EZSP: an ASH reset, then version, getLibraryStatus,
getEui64). The join test, which makes the stick a router (it writes its NV
and clears its network state), also needs BRIDGE_EMU_DONGLE_JOIN=1 and a ZigBee
network near it that permits joining; give the premises file and bridge with
BRIDGE_EMU_PREMISES / BRIDGE_EMU_BRIDGE (default: the built-in ihd, b1)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from support.paths import ROOT

PORT = os.environ.get("BRIDGE_EMU_DONGLE")
PROTOCOL = os.environ.get("BRIDGE_EMU_DONGLE_PROTOCOL", "znp")
PREMISES = os.environ.get("BRIDGE_EMU_PREMISES", "ihd")
BRIDGE = os.environ.get("BRIDGE_EMU_BRIDGE", "b1")
pytestmark = [pytest.mark.hardware,
              pytest.mark.skipif(not PORT, reason="no real stick: set BRIDGE_EMU_DONGLE=/dev/ttyUSB0 (a pyserial "
                                                  "URL) to run the hardware tests")]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))


def test_the_protocol_asked_for_is_one_attach_drives():
    assert PROTOCOL in ("znp", "ezsp"), f"BRIDGE_EMU_DONGLE_PROTOCOL={PROTOCOL!r}: want znp or ezsp"


def bridge_emu(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge_emu", *args], capture_output=True, text=True, env=ENV,
                          **kw)


def test_the_stick_says_what_it_is_and_whether_the_bridge_can_go_through_it():
    done = bridge_emu("attach", PREMISES, "--bridge", BRIDGE, "--port", PORT, "--protocol", PROTOCOL, "--probe",
                      timeout=60)
    assert done.returncode in (0, 2), done.stderr
    if done.returncode == 0:
        assert "roles this build can take:" in done.stdout and "can be attached through it" in done.stdout
    else:
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("bridge-emu: error: "), done.stderr


@pytest.mark.skipif(os.environ.get("BRIDGE_EMU_DONGLE_JOIN") != "1",
                    reason="joining rewrites the stick's NV: set BRIDGE_EMU_DONGLE_JOIN=1 (and permit joining on "
                           "a network near it) to run")
def test_the_bridge_joins_a_real_network_through_the_stick(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bridge_emu", "attach", PREMISES, "--bridge", BRIDGE, "--port",
                             PORT, "--protocol", PROTOCOL, "--dir", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        joined = None
        for line in proc.stdout:
            if "joined as" in line:
                joined = line
                break
        assert joined, proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
