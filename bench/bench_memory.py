"""Memory per full-fidelity emulated bridge: copy-on-write flash against a
private buffer per bridge.

The fleet is bench_ota's (its _Fleet: one SimNetwork, a hub, FLEET bridges
with the B2-like bank-switch flash in memory, 2 x 264 KiB banks, each taking a
256 KiB OTA file through the real client, server, codec and C flash), run to
the end in a fresh process per variant, so that one variant's pages cannot
hide the other's:
- "cow" (what Device.create(None, ...) and factory_program do now): every
  bridge's flash is a private MAP_PRIVATE mapping of one sealed base holding
  the factory-programmed image; a page is copied when the C model first
  writes it;
- "private" (what they did before): a bytearray per bridge, factory
  programmed through the download path once per bridge
  (core/flash._COW = False forces it).

Memory is the process's proportional set size (Pss, /proc/self/smaps_rollup):
a page that n mappings share counts 1/n in each, so the shared base counts
once, as it costs once. RSS counts such a page once per mapping, which for
the cow variant over-states memory by the base size per bridge; both are
given. Per bridge = (value at the point - value before the fleet was built) /
FLEET, at three points: built (factory programmed, booted, joined and every
bridge downloading), half of all blocks served, and every download done
and verified, 60 s of virtual time later (the activations that follow, where the
hub's CS06 is accepted, are included; "upgraded" says how many there were).
The base images are memory files outside any mapping's count until touched;
their size is given (one per distinct base).

FLEET: BRIDGE_EMU_BENCH_MEMORY_FLEET (default 300).
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time

FLEET = int(os.environ.get("BRIDGE_EMU_BENCH_MEMORY_FLEET", "300"))
FILE_BYTES = 240 * 1024     # imagetool.build refuses files that do not fit B2's own 256 KiB bank


def _mem_kib() -> dict:
    out = {}
    try:
        with open("/proc/self/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("Rss", "Pss"):
                    out[k.lower()] = int(v.split()[0])
    except OSError:
        import resource
        out["rss"] = out["pss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return out


def _variant(name: str, n: int) -> dict:
    from bench.bench_ota import _file_of_size, _Fleet, _keys
    from bridge_emu.core import flash as flash_mod
    from bridge_emu.premises.images import DEFAULT_IMAGES, ImageSet
    if name == "private":
        flash_mod._COW = False
    images = ImageSet(DEFAULT_IMAGES)
    mkey, skey = _keys()
    new_file = _file_of_size(mkey, skey, FILE_BYTES)
    current = images.file("B2", "current").read_bytes()
    gc.collect()
    m0 = _mem_kib()
    t0 = time.perf_counter()
    f = _Fleet(n, images, current, new_file)
    build_s = time.perf_counter() - t0
    sched = f.net.scheduler
    f.start()
    while not f.downloading() and sched.time < 600:
        sched.run_until(sched.time + 0.25)
    points = {"built": _mem_kib()}
    total = n * -(-len(new_file) // 64)
    while f.blocks() < total // 2 and sched.time < 3600:
        sched.run_until(sched.time + 0.25)
    points["half_served"] = _mem_kib()
    while not all(b.record.download_done is not None for b, _ in f.bridges) and sched.time < 7200:
        sched.run_until(sched.time + 1.0)
    sched.run_until(sched.time + 60.0)      # verification, and activation where the hub gives it
    points["downloaded"] = _mem_kib()
    upgraded = sum(1 for b, _ in f.bridges if b.confirmed and b.record.outcome == "upgraded")
    dev = f.bridges[0][0].device
    bases = {id(b.device.flash.base): b.device.flash.base for b, _ in f.bridges
             if b.device.flash.base is not None}
    return {
        "bridges": n,
        "upgraded": upgraded,
        "flash_buffer_kib": round(len(dev.flash._buf) / 1024, 1),
        "buffer": type(dev.flash._buf).__name__,
        "distinct_bases": len(bases),
        "base_bytes_kib": round(sum(b.size for b in bases.values()) / 1024, 1),
        "build_wall_s": round(build_s, 2),
        "wall_s": round(time.perf_counter() - t0, 2),
        "per_bridge_kib": {p: {k: round((v[k] - m0[k]) / n, 1) for k in ("pss", "rss")}
                           for p, v in points.items()},
    }


def run() -> dict:
    out = {"fleet": "bench_ota's fleet: B2-like bank-switch flash in memory (8 KiB sectors, "
                    "2 x 264 KiB banks), factory image B2 1.0.0, a 240 KiB OTA file per bridge",
           "measure": "Pss (and Rss) growth per bridge, /proc/self/smaps_rollup, fresh process per variant"}
    for name in ("private", "cow"):
        proc = subprocess.run([sys.executable, "-m", "bench.bench_memory", name, str(FLEET)],
                              capture_output=True, text=True, check=True)
        out[name] = json.loads(proc.stdout)
    p, c = out["private"]["per_bridge_kib"], out["cow"]["per_bridge_kib"]
    out["pss_ratio_cow_over_private"] = {k: round(c[k]["pss"] / p[k]["pss"], 3) for k in p}
    return out


if __name__ == "__main__":
    json.dump(_variant(sys.argv[1], int(sys.argv[2])), sys.stdout)
