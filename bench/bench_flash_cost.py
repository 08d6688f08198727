"""Flash cost and downtime of one upgrade and one revert, per mode.

MCUboot's reference case (docs/flash-and-boot.md): 4 KiB
sectors, write alignment 4, a 100,552-byte image. "writes" are program calls
(the swap copies in 1,024-byte calls, as MCUboot's buffer does); program
pages (256 bytes, what a serial NOR takes per command) are given too.

The upgrade is counted from marking the downloaded image pending through the
boot that installs it to the confirmation (MCUboot's figure has the same
scope: its simulator starts with the image already in the secondary slot).
Downtime is the emulated flash-busy time of the boot that applies the update,
with the Geometry's default timing: 45 ms per 4 KiB sector erase and 0.7 ms
per 256-byte page program (W25Q-class serial NOR datasheet typicals).
"""
from __future__ import annotations

import hashlib

from bridge_emu import keys
from bridge_emu.core.device import Device
from bridge_emu.core.flash import Geometry, Layout
from bridge_emu.tools import signing

IMAGE_SIZE = 100_552
MCUBOOT_OFFSET = {"upgrade": {"writes": 251, "erases": 51, "max_erases_per_sector": 1},
                  "revert": {"writes": 257, "erases": 54}}
KEYS = ("writes", "erases", "bytes_written", "otp_writes", "busy_us")


def make_image(key, version: str, security_counter: int) -> bytes:
    """A signed image of exactly IMAGE_SIZE bytes (signature padded as imgtool --pad-sig)."""
    kw = dict(version=version, security_counter=security_counter, pad_sig=True)
    overhead = len(signing.sign_image(b"", key, **kw))
    payload = hashlib.shake_256(version.encode()).digest(IMAGE_SIZE - overhead)
    return signing.sign_image(payload, key, **kw)


class Meter:
    def __init__(self, dev: Device):
        self.dev = dev
        self.stats = dev.flash.stats
        self.counts = dev.flash.erase_counts()

    def delta(self) -> dict:
        now, counts = self.dev.flash.stats, self.dev.flash.erase_counts()
        out = {k: now[k] - self.stats[k] for k in KEYS}
        out["program_pages"] = -(-out["bytes_written"] // 256)
        out["max_erases_per_sector"] = max(b - a for a, b in zip(self.counts, counts))
        return out


def one_mode(mode: str, key) -> dict:
    g = Geometry.uniform(4096, 2 + 1 + 32 + 33, write_align=4)
    dev = Device.create(None, g, Layout.simple(g, mode), keys=[key.public_key()])
    images = [make_image(key, f"1.{i}.0", i + 1) for i in range(24)]
    dev.stage(images[0], permanent=True)
    dev.boot()
    dev.confirm()

    # download of the next image, in 64-byte OTA-sized blocks
    m = Meter(dev)
    dev.begin_download(IMAGE_SIZE)
    for off in range(0, IMAGE_SIZE, 64):
        dev.write_download(off, images[1][off:off + 64])
    download = m.delta()

    # one test upgrade: mark pending, boot (install), confirm
    m = Meter(dev)
    dev.mark_pending()
    dev.reopen()
    res = dev.boot()
    dev.confirm()
    upgrade = m.delta()
    upgrade["downtime_ms"] = res.busy_us / 1000

    # one revert: a new image installed on trial, then a boot without confirmation
    dev.stage(images[2])
    dev.reopen()
    dev.boot()
    m = Meter(dev)
    dev.power_cycle()
    res = dev.boot()
    revert = m.delta()
    revert["downtime_ms"] = res.busy_us / 1000
    assert dev.running_image() == images[1] and res.confirmed

    # steady state: 20 more upgrades, state-log and plan-area erases amortised
    per = []
    for img in images[4:24]:
        dev.begin_download(len(img))
        dev.write_download(0, img)
        m = Meter(dev)
        dev.mark_pending()
        dev.reopen()
        dev.boot()
        dev.confirm()
        per.append(m.delta())
    steady = {
        "upgrades": len(per),
        "writes_mean": sum(p["writes"] for p in per) / len(per),
        "erases_mean": sum(p["erases"] for p in per) / len(per),
        "erases_max": max(p["erases"] for p in per),
        "max_erases_per_sector_per_upgrade": max(p["max_erases_per_sector"] for p in per),
        "sector_erase_counts_max_after_all": max(dev.flash.erase_counts()),
    }
    return {"download_64B_blocks": download, "upgrade": upgrade, "revert": revert,
            "steady_state": steady}


def run() -> dict:
    key = keys.generate_key()
    return {
        "case": {"sector": 4096, "write_align": 4, "image_bytes": IMAGE_SIZE,
                 "timing": "erase 45 ms / 4 KiB sector, program 0.7 ms / 256-byte page"},
        "mcuboot_swap_using_offset_reference": MCUBOOT_OFFSET,
        "copy-swap": one_mode("copy-swap", key),
        "bank-switch": one_mode("bank-switch", key),
    }
