"""Byte streams under the serial protocols: what a dongle's UART is to the
sans-I/O MT and ASH machines.

A ByteMachine takes bytes and time in and gives bytes and a deadline out; a
StreamDriver runs it over a Link and a Clock, as net.transport.Driver runs a
frame Machine. Links, all on one asyncio loop:

- `serve_tcp`: the device side of `socket://HOST:PORT` (a virtual dongle a host
  stack connects to; one host at a time, a new connection replaces the old, as
  a re-plugged cable does);
- `open_pty`: the device side of a pseudo-terminal (the host opens its name);
- `SerialUrlLink`: the host side of any pyserial URL (a real port, a pty,
  `socket://`, `rfc2217://`, `loop://`), read on a thread, re-opened with
  backoff when the port disappears (a USB stick unplugged and plugged back).
"""
from __future__ import annotations

import asyncio
import os
import random
import threading
import tty
from collections.abc import Callable
from typing import Any, Protocol

import serial

from bridge_emu.errors import BridgeEmuError
from bridge_emu.net.transport import Clock
from bridge_emu.retry import Backoff


class LinkError(BridgeEmuError):
    """A serial link cannot be opened or listened on."""


class ByteMachine(Protocol):
    """A sans-I/O protocol over a byte stream (the far end of a UART)."""

    def connection_made(self, now: float) -> None: ...
    def connection_lost(self, now: float) -> None: ...
    def receive_bytes(self, data: bytes, now: float) -> None: ...
    def pop_bytes(self) -> bytes: ...
    def timer(self, now: float) -> None: ...
    def next_deadline(self) -> float | None: ...


class Link(Protocol):
    """One end of a byte stream. on_bytes/on_state are set by the driver."""
    on_bytes: Callable[[bytes], None] | None
    on_state: Callable[[bool], None] | None

    def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


class StreamDriver:
    """Runs a ByteMachine on a Link and a Clock: after every input it writes what
    the machine has to send and keeps one clock call at its next deadline.

    An exception from the machine (a bug it has for some input) does not travel
    into the link's reader or the loop's timer, where it would end the host's
    connection or silently stop the machine's clock: it is kept in `errors`, the
    input that caused it is dropped, and the driver carries on (the owner reports
    `errors`; a dongle with a bug is still a dongle)."""

    def __init__(self, machine: ByteMachine, link: Link, clock: Clock):
        self.machine, self.link, self.clock = machine, link, clock
        self._handle: Any = None
        self._armed_at: float | None = None
        self.errors: list[BaseException] = []
        link.on_bytes = self._on_bytes
        link.on_state = self._on_state

    def start(self) -> None:
        self._pump()

    def stop(self) -> None:
        self._arm(None)
        self.link.on_bytes = self.link.on_state = None

    def poke(self) -> None:
        """Call after changing the machine from outside."""
        self._pump()

    def _guarded(self, call: Callable[[], None]) -> None:
        try:
            call()
        except Exception as e:   # kept for the owner, see the class docstring
            self.errors.append(e)
        self._pump()

    def _on_bytes(self, data: bytes) -> None:
        self._guarded(lambda: self.machine.receive_bytes(data, self.clock.now()))

    def _on_state(self, up: bool) -> None:
        now = self.clock.now()
        self._guarded(lambda: self.machine.connection_made(now) if up else self.machine.connection_lost(now))

    def _on_timer(self) -> None:
        self._handle, self._armed_at = None, None
        self._guarded(lambda: self.machine.timer(self.clock.now()))

    def _pump(self) -> None:
        try:
            out = self.machine.pop_bytes()
            deadline = self.machine.next_deadline()
        except Exception as e:
            self.errors.append(e)
            return
        if out:
            self.link.write(out)
        self._arm(deadline)

    def _arm(self, deadline: float | None) -> None:
        if deadline == self._armed_at:
            return
        if self._handle is not None:
            self.clock.cancel(self._handle)
        self._handle, self._armed_at = None, deadline
        if deadline is not None:
            self._handle = self.clock.call_at(deadline, self._on_timer)


class _LinkBase:
    def __init__(self):
        self.on_bytes: Callable[[bytes], None] | None = None
        self.on_state: Callable[[bool], None] | None = None

    def _deliver(self, data: bytes) -> None:
        if data and self.on_bytes is not None:
            self.on_bytes(data)

    def _state(self, up: bool) -> None:
        if self.on_state is not None:
            self.on_state(up)


class TcpServerLink(_LinkBase):
    """The device end of socket://: one host connection at a time. A new
    connection replaces the current one, which is closed; nothing more that the
    old host sent reaches the machine (not even bytes already read). Writes
    that a host does not read pile up to WRITE_BUFFER_MAX bytes; beyond that
    they are dropped (`overruns` counts them), as a UART nobody reads loses bytes."""

    WRITE_BUFFER_MAX = 1 << 20

    def __init__(self):
        super().__init__()
        self.server: asyncio.base_events.Server | None = None
        self.address: tuple[str, int] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.connections = 0
        self.overruns = 0
        self._closed = False

    @property
    def url(self) -> str:
        host, port = self.address
        return f"socket://{host}:{port}" if ":" not in host else f"socket://[{host}]:{port}"

    @property
    def connected(self) -> bool:
        """A host is connected now."""
        return self._writer is not None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closed:
            writer.close()                    # the link was closed meanwhile: no new host
            return
        old, self._writer = self._writer, writer
        if old is not None:                   # a new host replaces the old one
            old.close()
        self.connections += 1
        self._state(True)
        try:
            while data := await reader.read(4096):
                if self._writer is not writer:
                    break                     # replaced: what the old host still sends is not the new host's
                self._deliver(data)
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # the loop is ending with a host still connected (SIGTERM): end quietly, since asyncio.streams
            # would otherwise print the cancellation as a traceback; nothing awaits this task
            pass
        finally:
            if self._writer is writer:
                self._writer = None
                self._state(False)
            writer.close()

    def write(self, data: bytes) -> None:
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        if writer.transport.get_write_buffer_size() + len(data) > self.WRITE_BUFFER_MAX:
            self.overruns += len(data)
            return
        writer.write(data)

    def drop(self) -> None:
        """End the current host's connection, as a USB unplug ends a port (the
        listener stays: the host may connect again)."""
        if self._writer is not None:
            self._writer.close()

    def close(self) -> None:
        self._closed = True
        if self.server is not None:
            self.server.close()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


