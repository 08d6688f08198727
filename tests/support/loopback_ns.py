"""A network namespace of a test's own, whose only interface is loopback: what a test
starts in it is reachable from 127.0.0.1 of that namespace and from nothing else.

Ray 2.60's servers (GCS, raylet, workers) listen on every interface they see, whatever
address they are given, so a test that starts Ray on the host's network would listen
on the machine's own address too. Inside this namespace the only interface is lo, and
Ray, finding no route out, takes 127.0.0.1 as its node address. It needs no privilege:
util-linux `unshare` maps the user to root in a user namespace of its own.

    with LoopbackNamespace() as ns:
        ns.run(["ray", "start", "--head", ...])      # subprocess.run, inside it
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import struct
import subprocess
import sys

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def _lo_up() -> None:
    """A new network namespace's lo is down: bring it up (ioctl SIOCSIFFLAGS, as `ip link set lo up`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH", b"lo", 0)))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))


class LoopbackNamespace:
    """A process holding a user and network namespace open; run() runs commands in it
    (nsenter). Closed: the holder ends (what still runs inside keeps the namespace)."""

    def __init__(self):
        unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
        if unshare is None or nsenter is None:
            raise RuntimeError("a loopback-only namespace needs util-linux unshare and nsenter")
        self.holder = subprocess.Popen(
            [unshare, "--user", "--map-root-user", "--net", "--", sys.executable, __file__],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.holder.stdout.readline().strip()
        if ready != "ready":
            self.holder.kill()
            raise RuntimeError(f"the loopback namespace did not come up: {ready!r}")
        self.prefix = [nsenter, "--target", str(self.holder.pid), "--user", "--net", "--preserve-credentials", "--"]

    def run(self, argv: list[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*self.prefix, *argv], **kw)

    def interfaces(self) -> list[str]:
        out = self.run([sys.executable, "-c", "import socket; print(' '.join(n for _, n in socket.if_nameindex()))"],
                       capture_output=True, text=True, check=True).stdout
        return out.split()

    def close(self) -> None:
        if self.holder.poll() is None:
            self.holder.stdin.close()            # the holder ends when its stdin does
            try:
                self.holder.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait()

    def __enter__(self) -> LoopbackNamespace:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":          # the holder, inside the new namespaces
    _lo_up()
    print("ready", flush=True)
    sys.stdin.read()
    os._exit(0)
