"""The OTA client's states and every move between them (the role of h11's _state.py).

The tables here are the ones the client runs: each of its state changes goes
through TRANSITIONS.go or QUERY_TRANSITIONS.go (bridge_emu.fsm), which refuse
a move they do not hold. A row is a change of state. An input that a state
handles and stays (a block while DOWNLOADING, a request sent again, a second
Upgrade End Response with the same answer) has no row.

The client is two machines, as h11 keeps several: the upgrade (ClientState)
and its Query Next Image Request (QueryState). The query is not an upgrade
state because it can be out in any of them: a paused download asks whether
its image is still offered, and late blocks can take it on, even to the end,
before the answer comes. An answer moves the upgrade only in IDLE,
DOWNLOADING and PAUSED; later it is ignored.

ClientState, the ImageUpgradeStatus a server reads in it, and the timers it
runs (exactly one of them is armed; none where there are none):

    IDLE                 NORMAL                  QUERY QUERY_TIMEOUT
    DOWNLOADING          DOWNLOAD_IN_PROGRESS    SEND_BLOCK BLOCK_TIMEOUT PAGE_TIMEOUT
    PAUSED               DOWNLOAD_IN_PROGRESS    QUERY QUERY_TIMEOUT
    DOWNLOADED           DOWNLOAD_COMPLETE       -
    ENDING               DOWNLOAD_COMPLETE       END_RETRY
    COUNTING_DOWN        COUNT_DOWN              COUNTDOWN
    WAITING_FOR_SERVER   WAITING_TO_UPGRADE_VIA_EXTERNAL_EVENT   RECHECK
    WAITING_FOR_COMMAND  WAITING_TO_UPGRADE_VIA_EXTERNAL_EVENT   -
    ACTIVATING           WAITING_TO_UPGRADE      -

ClientState moves (state, then: input -> next state):

    IDLE
        flash_holds_part      -> DOWNLOADING          power-on: the slot holds part of a download
        flash_holds_all       -> DOWNLOADED           power-on: the slot holds all of one
        offer                 -> DOWNLOADING          an image that fits is offered
    DOWNLOADING
        last_block            -> DOWNLOADED
        too_many_timeouts     -> PAUSED               the slot keeps what came; the next query resumes
        query_default_response -> PAUSED              the resume query was refused
        abandon               -> IDLE                 ABORT, a bad header, the slot refused, ...
    PAUSED
        offer                 -> DOWNLOADING          the same image again: resume at FileOffset
        block                 -> DOWNLOADING          a late answer
        wait_for_data         -> DOWNLOADING
        last_block            -> DOWNLOADED           a late answer that completes the file
        abandon               -> IDLE                 no longer offered, another image, ABORT, ...
    DOWNLOADED
        verified              -> ENDING               Upgrade End Request SUCCESS sent
        abandon               -> IDLE                 refused (Upgrade End Request INVALID_IMAGE)
    ENDING
        upgrade_now           -> ACTIVATING
        upgrade_later         -> COUNTING_DOWN
        upgrade_wait          -> WAITING_FOR_SERVER
        out_of_band_only      -> WAITING_FOR_COMMAND  the server is told NOT_AUTHORIZED
        timeout_apply         -> ACTIVATING
        timeout_hold          -> WAITING_FOR_COMMAND
        abandon               -> IDLE
    COUNTING_DOWN
        upgrade_time_reached  -> ACTIVATING
        upgrade_now           -> ACTIVATING           a later Upgrade End Response replaces the time
        upgrade_wait          -> WAITING_FOR_SERVER
        abandon               -> IDLE
    WAITING_FOR_SERVER
        upgrade_now           -> ACTIVATING           the later command
        upgrade_later         -> COUNTING_DOWN
        out_of_band_only      -> WAITING_FOR_COMMAND
        abandon               -> IDLE
    WAITING_FOR_COMMAND
        upgrade_now           -> ACTIVATING
        upgrade_later         -> COUNTING_DOWN
        upgrade_wait          -> WAITING_FOR_SERVER
        abandon               -> IDLE
    ACTIVATING
        upgrade_later         -> COUNTING_DOWN        the server answers again before the device applies
        upgrade_wait          -> WAITING_FOR_SERVER
        out_of_band_only      -> WAITING_FOR_COMMAND
        abandon               -> IDLE                 the device could not apply the image

A client starts IDLE; restoring from the flash is the first move. There is no
COUNTING_DOWN --out_of_band_only-->: under OUT_OF_BAND_ONLY every Upgrade End
Response but 0xFFFFFFFF is refused, so such a client never counts down.

QueryState moves:

    NOT_ASKED
        ask                   -> ASKED
    ASKED
        answered              -> NOT_ASKED
        timed_out             -> NOT_ASKED
        abandon               -> NOT_ASKED            dropping the image forgets the query
"""
from __future__ import annotations

