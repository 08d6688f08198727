"""How the emulated firmware behaves once the boot core has started it: its
timings, and the timers a booted image arms from its manifest's behaviour
switches (codec.firmware.BEHAVIOUR_BITS) and whether it runs confirmed."""
from __future__ import annotations

from dataclasses import dataclass

from bridge_emu.codec.firmware import FirmwareManifest
from bridge_emu.emulator.bridge_events import Timer


@dataclass
class BridgeConfig:
    """Timing of the emulated firmware (assumptions, all configurable)."""
    boot_overhead_s: float = 0.4        # bootloader + firmware start, besides flash work
    rejoin_s: float = 3.0               # to rejoin the HAN and become a router again
    self_test_s: float = 1.0            # a failing self-test resets the bridge after this
    crash_after_s: float = 0.2          # firmware that crashes at boot dies this soon
    watchdog_s: float = 8.0             # a hung or crashed firmware is reset after this
    prove_timeout_s: float = 90.0       # new firmware must reach the hub within this (from power-on)
    trial_query_cap_s: float = 5.0      # ... and asks the hub at least this often until it does
    alert_retry_s: float = 5.0          # an unacknowledged alert is sent again after this, doubling
    alert_retry_cap_s: float = 120.0    # ... up to this (with jitter)
    alert_give_up_s: float = 3600.0     # ... until this long after it was raised
    off_after_cut_s: float = 2.0        # a power cut keeps the bridge off this long
    query_interval_s: float = 300.0
    utc0: int = 0                       # ZigBee UTC seconds at simulation time 0


def firmware_timers(manifest: FirmwareManifest, confirmed: bool, powered_at: float, ready: float,
                    cfg: BridgeConfig) -> dict[Timer, float]:
    """The timers of a firmware that starts at `ready` after power came at `powered_at`.

    A crashing image never gets to rejoin or to run its self test. Only an
    unconfirmed image runs the self test and must prove itself (reach the hub)
    in time: a confirmed one has done both on an earlier boot.
    """
    timers: dict[Timer, float] = {}
    if manifest.crashes_at_boot:
        timers[Timer.CRASH] = ready + cfg.crash_after_s
    else:
        if manifest.fails_self_test and not confirmed:
            timers[Timer.SELF_TEST_FAILED] = ready + cfg.self_test_s
        if not manifest.never_rejoins:
            timers[Timer.JOINED] = ready + cfg.rejoin_s
    if not confirmed:
        # counted from power-on: the watchdog runs while the boot core works too
        timers[Timer.PROVE_TIMEOUT] = powered_at + cfg.prove_timeout_s
    return timers
