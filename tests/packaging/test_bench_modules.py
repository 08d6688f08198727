"""`make bench` keeps up with the code: every benchmark module imports and
exposes run() (a moved name breaks here, not in someone's benchmark run)."""
from __future__ import annotations

import importlib
import pathlib

import pytest

from support.paths import ROOT

BENCHES = sorted(p.stem for p in (ROOT / "bench").glob("bench_*.py"))


def test_there_are_benchmarks():
    assert len(BENCHES) >= 5


@pytest.mark.parametrize("name", BENCHES)
def test_benchmark_module_imports_and_has_run(name, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    mod = importlib.import_module(f"bench.{name}")
    assert callable(mod.run)
    assert pathlib.Path(mod.__file__).parent == ROOT / "bench"
