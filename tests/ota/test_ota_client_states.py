"""The OTA client's state tables (bridge_emu.ota.client_states).

1. The tables as written: the module docstring renders them exactly, every
   state carries its ImageUpgradeStatus, every timer has a handler and a state
   that runs it, every state can be reached and left.
2. Behaviours behind the rows the unit tests of test_ota_client do not reach:
   a paused download taken on by late answers, a power-on with the whole
   download in the slot, a second Upgrade End Response in every state after
   verification, dropping the image in every state.
3. Coverage: the scenarios (this file's, test_ota_client's unit tests and a
   derandomized run of its hostile-server state machine) take only moves the
   tables hold (fsm raises IllegalTransition on any other, which fails the
   run), and take every row of both tables.
"""
from __future__ import annotations

import ast
import inspect
import pathlib
import re
import subprocess
import sys
from collections import Counter

import pytest
import test_ota_client as base
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from test_ota_client import (
    APPLY_AFTER_TIMEOUT,
    DO_NOT_APPLY,
    ID,
    NEW,
    OUT_OF_BAND_ONLY,
    SERVER_ALLOWED,
    block,
    commands,
    downloaded_client,
    end_response,
    fresh,
    of_type,
    send,
    sent,
    start_download,
)

from bridge_emu.codec import zcl
from bridge_emu.codec.zcl import (
    AttributeId,
    DefaultResponse,
    ImageBlockRequest,
    ImageBlockWait,
    ImageUpgradeStatus,
    QueryNextImageRequest,
    Status,
    UpgradeEndRequest,
)
from bridge_emu.emulator.bridge import DeviceStore
from bridge_emu.ota import client as oc
from bridge_emu.ota import client_states
from bridge_emu.ota.client import ClientState, Input, OtaClient, QueryState, Timer
from bridge_emu.ota.client_states import QUERY_TRANSITIONS, TIMERS, TRANSITIONS

pytestmark = pytest.mark.native

S = ClientState
IMAGE = oc.ImageId(*ID)


# ---------------------------------------------------------------- 1. the tables


def _doc_parts() -> tuple[str, str, str]:
    doc = client_states.__doc__
    statuses, rest = doc.split("ClientState moves", 1)
    moves, query_moves = rest.split("QueryState moves", 1)
    return statuses, moves, query_moves


def _doc_rows(text: str) -> dict[tuple[str, str], str]:
    rows, state = {}, None
    for line in text.splitlines():
        if m := re.fullmatch(r" {4}([A-Z_]+)", line):
            state = m[1]
        elif m := re.fullmatch(r" {8}([a-z_]+) +-> ([A-Z_]+)\b.*", line):
            assert (state, m[1]) not in rows, line
            rows[(state, m[1])] = m[2]
    return rows


def _table_rows(table) -> dict[tuple[str, str], str]:
    return {(s.name, str(trigger)): n.name for (s, trigger), n in table.items()}


def test_the_docstring_renders_the_tables():
    statuses, moves, query_moves = _doc_parts()
    assert _doc_rows(moves) == _table_rows(TRANSITIONS)
    assert _doc_rows(query_moves) == _table_rows(QUERY_TRANSITIONS)
    listed = {}
    for line in statuses.splitlines():
        if m := re.fullmatch(r" {4}([A-Z_]+) +([A-Z_]+) +([A-Z_ ]+|-)", line):
            listed[m[1]] = (m[2], set() if m[3] == "-" else set(m[3].split()))
    assert listed == {s.name: (s.upgrade_status.name, {t.name for t in TIMERS[s]}) for s in ClientState}


def test_every_state_reports_an_image_upgrade_status():
    # WAIT_FOR_MORE is for a client taking several images: this one takes one
    assert {s.upgrade_status for s in ClientState} == set(ImageUpgradeStatus) - {ImageUpgradeStatus.WAIT_FOR_MORE}
    assert S.DOWNLOADING.upgrade_status is S.PAUSED.upgrade_status is ImageUpgradeStatus.DOWNLOAD_IN_PROGRESS


def test_every_timer_has_a_handler_and_a_state_that_runs_it():
    assert set(OtaClient._ON_TIMER) == set(Timer)
    assert set().union(*TIMERS.values()) == set(Timer)
    assert set(TIMERS) == set(ClientState)


CLIENT_MODULES = ("client", "client_states", "client_events")
CLIENT_MAY_IMPORT = ("bridge_emu.codec", "bridge_emu.errors", "bridge_emu.fsm", "bridge_emu.retry",
                     "bridge_emu.ota.client_events", "bridge_emu.ota.client_states")
ABOVE_OTA = ("bridge_emu.core", "bridge_emu.net", "bridge_emu.emulator", "bridge_emu.premises",
             "bridge_emu.tools", "bridge_emu.cli")


def test_the_client_is_sans_io():
    """Bytes and time in, bytes and deadlines out: the client imports the codec,
    the errors and fsm, and nothing that does I/O or sits above it."""
    here = pathlib.Path(oc.__file__).parent
    for name in CLIENT_MODULES:
        for node in ast.walk(ast.parse((here / f"{name}.py").read_text())):
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                found = [node.module]
            else:
                continue
            for module in found:
                if module.startswith("bridge_emu"):
                    assert module.startswith(CLIENT_MAY_IMPORT), (name, module)
                else:
                    assert module in {"__future__", "enum", "random", "dataclasses", "typing"}, (name, module)
    code = ("import sys, bridge_emu.ota.client; "
            "print('\\n'.join(m for m in sys.modules if m.startswith('bridge_emu')))")
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout.split()
    assert "bridge_emu.ota.client_states" in loaded
    assert not [m for m in loaded if m.startswith(ABOVE_OTA)]


def test_every_state_is_reached_and_left():
    def reachable(table, start):
        seen, todo = {start}, [start]
        while todo:
            here = todo.pop()
            for (s, _), n in table.items():
                if s is here and n not in seen:
                    seen.add(n)
                    todo.append(n)
        return seen
    assert reachable(TRANSITIONS, S.IDLE) == set(ClientState)
    for s in ClientState:
        assert S.IDLE in reachable(TRANSITIONS, s), s
    assert reachable(QUERY_TRANSITIONS, QueryState.NOT_ASKED) == set(QueryState)
    assert TRANSITIONS.triggers() | QUERY_TRANSITIONS.triggers() == set(Input)
    # every state but IDLE can drop its image
    assert {s for (s, t) in TRANSITIONS if t is Input.ABANDON} == set(ClientState) - {S.IDLE}


# ------------------------------------------------ 2. behaviours behind the rows


def paused(until: int = 320, **kw):
    """A download whose one unanswered request paused it (max_timeouts 1).
    Returns (client, device, now, the request that went unanswered)."""
    c, dev = fresh(max_timeouts=1, response_timeout_s=3.0, query_interval_s=300.0, **kw)
    (r,) = start_download(c, until=until)
    c.timer(3.0)
    assert c.state is S.PAUSED and "paused" in of_type(c.pop_events(), oc.DownloadFailed)[0].reason
    assert c.next_timer() is Timer.QUERY and c.next_deadline() == 303.0
    return c, dev, 3.0, r


def test_a_late_block_takes_a_paused_download_on():
    c, dev, now, r = paused()
    send(c, block(r.command.file_offset, 65), now + 1, tsn=r.header.tsn)
    assert c.state is S.DOWNLOADING and c.offset == r.command.file_offset + 65
    (nxt,) = sent(c)
    assert isinstance(nxt.command, ImageBlockRequest) and nxt.command.file_offset == c.offset
    assert c.next_timer() is Timer.BLOCK_TIMEOUT


def test_a_late_last_block_completes_a_paused_download():
    c, dev, now, r = paused(until=len(NEW) - 65)
    off = r.command.file_offset
    assert 0 < len(NEW) - off <= 65
    send(c, block(off, len(NEW) - off), now + 1, tsn=r.header.tsn)
    assert of_type(c.pop_events(), oc.DownloadComplete) == [oc.DownloadComplete(IMAGE, len(NEW))]
    assert c.status == ImageUpgradeStatus.DOWNLOAD_COMPLETE and c.state is S.DOWNLOADED
    assert base.slot_bytes(dev) == NEW
    assert sent(c) == [] and c.next_deadline() is None         # the query it waited for is off


def test_wait_for_data_takes_a_paused_download_on():
    c, dev, now, r = paused()
    send(c, ImageBlockWait(0, 4, 500), now + 1, tsn=r.header.tsn)
    assert c.state is S.DOWNLOADING and c.next_deadline() == now + 1 + 4.5
    c.timer(now + 5.5)
    (nxt,) = sent(c)
    assert nxt.command.file_offset == r.command.file_offset and nxt.command.minimum_block_period == 500


def test_a_default_response_to_the_resume_query_pauses_again():
    c, dev, now, r = paused()
    c.timer(303.0)                                            # asks whether the image is still offered
    (q,) = sent(c)
    assert isinstance(q.command, QueryNextImageRequest) and c.query is QueryState.ASKED
    send(c, block(r.command.file_offset, 65), 304.0, tsn=r.header.tsn)    # a late block first
    (b,) = sent(c)
    assert c.state is S.DOWNLOADING and c.query is QueryState.ASKED
    send(c, DefaultResponse(zcl.OtaCommand.QUERY_NEXT_IMAGE_REQUEST, Status.UNSUP_CLUSTER_COMMAND), 305.0,
         tsn=q.header.tsn, direction=base.S2C)
    assert of_type(c.pop_events(), oc.QueryAnswered) == [oc.QueryAnswered(None, 0)]
    assert c.state is S.PAUSED and c.query is QueryState.NOT_ASKED
    assert c.status == ImageUpgradeStatus.DOWNLOAD_IN_PROGRESS and c.next_deadline() == 605.0
    # the block request still out is answered: that takes it on again
    send(c, block(b.command.file_offset, 65), 306.0, tsn=b.header.tsn)
    assert c.state is S.DOWNLOADING and c.offset == b.command.file_offset + 65


