"""The byte-stream links under the serial protocols, and virtual time paced by
the wall clock. Servers listen on 127.0.0.1 and everything stops by itself."""
from __future__ import annotations

import asyncio
import os
import termios

import pytest
import serial

from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.realtime import RealTimePacer
from bridge_emu.net.serial_link import LinkError, SerialUrlLink, StreamDriver, open_pty, serve_tcp
from bridge_emu.net.sim import Scheduler


class Echo:
    """A ByteMachine that answers every chunk upper-cased, and says 'tick' at its deadline."""

    def __init__(self, tick_at: float | None = None):
        self.out = bytearray()
        self.seen = bytearray()
        self.states: list[bool] = []
        self.deadline = tick_at

    def connection_made(self, now):
        self.states.append(True)

    def connection_lost(self, now):
        self.states.append(False)

    def receive_bytes(self, data, now):
        self.seen += data
        self.out += data.upper()

    def pop_bytes(self):
        out, self.out = bytes(self.out), bytearray()
        return out

    def timer(self, now):
        self.out += b"tick"
        self.deadline = None

    def next_deadline(self):
        return self.deadline


async def read_exactly(reader, n, timeout=5.0):
    return await asyncio.wait_for(reader.readexactly(n), timeout)


def test_a_tcp_link_serves_one_host_at_a_time_and_takes_a_reconnect():
    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        clock = AsyncioClock(asyncio.get_running_loop())
        machine = Echo(tick_at=clock.now() + 0.05)
        driver = StreamDriver(machine, link, clock)
        driver.start()
        assert link.url.startswith("socket://127.0.0.1:")
        host, port = link.address
        r1, w1 = await asyncio.open_connection(host, port)
        await asyncio.sleep(0.1)          # the tick fires while connected
        w1.write(b"abc")
        assert await read_exactly(r1, 7) == b"tickABC"
        r2, w2 = await asyncio.open_connection(host, port)    # the host comes back on a new connection
        w2.write(b"xy")
        assert await read_exactly(r2, 2) == b"XY"
        assert await asyncio.wait_for(r1.read(), 5) == b""     # the old one was closed
        w2.close()
        await asyncio.sleep(0.05)
        driver.stop()
        link.close()
        return machine.states, link.connections
    states, connections = asyncio.run(main())
    assert connections == 2 and states[:2] == [True, True] and states[-1] is False


def test_a_port_in_use_is_one_clear_error():
    async def main():
        first = await serve_tcp("127.0.0.1", 0)
        try:
            with pytest.raises(LinkError, match=r"127\.0\.0\.1:\d+: cannot listen"):
                await serve_tcp("127.0.0.1", first.address[1])
        finally:
            first.close()
    asyncio.run(main())


def test_a_pty_link_carries_bytes_both_ways_and_survives_the_host_closing_it():
    async def main():
        loop = asyncio.get_running_loop()
        link = open_pty(loop)
        machine = Echo()
        StreamDriver(machine, link, AsyncioClock(loop)).start()
        answers = []
        for word in (b"hello", b"again"):     # the host opens, talks, closes, and opens again
            port = serial.Serial(link.name, timeout=2)
            port.write(word)
            answers.append(await loop.run_in_executor(None, port.read, len(word)))
            port.close()
        link.close()
        return link.name, answers
    name, answers = asyncio.run(main())
    assert name.startswith("/dev/") and answers == [b"HELLO", b"AGAIN"]


def test_the_host_link_reopens_a_port_that_went_away():
    async def main():
        loop = asyncio.get_running_loop()
        server = await serve_tcp("127.0.0.1", 0)
        device = Echo()
        StreamDriver(device, server, AsyncioClock(loop)).start()
        host = SerialUrlLink(server.url, loop)
        states, got = [], bytearray()
        host.on_state = states.append
        host.on_bytes = got.extend
        host.open()
        await asyncio.sleep(0.3)
        host.write(b"one")
        for _ in range(50):
            if got == b"ONE":
                break
            await asyncio.sleep(0.05)
        server._writer.close()            # the device side drops the line (the stick unplugged)
        for _ in range(200):
            if host.opens >= 2 and states[-1:] == [True]:
                break
            await asyncio.sleep(0.05)
        host.write(b"two")
        for _ in range(50):
            if got == b"ONETWO":
                break
            await asyncio.sleep(0.05)
        host.close()
        server.close()
        return bytes(got), states, host.opens
    got, states, opens = asyncio.run(main())
    assert got == b"ONETWO" and opens >= 2 and False in states and states[-1] is True


