"""Networking: the Transport/Clock seams and the Driver (transport), and a
deterministic simulated premises network on virtual time (sim)."""
from bridge_emu.net.sim import (
                                      Link,
                                      LinkSpec,
                                      LinkStats,
                                      NodeStats,
                                      Scheduler,
                                      SimClock,
                                      SimNetwork,
                                      SimTransport,
                                      Timer,
)
from bridge_emu.net.transport import Clock, Driver, Frame, Machine, NetError, ReceiveFn, SleepyTransport, Transport

__all__ = ["Clock", "Driver", "Frame", "Machine", "NetError", "ReceiveFn", "SleepyTransport",
           "Transport", "Link", "LinkSpec", "LinkStats", "NodeStats", "Scheduler", "SimClock",
           "SimNetwork", "SimTransport", "Timer"]
