"""Firmware files: parse-and-verify speed, C path against a pure-Python
reference, and `bridge-emu image info --json` throughput over 1,000 files.

C path: what a bridge runs on download completion. The 512 KiB file lies in
an emulated flash; be_ota_verify parses the header and hashes the
manufacturer image reading through the flash model, then the supplier
signature is checked through the host crypto callback, then be_image_validate
hashes the bootable image and checks its signature.
Python reference: the construct codec's strict reading, hashlib and
cryptography over the same bytes in memory, doing the same checks.
"""
from __future__ import annotations

import pathlib
import subprocess
import sys
import tempfile
import time

from bridge_emu.codec import ota_file as ota
from bridge_emu.core._ffi import ffi, lib
from bridge_emu.core.host_crypto import make_trust
from bridge_emu.core.image_check import flash_holding
from bridge_emu.core.ota_verify import verify_ota_in_flash
from bridge_emu.keys import generate_key
from bridge_emu.tools import signing
from bridge_emu.tools.imagetool import BuildSpec, build

FILE_SIZE = 512 * 1024
REPEAT = 20
FOLDER_FILES = 1000


def _file_of_size(mkey, skey, size: int) -> bytes:
    probe = build(BuildSpec("B1", "1.0.0", payload_size=1000), mkey, skey)[1]
    overhead = len(probe) - 1000
    data = build(BuildSpec("B1", "1.0.0", payload_size=size - overhead), mkey, skey)[1]
    assert abs(len(data) - size) <= 2, len(data)
    return data


def _best(fn, n: int = REPEAT) -> float:
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def verify_speed(mkey, skey) -> dict:
    data = _file_of_size(mkey, skey, FILE_SIZE)
    header = ota.read_strict(data, ota.BodyKind.GBCS).header
    flash = flash_holding(data)
    trust = make_trust([mkey.public_key()])
    info = ffi.new("be_image_info_t *")
    spub, mpub = skey.public_key(), mkey.public_key()

    def c_path():
        r = verify_ota_in_flash(flash, 0, len(data), manufacturer=header.manufacturer,
                                image_type=header.image_type, hw_version=header.min_hardware_version,
                                supplier_key=spub)
        assert lib.be_image_validate(flash.ctx, r.image_offset, r.image_length, trust, info) == 0

    def python_path():
        f = ota.read_strict(data, ota.BodyKind.GBCS)
        assert signing.verify_supplier_signature(f, spub)
        signing.verify_image(f.body.manufacturer_image, [mpub])

    c_path()
    python_path()
    c, py = _best(c_path), _best(python_path)
    return {"file_bytes": len(data), "repetitions": REPEAT, "c_ms": round(c * 1e3, 3),
            "python_ms": round(py * 1e3, 3), "python_over_c": round(py / c, 2)}


def info_throughput(mkey, skey) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp)
        for i in range(FOLDER_FILES):
            inner = signing.sign_image(bytes([i % 251]) * (2000 + 13 * i), mkey, version=f"1.{i // 100}.{i % 100}")
            data = signing.build_gbcs_file(inner, skey, manufacturer=0xBEE0, image_type=0x0B01, file_version=i,
                                       min_hardware_version=0x100, max_hardware_version=0x1FF).build()
            if i % 10 == 0:
                data = b"WRAP" + data  # some files from the wild carry a vendor prefix
            (folder / f"f{i:04d}.zigbee").write_bytes(data)
        exe = pathlib.Path(sys.executable).parent / "bridge-emu"
        t0 = time.perf_counter()
        r = subprocess.run([str(exe), "image", "info", "--json", str(folder)], capture_output=True)
        wall = time.perf_counter() - t0
        assert r.returncode == 0, r.stderr[-500:]
        total = sum(p.stat().st_size for p in folder.iterdir())
    return {"files": FOLDER_FILES, "bytes": total, "wall_s": round(wall, 3),
            "files_per_s": round(FOLDER_FILES / wall, 1), "includes": "process start-up, one invocation"}


def run() -> dict:
    mkey, skey = generate_key(), generate_key()
    return {"verify_512KiB": verify_speed(mkey, skey), "image_info_json": info_throughput(mkey, skey)}