async def serve_tcp(host: str = "127.0.0.1", port: int = 0) -> TcpServerLink:
    """Listen on host:port (0: any free port); the link's `url` says where."""
    link = TcpServerLink()
    try:
        link.server = await asyncio.start_server(link._client, host, port)
    except OSError as e:
        raise LinkError(f"{host}:{port}: cannot listen ({e.strerror or e})") from None
    link.address = link.server.sockets[0].getsockname()[:2]
    return link


class PtyLink(_LinkBase):
    """The device end of a pseudo-terminal. We keep the other end open too, so a
    host that closes and re-opens the name does not end the link."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        super().__init__()
        self.loop = loop
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.name = os.ttyname(self._slave)
        loop.add_reader(self._master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return
        self._deliver(data)

    def write(self, data: bytes) -> None:
        try:
            os.write(self._master, data)
        except (BlockingIOError, OSError):
            pass            # a full terminal buffer loses bytes, as a UART overrun does

    def close(self) -> None:
        self.loop.remove_reader(self._master)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


def open_pty(loop: asyncio.AbstractEventLoop | None = None) -> PtyLink:
    return PtyLink(loop or asyncio.get_running_loop())


FLOW_CONTROL = ("none", "hardware", "software")


class SerialUrlLink(_LinkBase):
    """The host end of a pyserial URL, read on a thread and re-opened with
    backoff when the port goes away. Bytes and state changes reach the loop."""

    def __init__(self, url: str, loop: asyncio.AbstractEventLoop, baudrate: int = 115200,
                 backoff: Backoff | None = None, flow_control: str = "none"):
        """flow_control: "none", "hardware" (RTS/CTS: EmberZNet NCP UART images built for
        it; the driver then owns RTS) or "software" (XON/XOFF, which ASH's byte stuffing
        leaves free for it)."""
        super().__init__()
        if flow_control not in FLOW_CONTROL:
            raise LinkError(f"flow control {flow_control!r}: one of {', '.join(FLOW_CONTROL)}")
        self.url, self.loop, self.baudrate, self.flow_control = url, loop, baudrate, flow_control
        self.backoff = backoff or Backoff(first_s=0.5, cap_s=5.0)
        self._rng = random.Random()
        self.opens = 0
        self.last_error: str | None = None
        self._port: serial.SerialBase | None = None
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Open once now (a clear error if it cannot), then keep it open."""
        self._port = self._open()
        self._thread = threading.Thread(target=self._run, name=f"serial {self.url}", daemon=True)
        self._thread.start()

    def _open(self) -> serial.SerialBase:
        try:
            port = serial.serial_for_url(self.url, baudrate=self.baudrate, timeout=0.1, do_not_open=True,
                                         rtscts=self.flow_control == "hardware",
                                         xonxoff=self.flow_control == "software")
            # A pty has no modem pins (setting them fails); sockets have none either. Low DTR
            # and RTS keep a stick that wires them to reset/boot pins running; with RTS/CTS
            # the driver raises RTS itself when it can take bytes.
            pinless = self.url.startswith(("socket://", "rfc2217://", "loop://"))
            port.dtr = None if pinless else False
            port.rts = None if pinless or self.flow_control == "hardware" else False
            port.open()
        except (serial.SerialException, ValueError, OSError) as e:
            raise LinkError(f"{self.url}: cannot open ({e})") from None
        self.opens += 1
        return port

    def _run(self) -> None:
        attempt = 0
        while not self._closed.is_set():
            port = self._port
            if port is None:
                try:
                    port = self._open()
                except LinkError as e:
                    self.last_error = str(e)
                    attempt += 1
                    self._closed.wait(self.backoff.delay(attempt - 1, self._rng))
                    continue
                with self._lock:
                    self._port = port
                attempt = 0
            self.loop.call_soon_threadsafe(self._state, True)
            try:
                while not self._closed.is_set():
                    data = self._read(port)
                    if data:
                        self.loop.call_soon_threadsafe(self._deliver, data)
            except (serial.SerialException, OSError, TypeError) as e:   # unplugged mid-read
                self.last_error = f"{self.url}: {e}"
            with self._lock:
                self._port = None
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass
            if not self._closed.is_set():
                self.loop.call_soon_threadsafe(self._state, False)

    def _read(self, port: serial.SerialBase) -> bytes:
        """What has arrived: waits (up to the port's timeout) for a first byte, then
        takes everything else already there. pyserial's socket:// says only 0 or 1
        for in_waiting, so there the rest is read without waiting instead: one
        delivery per burst, not per byte."""
        data = port.read(max(1, port.in_waiting))
        if data and self.url.startswith("socket://"):
            port.timeout = 0
            try:
                data += port.read(65536)
            finally:
                port.timeout = 0.1
        return data

    def write(self, data: bytes) -> None:
        with self._lock:
            port = self._port
        if port is None:
            return                      # the link is down; the protocol above retries
        try:
            port.write(data)
        except (serial.SerialException, OSError) as e:
            self.last_error = f"{self.url}: {e}"

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass
