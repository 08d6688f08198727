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
