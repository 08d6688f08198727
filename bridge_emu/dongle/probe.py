"""What a serial ZigBee stick is, and which roles it can take, without changing it:
`bridge-emu attach ... --probe`. For ZNP: SYS.Ping, SYS.Version and
UTIL.GetDeviceInfo, read-only (no NV is written, nothing is reset), so it is
safe on a stick that belongs to a coordinator elsewhere. For EZSP: an ASH reset
(RST, which every EZSP host sends at connect: the NCP restarts, its tokens are
untouched), then `version`, getLibraryStatus of the ZigBee PRO library (router
capability or an end-device-only stack) and getEui64; nothing is written."""
from __future__ import annotations

import time
from dataclasses import dataclass

import serial

from bridge_emu.codec import ezsp, mt
from bridge_emu.errors import BridgeEmuError
from bridge_emu.uart.ash_link import AshLink, Connected
from bridge_emu.uart.ash_link import Received as AshReceived
from bridge_emu.uart.ezsp_join import WANTED_VERSION

SKIP_BOOTLOADER = b"\xef"       # the byte TI's serial bootloader takes as "run the application now"
ROLE_BITS = (("coordinator", 0x01), ("router", 0x02), ("end device", 0x04))


class ProbeError(BridgeEmuError):
    """The stick cannot be opened or does not answer as a ZNP (or EZSP) stick."""


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


def _open(url: str, baudrate: int, *, timeout: float = 0.2) -> serial.SerialBase:
    try:
        port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, do_not_open=True)
        if not url.startswith(("socket://", "rfc2217://", "loop://")):
            port.dtr = port.rts = False
        port.open()
    except (serial.SerialException, ValueError, OSError) as e:
        raise ProbeError(f"{url}: cannot open ({e})") from None
    return port


def probe_znp(url: str, *, timeout_s: float = 5.0, baudrate: int = 115200) -> StickReport:
    port = _open(url, baudrate)
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


@dataclass(frozen=True)
class EzspStickReport:
    url: str
    ezsp_version: int
    stack_version: str
    ieee: int
    library_status: int

    @property
    def roles(self) -> list[str]:
        present = self.library_status != 0xFF and self.library_status & ezsp.LIBRARY_PRESENT
        if not present:
            return []
        if self.library_status & ezsp.LIBRARY_HAVE_ROUTER_CAPABILITY:
            return ["coordinator", "router", "end device"]
        return ["end device"]

    def can(self, role: str) -> bool:
        return role in self.roles

    def lines(self) -> list[str]:
        return [f"{self.url}: EmberZNet {self.stack_version} (EZSP v{self.ezsp_version})",
                f"IEEE {self.ieee:016X}, ZigBee PRO library status 0x{self.library_status:02X}",
                f"roles this build can take: {', '.join(self.roles) or 'none'}"
                + ("" if self.can("router") else "; it cannot be a router: flash an NCP build with the router "
                   "(full ZigBee PRO) stack to attach a mains bridge through it")]


def probe_ezsp(url: str, *, timeout_s: float = 5.0, baudrate: int = 115200) -> EzspStickReport:
    port = _open(url, baudrate, timeout=0.05)
    link = AshLink("host")
    frames: list[bytes] = []
    state = {"up": False}

    def pump(give_up: float, until) -> bool:
        while time.monotonic() < give_up:
            now = time.monotonic()
            link.timer(now)
            out = link.pop_bytes()
            if out:
                port.write(out)
            data = port.read(256)
            if data:
                link.receive_bytes(data, time.monotonic())
            for ev in link.pop_events():
                if isinstance(ev, Connected):
                    state["up"] = True
                elif isinstance(ev, AshReceived):
                    frames.append(ev.data)
            out = link.pop_bytes()
            if out:
                port.write(out)
            if until():
                return True
        return False

    version = WANTED_VERSION                 # what the NCP answers is what counts
    sequence = [0]

    def ask(name: str, *, legacy: bool = False, **fields) -> dict:
        sequence[0] = (sequence[0] + 1) & 0xFF
        frames.clear()
        link.send(ezsp.encode_request(name, version, sequence[0], legacy_header=legacy, **fields), time.monotonic())
        found: dict = {}

        def answered() -> bool:
            for data in frames:
                try:
                    frame = ezsp.EzspFrame.decode(data, version)
                    cmd = ezsp.by_id(frame.frame_id, version)
                except ezsp.EzspError:
                    continue
                if frame.sequence == sequence[0] and not frame.is_callback and cmd.name in (name, "invalidCommand"):
                    found["name"] = cmd.name
                    found["fields"] = ezsp.decode_parameters(cmd.name, version, ezsp.Direction.RESPONSE,
                                                             frame.parameters, strict=False)
                    return True
            return False
        if not pump(time.monotonic() + timeout_s, answered):
            raise ProbeError(f"{url}: no answer to EZSP {name} in {timeout_s:g} s")
        if found["name"] != name:
            raise ProbeError(f"{url}: the stick does not know EZSP {name} (invalidCommand)")
        return found["fields"]

    try:
        link.start(time.monotonic())
        if not pump(time.monotonic() + timeout_s, lambda: state["up"]):
            raise ProbeError(f"{url}: no ASH RSTACK in {timeout_s:g} s (not an EZSP stick, the wrong baud rate "
                             "or flow control, or a stick in its bootloader)")
        answer = ask("version", legacy=True, desired_protocol_version=version)
        theirs = answer["protocol_version"]
        if theirs not in ezsp.TABLE_VERSIONS:
            raise ProbeError(f"{url}: the stick speaks EZSP v{theirs}; attach needs v8 to v19")
        if theirs != version:
            version = theirs
            answer = ask("version", desired_protocol_version=theirs)
        s = answer["stack_version"]
        stack = f"{s >> 12 & 0xF}.{s >> 8 & 0xF}.{s >> 4 & 0xF}.{s & 0xF}"
        library = ask("getLibraryStatus", library_id=ezsp.ZIGBEE_PRO_LIBRARY_ID)["status"]
        ieee = ask("getEui64")["eui64"]
    except (serial.SerialException, OSError) as e:
        raise ProbeError(f"{url}: {e}") from None
    finally:
        port.close()
    return EzspStickReport(url, version, stack, ieee, library)
