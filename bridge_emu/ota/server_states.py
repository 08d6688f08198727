"""Where each client stands with the OTA server: its phase, and the one table
of moves between phases (bridge_emu.fsm: every move goes through
Transitions.go, which refuses one the table does not hold).

Blocks are stateless (any stored image, any offset, whatever was offered), so
most phases only say what the client is doing. Two change what the server
does next: PAGING (a burst of blocks is on the deadline heap; a new page
request replaces it, abort() stops it) and ABORTING (the next block or page
request is answered ABORT, before anything else). Both hold until their own
way out: a query, an Upgrade End or a block meanwhile is recorded in the
ClientState (offered, upgrade_end_status...) but does not end the burst or
cancel the abort.

Phases (a ClientState starts IDLE):
    IDLE         nothing under way: new, told NO_IMAGE_AVAILABLE, or aborted
    OFFERED      its last query was answered with an image
    DOWNLOADING  it is asking for blocks (or pages, each sent whole at once)
    PAGING       a page burst is under way (blocks left on the deadline heap)
    ABORTING     abort() was called: its next block or page request gets ABORT
    UPGRADING    it sent Upgrade End SUCCESS and was told when to upgrade
    END_FAILED   it sent Upgrade End with a failure status

Inputs (Trigger), named by what the server did or was told:
    query_offered     answered a Query Next Image Request with an image
    query_no_image    ... with NO_IMAGE_AVAILABLE
    block_sent        answered an Image Block Request with a block (at once, or delayed)
    wait_sent         ... with WAIT_FOR_DATA (throttling)
    block_refused     ... with an error status (unknown image, offset past the end, size 0)
    page_sent         answered an Image Page Request with its whole burst at once
    page_started      ... with a burst, some of it on deadlines
    page_refused      ... with an error status (the previous burst is dropped)
    page_unsupported  refused it: pages disabled (silently or UNSUP_CLUSTER_COMMAND)
    abort_sent        answered a block or page request with the pending ABORT
    burst_done        (timer) sent the last block of the current burst
    end_success       received an Upgrade End Request with SUCCESS
    end_failure       ... with any other status
    abort_requested   abort() was called
Query Device Specific File, Read Attributes (either way) and Default
Responses do not bear on a download: they are answered or recorded, and move
nothing.

The table (row: input, column: phase before; a cell is the phase after,
"." stays in the same phase, "-" no such move: see below):

INPUT             IDLE        OFFERED     DOWNLOADING PAGING      ABORTING UPGRADING   END_FAILED
query_offered     OFFERED     .           OFFERED     .           .        OFFERED     OFFERED
query_no_image    .           IDLE        IDLE        .           .        IDLE        IDLE
block_sent        DOWNLOADING DOWNLOADING .           .           -        DOWNLOADING DOWNLOADING
wait_sent         DOWNLOADING DOWNLOADING .           .           -        DOWNLOADING DOWNLOADING
block_refused     .           .           .           .           -        .           .
page_sent         DOWNLOADING DOWNLOADING .           DOWNLOADING -        DOWNLOADING DOWNLOADING
page_started      PAGING      PAGING      PAGING      .           -        PAGING      PAGING
page_refused      .           .           .           DOWNLOADING -        .           .
page_unsupported  .           .           .           -           .        .           .
abort_sent        -           -           -           -           IDLE     -           -
burst_done        -           -           -           DOWNLOADING -        -           -
end_success       UPGRADING   UPGRADING   UPGRADING   .           .        .           UPGRADING
end_failure       END_FAILED  END_FAILED  END_FAILED  .           .        END_FAILED  .
abort_requested   ABORTING    ABORTING    ABORTING    ABORTING    .        ABORTING    ABORTING

No such move ("-"), because it cannot happen:
- block or page outcomes in ABORTING: the pending ABORT answers first (abort_sent);
- abort_sent outside ABORTING: only a pending abort() sends ABORT;
- burst_done outside PAGING: only a burst has a last block;
- page_unsupported in PAGING: a server that refuses pages never starts a burst
  (the policy is fixed for the server's life: OtaServer.policy is read-only).
A move outside the table is a bug in the machine: Transitions.go raises
IllegalTransition, which receive() and timer() contain and count in `errors`.

DOWNLOADING --block_sent--> DOWNLOADING is the block path's every step, so it
is taken without the table lookup: one identity test instead of `go`, which
costs about a third of the server's whole block path. It is not a move, and
not counted in `taken`; a check below CLIENT_TRANSITIONS makes sure at import
that the table agrees.
"""
from __future__ import annotations