import enum

from bridge_emu.codec.zcl import ImageUpgradeStatus
from bridge_emu.fsm import Transitions
from bridge_emu.ota.client_events import Input


class ClientState(enum.Enum):
    """Where the upgrade is; `upgrade_status` is the ImageUpgradeStatus a server reads."""

    IDLE = "idle", ImageUpgradeStatus.NORMAL                            # no image; asks now and then
    DOWNLOADING = "downloading", ImageUpgradeStatus.DOWNLOAD_IN_PROGRESS  # asks for blocks or pages
    PAUSED = "paused", ImageUpgradeStatus.DOWNLOAD_IN_PROGRESS          # unanswered: waits to query
    DOWNLOADED = "downloaded", ImageUpgradeStatus.DOWNLOAD_COMPLETE     # the device verifies
    ENDING = "ending", ImageUpgradeStatus.DOWNLOAD_COMPLETE             # Upgrade End Request out
    COUNTING_DOWN = "counting_down", ImageUpgradeStatus.COUNT_DOWN      # activates at a given time
    WAITING_FOR_SERVER = ("waiting_for_server",                         # 0xFFFFFFFF: re-asks
                          ImageUpgradeStatus.WAITING_TO_UPGRADE_VIA_EXTERNAL_EVENT)
    WAITING_FOR_COMMAND = ("waiting_for_command",                       # nothing asks
                           ImageUpgradeStatus.WAITING_TO_UPGRADE_VIA_EXTERNAL_EVENT)
    ACTIVATING = "activating", ImageUpgradeStatus.WAITING_TO_UPGRADE    # Activate is out

    def __init__(self, label: str, upgrade_status: ImageUpgradeStatus):
        self.upgrade_status = upgrade_status

    # Members are singletons: hash them by identity. Enum's own __hash__ is Python
    # code, and the block path tests membership of these sets on every block.
    __hash__ = object.__hash__


class QueryState(enum.Enum):
    NOT_ASKED = "not_asked"
    ASKED = "asked"             # a Query Next Image Request awaits its answer

    __hash__ = object.__hash__


class Timer(enum.Enum):
    """What the client's one deadline is for."""

    QUERY = "query"                     # ask for an image (paused: is ours still offered?)
    QUERY_TIMEOUT = "query_timeout"     # the query went unanswered
    SEND_BLOCK = "send_block"           # the minimum block period or WAIT_FOR_DATA is over
    BLOCK_TIMEOUT = "block_timeout"     # the request went unanswered: ask again, same offset
    PAGE_TIMEOUT = "page_timeout"       # the page went quiet (nothing came: use blocks)
    END_RETRY = "end_retry"             # the Upgrade End Request went unanswered
    RECHECK = "recheck"                 # waiting for the server: ask it again
    COUNTDOWN = "countdown"             # activate, or re-ask during a long count

    __hash__ = object.__hash__  # (see ClientState)


S, In = ClientState, Input

TIMERS: dict[ClientState, frozenset[Timer]] = {
    S.IDLE: frozenset({Timer.QUERY, Timer.QUERY_TIMEOUT}),
    S.DOWNLOADING: frozenset({Timer.SEND_BLOCK, Timer.BLOCK_TIMEOUT, Timer.PAGE_TIMEOUT}),
    S.PAUSED: frozenset({Timer.QUERY, Timer.QUERY_TIMEOUT}),
    S.DOWNLOADED: frozenset(),
    S.ENDING: frozenset({Timer.END_RETRY}),
    S.COUNTING_DOWN: frozenset({Timer.COUNTDOWN}),
    S.WAITING_FOR_SERVER: frozenset({Timer.RECHECK}),
    S.WAITING_FOR_COMMAND: frozenset(),
    S.ACTIVATING: frozenset(),
}

