"""The pytest plugin bridge-emu installs (entry point `pytest11`: bridge_emu): fixtures
for emulated bridges, premises and flash files on virtual time, and, when a test
fails, each premises' bridges (state, outcome, last events, flash slots) in its
report. Nothing runs at import: the emulator is loaded when a fixture is used.

Fixtures:
    bridge_emu_images   the image set (the bundled one; `--bridge-emu-images DIR` for another)
    premises            premises(what, *, seed=None, hub=None, in_memory=False) -> Premises;
                        what: a built-in name, a TOML file or text, or a PremisesSpec; flash files
                        and event logs go under the test's tmp_path unless in_memory
    bridge              bridge(type, *, offer="next", seed=None, hub=None, link=None, profile=None) ->
                        Premises around one bridge of that type; link: the remote bridge's (loss-free
                        unless it says); profile: a [profile] table making it a user's own device
    bridge_flash        bridge_flash(type, *, role="current", name="flash.bemu", profile=None) -> a
                        factory-fresh Device whose flash file is in tmp_path
    virtual_dongle      virtual_dongle(what, *, protocol="znp", speed=1.0, in_memory=False) ->
                        testing.dongle.VirtualDongle: the premises (or scenario) behind a virtual
                        coordinator dongle on socket://127.0.0.1 (.url), for a host stack under test
"""
from __future__ import annotations

import pathlib

import pytest

_OPENED = "bridge_emu_premises"       # the premises a test opened, on its item, for the report


def pytest_addoption(parser) -> None:
    group = parser.getgroup("bridge-emu")
    group.addoption("--bridge-emu-images", default=None, metavar="DIR",
                    help="bridge-emu: the image folder (index.json and keys/) the fixtures use")


@pytest.fixture(scope="session")
def bridge_emu_images(pytestconfig):
    from bridge_emu.premises.images import DEFAULT_IMAGES, ImageSet
    folder = pytestconfig.getoption("--bridge-emu-images")
    return ImageSet(pathlib.Path(folder) if folder else DEFAULT_IMAGES)


@pytest.fixture
def premises(request, tmp_path, bridge_emu_images):
    from bridge_emu.testing import Premises
    opened: list = []
    setattr(request.node, _OPENED, opened)

    def open_premises(what, *, seed: int | None = None, hub: dict | None = None, in_memory: bool = False):
        site = Premises.open(what, images=bridge_emu_images, seed=seed, hub=hub,
                             run_dir=None if in_memory else tmp_path / "bridge-emu")
        opened.append(site)
        return site

    yield open_premises
    for site in opened:
        site.close()


@pytest.fixture
def bridge(request, tmp_path, bridge_emu_images, premises):
    from bridge_emu.testing import one_bridge
    opened = getattr(request.node, _OPENED)

    def open_bridge(bridge_type: str, *, offer: str = "next", seed: int | None = None, hub: dict | None = None,
                    link: dict | None = None, profile: dict | None = None):
        site = one_bridge(bridge_type, offer=offer, images=bridge_emu_images, seed=seed, hub=hub, link=link,
                          profile=profile, run_dir=tmp_path / "bridge-emu")
        opened.append(site)
        return site

    return open_bridge


@pytest.fixture
def bridge_flash(tmp_path, bridge_emu_images):
    from bridge_emu.testing import flash_file
    devices = []

    def make(bridge_type: str, *, role: str = "current", name: str = "flash.bemu", profile: dict | None = None):
        device = flash_file(tmp_path / name, bridge_type, role=role, images=bridge_emu_images, profile=profile)
        devices.append(device)
        return device

    yield make
    for device in devices:
        device.close()


@pytest.fixture
def virtual_dongle(request, tmp_path, bridge_emu_images):
    from bridge_emu.testing.dongle import VirtualDongle
    opened = getattr(request.node, _OPENED, None)
    if opened is None:
        opened = []
        setattr(request.node, _OPENED, opened)
    dongles: list = []

    def open_dongle(what, *, protocol: str = "znp", speed: float = 1.0, in_memory: bool = False):
        dongle = VirtualDongle(what, protocol=protocol, speed=speed, images=bridge_emu_images,
                               run_dir=None if in_memory else tmp_path / "bridge-emu-dongle")
        dongles.append(dongle)
        opened.append(dongle)
        return dongle

    yield open_dongle
    for dongle in dongles:
        dongle.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for site in getattr(item, _OPENED, ()):
            report.sections.append((f"bridge-emu: premises {site.spec.name}", site.report()))
