"""--ray-address: a campaign sent to a Ray cluster that is already running (one
started by `ray start --head`, as an operator's would be: here with two CPUs and
token authentication) writes the same campaign.json as the single-process run,
and a cluster that is not there is one line at once. Ray's servers listen on
every interface whatever they are told, so the cluster a test starts takes only
drivers that hold its random token."""
from __future__ import annotations

import json
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

BIN = pathlib.Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _campaign(args: list[str], cwd: pathlib.Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "bridge-emu"), "campaign", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture
def cluster():
    """A Ray head node on 127.0.0.1 with two CPUs, stopped afterwards whatever happens.
    Its session folder is short (Ray's Unix sockets live there) and private."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rbe", dir="/tmp")
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    subprocess.run([str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                    "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
                    "--temp-dir", temp], check=True, capture_output=True, timeout=180, env=env)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=120, env=env)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_campaign_on_a_running_cluster_gives_the_single_process_result(tiny, tmp_path, cluster):
    address, env = cluster
    spec = tiny(homes=400, sample=2)
    local = _campaign([str(spec), "--out", "local"], tmp_path)
    assert local.returncode == 0, local.stderr
    on_cluster = _campaign([str(spec), "--engine", "ray", "--ray-address", address, "--out", "cluster"], tmp_path,
                           env)
    assert on_cluster.returncode == 0, on_cluster.stderr
    assert (tmp_path / "cluster" / "campaign.json").read_bytes() == (tmp_path / "local" / "campaign.json").read_bytes()
    facts = json.loads((tmp_path / "cluster" / "run.json").read_text())
    assert facts["engine"] == "ray" and facts["workers"] == 2       # the cluster's CPUs, not this machine's


def test_an_address_with_no_cluster_is_one_line(tiny, tmp_path):
    spec = tiny(homes=50, sample=1)
    run = _campaign([str(spec), "--engine", "ray", "--ray-address", f"127.0.0.1:{_free_port()}", "--out", "x"],
                    tmp_path)
    assert run.returncode == 2, (run.returncode, run.stderr[-2000:])
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "--engine ray: cannot start or reach 127.0.0.1:" in lines[0], run.stderr[-2000:]
    assert not (tmp_path / "x" / "campaign.json").exists()