def test_a_port_that_cannot_be_opened_says_which():
    async def main():
        link = SerialUrlLink("/dev/does-not-exist-bridge-emu", asyncio.get_running_loop())
        with pytest.raises(LinkError, match="does-not-exist-bridge-emu: cannot open"):
            link.open()
    asyncio.run(main())


def test_paced_virtual_time_runs_events_at_their_wall_time_in_order():
    async def main():
        loop = asyncio.get_running_loop()
        sched = Scheduler()
        pacer = RealTimePacer(sched, loop, speed=2.0)     # two virtual seconds per wall second
        ran = []
        sched.call_at(1.0, lambda: ran.append(("a", sched.time)))
        sched.call_at(2.0, lambda: ran.append(("b", sched.time)))
        pacer.start()
        await asyncio.sleep(0.03)
        early = list(ran)
        # an event from outside, injected at the current wall time, runs after what was due
        pacer.sync()
        sched.call_at(sched.time, lambda: ran.append(("outside", sched.time)))
        pacer.wake()
        await asyncio.sleep(1.2)
        pacer.stop()
        return early, ran, pacer.virtual_now()
    early, ran, now = asyncio.run(main())
    assert early == []
    assert [name for name, _ in ran] == ["outside", "a", "b"]
    assert ran[1][1] == 1.0 and ran[2][1] == 2.0 and now >= 2.4


def test_an_event_that_raises_stops_the_pacer_and_is_kept():
    async def main():
        loop = asyncio.get_running_loop()
        sched = Scheduler()
        pacer = RealTimePacer(sched, loop)
        sched.call_at(0.0, lambda: 1 / 0)
        pacer.start()
        await asyncio.sleep(0.05)
        return pacer
    pacer = asyncio.run(main())
    assert not pacer.running and isinstance(pacer.errors[0], ZeroDivisionError)


def test_loop_url_is_a_host_link_too():
    async def main():
        loop = asyncio.get_running_loop()
        link = SerialUrlLink("loop://", loop)
        got = bytearray()
        link.on_bytes = got.extend
        link.open()
        link.write(b"\x7e\x01")
        for _ in range(40):
            if got:
                break
            await asyncio.sleep(0.05)
        link.close()
        return bytes(got)
    assert asyncio.run(main()) == b"\x7e\x01"


@pytest.mark.parametrize("flow", ["none", "hardware", "software"])
def test_flow_control_reaches_the_port_and_bytes_still_flow(flow):
    """RTS/CTS or XON/XOFF is set on the port itself (the pty's termios, shared by its
    two ends), and bytes written by the far end arrive (a pty honours neither)."""
    master, slave = os.openpty()

    async def main():
        link = SerialUrlLink(os.ttyname(slave), asyncio.get_running_loop(), flow_control=flow)
        got = bytearray()
        link.on_bytes = got.extend
        link.open()
        try:
            iflag, _, cflag, *_ = termios.tcgetattr(slave)
            os.write(master, b"\x1a\xc0\x38\xbc\x7e")       # an ASH RST
            for _ in range(50):
                if len(got) == 5:
                    break
                await asyncio.sleep(0.02)
            link.write(b"\x7e")
            await asyncio.sleep(0.05)
            back = os.read(master, 16)
        finally:
            link.close()
        return bool(cflag & termios.CRTSCTS), bool(iflag & termios.IXON and iflag & termios.IXOFF), bytes(got), back
    try:
        rtscts, xonxoff, got, back = asyncio.run(main())
    finally:
        os.close(master)
        os.close(slave)
    assert (rtscts, xonxoff) == (flow == "hardware", flow == "software")
    assert got == b"\x1a\xc0\x38\xbc\x7e" and back == b"\x7e"


def test_an_unknown_flow_control_is_refused_by_name():
    async def main():
        SerialUrlLink("loop://", asyncio.get_running_loop(), flow_control="rts")
    with pytest.raises(LinkError, match="flow control 'rts': one of none, hardware, software"):
        asyncio.run(main())
