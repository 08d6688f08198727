"""Small campaigns for the tests: a few full-fidelity runs each (about 0.5 s apiece)."""
from __future__ import annotations

import pathlib

import pytest

TINY = """
name = "tiny"
homes = {homes}
seed = {seed}
[population]
gsme-mains = 1
ihd = 1
[conditions.near]
loss = [0.0, 0.02]
latency_ms = [10, 30]
[devices]
faulty_share = {faulty}
[hub]
distribution_days = 0.5
[rollout]
waves = [5, 30, 100]
max_concurrent_homes = 50
halt = {{ failure_rate = 0.2 }}
retry = {{ attempts = 1, after_hours = 2 }}
[fidelity]
sample_homes = {sample}
calibration_runs = 1
"""


@pytest.fixture
def tiny(tmp_path: pathlib.Path):
    """A campaign file in tmp_path: tiny(homes=..., seed=..., faulty=..., sample=...) -> its path."""
    def make(homes: int = 400, seed: int = 5, faulty: float = 0.02, sample: int = 2, name: str = "tiny.toml"):
        path = tmp_path / name
        path.write_text(TINY.format(homes=homes, seed=seed, faulty=faulty, sample=sample))
        return path
    return make


@pytest.fixture
def loopback_ray():
    """(run, env): run(argv) runs a command in a network namespace whose only interface is
    loopback (support.loopback_ns: Ray's servers listen on every interface they see), with
    env: Ray's session folder short (its Unix sockets live there) and private, no usage
    stats, token authentication with a random token. Whatever Ray is left there is stopped."""
    import os
    import secrets
    import shutil
    import sys
    import tempfile

    from support.loopback_ns import LoopbackNamespace

    temp = tempfile.mkdtemp(prefix="rbe", dir="/tmp")
    env = dict(os.environ, RAY_TMPDIR=temp, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=secrets.token_hex(32))
    ns = LoopbackNamespace()
    try:
        assert ns.interfaces() == ["lo"]

        def run(argv, **kw):
            return ns.run(argv, env=env, capture_output=True, text=True, **kw)
        yield run, env
    finally:
        ns.run([str(pathlib.Path(sys.executable).parent / "ray"), "stop", "--force"], env=env,
               capture_output=True, timeout=120)
        ns.close()
        shutil.rmtree(temp, ignore_errors=True)