TRANSITIONS = Transitions({
    (S.IDLE, In.FLASH_HOLDS_PART):               S.DOWNLOADING,
    (S.IDLE, In.FLASH_HOLDS_ALL):                S.DOWNLOADED,
    (S.IDLE, In.OFFER):                          S.DOWNLOADING,

    (S.DOWNLOADING, In.LAST_BLOCK):              S.DOWNLOADED,
    (S.DOWNLOADING, In.TOO_MANY_TIMEOUTS):       S.PAUSED,
    (S.DOWNLOADING, In.QUERY_DEFAULT_RESPONSE):  S.PAUSED,
    (S.DOWNLOADING, In.ABANDON):                 S.IDLE,

    (S.PAUSED, In.OFFER):                        S.DOWNLOADING,
    (S.PAUSED, In.BLOCK):                        S.DOWNLOADING,
    (S.PAUSED, In.WAIT_FOR_DATA):                S.DOWNLOADING,
    (S.PAUSED, In.LAST_BLOCK):                   S.DOWNLOADED,
    (S.PAUSED, In.ABANDON):                      S.IDLE,

    (S.DOWNLOADED, In.VERIFIED):                 S.ENDING,
    (S.DOWNLOADED, In.ABANDON):                  S.IDLE,

    (S.ENDING, In.UPGRADE_NOW):                  S.ACTIVATING,
    (S.ENDING, In.UPGRADE_LATER):                S.COUNTING_DOWN,
    (S.ENDING, In.UPGRADE_WAIT):                 S.WAITING_FOR_SERVER,
    (S.ENDING, In.OUT_OF_BAND_ONLY):             S.WAITING_FOR_COMMAND,
    (S.ENDING, In.TIMEOUT_APPLY):                S.ACTIVATING,
    (S.ENDING, In.TIMEOUT_HOLD):                 S.WAITING_FOR_COMMAND,
    (S.ENDING, In.ABANDON):                      S.IDLE,

    (S.COUNTING_DOWN, In.UPGRADE_TIME_REACHED):  S.ACTIVATING,
    (S.COUNTING_DOWN, In.UPGRADE_NOW):           S.ACTIVATING,
    (S.COUNTING_DOWN, In.UPGRADE_WAIT):          S.WAITING_FOR_SERVER,
    # no OUT_OF_BAND_ONLY: a client under that policy never counts down
    (S.COUNTING_DOWN, In.ABANDON):               S.IDLE,

    (S.WAITING_FOR_SERVER, In.UPGRADE_NOW):      S.ACTIVATING,
    (S.WAITING_FOR_SERVER, In.UPGRADE_LATER):    S.COUNTING_DOWN,
    (S.WAITING_FOR_SERVER, In.OUT_OF_BAND_ONLY): S.WAITING_FOR_COMMAND,
    (S.WAITING_FOR_SERVER, In.ABANDON):          S.IDLE,

    (S.WAITING_FOR_COMMAND, In.UPGRADE_NOW):     S.ACTIVATING,
    (S.WAITING_FOR_COMMAND, In.UPGRADE_LATER):   S.COUNTING_DOWN,
    (S.WAITING_FOR_COMMAND, In.UPGRADE_WAIT):    S.WAITING_FOR_SERVER,
    (S.WAITING_FOR_COMMAND, In.ABANDON):         S.IDLE,

    (S.ACTIVATING, In.UPGRADE_LATER):            S.COUNTING_DOWN,
    (S.ACTIVATING, In.UPGRADE_WAIT):             S.WAITING_FOR_SERVER,
    (S.ACTIVATING, In.OUT_OF_BAND_ONLY):         S.WAITING_FOR_COMMAND,
    (S.ACTIVATING, In.ABANDON):                  S.IDLE,
}, name="OTA client")

Q = QueryState
QUERY_TRANSITIONS = Transitions({
    (Q.NOT_ASKED, In.ASK):                       Q.ASKED,
    (Q.ASKED, In.ANSWERED):                      Q.NOT_ASKED,
    (Q.ASKED, In.TIMED_OUT):                     Q.NOT_ASKED,
    (Q.ASKED, In.ABANDON):                       Q.NOT_ASKED,
}, name="OTA client query")


# -- groups of states the client's checks use, derived from the statuses where they can be

def _with_status(*statuses: ImageUpgradeStatus) -> frozenset[ClientState]:
    return frozenset(s for s in ClientState if s.upgrade_status in statuses)


IN_PROGRESS = _with_status(ImageUpgradeStatus.DOWNLOAD_IN_PROGRESS)     # blocks count here
COMPLETE = _with_status(ImageUpgradeStatus.DOWNLOAD_COMPLETE)           # verified() counts here
EXPECTING_REPLIES = IN_PROGRESS | COMPLETE
BEFORE_COMPLETE = IN_PROGRESS | {S.IDLE}                                # a query answer counts here
HOLDING_IMAGE = frozenset(ClientState) - BEFORE_COMPLETE                # the slot holds all of it
VERIFIED = HOLDING_IMAGE - {S.DOWNLOADED}                               # DownloadedFileVersion is set

del S, In, Q
