"""What goes into the OTA client and what comes out, as types (the role of h11's _events.py).

Inputs: an `Input` names what moved one of the client's machines; it is the
trigger of a row of the state tables in client_states. OtaClient turns the
server's frames, the device's calls and its own timers into inputs.

Outputs: the events pop_events() returns, for the device around the client.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageId:
    manufacturer: int
    image_type: int
    file_version: int


# ------------------------------------------------------------------ inputs


class Input(enum.StrEnum):
    """The triggers of the state tables (the strings the tables are keyed by)."""

    # ClientState: power-on, with a download in the slot
    FLASH_HOLDS_PART = "flash_holds_part"
    FLASH_HOLDS_ALL = "flash_holds_all"
    # ClientState: the download
    OFFER = "offer"                         # Query Next Image Response: an image that fits
    BLOCK = "block"                         # an Image Block Response taken into the slot
    LAST_BLOCK = "last_block"               # ... the one that completes the file
    WAIT_FOR_DATA = "wait_for_data"         # Image Block Response WAIT_FOR_DATA
    TOO_MANY_TIMEOUTS = "too_many_timeouts"  # max_timeouts requests in a row unanswered
    QUERY_DEFAULT_RESPONSE = "query_default_response"  # the server answered the query with a Default Response
    ABANDON = "abandon"                     # the image is dropped (DownloadFailed says why)
    # ClientState: after the download
    VERIFIED = "verified"                   # the device accepted the image
    UPGRADE_NOW = "upgrade_now"             # Upgrade End Response: now, or a time already past
    UPGRADE_LATER = "upgrade_later"         # ... a time to come
    UPGRADE_WAIT = "upgrade_wait"           # ... 0xFFFFFFFF: wait for a later command
    OUT_OF_BAND_ONLY = "out_of_band_only"   # ... refused: the activation policy is OUT_OF_BAND_ONLY
    TIMEOUT_APPLY = "timeout_apply"         # end_max_tries unanswered, timeout policy APPLY_AFTER_TIMEOUT
    TIMEOUT_HOLD = "timeout_hold"           # ... timeout policy DO_NOT_APPLY
    UPGRADE_TIME_REACHED = "upgrade_time_reached"
    # QueryState
    ASK = "ask"                             # a Query Next Image Request went out
    ANSWERED = "answered"                   # its Query Next Image Response or Default Response came
    TIMED_OUT = "timed_out"                 # response_timeout_s passed without one
    # (ABANDON also forgets an outstanding query)


# ------------------------------------------------------------------ outputs


@dataclass(frozen=True)
class QueryAnswered:
    """The server answered a Query Next Image (the bridge reached its hub)."""
    image: ImageId | None
    size: int


@dataclass(frozen=True)
class DownloadStarted:
    image: ImageId
    size: int
    offset: int                 # > 0: resumed from what the flash held


@dataclass(frozen=True)
class DownloadComplete:
    """Every byte is in the slot: the device verifies it and calls verified()."""
    image: ImageId
    size: int


@dataclass(frozen=True)
class DownloadFailed:
    image: ImageId | None
    reason: str


@dataclass(frozen=True)
class UpgradeScheduled:
    image: ImageId
    at: float


@dataclass(frozen=True)
class WaitingForActivation:
    """upgrade_time 0xFFFFFFFF, or out-of-band-only policy: a later command activates."""
    image: ImageId


@dataclass(frozen=True)
class Activate:
    """Apply the downloaded image now."""
    image: ImageId


@dataclass(frozen=True)
class OfferDeclined:
    """The server offered an image this device does not take: another manufacturer
    or image type, the version it already runs, or a file too short to hold one."""
    image: ImageId
    reason: str


@dataclass(frozen=True)
class Ignored:
    """A frame the client ignored, and why (for logs and tests)."""
    reason: str


Event = (QueryAnswered | DownloadStarted | DownloadComplete | DownloadFailed | UpgradeScheduled
         | WaitingForActivation | Activate | OfferDeclined | Ignored)
