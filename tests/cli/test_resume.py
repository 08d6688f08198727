"""`run --resume`: a run killed with SIGKILL (a power cut of the whole rig)
goes on from its devices' flash files and ends as an unbroken run would."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from bridge_emu import cli

pytestmark = pytest.mark.native

# A run that kills itself (SIGKILL: no clean-up, no flush) once b4's download is
# `fraction` done or b1 is in the middle of its trial, whichever is asked.
KILLER = textwrap.dedent("""
    import os, pathlib, signal, sys
    from bridge_emu.premises.images import DEFAULT_IMAGES
    from bridge_emu.premises.schema import builtin_premises
    from bridge_emu.premises.session import Session, prepare_dir

    base, when = pathlib.Path(sys.argv[1]), sys.argv[2]
    session = Session.open([builtin_premises()["both-apart-mains"]], images_dir=DEFAULT_IMAGES,
                           run_dir=prepare_dir(base))

    def maybe_kill(run):
        b4 = next(s for s in run.slots if s.spec.name == "b4").bridge
        b1 = next(s for s in run.slots if s.spec.name == "b1").bridge
        if when == "download" and b4.client is not None and b4.client.size and b4.client.offset > b4.client.size // 2:
            os.kill(os.getpid(), signal.SIGKILL)
        if when == "trial" and any(e["event"] == "boot" and not e["confirmed"] for e in b1.events):
            os.kill(os.getpid(), signal.SIGKILL)

    session.run(on_slice=maybe_kill)
    sys.exit(3)   # not killed: the test's premise failed
""")


def run(capsys, *argv):
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def events(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("when", ["download", "trial"])
def test_a_killed_run_resumes_from_its_flash_files(capsys, tmp_path, when):
    base = tmp_path / "rig"
    r = subprocess.run([sys.executable, "-c", KILLER, str(base), when], capture_output=True, text=True)
    assert r.returncode == -signal.SIGKILL, r.stderr
    b4_log = base / "both-apart-mains" / "b4" / "events.jsonl"
    before = len(events(b4_log))
    rc, out, _ = run(capsys, "run", "both-apart-mains", "--dir", base, "--resume", "--json")
    report = json.loads(out)
    assert rc == 0 and report["settled"]
    outcomes = {b["bridge"]: b["outcome"] for b in report["bridges"]}
    if when == "download":
        assert outcomes == {"b1": "upgraded", "b2": "upgraded", "b4": "upgraded"}
    else:
        # power lost in the trial, before the image proved itself: the boot core
        # reverts it (its one attempt is spent), and the bridge runs what it ran
        assert outcomes == {"b1": "rolled back", "b2": "upgraded", "b4": "upgraded"}
    for b in report["bridges"]:
        after = "1.0.0" if outcomes[b["bridge"]] == "rolled back" else "1.1.0"
        # the factory image's version, in the form a run that was never killed reports it
        assert b["version_before"] == "1.0.0+0" and b["version_after"].startswith(after)
    log = events(b4_log)
    assert len(log) > before      # the log goes on where it stopped
    if when == "download":
        resumed = [e for e in log[before:] if e["event"] == "download_started"]
        assert resumed and resumed[0]["offset"] > 0      # from the flash, not from byte 0


def test_resume_needs_an_earlier_run(capsys, tmp_path):
    rc, out, err = run(capsys, "run", "gsme-mains", "--dir", tmp_path / "none", "--resume")
    assert rc == 2 and "no earlier run to resume" in err and err.count("\n") == 1
    rc, out, err = run(capsys, "run", "gsme-mains", "--no-dir", "--resume")
    assert rc == 2 and "--no-dir" in err


def test_resume_refuses_devices_of_another_premises(capsys, tmp_path):
    base = tmp_path / "rig"
    assert run(capsys, "run", "gsme-mains", "--dir", base)[0] == 0
    other = base / "gsme-mains"
    os.rename(other, base / "gsme-battery")
    rc, out, err = run(capsys, "run", "gsme-battery", "--dir", base, "--resume")
    assert rc == 2 and "cannot resume it as that" in err and err.count("\n") == 1
