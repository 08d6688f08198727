"""A Clock (net.transport) over an asyncio event loop: real time when the loop
is a real one (a serial dongle, a peer stack in the same process), virtual time
when the loop's clock is virtual (a test)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable


class AsyncioClock:
    """now() is the loop's time(); call_at schedules on the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None):
        self.loop = loop or asyncio.get_event_loop()

    def now(self) -> float:
        return self.loop.time()

    def call_at(self, t: float, fn: Callable[[], None]) -> asyncio.TimerHandle:
        # never from inside call_at, even when t has passed (the Clock contract)
        return self.loop.call_at(max(t, self.loop.time()), fn)

    def cancel(self, handle: asyncio.TimerHandle) -> None:
        handle.cancel()
