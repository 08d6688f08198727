"""What goes into and comes out of the OTA server machine, as types.

In: frames (bytes from a node, at a time) through OtaServer.receive, which
the codec turns into its typed commands (bridge_emu.codec.zcl: Query Next
Image, Image Block and Page Requests, Upgrade End...), and the time through
OtaServer.timer, which fires the `Due` entries whose time has come.

Out: frames to send (`Outgoing`, from pop_outgoing), the next deadline
(next_deadline: the earliest `Due`), and `ServerEvent` records of what
happened, for logs, tables and tests (OtaServer.events, on_event).
"""
from __future__ import annotations

import enum
from typing import NamedTuple

#: One frame to send: (destination node, cluster id, ZCL frame bytes). A plain
#: tuple, not a NamedTuple: one is made for every block, and tuples are cheapest.
Outgoing = tuple[int, int, bytes]


class EventKind(enum.StrEnum):
    """Kinds of ServerEvent, each with what its `detail` holds."""
    QUERY = "query"                     # the file_version offered, or None
    UPGRADE_END = "upgrade_end"         # the request's status
    BLOCK_ERROR = "block_error"         # the status a block or page request was answered with
    PAGE = "page"                       # the page's file_offset
    PAGE_REFUSED = "page_refused"       # the page's file_offset (pages disabled)
    NOTIFY = "notify"                   # the Image Notify's payload type
    MALFORMED = "malformed"             # the Default Response status, or None when none was due
    DEVICE_SPECIFIC_QUERY = "device_specific_query"     # None
    ERROR = "error"                     # repr of an internal error


class ServerEvent(NamedTuple):
    """One record of OtaServer.events. A tuple, so it still compares equal to
    (kind, address, detail, time) written out, and EventKind members to their
    strings. Nothing is recorded per block (ClientState counts those)."""
    kind: EventKind
    address: int                        # the client (-1: none known)
    detail: object
    time: float


class Timer(enum.Enum):
    """What a Due entry does when its time comes."""
    DELAYED_BLOCK = "delayed block"     # a block response held back by response_delay_s: sent,
                                        # whatever happened since (it was counted when booked)
    PAGE_BLOCK = "page block"           # the next block of a page burst: sent, and counted, if
                                        # its burst is still the client's current one


class Due(NamedTuple):
    """An entry of the server's deadline heap: ordered by (at, seq), seq unique."""
    at: float
    seq: int
    timer: Timer
    dst: int
    payload: bytes
    burst: object = None                # PAGE_BLOCK: the Burst it belongs to
    offset: int = 0                     # PAGE_BLOCK: the block's file offset and length,
    length: int = 0                     # counted in ClientState when it is sent