def test_dropping_the_image_forgets_the_query_out():
    c, dev, now, r = paused()
    c.timer(303.0)
    (q,) = sent(c)
    send(c, zcl.ImageBlockAbort(Status.ABORT), 304.0, tsn=r.header.tsn)
    assert c.state is S.IDLE and c.query is QueryState.NOT_ASKED and dev.state.state == "confirmed"
    c.pop_events()
    send(c, base.offer(), 305.0, tsn=q.header.tsn)            # its answer comes after all
    assert of_type(c.pop_events(), oc.Ignored) == [oc.Ignored("query response without a query")]
    assert c.state is S.IDLE and sent(c) == [] and c.next_deadline() == 604.0


class CompletionStore(DeviceStore):
    """A store that knows when a download is complete (the C core does not: it
    resumes from the start of the last flash page written)."""

    def held(self):
        held = super().held()
        if held is not None and self.device.read_download(0, held[0]) == NEW:
            return held[0], held[0]
        return held


def test_power_on_with_the_whole_download_in_the_slot_asks_for_verification():
    c, dev = fresh()
    c.query_now(0.0)
    base.download(c)
    dev.power_cycle()
    dev.boot()
    c = OtaClient(base.config(), CompletionStore(dev), 10.0)
    assert c.pop_events() == [oc.DownloadComplete(IMAGE, len(NEW))]
    assert c.state is S.DOWNLOADED and c.offset == len(NEW)
    assert sent(c) == [] and c.next_deadline() is None and c.expecting
    assert c.attributes()[AttributeId.DOWNLOADED_FILE_VERSION][1] == 0xFFFFFFFF
    c.verified(True, 11.0)
    assert commands(sent(c)) == [UpgradeEndRequest(Status.SUCCESS, *ID)]
    assert c.attributes()[AttributeId.DOWNLOADED_FILE_VERSION][1] == ID[2]


# -- the states after verification, and a (further) Upgrade End Response in each


def reach(state: ClientState, policy=SERVER_ALLOWED) -> tuple[OtaClient, float]:
    """A client that verified the image, in `state` under activation policy `policy`."""
    timeout_policy = DO_NOT_APPLY if state is S.WAITING_FOR_COMMAND else APPLY_AFTER_TIMEOUT
    c, _, now = downloaded_client(activation_policy=policy, timeout_policy=timeout_policy,
                                  end_max_tries=1, end_retry_s=600.0)
    if state is S.COUNTING_DOWN:
        end_response(c, now, 0, 100)
    elif state is S.WAITING_FOR_SERVER:
        end_response(c, now, 800_000_000, zcl.UPGRADE_TIME_WAIT)
    elif state is S.ACTIVATING and policy is SERVER_ALLOWED:
        end_response(c, now, 0, 0)
    elif state in (S.WAITING_FOR_COMMAND, S.ACTIVATING):
        now += 600.0
        c.timer(now)                        # the one Upgrade End Request went unanswered: timeout policy
    assert c.state is state, (c.state, state)
    sent(c)
    c.pop_events()
    return c, now


ANSWERS = {"now": (0, 0), "later": (0, 100), "past": (800_000_000, 799_000_000),
           "wait": (800_000_000, zcl.UPGRADE_TIME_WAIT)}
AFTER_VERIFIED = [S.ENDING, S.COUNTING_DOWN, S.WAITING_FOR_SERVER, S.WAITING_FOR_COMMAND, S.ACTIVATING]


@pytest.mark.parametrize("answer", list(ANSWERS))
@pytest.mark.parametrize("state", AFTER_VERIFIED)
def test_an_upgrade_end_response_in_every_state_after_verification(state, answer):
    c, now = reach(state)
    end_response(c, now, *ANSWERS[answer], tsn=0x33)
    events = c.pop_events()
    assert sent(c) == []
    if answer in ("now", "past"):
        assert c.state is S.ACTIVATING and events == [oc.Activate(IMAGE)] and c.next_deadline() is None
    elif answer == "later":
        assert c.state is S.COUNTING_DOWN and events == [oc.UpgradeScheduled(IMAGE, now + 100)]
        assert c.next_deadline() == now + 100
    else:
        assert c.state is S.WAITING_FOR_SERVER and events == [oc.WaitingForActivation(IMAGE)]
        assert c.next_deadline() == now + 3600.0


