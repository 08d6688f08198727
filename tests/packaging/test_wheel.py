"""A wheel carries what the main job needs: build one from this tree, install
it into a throwaway venv (dependencies resolved as a user's pip would), and run
`bridge-emu demo` from an empty directory, far from the repository."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import pytest

from support.paths import ROOT

pytestmark = pytest.mark.packaging


def run(cmd, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheelhouse")
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, ROOT])
    (built,) = out.glob("bridge_emu-*.whl")
    return built


def test_wheel_holds_the_image_set_and_the_builtin_premises(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "bridge_emu/images/index.json" in names
    index = json.loads(zipfile.ZipFile(wheel).read("bridge_emu/images/index.json"))
    for entry in index.values():
        assert f"bridge_emu/images/{entry['file']}" in names
    assert {f"bridge_emu/images/keys/TEST-ONLY-{r}-p256.pub.pem" for r in ("manufacturer", "supplier")} <= names
    assert "bridge_emu/premises/builtin/gsme-battery.toml" in names
    assert any(n.startswith("bridge_emu/_native") and n.endswith(".so") for n in names)
    assert not any(n.startswith(("tests/", "native/")) for n in names)


def test_installed_wheel_runs_the_demo_from_an_empty_directory(wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel])
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BE_NATIVE_DIR", "VIRTUAL_ENV")}
    r = run([venv / "bin" / "bridge-emu", "demo", "--json"], cwd=work, env=env)
    report = json.loads(r.stdout)
    assert report["settled"] is True
    outcomes = {(b["premises"], b["bridge"]): b["outcome"] for b in report["bridges"]}
    assert outcomes[("both-apart-mains", "b4")] == "rolled back"
    assert all(v == "upgraded" for k, v in outcomes.items() if k != ("both-apart-mains", "b4"))
    # the package came from the venv, not from this tree
    where = run([venv / "bin" / "python", "-c", "import bridge_emu; print(bridge_emu.__file__)"], cwd=work, env=env)
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout
    # the devices it left behind are readable by the installed tool
    state = run([venv / "bin" / "bridge-emu", "state", work / "out" / "demo", "--json"], cwd=work, env=env)
    assert len(json.loads(state.stdout)) == 5