import enum

from bridge_emu.fsm import Transitions


class ClientPhase(enum.Enum):
    """Where one client stands with the server (see the module docstring)."""
    IDLE = "idle"
    OFFERED = "offered"
    DOWNLOADING = "downloading"
    PAGING = "paging"
    ABORTING = "aborting"
    UPGRADING = "upgrading"
    END_FAILED = "end failed"


class Trigger(enum.StrEnum):
    """The inputs of the table: what the server did, or was told (module docstring)."""
    QUERY_OFFERED = "query_offered"
    QUERY_NO_IMAGE = "query_no_image"
    BLOCK_SENT = "block_sent"
    WAIT_SENT = "wait_sent"
    BLOCK_REFUSED = "block_refused"
    PAGE_SENT = "page_sent"
    PAGE_STARTED = "page_started"
    PAGE_REFUSED = "page_refused"
    PAGE_UNSUPPORTED = "page_unsupported"
    ABORT_SENT = "abort_sent"
    BURST_DONE = "burst_done"
    END_SUCCESS = "end_success"
    END_FAILURE = "end_failure"
    ABORT_REQUESTED = "abort_requested"


# Short names for the table below (as h11's _state.py has its states at module level).
IDLE = ClientPhase.IDLE
OFFERED = ClientPhase.OFFERED
DOWNLOADING = ClientPhase.DOWNLOADING
PAGING = ClientPhase.PAGING
ABORTING = ClientPhase.ABORTING
UPGRADING = ClientPhase.UPGRADING
END_FAILED = ClientPhase.END_FAILED

QUERY_OFFERED = Trigger.QUERY_OFFERED
QUERY_NO_IMAGE = Trigger.QUERY_NO_IMAGE
BLOCK_SENT = Trigger.BLOCK_SENT
WAIT_SENT = Trigger.WAIT_SENT
BLOCK_REFUSED = Trigger.BLOCK_REFUSED
PAGE_SENT = Trigger.PAGE_SENT
PAGE_STARTED = Trigger.PAGE_STARTED
PAGE_REFUSED = Trigger.PAGE_REFUSED
PAGE_UNSUPPORTED = Trigger.PAGE_UNSUPPORTED
ABORT_SENT = Trigger.ABORT_SENT
BURST_DONE = Trigger.BURST_DONE
END_SUCCESS = Trigger.END_SUCCESS
END_FAILURE = Trigger.END_FAILURE
ABORT_REQUESTED = Trigger.ABORT_REQUESTED

