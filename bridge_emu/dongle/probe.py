"""What a serial ZigBee stick is, and which roles it can take, without changing it:
`bridge-emu attach ... --probe`. For ZNP: SYS.Ping, SYS.Version and
UTIL.GetDeviceInfo, read-only (no NV is written, nothing is reset), so it is
safe on a stick that belongs to a coordinator elsewhere."""
from __future__ import annotations

import time
from dataclasses import dataclass

import serial

from bridge_emu.codec import mt
from bridge_emu.errors import BridgeEmuError

SKIP_BOOTLOADER = b"\xef"       # the byte TI's serial bootloader takes as "run the application now"
ROLE_BITS = (("coordinator", 0x01), ("router", 0x02), ("end device", 0x04))


class ProbeError(BridgeEmuError):
    """The stick cannot be opened or does not answer as a ZNP stick."""


@dataclass(frozen=True)
class StickReport:
    url: str
    transport_rev: int
    product_id: int
    release: str
    code_revision: int | None
    ieee: int
    device_types: int
    device_state: str

    @property
    def roles(self) -> list[str]:
        return [name for name, bit in ROLE_BITS if self.device_types & bit]

    def can(self, role: str) -> bool:
        return role in self.roles

    def lines(self) -> list[str]:
        return [f"{self.url}: Z-Stack {self.release} (product {self.product_id}, transport {self.transport_rev}"
                + (f", build {self.code_revision}" if self.code_revision else "") + ")",
                f"IEEE {self.ieee:016X}, state {self.device_state}",
                f"roles this build can take: {', '.join(self.roles) or 'none'}"
                + ("" if self.can("router") else "; it cannot be a router: flash a router or end-device "
                   "build (Z-Stack 3.x 'router' image) to attach a mains bridge through it")]


def probe_znp(url: str, *, timeout_s: float = 5.0, baudrate: int = 115200) -> StickReport:
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=0.2, do_not_open=True)
        if not url.startswith(("socket://", "rfc2217://", "loop://")):
            port.dtr = port.rts = False
        port.open()
    except (serial.SerialException, ValueError, OSError) as e:
        raise ProbeError(f"{url}: cannot open ({e})") from None
    parser = mt.FrameParser()
    try:
        port.write(SKIP_BOOTLOADER)

        def ask(name: str) -> mt.Decoded:
            give_up = time.monotonic() + timeout_s
            request = mt.encode_command(name)
            while time.monotonic() < give_up:
                port.write(request.encode())
                answer_by = time.monotonic() + 0.5
                while time.monotonic() < answer_by:
                    for frame in parser.feed(port.read(256)):
                        try:
                            got = mt.decode(frame)
                        except mt.MtError:
                            continue
                        if got.name == name and frame.type == mt.CommandType.SRSP:
                            return got
            raise ProbeError(f"{url}: no answer to {name} in {timeout_s:g} s (not a ZNP stick, the wrong "
                             "baud rate, or a stick still in its bootloader)")

        ask("SYS.Ping")
        version = ask("SYS.Version").fields
        info = ask("UTIL.GetDeviceInfo").fields
    except (serial.SerialException, OSError) as e:
        raise ProbeError(f"{url}: {e}") from None
    finally:
        port.close()
    state = info.device_state
    return StickReport(url, version.transport_rev, version.product_id,
                       f"{version.major_rel}.{version.minor_rel}.{version.maint_rel}",
                       version.get("code_revision"), info.ieee, info.device_type,
                       getattr(state, "name", str(state)))