@pytest.mark.parametrize("answer", list(ANSWERS))
@pytest.mark.parametrize("state", [S.ENDING, S.WAITING_FOR_SERVER, S.WAITING_FOR_COMMAND, S.ACTIVATING])
def test_out_of_band_only_refuses_every_server_time_in_every_state(state, answer):
    # (never COUNTING_DOWN: under this policy nothing starts a count)
    c, now = reach(state, policy=OUT_OF_BAND_ONLY)
    end_response(c, now, *ANSWERS[answer], tsn=0x33)
    assert c.pop_events() == [oc.WaitingForActivation(IMAGE)]
    if answer == "wait":
        assert sent(c) == [] and c.state is S.WAITING_FOR_SERVER and c.next_deadline() == now + 3600.0
    else:
        (f,) = sent(c)
        assert f.header.tsn == 0x33
        assert f.command == DefaultResponse(zcl.OtaCommand.UPGRADE_END_RESPONSE, Status.NOT_AUTHORIZED)
        assert c.state is S.WAITING_FOR_COMMAND and c.next_deadline() is None


# -- dropping the image, in every state


def in_state(state: ClientState):
    """(client, device, now) in `state`, its outputs popped."""
    if state is S.IDLE:
        c, dev = fresh()
        now = 0.0
    elif state is S.DOWNLOADING:
        c, dev = fresh()
        start_download(c, until=300)
        now = 0.0
    elif state is S.PAUSED:
        c, dev, now, _ = paused()
    elif state is S.DOWNLOADED:
        c, dev = fresh()
        c.query_now(0.0)
        now, _, _ = base.download(c)
    else:
        c, now = reach(state)
        dev = c.store.device
    sent(c)
    c.pop_events()
    assert c.state is state
    return c, dev, now


@pytest.mark.parametrize("state", list(ClientState))
def test_abandon_in_every_state(state):
    c, dev, now = in_state(state)
    held = c.image
    c.abandon("activation refused", now + 1)
    assert c.pop_events() == [oc.DownloadFailed(held, "activation refused")]
    assert c.state is S.IDLE and c.status == ImageUpgradeStatus.NORMAL and c.image is None and c.offset == 0
    assert c.attributes()[AttributeId.DOWNLOADED_FILE_VERSION][1] == 0xFFFFFFFF
    assert dev.state.state == "confirmed"                      # the slot is released
    assert sent(c) == [] and c.next_timer() is Timer.QUERY and c.next_deadline() == now + 1 + 300.0
    end_response(c, now + 2, 0, 0)
    assert not of_type(c.pop_events(), oc.Activate)


# ------------------------------------------------------------------ 3. coverage


def _calls(module, skip: set[str]):
    """Every test function of module, once per parametrize combination."""
    for name, fn in vars(module).items():
        if not name.startswith("test_") or not inspect.isfunction(fn) or name in skip:
            continue
        combos = [{}]
        for mark in getattr(fn, "pytestmark", []):
            if mark.name != "parametrize":
                continue
            names, values = mark.args[0], mark.args[1]
            names = [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)
            combos = [{**kw, **dict(zip(names, v if len(names) > 1 else (v,)))} for kw in combos for v in values]
        for kw in combos:
            assert set(kw) == set(inspect.signature(fn).parameters), name
            yield name, fn, kw


def _moves_during(run) -> tuple[Counter, Counter]:
    before = Counter(TRANSITIONS.taken), Counter(QUERY_TRANSITIONS.taken)
    run()
    return TRANSITIONS.taken - before[0], QUERY_TRANSITIONS.taken - before[1]


def test_the_scenarios_take_every_row_and_no_other_move():
    def unit_scenarios():
        for module, skip in ((base, set()), (sys.modules[__name__], {
                "test_the_scenarios_take_every_row_and_no_other_move"})):
            for _, fn, kw in _calls(module, skip):
                fn(**kw)

    def hostile():
        run_state_machine_as_test(base.HostileOta, settings=settings(
            max_examples=40, stateful_step_count=60, derandomize=True, database=None, deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))

    units, units_q = _moves_during(unit_scenarios)
    fuzz, fuzz_q = _moves_during(hostile)
    # fsm raised on any move outside the tables (that would have failed the run); and the
    # deterministic scenarios alone take every row: none of the tables' rows is dead
    assert set(TRANSITIONS) - set(units) == set(), "rows no scenario takes"
    assert set(QUERY_TRANSITIONS) - set(units_q) == set(), "query rows no scenario takes"
    # the hostile runs stayed inside the tables too, and got as far as verification
    assert fuzz[(S.DOWNLOADED, Input.VERIFIED)] > 0 and fuzz_q[(QueryState.NOT_ASKED, Input.ASK)] > 0
