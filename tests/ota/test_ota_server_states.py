"""The OTA server's per-client phase table (bridge_emu.ota.server_states):
every row is reached by real frames (or the server's own controls and timer)
and lands where the table says, with the answer that row stands for; every
move the table lacks cannot happen (the same frames take another row); the
docstring shows the table as it is."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from bridge_emu.codec.zcl import (
    OTA_CLUSTER_ID,
    DefaultResponse,
    Direction,
    Frame,
    ImageBlockAbort,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    ImagePageRequest,
    OtaCommand,
    QueryNextImageRequest,
    QueryNextImageResponse,
    Status,
    UpgradeEndRequest,
    UpgradeEndResponse,
    decode,
    encode,
)
from bridge_emu.fsm import Transitions
from bridge_emu.ota import server_states
from bridge_emu.ota.server import CLIENT_TRANSITIONS, ClientPhase, ImageStore, OtaServer, Policy, Trigger
from bridge_emu.ota.server_states import (
    ABORT_REQUESTED,
    ABORT_SENT,
    ABORTING,
    BLOCK_REFUSED,
    BLOCK_SENT,
    BURST_DONE,
    DOWNLOADING,
    END_FAILED,
    END_FAILURE,
    END_SUCCESS,
    IDLE,
    OFFERED,
    PAGE_REFUSED,
    PAGE_SENT,
    PAGE_STARTED,
    PAGE_UNSUPPORTED,
    PAGING,
    QUERY_NO_IMAGE,
    QUERY_OFFERED,
    UPGRADING,
    WAIT_SENT,
)
from support.paths import IMAGES

S2C = Direction.SERVER_TO_CLIENT
B1 = 0x1001
MANUF, B1_TYPE = 0xBEE0, 0x0B01
V100, V110 = 0x01000000, 0x01010000
UNKNOWN_TYPE = 0x0BFF


@pytest.fixture(scope="module")
def store() -> ImageStore:
    return ImageStore.from_folder(IMAGES)


def send(server: OtaServer, cmd, now: float) -> list:
    server.receive(B1, OTA_CLUSTER_ID, encode(Frame.of(cmd, 7)), now)
    return answers(server)


def answers(server: OtaServer) -> list:
    return [decode(payload, S2C).command for _, _, payload in server.pop_outgoing()]


def block(offset: int = 0, version: int = V110) -> ImageBlockRequest:
    return ImageBlockRequest(MANUF, B1_TYPE, version, offset, 64)


def page(offset: int, size: int, spacing_ms: int, version: int = V110) -> ImagePageRequest:
    return ImagePageRequest(MANUF, B1_TYPE, version, offset, 64, size, spacing_ms)


# ------------------------------------------------------------------ into each phase (at time 0)

def _idle(server):
    send(server, QueryNextImageRequest(MANUF, UNKNOWN_TYPE, V100), 0.0)     # known, nothing offered


def _offered(server):
    send(server, QueryNextImageRequest(MANUF, B1_TYPE, V100, 0x0100), 0.0)


def _downloading(server):
    send(server, block(), 0.0)             # a block, or a WAIT under wait_every=1


def _paging(server):
    send(server, page(0, 256, 50), 0.0)          # 50-byte blocks 50 ms apart: the rest on deadlines


def _aborting(server):
    server.abort(B1)


def _upgrading(server):
    send(server, UpgradeEndRequest(Status.SUCCESS, MANUF, B1_TYPE, V110), 0.0)


def _end_failed(server):
    send(server, UpgradeEndRequest(Status.INVALID_IMAGE, MANUF, B1_TYPE, V110), 0.0)


ENTER: dict[ClientPhase, Callable[[OtaServer], None]] = {
    IDLE: _idle, OFFERED: _offered, DOWNLOADING: _downloading, PAGING: _paging,
    ABORTING: _aborting, UPGRADING: _upgrading, END_FAILED: _end_failed,
}


# ------------------------------------------------------------------ each input (at time 10)
# trigger -> (policy, what to do, what the server must answer)

def _drain(server):
    got = []
    while (t := server.next_deadline()) is not None:
        server.timer(t)
        got += answers(server)
    return got


def _is(*commands):
    def check(got):
        assert got == list(commands)
    return check


def _blocks(*offsets):
    def check(got):
        assert [type(c) for c in got] == [ImageBlockResponse] * len(offsets)
        assert [c.file_offset for c in got] == list(offsets)
    return check


def _wait(got):
    assert [type(c) for c in got] == [ImageBlockWait]


def _offer(got):
    [rsp] = got
    assert isinstance(rsp, QueryNextImageResponse) and rsp.status == Status.SUCCESS


def _burst_rest(got):           # what _paging left on the heap: 50..250
    _blocks(50, 100, 150, 200, 250)(got)


ZIGPY = Policy.preset("zigpy")
FIRE: dict[Trigger, tuple[Policy, Callable[[OtaServer], list], Callable[[list], None]]] = {
    QUERY_OFFERED: (ZIGPY, lambda s: send(s, QueryNextImageRequest(MANUF, B1_TYPE, V100, 0x0100), 10.0),
                    _offer),
    QUERY_NO_IMAGE: (ZIGPY, lambda s: send(s, QueryNextImageRequest(MANUF, UNKNOWN_TYPE, V100), 10.0),
                     _is(QueryNextImageResponse(Status.NO_IMAGE_AVAILABLE))),
    BLOCK_SENT: (ZIGPY, lambda s: send(s, block(1000), 10.0), _blocks(1000)),
    WAIT_SENT: (Policy.preset("zigpy", wait_every=1), lambda s: send(s, block(1000), 10.0), _wait),
    BLOCK_REFUSED: (ZIGPY, lambda s: send(s, block(0, version=0x05000000), 10.0),
                    _is(ImageBlockAbort(Status.NO_IMAGE_AVAILABLE))),
    PAGE_SENT: (ZIGPY, lambda s: send(s, page(2000, 100, 0), 10.0), _blocks(2000, 2050)),
    PAGE_STARTED: (ZIGPY, lambda s: send(s, page(3000, 150, 50), 10.0), _blocks(3000)),
    PAGE_REFUSED: (ZIGPY, lambda s: send(s, page(0, 100, 0, version=0x05000000), 10.0),
                   _is(ImageBlockAbort(Status.NO_IMAGE_AVAILABLE))),
    PAGE_UNSUPPORTED: (Policy.preset("gbcs-ch"), lambda s: send(s, page(0, 100, 0), 10.0),
                       _is(DefaultResponse(OtaCommand.IMAGE_PAGE_REQUEST, Status.UNSUP_CLUSTER_COMMAND))),
    ABORT_SENT: (ZIGPY, lambda s: send(s, block(0), 10.0), _is(ImageBlockAbort(Status.ABORT))),
    BURST_DONE: (ZIGPY, _drain, _burst_rest),
    END_SUCCESS: (ZIGPY, lambda s: send(s, UpgradeEndRequest(Status.SUCCESS, MANUF, B1_TYPE, V110), 10.0),
                  _is(UpgradeEndResponse(MANUF, B1_TYPE, V110, 0, 0))),
    END_FAILURE: (ZIGPY, lambda s: send(s, UpgradeEndRequest(Status.ABORT, MANUF, B1_TYPE, V110), 10.0),
                  _is(UpgradeEndResponse(MANUF, B1_TYPE, V110, 0, 0))),    # zigpy answers any status
    ABORT_REQUESTED: (ZIGPY, lambda s: s.abort(B1), lambda got: None),
}

ROWS = sorted(CLIENT_TRANSITIONS, key=lambda k: (list(ClientPhase).index(k[0]), list(Trigger).index(k[1])))

# The moves the table does not hold, and why none can happen (the server_states docstring):
NO_ROW = {
    # the pending ABORT answers a block or page request before anything else
    *((ABORTING, t) for t in (BLOCK_SENT, WAIT_SENT, BLOCK_REFUSED, PAGE_SENT, PAGE_STARTED, PAGE_REFUSED)),
    # only a pending abort sends ABORT; only a burst has a last block
    *((p, ABORT_SENT) for p in ClientPhase if p is not ABORTING),
    *((p, BURST_DONE) for p in ClientPhase if p is not PAGING),
    # a server that refuses pages (fixed policy) never starts a burst
    (PAGING, PAGE_UNSUPPORTED),
}


def _id(row) -> str:
    return f"{row[0].name}-{row[1]}"


def test_the_table_is_every_pair_but_the_impossible_ones():
    pairs = {(p, t) for p in ClientPhase for t in Trigger}
    assert set(CLIENT_TRANSITIONS) == pairs - NO_ROW
    assert len(CLIENT_TRANSITIONS) == 79 and len(NO_ROW) == 19
    assert set(FIRE) == set(Trigger) and set(ENTER) == set(ClientPhase)


def test_the_docstring_shows_the_table():
    assert server_states.render_table() in server_states.__doc__


@pytest.mark.parametrize("row", ROWS, ids=_id)
def test_every_row_is_reached_and_lands_where_the_table_says(store, row):
    phase, trigger = row
    policy, fire, expect = FIRE[trigger]
    server = OtaServer(store, policy)
    ENTER[phase](server)
    st = server.clients[B1]
    assert st.phase is phase
    server.transitions.taken.clear()
    expect(fire(server))
    assert st.phase is CLIENT_TRANSITIONS[row]
    assert st.abort_pending == (st.phase is ABORTING)
    assert (st.burst is not None) == (st.phase is PAGING)
    if row == (DOWNLOADING, BLOCK_SENT):
        assert not server.transitions.taken         # the block path's stay skips the lookup
    else:
        assert server.transitions.taken == {row: 1}
    assert server.errors == 0


# What the frames of a missing row do instead (each is a row the table holds; DOWNLOADING's
# stay on a block is the block path's, not counted).
def _instead(phase, trigger):
    if trigger is BURST_DONE:
        return {}                                     # no burst: the timer has nothing to do
    if phase is ABORTING:
        return {(ABORTING, ABORT_SENT): 1}            # the block or page request gets ABORT
    assert trigger is ABORT_SENT                      # a plain block request: served
    return {} if phase is DOWNLOADING else {(phase, BLOCK_SENT): 1}


@pytest.mark.parametrize("row", sorted(NO_ROW - {(PAGING, PAGE_UNSUPPORTED)}, key=_id), ids=_id)
def test_a_missing_row_cannot_happen(store, row):
    phase, trigger = row
    policy, fire, _ = FIRE[trigger]
    server = OtaServer(store, policy)
    ENTER[phase](server)
    assert server.clients[B1].phase is phase
    server.transitions.taken.clear()
    fire(server)
    assert server.transitions.taken == _instead(phase, trigger)
    assert server.errors == 0


def test_a_server_refusing_pages_never_pages(store):
    server = OtaServer(store, FIRE[PAGE_UNSUPPORTED][0])
    _paging(server)
    assert server.clients[B1].phase is IDLE and server.next_deadline() is None
    assert server.transitions.taken == {(IDLE, PAGE_UNSUPPORTED): 1}


def test_a_move_outside_the_table_is_contained_and_counted(store, caplog):
    """A bug that made a move the table lacks: receive() raises nothing, logs it,
    counts it in errors and sends nothing for that frame."""
    server = OtaServer(store, ZIGPY)
    _aborting(server)
    server._go = Transitions({}, name="empty").go     # white box: every move is now illegal
    assert send(server, block(), 1.0) == []
    assert server.errors == 1 and server.events[-1].kind == "error"
    assert "no transition from ABORTING" in caplog.text


def test_the_policy_is_fixed_for_the_servers_life(store):
    """The table's (PAGING, page_unsupported) gap relies on it."""
    server = OtaServer(store, "zigpy")
    with pytest.raises(AttributeError):
        server.policy = Policy.preset("gbcs-ch")
    assert server.policy is Policy.preset("zigpy")
