"""A security counter the OTP anti-rollback counter cannot hold (issue 8, part 5).

A validly signed image with counter 2049 or 0xFFFFFFFF used to become pending,
install, and then brick the device: confirm committed the confirmed record and
the OTP raise failed on every later boot. Such an image is now refused by the
image check itself, so it can never become pending or be installed, and the
build tool refuses to make one.
"""
from __future__ import annotations

import pytest
from test_boot import MODES, confirmed, download, runs

from bridge_emu.codec.firmware import FirmwareManifest
from bridge_emu.core._ffi import lib
from bridge_emu.errors import ImageError, ImageFormatError
from bridge_emu.tools import signing
from support.rig import KEY, image

pytestmark = pytest.mark.native

CAPACITY = lib.BE_OTP_COUNTER_MAX


def test_python_model_and_c_agree_on_the_capacity():
    assert signing.OTP_COUNTER_MAX == CAPACITY == 2048


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("counter", [CAPACITY + 1, 0xFFFFFFFF])
def test_counter_beyond_capacity_never_becomes_pending(mode, counter):
    dev = confirmed(mode)
    old = dev.running_image()
    too_high = image("1.2.0", 10_000, counter)
    download(dev, too_high)
    with pytest.raises(ImageError) as ei:
        dev.mark_pending()
    assert ei.value.name == "BE_ERR_IMG_COUNTER"
    with pytest.raises(ImageFormatError) as py:
        signing.verify_image(too_high, [KEY.public_key()])
    assert py.value.reason == "BE_ERR_IMG_COUNTER"
    # the device is untouched: it boots and confirms its old image, again and again
    for _ in range(2):
        dev.power_cycle()
        res = dev.boot()
        assert res.confirmed and runs(dev) == old
    dev.confirm()


@pytest.mark.parametrize("mode", MODES)
def test_counter_at_capacity_installs_confirms_and_boots(mode):
    dev = confirmed(mode)
    full = image("1.2.0", 10_000, CAPACITY)
    download(dev, full)
    dev.mark_pending()
    dev.power_cycle()
    assert "installed" in dev.boot().actions
    dev.confirm()
    assert dev.security_counter == CAPACITY
    dev.power_cycle()
    res = dev.boot()
    assert res.confirmed and runs(dev) == full


@pytest.mark.parametrize("counter", [CAPACITY + 1, 0xFFFFFFFF, -1])
def test_build_refuses_a_counter_the_otp_cannot_hold(counter):
    with pytest.raises(ImageFormatError, match="security counter"):
        signing.build_bootable(FirmwareManifest("B1", "1.2.0"), 2_000, KEY, counter)
