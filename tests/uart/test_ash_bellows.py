"""Our NCP end of ASH against bellows' real host end (bellows.ash.AshProtocol),
in one asyncio loop: bellows resets the link, and EZSP-sized frames flow both
ways, in order and once, on a clean line and on one that delivers a byte at a
time and drops a tenth of the writes (the fifth of the issue's stress case is
run on virtual time in test_ash_link.py: here time is real, and bellows gives
up after five timeouts in a row, which a fifth makes likely within a session)."""
from __future__ import annotations

import asyncio
import random

import pytest
from bellows.ash import AshProtocol

from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.uart.ash_link import AshLink, Connected, Received


class Upper:
    """What bellows' EZSP layer sees (the callbacks AshProtocol makes)."""

    def __init__(self):
        self.frames: list[bytes] = []
        self.resets: list = []
        self.errors: list = []

    def connection_made(self, ash):
        pass

    def connection_lost(self, exc):
        pass

    def eof_received(self):
        pass

    def data_received(self, data: bytes):
        self.frames.append(bytes(data))

    def reset_received(self, code):
        self.resets.append(code)

    def error_received(self, code):
        self.errors.append(code)


class Line(asyncio.Transport):
    """bellows writes here; the bytes reach our NCP (one at a time, some writes lost)."""

    def __init__(self, deliver, rng: random.Random, drop: float, byte_at_a_time: bool):
        super().__init__()
        self.deliver, self.rng, self.drop, self.byte_at_a_time = deliver, rng, drop, byte_at_a_time
        self.closing = False

    dropped = 0

    def write(self, data: bytes) -> None:
        if self.rng.random() < self.drop:
            Line.dropped += 1
            return
        loop = asyncio.get_running_loop()
        chunks = [data[i:i + 1] for i in range(len(data))] if self.byte_at_a_time else [bytes(data)]
        for chunk in chunks:
            loop.call_soon(self.deliver, chunk)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True


async def session(seed: int, drop: float, byte_at_a_time: bool, n: int = 25):
    loop = asyncio.get_running_loop()
    rng = random.Random(seed)
    clock = AsyncioClock(loop)
    upper = Upper()
    bellows = AshProtocol(upper)
    ncp = AshLink("ncp")
    got: list[bytes] = []
    timer = None

    def pump():
        nonlocal timer
        for e in ncp.pop_events():
            if isinstance(e, Received):
                got.append(e.data)
            elif isinstance(e, Connected):
                pass
        out = ncp.pop_bytes()
        if out and rng.random() < drop:
            Line.dropped += 1
        elif out:
            chunks = [out[i:i + 1] for i in range(len(out))] if byte_at_a_time else [out]
            for chunk in chunks:
                loop.call_soon(bellows.data_received, chunk)
        if timer is not None:
            timer.cancel()
        deadline = ncp.next_deadline()
        timer = None if deadline is None else loop.call_at(deadline, on_timer)

    def on_timer():
        ncp.timer(clock.now())
        pump()

    def to_ncp(chunk: bytes):
        ncp.receive_bytes(chunk, clock.now())
        pump()

    bellows.connection_made(Line(to_ncp, rng, drop, byte_at_a_time))
    ncp.start(clock.now())
    for _ in range(20):                      # bellows resets until the NCP answers
        bellows.send_reset()
        for _ in range(60):
            await asyncio.sleep(0.01)
            if upper.resets:
                break
        if upper.resets:
            break
    assert upper.resets, "bellows never heard RSTACK"
    host_frames = [bytes([0x10 + i % 200]) * (5 + i % 60) for i in range(n)]
    ncp_frames = [bytes([0xA0 - i % 100]) * (3 + (3 * i) % 60) for i in range(n)]
    for h, c in zip(host_frames, ncp_frames):
        ncp.send(c, clock.now())
        pump()
        await bellows.send_data(h)           # bellows retries until ACKed (raises if it gives up)
    for _ in range(1000):
        if len(upper.frames) >= n and ncp.idle:
            break
        await asyncio.sleep(0.01)
    if timer is not None:
        timer.cancel()
    return host_frames, ncp_frames, got, upper.frames, ncp.stats


def test_bellows_resets_our_ncp_and_frames_flow_both_ways():
    host_frames, ncp_frames, got, heard, stats = asyncio.run(session(1, 0.0, False))
    assert got == host_frames and heard == ncp_frames
    assert stats["retransmitted"] == 0 and stats["naks_sent"] == 0


@pytest.mark.parametrize("seed", range(2))
def test_byte_at_a_time_with_a_tenth_of_writes_lost_against_bellows(seed):
    Line.dropped = 0
    host_frames, ncp_frames, got, heard, stats = asyncio.run(session(seed, 0.1, True, n=12))
    # bellows and our NCP each deliver every frame once and in order, though writes were lost
    assert got == host_frames and heard == ncp_frames
    assert Line.dropped > 0