#: phase -> {input: next phase}: the whole table, one phase per entry, inputs in
#: the same order in each (the docstring renders it; a test keeps the two equal).
CLIENT_TABLE: dict[ClientPhase, dict[Trigger, ClientPhase]] = {
    IDLE: {
        QUERY_OFFERED: OFFERED, QUERY_NO_IMAGE: IDLE,
        BLOCK_SENT: DOWNLOADING, WAIT_SENT: DOWNLOADING, BLOCK_REFUSED: IDLE,
        PAGE_SENT: DOWNLOADING, PAGE_STARTED: PAGING, PAGE_REFUSED: IDLE, PAGE_UNSUPPORTED: IDLE,
        END_SUCCESS: UPGRADING, END_FAILURE: END_FAILED,
        ABORT_REQUESTED: ABORTING,
    },
    OFFERED: {
        QUERY_OFFERED: OFFERED, QUERY_NO_IMAGE: IDLE,
        BLOCK_SENT: DOWNLOADING, WAIT_SENT: DOWNLOADING, BLOCK_REFUSED: OFFERED,
        PAGE_SENT: DOWNLOADING, PAGE_STARTED: PAGING, PAGE_REFUSED: OFFERED, PAGE_UNSUPPORTED: OFFERED,
        END_SUCCESS: UPGRADING, END_FAILURE: END_FAILED,
        ABORT_REQUESTED: ABORTING,
    },
    DOWNLOADING: {
        QUERY_OFFERED: OFFERED, QUERY_NO_IMAGE: IDLE,
        BLOCK_SENT: DOWNLOADING, WAIT_SENT: DOWNLOADING, BLOCK_REFUSED: DOWNLOADING,
        PAGE_SENT: DOWNLOADING, PAGE_STARTED: PAGING, PAGE_REFUSED: DOWNLOADING,
        PAGE_UNSUPPORTED: DOWNLOADING,
        END_SUCCESS: UPGRADING, END_FAILURE: END_FAILED,
        ABORT_REQUESTED: ABORTING,
    },
    # A burst holds until it is done, replaced or aborted.
    PAGING: {
        QUERY_OFFERED: PAGING, QUERY_NO_IMAGE: PAGING,
        BLOCK_SENT: PAGING, WAIT_SENT: PAGING, BLOCK_REFUSED: PAGING,
        PAGE_SENT: DOWNLOADING, PAGE_STARTED: PAGING, PAGE_REFUSED: DOWNLOADING,
        END_SUCCESS: PAGING, END_FAILURE: PAGING,
        ABORT_REQUESTED: ABORTING,
        BURST_DONE: DOWNLOADING,
    },
    # An abort holds until a block or page request takes it.
    ABORTING: {
        QUERY_OFFERED: ABORTING, QUERY_NO_IMAGE: ABORTING,
        PAGE_UNSUPPORTED: ABORTING,
        END_SUCCESS: ABORTING, END_FAILURE: ABORTING,
        ABORT_REQUESTED: ABORTING,
        ABORT_SENT: IDLE,
    },
    UPGRADING: {
        QUERY_OFFERED: OFFERED, QUERY_NO_IMAGE: IDLE,
        BLOCK_SENT: DOWNLOADING, WAIT_SENT: DOWNLOADING, BLOCK_REFUSED: UPGRADING,
        PAGE_SENT: DOWNLOADING, PAGE_STARTED: PAGING, PAGE_REFUSED: UPGRADING,
        PAGE_UNSUPPORTED: UPGRADING,
        END_SUCCESS: UPGRADING, END_FAILURE: END_FAILED,
        ABORT_REQUESTED: ABORTING,
    },
    END_FAILED: {
        QUERY_OFFERED: OFFERED, QUERY_NO_IMAGE: IDLE,
        BLOCK_SENT: DOWNLOADING, WAIT_SENT: DOWNLOADING, BLOCK_REFUSED: END_FAILED,
        PAGE_SENT: DOWNLOADING, PAGE_STARTED: PAGING, PAGE_REFUSED: END_FAILED,
        PAGE_UNSUPPORTED: END_FAILED,
        END_SUCCESS: UPGRADING, END_FAILURE: END_FAILED,
        ABORT_REQUESTED: ABORTING,
    },
}

#: The table as bridge_emu.fsm wants it: (phase, input) -> next phase. Each
#: OtaServer takes its own copy (Transitions(CLIENT_TRANSITIONS)), so its
#: `taken` tally is that server's alone.
CLIENT_TRANSITIONS = Transitions(
    {(phase, trigger): nxt for phase, row in CLIENT_TABLE.items() for trigger, nxt in row.items()},
    name="OTA server client")

# The block path stays in DOWNLOADING without asking the table (module docstring).
if CLIENT_TRANSITIONS[(DOWNLOADING, BLOCK_SENT)] is not DOWNLOADING:
    raise AssertionError("the block path's shortcut disagrees with the table")


def render_table(transitions: Transitions = CLIENT_TRANSITIONS) -> str:
    """The table as the module docstring shows it: a row per input, a column per
    phase; "." stays, "-" no such move."""
    phases = list(ClientPhase)
    rows = [["INPUT", *(p.name for p in phases)]]
    for trigger in Trigger:
        cells = [str(trigger)]
        for phase in phases:
            nxt = transitions.get((phase, trigger))
            cells.append("-" if nxt is None else "." if nxt is phase else nxt.name)
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    widths[0] += 1
    return "\n".join(" ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)
