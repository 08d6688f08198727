"""State-log records whose sequence number no append writes (issue 8, part 5).

Appends number records 1, 2, ...; a record with a valid checksum but sequence
0xFFFFFFFF (bit rot, a firmware bug) used to become the state, and the next
append wrapped to 0 and lost to it on reload, so a committed transition
silently went back. Such a record (and one with sequence 0) is now corrupt.
"""
from __future__ import annotations

import hashlib
import struct

import pytest
from test_boot import MODES, NEW, OLD, confirmed, download, runs

pytestmark = pytest.mark.native

REC = 32


def records(dev):
    """(address, raw) of every non-blank 32-byte slot of both log sectors."""
    found = []
    for base in dev.config.layout.log:
        size = next(s for a, s in dev.config.geometry.sectors() if a == base)
        for off in range(0, size, REC):
            raw = dev.flash.read(base + off, REC)
            if raw != b"\xff" * REC:
                found.append((base + off, raw))
    return found


def forge(raw: bytes, seq: int) -> bytes:
    body = raw[:4] + struct.pack("<I", seq) + raw[8:24]
    return body + hashlib.sha256(body).digest()[:8]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seq", [0xFFFFFFFF])
def test_a_record_no_append_writes_is_ignored(mode, seq):
    dev = confirmed(mode)
    newest = max(records(dev), key=lambda r: struct.unpack_from("<I", r[1], 4)[0])
    addr = max(a for a, _ in records(dev)) + REC
    dev.flash.write(addr, forge(newest[1], seq))
    dev.power_cycle()
    assert dev.boot().confirmed and runs(dev) == OLD
    download(dev, NEW)
    dev.mark_pending(permanent=True)
    dev.power_cycle()
    res = dev.boot()
    # the pending record stands after the reload, so the new image is installed
    assert "installed" in res.actions and runs(dev) == NEW
