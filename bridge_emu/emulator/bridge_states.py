"""The phases of an emulated Alt HAN bridge and every move between them.

Everything that changes `Bridge.phase` goes through TRANSITIONS.go, so a move
that is not a row below is a bug and raises fsm.IllegalTransition.

    phase     trigger             next      why
    --------  ------------------  --------  ------------------------------------------------
    OFF       power_on            BOOTING   power applied: power_on(), or Timer.POWER_ON
                                            (power back off_after_cut_s after it was lost)
    OFF       restart             BOOTING   Timer.RESTART: out of a reset (RAM lost, flash
                                            and an armed cut kept)
    OFF       power_lost          OFF       power_off() while off: the off time starts again
    BOOTING   booted              JOINING   the boot core picked an image; its firmware starts
    BOOTING   no_bootable_image   DEAD      no image the boot core will run: bricked
    BOOTING   power_lost          OFF       a cut inside the boot core's flash work
                                            (install, revert)
    JOINING   joined              RUNNING   Timer.JOINED: back on the HAN, the OTA client starts
    JOINING   crash               CRASHED   Timer.CRASH: firmware that crashes at boot
    JOINING   self_test_failed    OFF       Timer.SELF_TEST_FAILED: an unconfirmed image fails
                                            its self test and resets (the boot core reverts)
    JOINING   prove_timeout       OFF       Timer.PROVE_TIMEOUT: an unconfirmed image that
                                            never rejoined is reset by the watchdog
    JOINING   power_lost          OFF       power_off() while rejoining
    RUNNING   activation_reboot   OFF       an image marked pending: reset so the boot core
                                            installs it (CS06, future-dated CS06, or the
                                            Upgrade End Response's upgrade time)
    RUNNING   prove_timeout       OFF       joined, but the hub did not answer within
                                            prove_timeout_s
    RUNNING   self_test_failed    OFF       a self test slower than the rejoin (only when
                                            BridgeConfig.self_test_s > rejoin_s)
    RUNNING   power_lost          OFF       a cut inside a flash write (download block,
                                            confirm, mark pending) or power_off()
    CRASHED   watchdog            OFF       Timer.WATCHDOG: the watchdog resets a crashed image
    CRASHED   power_lost          OFF       power_off() while crashed
    DEAD      power_lost          OFF       power_off() on a bricked bridge (it tries again)

BOOTING lasts only as long as the boot core's call: the boot is synchronous,
and the time it takes (boot_overhead_s and the flash work) delays the
firmware's timers instead. So between inputs a bridge is seen OFF, JOINING,
RUNNING, CRASHED or DEAD; a power cut inside the boot is seen from BOOTING.
The bridge is on the network (takes frames, runs its OTA client, sends its
alerts) exactly while RUNNING. GBCS facts: docs/gbcs-firmware.md.
"""
from __future__ import annotations

import enum

from bridge_emu.fsm import Transitions


class Phase(enum.StrEnum):
    """Where a bridge is in its power and boot cycle. A StrEnum so the event
    log, the progress display and older callers can compare it with its value."""
    OFF = "off"            # no power, or held in reset; a timer brings it back
    BOOTING = "booting"    # the boot core runs (verify, install or revert)
    JOINING = "joining"    # the firmware runs and rejoins the HAN
    RUNNING = "running"    # on the network: OTA client, GBCS, alerts
    CRASHED = "crashed"    # the firmware crashed; the watchdog will reset it
    DEAD = "dead"          # nothing to boot: bricked until the power goes


TRANSITIONS = Transitions({
    (Phase.OFF, "power_on"): Phase.BOOTING,
    (Phase.OFF, "restart"): Phase.BOOTING,
    (Phase.OFF, "power_lost"): Phase.OFF,

    (Phase.BOOTING, "booted"): Phase.JOINING,
    (Phase.BOOTING, "no_bootable_image"): Phase.DEAD,
    (Phase.BOOTING, "power_lost"): Phase.OFF,

    (Phase.JOINING, "joined"): Phase.RUNNING,
    (Phase.JOINING, "crash"): Phase.CRASHED,
    (Phase.JOINING, "self_test_failed"): Phase.OFF,
    (Phase.JOINING, "prove_timeout"): Phase.OFF,
    (Phase.JOINING, "power_lost"): Phase.OFF,

    (Phase.RUNNING, "activation_reboot"): Phase.OFF,
    (Phase.RUNNING, "prove_timeout"): Phase.OFF,
    (Phase.RUNNING, "self_test_failed"): Phase.OFF,
    (Phase.RUNNING, "power_lost"): Phase.OFF,

    (Phase.CRASHED, "watchdog"): Phase.OFF,
    (Phase.CRASHED, "power_lost"): Phase.OFF,

    (Phase.DEAD, "power_lost"): Phase.OFF,
}, name="bridge")
