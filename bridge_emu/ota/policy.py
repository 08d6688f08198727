"""How the OTA server behaves: `Policy` (a frozen dataclass), its choice
fields as enums, and the named personalities in PRESETS.

The choice fields are StrEnums, so a policy can be written with the plain
strings (Policy(version="any"), as premises files and older code do) and is
read back as members that still compare equal to those strings. The rules
each choice selects are in the module docstring of bridge_emu.ota.server.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from bridge_emu.codec.zcl import UPGRADE_TIME_WAIT, Status

ZIGBEE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def zigbee_utc(when: datetime) -> int:
    """ZigBee UTC time: whole seconds since 2000-01-01 00:00:00 UTC."""
    return int((when - ZIGBEE_EPOCH).total_seconds())


#: Default origin of the virtual clock: time 0 is 2026-01-01 00:00:00 UTC.
DEFAULT_UTC_AT_ZERO = zigbee_utc(datetime(2026, 1, 1, tzinfo=UTC))

MAX_BLOCK_DATA = 254            # an octet string's length byte; 0xFF is ZCL's invalid string


class VersionRule(enum.StrEnum):
    """Which file versions a Query Next Image may be offered."""
    NEWER = "newer"             # above the client's
    ANY = "any"                 # any but the client's


class PageRefusal(enum.StrEnum):
    """With pages disabled, how an Image Page Request is refused."""
    SILENT = "silent"                       # nothing: the client falls back to blocks
    DEFAULT_RESPONSE = "default-response"   # UNSUP_CLUSTER_COMMAND (Silicon Labs)


class DelayMode(enum.StrEnum):
    """What response_delay_s is measured from."""
    SINCE_LAST = "since_last"   # the previous block response to that client (herdsman)
    FIXED = "fixed"             # the request


class UpgradeTime(enum.StrEnum):
    """The (current_time, upgrade_time) pair of an Upgrade End Response."""
    NOW = "now"                 # 0 / 0 (zigpy)
    PLUS_ONE = "plus_one"       # 0 / 1 (zigbee-herdsman)
    DELAY = "delay"             # UTC now / now + N: spelt "delay:N"
    WAIT = "wait"               # UTC now / 0xFFFFFFFF: a later command activates (GBCS CS06)


class BlockErrorForm(enum.StrEnum):
    """How a block or page request the server cannot serve is answered."""
    RESPONSE = "response"                   # Image Block Response carrying the status only
    DEFAULT_RESPONSE = "default-response"   # Default Response with the status (Silicon Labs)


class EndFailure(enum.StrEnum):
    """How an Upgrade End Request with a failure status is answered."""
    DEFAULT_RESPONSE = "default-response"   # Default Response SUCCESS, unless disabled (ZCL rule)
    SILENT = "silent"                       # nothing (herdsman)
    END_RESPONSE = "end-response"           # an Upgrade End Response anyway (zigpy)


_CHOICES = {"version": VersionRule, "page_refusal": PageRefusal, "response_delay_mode": DelayMode,
            "block_error_form": BlockErrorForm, "end_failure": EndFailure}
_STATUS = {s.value: s for s in Status}


@dataclass(frozen=True)
class Policy:
    """How the server behaves (details in bridge_emu.ota.server's docstring).

    upgrade_time is the one choice with a parameter ("delay:N"), so it keeps
    its spelling; upgrade_mode and upgrade_delay_s are what it says, parsed.
    """
    name: str = "custom"
    block_cap: int = 64                 # image bytes per block at most (1..254)
    version: VersionRule = VersionRule.NEWER
    pages: bool = True                  # answer Image Page Requests with bursts of blocks
    page_refusal: PageRefusal = PageRefusal.SILENT
    honour_page_spacing: bool = True    # space page blocks by the request's response_spacing
    wait_every: int = 0                 # every Nth block request of a client: WAIT_FOR_DATA
    min_block_period_ms: int = 0        # per client: blocks sooner than this after the last: WAIT
    wait_s: int = 1                     # request_time - current_time for wait_every
    wait_utc: bool = True               # WAIT_FOR_DATA times as ZigBee UTC (False: current_time 0)
    response_delay_s: float = 0.0       # block responses delayed (herdsman's responseDelay)
    response_delay_mode: DelayMode = DelayMode.SINCE_LAST
    upgrade_time: str = UpgradeTime.NOW  # "now", "plus_one", "delay:N", "wait"
    utc_at_zero: int = DEFAULT_UTC_AT_ZERO    # ZigBee UTC of the virtual clock's time 0
    unknown_image_status: int = Status.NO_IMAGE_AVAILABLE
    past_end_status: int = Status.MALFORMED_COMMAND
    block_error_form: BlockErrorForm = BlockErrorForm.RESPONSE
    end_failure: EndFailure = EndFailure.DEFAULT_RESPONSE
    # derived from the fields above (so not compared, and recomputed by replace())
    upgrade_mode: UpgradeTime = field(init=False, repr=False, compare=False, default=UpgradeTime.NOW)
    upgrade_delay_s: int = field(init=False, repr=False, compare=False, default=0)
    throttled: bool = field(init=False, repr=False, compare=False, default=False)

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"Policy {self.name!r}: {what}")

        def derive(name: str, value) -> None:
            object.__setattr__(self, name, value)
        if not 1 <= self.block_cap <= MAX_BLOCK_DATA:
            raise bad(f"block_cap {self.block_cap} outside 1..{MAX_BLOCK_DATA}")
        mode = self.upgrade_time
        if not isinstance(mode, str):
            raise bad(f"upgrade_time {mode!r}: want now, plus_one, delay:N or wait")
        if mode.startswith("delay:"):
            try:
                delay = int(mode[6:])
            except ValueError:
                raise bad(f"upgrade_time {mode!r}: delay:N takes whole seconds") from None
            if not 0 <= delay < UPGRADE_TIME_WAIT:
                raise bad(f"upgrade_time {mode!r} out of range")
            derive("upgrade_mode", UpgradeTime.DELAY)
            derive("upgrade_delay_s", delay)
        elif mode in (UpgradeTime.NOW, UpgradeTime.PLUS_ONE, UpgradeTime.WAIT):
            derive("upgrade_mode", UpgradeTime(mode))
            derive("upgrade_time", UpgradeTime(mode))
        else:
            raise bad(f"upgrade_time {mode!r}: want now, plus_one, delay:N or wait")
        for name, choice in _CHOICES.items():
            value = getattr(self, name)
            try:
                derive(name, choice(value))
            except ValueError:
                raise bad(f"{name} {value!r}: want one of "
                          f"{', '.join(c.value for c in choice)}") from None
        if self.wait_every < 0 or self.min_block_period_ms < 0 or self.wait_s < 0:
            raise bad("wait_every, min_block_period_ms and wait_s must be >= 0")
        if not 0 <= self.min_block_period_ms <= 0xFFFF:
            raise bad("min_block_period_ms must fit 16 bits")
        if self.response_delay_s < 0:
            raise bad("response_delay_s must be >= 0")
        for name in ("unknown_image_status", "past_end_status"):
            status = getattr(self, name)
            if status in (Status.SUCCESS, Status.WAIT_FOR_DATA) or not 0 <= status <= 0xFF:
                raise bad(f"block error status {status!r} must be a status byte other than "
                          "SUCCESS and WAIT_FOR_DATA")
            derive(name, _STATUS.get(status, status))
        derive("throttled", bool(self.wait_every or self.min_block_period_ms))

    @classmethod
    def preset(cls, name: str, **overrides) -> Policy:
        """A named personality (PRESETS), with any fields overridden."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"no policy preset {name!r}; presets: {', '.join(PRESETS)}") from None
        return replace(base, **overrides) if overrides else base

    def utc(self, now: float) -> int:
        """ZigBee UTC (whole seconds) at virtual time now."""
        return int(self.utc_at_zero + now) & 0xFFFFFFFF

    def upgrade_times(self, now: float) -> tuple[int, int]:
        """(current_time, upgrade_time) of an Upgrade End Response sent at now."""
        mode = self.upgrade_mode
        if mode is UpgradeTime.NOW:
            return 0, 0
        if mode is UpgradeTime.PLUS_ONE:
            return 0, 1
        current = self.utc(now)
        if mode is UpgradeTime.WAIT:
            return current, UPGRADE_TIME_WAIT
        return current, min(current + self.upgrade_delay_s, UPGRADE_TIME_WAIT - 1)


PRESETS: dict[str, Policy] = {
    # zigpy (zigpy/ota/manager.py): 50-byte blocks, no WAIT_FOR_DATA, pages sent as
    # blocks spaced by response_spacing (no acknowledgement), Upgrade End answered
    # 0 / 0 whatever its status, MALFORMED_COMMAND for an offset past the end.
    "zigpy": Policy(name="zigpy", block_cap=50, pages=True, upgrade_time=UpgradeTime.NOW,
                    end_failure=EndFailure.END_RESPONSE),
    # zigbee-herdsman (src/controller/helpers/ota.ts; zigbee2mqtt's defaults):
    # 50-byte blocks, 250 ms between block responses, pages paced by that delay
    # alone, upgrade 0 / 1, nothing sent after a failed Upgrade End.
    "herdsman": Policy(name="herdsman", block_cap=50, pages=True, honour_page_spacing=False,
                       response_delay_s=0.25, response_delay_mode=DelayMode.SINCE_LAST,
                       upgrade_time=UpgradeTime.PLUS_ONE, end_failure=EndFailure.SILENT),
    # The Communications Hub on the GBCS 11.1 route: 64-byte blocks, upgrade_time
    # 0xFFFFFFFF (activation by CS06), and a Silicon Labs-style server otherwise:
    # no page support (UNSUP_CLUSTER_COMMAND), NO_IMAGE_AVAILABLE for unknown ids
    # and offsets past the end. Throttling is off unless configured:
    # Policy.preset("gbcs-ch", min_block_period_ms=..., wait_every=...).
    "gbcs-ch": Policy(name="gbcs-ch", block_cap=64, pages=False,
                      page_refusal=PageRefusal.DEFAULT_RESPONSE, upgrade_time=UpgradeTime.WAIT,
                      past_end_status=Status.NO_IMAGE_AVAILABLE),
}
