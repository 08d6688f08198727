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

Each 64-byte download write is followed by Device.prepare_download(1), as the
bridges' DeviceStore does: one erase at most of the area the install will save
the running image into. On the reference layout (secondary = primary + 1 unit)
there is no such area: the old units go where the new image vacates them, and
the boot erases both. "copy-swap, room past the blob" is the same flash with a
secondary of 2 x 26 units, as B1 and B4 have room for (their slots are about
2.7 and 2 times their images): the install saves the old image past the blob,
the download erases that area ahead, and the boot erases only the primary.
Its first upgrade finds that area blank (a fresh part), so the steady state
(20 more upgrades, each one's save area holding an earlier image) is the
figure that shows the pre-erase.

profiles: each of B1-B4 as the emulator builds it (its profile's flash and
layout, factory_program of its "current" image), taking three upgrades in a
row through DeviceStore (the OTA client's store: 64-byte blocks, one
pre-erase step per block): images/TYPE "next" 1.1.0, then 1.2.0 and 1.3.0
built with imagetool (the profile's payload size). Per upgrade: the erases
and flash-busy time of the download and of the boot that installs it (the
flash part of the downtime; the bridge adds boot_overhead_s and its rejoin).
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


def download(dev: Device, img: bytes) -> int:
    """The image in 64-byte OTA blocks, each followed by one pre-erase step;
    returns the steps that erased."""
    dev.begin_download(len(img))
    steps = 0
    for off in range(0, len(img), 64):
        dev.write_download(off, img[off:off + 64])
        e = dev.flash.stats["erases"]
        dev.prepare_download(1)
        steps += dev.flash.stats["erases"] - e
    return steps


def roomy_layout() -> tuple[Geometry, Layout]:
    """4 KiB sectors: log 2, plan 1, primary 32 units, secondary 52 (room past the blob)."""
    k = 4096
    g = Geometry.uniform(k, 2 + 1 + 32 + 52, write_align=4)
    return g, Layout("copy-swap", (0, k), ((3 * k, 32 * k), (35 * k, 52 * k)), plan=(2 * k, k))


def one_mode(mode: str, key, roomy: bool = False) -> dict:
    if roomy:
        g, lay = roomy_layout()
    else:
        g = Geometry.uniform(4096, 2 + 1 + 32 + 33, write_align=4)
        lay = Layout.simple(g, mode)
    dev = Device.create(None, g, lay, keys=[key.public_key()])
    images = [make_image(key, f"1.{i}.0", i + 1) for i in range(24)]
    dev.stage(images[0], permanent=True)
    dev.boot()
    dev.confirm()

    # download of the next image, in 64-byte OTA-sized blocks
    m = Meter(dev)
    download(dev, images[1])
    dl = m.delta()

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
        m = Meter(dev)
        download(dev, img)
        d = m.delta()
        m = Meter(dev)
        dev.mark_pending()
        dev.reopen()
        res = dev.boot()
        dev.confirm()
        p = m.delta()
        p["download_erases"] = d["erases"]
        p["downtime_ms"] = res.busy_us / 1000
        per.append(p)
    steady = {
        "upgrades": len(per),
        "writes_mean": sum(p["writes"] for p in per) / len(per),
        "erases_mean": sum(p["erases"] for p in per) / len(per),
        "erases_max": max(p["erases"] for p in per),
        "download_erases_mean": sum(p["download_erases"] for p in per) / len(per),
        "downtime_ms_mean": round(sum(p["downtime_ms"] for p in per) / len(per), 1),
        "max_erases_per_sector_per_upgrade": max(p["max_erases_per_sector"] for p in per),
        "sector_erase_counts_max_after_all": max(dev.flash.erase_counts()),
    }
    return {"download_64B_blocks": dl, "upgrade": upgrade, "revert": revert,
            "steady_state": steady}


def profile_upgrades(bridge_type: str) -> list[dict]:
    from bridge_emu.codec import ota_file as ota
    from bridge_emu.emulator.factory import factory_program
    from bridge_emu.emulator.profiles import PROFILES
    from bridge_emu.emulator.store import DeviceStore
    from bridge_emu.keys import key_paths, load_private_key
    from bridge_emu.premises.images import DEFAULT_IMAGES, ImageSet
    from bridge_emu.tools.imagetool import BuildSpec, build
    images = ImageSet(DEFAULT_IMAGES)
    kd = DEFAULT_IMAGES / "keys"
    mkey = load_private_key(key_paths(kd, "manufacturer").private.read_bytes())
    skey = load_private_key(key_paths(kd, "supplier").private.read_bytes())
    prof = PROFILES[bridge_type]
    dev = Device.create(None, prof.geometry, prof.layout(), keys=[images.manufacturer_key])
    factory_program(dev, images.file(bridge_type, "current").read_bytes())
    files = [("1.1.0", images.file(bridge_type, "next").read_bytes())]
    for i, v in enumerate(("1.2.0", "1.3.0")):
        files.append((v, build(BuildSpec(bridge_type, v, security_counter=3 + i,
                                          payload_size=prof.payload_size), mkey, skey)[1]))
    out = []
    for version, data in files:
        store = DeviceStore(dev)
        m = Meter(dev)
        store.begin(len(data), ota.read_strict(data, ota.BodyKind.GBCS).header.header_length)
        for off in range(0, len(data), 64):
            store.write(off, data[off:off + 64])
        dl = m.delta()
        dev.mark_pending()
        dev.reopen()
        m = Meter(dev)
        res = dev.boot()
        boot = m.delta()
        dev.confirm()
        assert "installed" in res.actions and res.image.version.startswith(version)
        out.append({"version": version, "file_bytes": len(data), "download_erases": dl["erases"],
                    "boot_erases": boot["erases"], "boot_flash_busy_ms": res.busy_us / 1000})
    return out


def run() -> dict:
    key = keys.generate_key()
    return {
        "case": {"sector": 4096, "write_align": 4, "image_bytes": IMAGE_SIZE,
                 "timing": "erase 45 ms / 4 KiB sector, program 0.7 ms / 256-byte page"},
        "mcuboot_swap_using_offset_reference": MCUBOOT_OFFSET,
        "copy-swap": one_mode("copy-swap", key),
        "bank-switch": one_mode("bank-switch", key),
        "copy-swap, room past the blob": one_mode("copy-swap", key, roomy=True),
        "profiles": {bt: profile_upgrades(bt) for bt in ("B1", "B2", "B3", "B4")},
    }
