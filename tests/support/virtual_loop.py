"""An asyncio event loop on virtual time: when nothing is ready to run, its
clock jumps to the next timer instead of sleeping, so a test of a peer's 30 s
and 600 s timeouts takes milliseconds and comes out the same every run."""
from __future__ import annotations

import asyncio
import selectors


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self):
        super().__init__()
        self.now = 0.0

    def select(self, timeout=None):
        ready = super().select(0)
        if not ready and timeout is not None and timeout > 0:
            self.now += timeout          # nothing to do until the next timer: jump there
        elif not ready and timeout is None:
            raise RuntimeError("virtual loop: nothing scheduled and nothing ready (the test would hang)")
        return ready


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self):
        self._jumping = _JumpingSelector()
        super().__init__(self._jumping)

    def time(self) -> float:
        return self._jumping.now


def run(coro, *, limit_s: float = 24 * 3600):
    """Run coro to completion on a fresh virtual-time loop; fail past limit_s virtual seconds."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(asyncio.wait_for(coro, limit_s))
    finally:
        loop.close()
