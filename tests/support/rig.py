"""A test rig for the boot core: a device on a chosen geometry, alignment and
mode, with an old image installed and confirmed and a new one downloaded, and
helpers to cut power, reboot and tell which image runs."""
from __future__ import annotations

import hashlib
from functools import cache

from bridge_emu import keys
from bridge_emu.core.device import Device
from bridge_emu.core.flash import Geometry, Layout, Region
from bridge_emu.errors import PowerCut
from bridge_emu.tools import signing

KEY = keys.generate_key()
OTHER_KEY = keys.generate_key()

GEOMETRY_NAMES = ("4k", "8k", "mixed")
ALIGNS = (1, 4, 8)
MODES = ("copy-swap", "bank-switch")


def geometry(name: str, align: int) -> tuple[Geometry, Layout | None]:
    """Returns a geometry, and an explicit layout for the mixed one."""
    if name == "4k":
        return Geometry.uniform(4096, 3 + 16 + 17, write_align=align), None
    if name == "8k":
        return Geometry.uniform(8192, 3 + 8 + 9, write_align=align), None
    if name == "mixed":
        # 8 x 4 KiB (log, log, plan, spare, then the first four of slot 0) and
        # 8 x 16 KiB: slot 0 spans both sizes, so the swap unit (16 KiB) covers
        # four small sectors at its start and one large sector after.
        g = Geometry((Region(8, 4096, 45_000), Region(8, 16384, 120_000)), write_align=align)
        return g, None
    raise ValueError(name)


def layout(name: str, g: Geometry, mode: str) -> Layout:
    if name != "mixed":
        return Layout.simple(g, mode)
    k = 1024
    if mode == "copy-swap":
        return Layout(mode, (0, 4 * k), ((16 * k, 64 * k), (80 * k, 80 * k)), plan=(8 * k, 4 * k))
    return Layout(mode, (0, 4 * k), ((16 * k, 64 * k), (80 * k, 64 * k)))


@cache
def image(version: str, size: int, security_counter: int, key=None) -> bytes:
    """A signed image of exactly `size` bytes with payload derived from its version."""
    key = key or KEY
    kw = dict(version=version, security_counter=security_counter, pad_sig=True)
    overhead = len(signing.sign_image(b"", key, **kw))
    img = signing.sign_image(hashlib.shake_256(version.encode()).digest(size - overhead), key, **kw)
    assert len(img) == size
    return img


OLD_SIZE = 37_000
NEW_SIZE = 45_500


class Rig:
    """Device with `old` confirmed and running, and `new` downloaded (not yet pending)."""

    def __init__(self, geo: str, align: int, mode: str, *, max_attempts: int = 1,
                 old_size: int = OLD_SIZE, new_size: int = NEW_SIZE):
        g, _ = geometry(geo, align)
        lay = layout(geo, g, mode)
        if max_attempts != 1:
            lay = Layout(lay.mode, lay.log, lay.slots, lay.plan, max_attempts=max_attempts)
        self.dev = Device.create(None, g, lay, keys=[KEY.public_key()])
        self.flash = self.dev.flash
        self.old = image("1.0.0", old_size, 1)
        self.new = image("1.1.0", new_size, 2)
        self.dev.stage(self.old, permanent=True)
        self.dev.boot()
        self.dev.confirm()
        self.dev.begin_download(len(self.new))
        for off in range(0, len(self.new), 64):
            self.dev.write_download(off, self.new[off:off + 64])
        self.downloaded = self.flash.snapshot()

    # -- power --------------------------------------------------------------

    def restore(self, snap: bytes) -> None:
        self.flash.restore(snap)
        self.dev.reopen()

    def power_cycle(self) -> None:
        self.dev.power_cycle()

    def boot_until_runs(self, limit: int = 4):
        """Boot (no cuts armed) until an image runs; every boot must end in one."""
        res = None
        for _ in range(limit):
            res = self.dev.boot()
            if res is not None:
                return res
        raise AssertionError("device never ran")

    def ops(self, fn) -> int:
        """How many flash operations fn() performs (no cut)."""
        self.flash.arm_cut(0)
        fn()
        return self.flash.ops_since_arm

    def cut_during(self, fn, k: int, tear: str = "none", seed: int = 0) -> bool:
        """Run fn with power cut at its k-th operation; True if the cut happened."""
        self.flash.arm_cut(k, tear, seed)
        try:
            fn()
        except PowerCut:
            assert self.flash.cut
            return True
        self.flash.disarm()
        return False

    # -- what runs ----------------------------------------------------------

    def which(self) -> str:
        """'old' or 'new': the running image compared byte for byte."""
        img = self.dev.running_image()
        if img == self.old:
            return "old"
        if img == self.new:
            return "new"
        raise AssertionError("device runs an image that is neither the old nor the new one")

    # -- steps --------------------------------------------------------------

    def upgrade(self, permanent: bool = False) -> None:
        """Mark the download pending and boot it in."""
        self.dev.mark_pending(permanent)
        self.power_cycle_soft()
        self.dev.boot()

    def power_cycle_soft(self) -> None:
        """A reset that keeps the armed cut (the cut spans the whole sequence)."""
        self.dev.reopen()


def seed_for(k: int, tear: str) -> int:
    return (k * 2654435761 + len(tear) * 40503) & 0xFFFFFFFF
