"""Virtual time that follows the wall clock: the simulator's Scheduler paced by
an asyncio loop, so a simulated premises can sit behind a serial port and meet
a host stack that runs in real time.

The simulation stays the one source of behaviour (the same links, losses and
devices as a virtual-time run); only when its events run changes. Frames from
the outside world enter at the current wall time: call `sync()` before
injecting them and `wake()` after, so nothing runs out of order.
"""
from __future__ import annotations

import asyncio

from bridge_emu.net.sim import Scheduler


class RealTimePacer:
    """Runs a Scheduler's events when the loop's clock reaches them.

    Virtual time = (loop time - start) * speed + the scheduler's time at start.
    One loop callback is pending at a time, at the earliest event's moment.
    """

    def __init__(self, scheduler: Scheduler, loop: asyncio.AbstractEventLoop, speed: float = 1.0):
        if not speed > 0:
            raise ValueError(f"speed {speed!r}: want a positive factor")
        self.scheduler = scheduler
        self.loop = loop
        self.speed = speed
        self._origin = (loop.time(), scheduler.time)
        self._handle: asyncio.Handle | None = None
        self._armed_for: float | None = None
        self.running = False
        self.errors: list[BaseException] = []    # what an event raised; the pacer stops on the first

    def virtual_now(self) -> float:
        wall0, virtual0 = self._origin
        return virtual0 + (self.loop.time() - wall0) * self.speed

    def start(self) -> None:
        self._origin = (self.loop.time(), self.scheduler.time)
        self.running = True
        self.wake()

    def stop(self) -> None:
        self.running = False
        self._disarm()

    def sync(self) -> None:
        """Run everything due by now, so an event from outside lands in order."""
        if self.running:
            self._run_due()

    def wake(self) -> None:
        """Call after scheduling from outside: re-arms at the earliest event."""
        if self.running:
            self._disarm()
            self._handle = self.loop.call_soon(self._tick)

    def _tick(self) -> None:
        self._handle = None
        self._armed_for = None
        if not self.running:
            return
        self._run_due()
        if self.running:
            self._arm()

    def _run_due(self) -> None:
        try:
            self.scheduler.run_until(self.virtual_now())
        except Exception as e:     # an event's failure ends the run; the owner reports it
            self.errors.append(e)
            self.stop()

    def _arm(self) -> None:
        nxt = self.scheduler.next_time()
        if nxt is None or nxt == self._armed_for:
            return
        self._disarm()
        wall0, virtual0 = self._origin
        self._armed_for = nxt
        self._handle = self.loop.call_at(wall0 + (nxt - virtual0) / self.speed, self._tick)

    def _disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._armed_for = None
