"""--ray-address: a campaign sent to a Ray cluster that is already running (one
started by `ray start --head`, as an operator's would be: here with two CPUs and
token authentication) writes the same campaign.json as the single-process run,
and a cluster that is not there is one line at once. Ray's servers listen on
every interface they see, whatever they are told, so the cluster runs in a network
namespace whose only interface is loopback (conftest.loopback_ray), and takes only
drivers that hold its random token."""
from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys

import pytest

BIN = pathlib.Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _campaign(args: list[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "bridge-emu"), "campaign", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture
def cluster(loopback_ray):
    """A Ray head node with two CPUs and token authentication, in a loopback-only namespace
    (conftest.loopback_ray); stopped afterwards whatever happens. (address, run)."""
    run, _ = loopback_ray
    port = _free_port()
    started = run([str(BIN / "ray"), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                   "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats"], timeout=180)
    assert started.returncode == 0, started.stderr[-3000:]
    return f"127.0.0.1:{port}", run


def test_a_campaign_on_a_running_cluster_gives_the_single_process_result(tiny, tmp_path, cluster):
    address, run = cluster
    spec = tiny(homes=400, sample=2)
    local = _campaign([str(spec), "--out", "local"], tmp_path)
    assert local.returncode == 0, local.stderr
    on_cluster = run([str(BIN / "bridge-emu"), "campaign", str(spec), "--engine", "ray", "--ray-address", address,
                      "--out", str(tmp_path / "cluster")], timeout=600)
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

