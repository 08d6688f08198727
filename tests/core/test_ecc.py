"""ECC flash (issue 8, part 5): the internal flash of B2 and B3 programs each
write unit once per erase. The flash model refuses a second program of a unit
(BE_ERR_ECC), and the download path programs whole units only: the bytes of a
unit not yet complete wait in RAM, the blob's last unit is padded, and after a
power cut a download resumes at the start of the sector it stopped in, which
it erases first (a unit a cut tore cannot be programmed again)."""
from __future__ import annotations

import pytest

from bridge_emu.core.device import Device
from bridge_emu.core.flash import DeviceConfig, Flash, Geometry, Layout
from bridge_emu.emulator.profiles import profile
from bridge_emu.errors import FlashError, PowerCut, StateError
from support.rig import KEY, image

pytestmark = pytest.mark.native

BLOB_HEAD = 60          # an OTA header before the image, as a real download has
IMAGE = image("1.1.0", 30_000, 2)
BLOB = bytes(range(BLOB_HEAD)) + IMAGE


def ecc_flash(align: int = 8) -> Flash:
    g = Geometry.uniform(4096, 8, write_align=align, ecc=True)
    return Flash.in_memory(DeviceConfig(g, Layout.simple(g, "bank-switch")))


@pytest.mark.parametrize("align", [8, 16])
def test_a_unit_is_programmed_once_per_erase(align):
    f = ecc_flash(align)
    unit = bytes([0x5A]) * align
    f.write(4096, unit)
    for again in (unit, b"\x00" * align, b"\xff" * align):
        with pytest.raises(FlashError, match="BE_ERR_ECC"):
            f.write(4096, again)
    assert f.read(4096, align) == unit                 # a refused program changes nothing
    f.write(4096 + align, unit)                        # the next unit is still erased
    f.erase(4096)
    f.write(4096, b"\x00" * align)                     # after an erase, once more


def test_without_ecc_a_unit_may_be_programmed_again():
    g = Geometry.uniform(4096, 8, write_align=8)
    f = Flash.in_memory(DeviceConfig(g, Layout.simple(g, "bank-switch")))
    f.write(4096, b"\xf0" * 8)
    f.write(4096, b"\x30" * 8)                         # bits only clear
    assert f.read(4096, 8) == b"\x30" * 8


def device(bridge_type: str) -> Device:
    prof = profile(bridge_type)
    assert prof.geometry.ecc
    return Device.create(None, prof.geometry, prof.layout(), keys=[KEY.public_key()])


def feed(dev: Device, start: int, block: int) -> None:
    for off in range(start, len(BLOB), block):
        dev.write_download(off, BLOB[off:off + block])


@pytest.mark.parametrize("bridge_type", ["B2", "B3"])
@pytest.mark.parametrize("block", [50, 64, 17, 1])
def test_downloads_in_blocks_of_any_size_program_whole_units_once(bridge_type, block):
    dev = device(bridge_type)
    dev.begin_download(len(BLOB), BLOB_HEAD)
    feed(dev, 0, block)                                # would raise BE_ERR_ECC on a second program
    assert dev.read_download(0, len(BLOB)) == BLOB
    dev.mark_pending(permanent=True)
    dev.power_cycle()
    assert "installed" in dev.boot().actions and dev.running_image() == IMAGE
    # a program call per block at most (plus one per page crossed), and none
    # for a block that completes no unit
    geo = dev.config.geometry
    calls, units, pages = -(-len(BLOB) // block), -(-len(BLOB) // geo.write_align), len(BLOB) // geo.page_size
    assert dev.flash.stats["writes"] <= min(calls, units) + pages + 2


def test_a_resent_block_is_harmless_and_an_out_of_order_one_is_refused():
    dev = device("B2")
    dev.begin_download(len(BLOB), BLOB_HEAD)
    dev.write_download(0, BLOB[:800])
    dev.write_download(800, BLOB[800:1600])
    dev.write_download(0, BLOB[:792])                  # a block whose units are all in flash: skipped
    with pytest.raises(FlashError, match="BE_ERR_ALIGN"):
        dev.write_download(3001, BLOB[3001:3050])      # the start of its unit is neither in flash nor waiting
    with pytest.raises(StateError, match="BE_ERR_MISMATCH"):
        dev.write_download(4, b"\x00" * 16)            # other data where units are programmed
    feed(dev, 1600, 50)
    dev.mark_pending()


@pytest.mark.parametrize("bridge_type", ["B2", "B3"])
@pytest.mark.parametrize("tear", ["none", "prefix", "bits"])
def test_a_cut_download_resumes_at_a_sector_start_and_completes(bridge_type, tear):
    """Cut the power at every 7th flash operation of a download in 50-byte blocks
    (a prefix of the write lands, or random bits of it): the download resumes
    where the boot core says, after erasing the sector it resumes in, and ends
    with exactly the image."""
    probe = device(bridge_type)
    probe.begin_download(len(BLOB), BLOB_HEAD)
    probe.flash.arm_cut(0)
    feed(probe, 0, 50)
    total = probe.flash.ops_since_arm
    sectors = dict(probe.config.geometry.sectors())
    for k in range(1, total + 1, 7):
        dev = device(bridge_type)
        dev.begin_download(len(BLOB), BLOB_HEAD)
        dev.flash.arm_cut(k, tear, seed=k)
        with pytest.raises(PowerCut):
            feed(dev, 0, 50)
        dev.power_cycle()
        resume = dev.prepare_resume()
        addr = dev.download_addr() + resume
        # a sector start, or the blob's start
        assert resume == 0 or addr in sectors, (k, resume)
        assert dev.read_download(resume, len(BLOB) - resume) == b"\xff" * (len(BLOB) - resume)
        feed(dev, resume, 50)
        assert dev.read_download(0, len(BLOB)) == BLOB, k
        dev.mark_pending(permanent=True)
        dev.power_cycle()
        assert dev.boot().confirmed and dev.running_image() == IMAGE


def test_resuming_a_download_with_nothing_torn_erases_nothing_already_blank():
    dev = device("B2")
    dev.begin_download(len(BLOB), BLOB_HEAD)
    erases = dev.flash.stats["erases"]
    assert dev.prepare_resume() == 0 and dev.flash.stats["erases"] == erases
