"""serial_link under faults: a host replaced while its bytes are still in
flight, a host that never reads, a machine that raises. Servers listen on
127.0.0.1 and everything stops by itself."""
from __future__ import annotations

import asyncio

from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.serial_link import StreamDriver, TcpServerLink, serve_tcp


class Echo:
    """A ByteMachine that answers every chunk upper-cased; `boom` in a chunk raises."""

    def __init__(self, tick_at: float | None = None):
        self.out = bytearray()
        self.seen = bytearray()
        self.states: list[bool] = []
        self.deadline = tick_at
        self.ticks = 0

    def connection_made(self, now):
        self.states.append(True)

    def connection_lost(self, now):
        self.states.append(False)

    def receive_bytes(self, data, now):
        if b"boom" in data:
            raise RuntimeError("the machine has a bug")
        self.seen += data
        self.out += data.upper()

    def pop_bytes(self):
        out, self.out = bytes(self.out), bytearray()
        return out

    def timer(self, now):
        self.ticks += 1
        if self.ticks == 1:
            self.deadline = now + 0.01
            raise RuntimeError("the timer has a bug")
        self.out += b"tick"
        self.deadline = None

    def next_deadline(self):
        return self.deadline


class FakeWriter:
    """What TcpServerLink needs of an asyncio.StreamWriter."""

    class _Transport:
        def get_write_buffer_size(self):
            return 0

    def __init__(self):
        self.transport = self._Transport()
        self.written = bytearray()
        self.closed = False

    def write(self, data):
        self.written += data

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True


def test_bytes_the_old_host_still_had_in_flight_do_not_reach_the_machine_after_a_new_host_replaced_it():
    async def main():
        link = TcpServerLink()
        machine = Echo()
        StreamDriver(machine, link, AsyncioClock(asyncio.get_running_loop())).start()
        r1, w1 = asyncio.StreamReader(), FakeWriter()
        t1 = asyncio.create_task(link._client(r1, w1))
        await asyncio.sleep(0)
        r1.feed_data(b"one")
        await asyncio.sleep(0)
        r2, w2 = asyncio.StreamReader(), FakeWriter()
        t2 = asyncio.create_task(link._client(r2, w2))
        await asyncio.sleep(0)                     # the new host is in; the old one's reader not yet woken
        r1.feed_data(b"late")                      # read from the old connection's buffer after the switch
        r1.feed_eof()
        await t1
        r2.feed_data(b"new")
        await asyncio.sleep(0)
        states_while_up = list(machine.states)
        r2.feed_eof()
        await t2
        return bytes(machine.seen), w1, w2, states_while_up, machine.states, link.connections

    seen, w1, w2, states_while_up, states, connections = asyncio.run(main())
    assert seen == b"onenew"
    assert w1.closed and bytes(w1.written) == b"ONE" and bytes(w2.written) == b"NEW"
    assert states_while_up == [True, True]          # the old host's end did not take the new one down
    assert states == [True, True, False] and connections == 2


def test_a_host_that_never_reads_costs_bounded_memory_and_the_rest_is_counted_as_overrun():
    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        link.WRITE_BUFFER_MAX = 64 * 1024
        machine = Echo()
        StreamDriver(machine, link, AsyncioClock(asyncio.get_running_loop())).start()
        reader, writer = await asyncio.open_connection(*link.address)
        most = 0
        chunk = b"x" * 65536
        for _ in range(256):                        # 16 MiB sent, nothing read back
            writer.write(chunk)
            await writer.drain()
            if link._writer is not None:
                most = max(most, link._writer.transport.get_write_buffer_size())
        overruns = link.overruns
        for _ in range(2000):                       # what is still in the kernel's buffers arrives
            if len(machine.seen) == 256 * 65536:
                break
            await asyncio.sleep(0.005)
        writer.close()
        link.close()
        return most, overruns, len(machine.seen)

    most, overruns, seen = asyncio.run(main())
    assert seen == 256 * 65536                      # everything the host sent reached the machine
    assert most <= 64 * 1024 and overruns > 0       # what it would not read did not pile up


def test_a_machine_that_raises_is_reported_and_the_link_and_its_clock_go_on():
    async def main():
        loop = asyncio.get_running_loop()
        clock = AsyncioClock(loop)
        link = await serve_tcp("127.0.0.1", 0)
        machine = Echo(tick_at=clock.now() + 0.01)
        driver = StreamDriver(machine, link, clock)
        driver.start()
        reader, writer = await asyncio.open_connection(*link.address)
        writer.write(b"boom")
        await writer.drain()
        for _ in range(1000):                       # the bad input reached the machine (and only it)
            if any("machine" in str(e) for e in driver.errors):
                break
            await asyncio.sleep(0.005)
        writer.write(b"ok")
        got = await asyncio.wait_for(reader.readexactly(6), 10)     # the timer raised once, then ticked
        connected = link.connected
        writer.close()
        link.close()
        return got, driver.errors, connected, machine.ticks

    got, errors, connected, ticks = asyncio.run(main())
    assert got in (b"OKtick", b"tickOK")            # the input after the bad one is served, the timer re-armed
    assert connected and ticks == 2
    assert sorted(str(e) for e in errors) == ["the machine has a bug", "the timer has a bug"]


def test_a_loop_that_ends_with_a_host_still_connected_ends_quietly(caplog):
    async def main():
        link = await serve_tcp("127.0.0.1", 0)
        machine = Echo()
        StreamDriver(machine, link, AsyncioClock(asyncio.get_running_loop())).start()
        reader, writer = await asyncio.open_connection(*link.address)
        writer.write(b"hi")
        got = await asyncio.wait_for(reader.readexactly(2), 10)
        return got, link                         # the host is still connected as the loop ends (SIGTERM)

    with caplog.at_level("DEBUG", logger="asyncio"):
        got, link = asyncio.run(main())
    link.close()
    assert got == b"HI"
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")], caplog.text
