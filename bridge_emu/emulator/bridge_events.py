"""What a bridge takes besides frames (its own timers) and what it gives out
besides frames (the records of its event log, `Bridge.events` and
events.jsonl).

A record's `kind` is the log's "event" field and its fields are the log
entry's other fields, so the log's format is the list of classes below.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar


class Timer(enum.StrEnum):
    """The bridge's timers; each fires one handler (Bridge._on_timer). A StrEnum,
    with the names the timers had as strings, so timers due at the same instant
    fire in the order they always did (sorted by time, then name)."""
    POWER_ON = "power_on"                            # power back after a cut (cold boot)
    RESTART = "restart"                              # out of a reset (warm boot)
    CRASH = "crash"                                  # a crashing firmware dies
    WATCHDOG = "watchdog"                            # ... and is reset
    SELF_TEST_FAILED = "self_test_failed"            # an unconfirmed image fails its self test
    PROVE_TIMEOUT = "prove_timeout"                  # an unconfirmed image did not reach the hub
    JOINED = "joined"                                # the firmware is back on the HAN
    ACTIVATE = "activate"                            # a future-dated CS06 comes due
    REBOOT_FOR_ACTIVATION = "reboot_for_activation"  # after a CS06 SUCCESS response has left
    ALERT_RETRY = "alert_retry"                      # an alert the hub has not acknowledged is due again
    FAST_POLL_END = "fast_poll_end"                  # the fast polling after a join is over


@dataclass(frozen=True)
class Record:
    """One entry of the event log."""
    kind: ClassVar[str]


@dataclass(frozen=True)
class Boot(Record):
    kind: ClassVar[str] = "boot"
    version: str
    confirmed: bool
    actions: list[str]
    refused: str | None
    flash_busy_ms: float


@dataclass(frozen=True)
class NothingToBoot(Record):
    kind: ClassVar[str] = "no_bootable_image"
    error: str


@dataclass(frozen=True)
class Joined(Record):
    kind: ClassVar[str] = "joined"


@dataclass(frozen=True)
class Confirmed(Record):
    kind: ClassVar[str] = "confirmed"
    version: str


@dataclass(frozen=True)
class PowerLost(Record):
    kind: ClassVar[str] = "power_lost"
    reason: str


@dataclass(frozen=True)
class Reset(Record):
    kind: ClassVar[str] = "reset"
    reason: str


@dataclass(frozen=True)
class FirmwareCrashed(Record):
    kind: ClassVar[str] = "firmware_crashed"


@dataclass(frozen=True)
class SelfTestFailed(Record):
    kind: ClassVar[str] = "self_test_failed"


@dataclass(frozen=True)
class ProveTimeout(Record):
    kind: ClassVar[str] = "prove_timeout"


@dataclass(frozen=True)
class GbcsMalformed(Record):
    kind: ClassVar[str] = "gbcs_malformed"
    error: str


@dataclass(frozen=True)
class DownloadStarted(Record):
    kind: ClassVar[str] = "download_started"
    version: str        # the offered file version, 8 hex digits
    size: int
    offset: int         # > 0: resumed


@dataclass(frozen=True)
class DownloadFailed(Record):
    kind: ClassVar[str] = "download_failed"
    reason: str


@dataclass(frozen=True)
class OfferDeclined(Record):
    kind: ClassVar[str] = "offer_declined"
    file_version: str
    reason: str


@dataclass(frozen=True)
class VerificationFailed(Record):
    kind: ClassVar[str] = "verification_failed"
    error: str


@dataclass(frozen=True)
class Verified(Record):
    kind: ClassVar[str] = "verified"
    hash: str           # the manufacturer image hash, hex


@dataclass(frozen=True)
class WaitingForActivation(Record):
    kind: ClassVar[str] = "waiting_for_activation"


@dataclass(frozen=True)
class UpgradeScheduled(Record):
    kind: ClassVar[str] = "upgrade_scheduled"
    at: float


@dataclass(frozen=True)
class Cs06Received(Record):
    kind: ClassVar[str] = "cs06"
    hash: str
    execution_time: int


@dataclass(frozen=True)
class ActivationRefused(Record):
    kind: ClassVar[str] = "activation_refused"
    error: str


@dataclass(frozen=True)
class Activation(Record):
    kind: ClassVar[str] = "activation"
    outcome: str        # a gbcs.Outcome name


@dataclass(frozen=True)
class AlertRaised(Record):
    kind: ClassVar[str] = "alert"
    code: str           # "0x8F72"
    data: str           # hex


@dataclass(frozen=True)
class AlertGivenUp(Record):
    kind: ClassVar[str] = "alert_given_up"
    code: str           # "0x8F72"
    tries: int          # times it was sent, none acknowledged


@dataclass(frozen=True)
class Cs06Refused(Record):
    """A CS06 discarded: unsigned, not signed by the authorising party, or a
    counter not above the last accepted (a replay or an old command)."""
    kind: ClassVar[str] = "cs06_refused"
    reason: str         # a gbcs.Refusal name, lower case
    counter: int        # the command's originator counter
    last_accepted: int  # the device's, from flash


@dataclass(frozen=True)
class Cs06Repeated(Record):
    """A CS06 the bridge has already acted on (a hub retry): answered again, nothing done twice."""
    kind: ClassVar[str] = "cs06_repeated"
    outcome: str        # a gbcs.Outcome name, the answer given again
