"""EzspJoiner (the host side of a joining EZSP stick), no sockets: first byte for byte against a
scripted NCP end (the ASH vectors of the reference, the EZSP frames it sends), then against the
virtual EZSP stick in its router role on virtual time, over a byte wire the test can corrupt. It
joins as a router at v8, v13, v14 and v19 and as a sleepy end device; carries ZCL and ZDO both
ways; scans again with backoff while no network lets it in; leaves a coordinator's network the
stick's tokens hold before it joins; comes back after an NCP reset (unasked RSTACK), an ASH ERROR,
a lost port and a silent NCP; skips corrupted frames; and refuses, in one line, a stick that speaks
EZSP below v8 or whose stack cannot route."""
from __future__ import annotations

import random

import pytest

from bridge_emu.codec import ash, ezsp, zdo
from bridge_emu.emulator.profiles import profile
from bridge_emu.emulator.zigbee_node import NodeIdentity
from bridge_emu.uart import ezsp_join
from bridge_emu.uart.ash_link import AshLink
from bridge_emu.uart.ash_link import Received as AshReceived
from bridge_emu.uart.ezsp_join import END_DEVICE, ROUTER, TRANSITIONS, ZDO_KEY, EzspJoiner, JoinState
from bridge_emu.uart.ezsp_ncp import EzspCoordinator
from bridge_emu.uart.znp_ncp import JoinableNetwork

NETWORK = JoinableNetwork(pan_id=0x1A2B, extended_pan_id=0x00124B00DEADBEEF, channel=15, nwk=0x0004,
                          parent_nwk=0x0001, network_key=bytes(range(16)))
OTA = 0x0019
NCP_IEEE = 0x000B57FFFE123456


def descriptor(bridge_type: str = "B4") -> dict:
    return NodeIdentity(0x02AABBCCDDEEFF00, 0xFFFE, profile(bridge_type)).simple_descriptor()


# -- byte for byte, against a scripted NCP end -------------------------------------------------------------------

class ScriptedNcp:
    """The NCP end of ASH, with EZSP frames written by the test."""

    def __init__(self, host: EzspJoiner):
        self.host, self.ash, self.t = host, AshLink("ncp"), 0.0

    def exchange(self) -> list[bytes]:
        """Carry bytes both ways until quiet; the EZSP frames the host sent."""
        got = []
        for _ in range(100):
            to_ncp, to_host = self.host.pop_bytes(), self.ash.pop_bytes()
            if not to_ncp and not to_host:
                break
            if to_ncp:
                self.ash.receive_bytes(to_ncp, self.t)
                got += [e.data for e in self.ash.pop_events() if isinstance(e, AshReceived)]
            if to_host:
                self.host.receive_bytes(to_host, self.t)
        return got

    def answer(self, frame: bytes) -> list[bytes]:
        self.ash.send(frame, self.t)
        return self.exchange()


def test_the_bring_up_starts_with_cancel_and_rst_then_a_legacy_version_command_byte_for_byte():
    host = EzspJoiner(ROUTER, descriptor(), seed=1)
    host.connection_made(0.0)
    assert host.pop_bytes() == bytes.fromhex("1a c038bc 7e")         # CANCEL, then RST = c038bc, FLAG
    assert host.state is JoinState.LINK_RESET
    host.receive_bytes(bytes.fromhex("c102029b7b7e"), 0.0)           # RSTACK(v2, power-on), the reference vector
    assert host.state is JoinState.VERSIONING
    wire = host.pop_bytes()
    frame = ash.AshParser().feed(wire)[0]
    assert isinstance(frame, ash.DataFrame) and (frame.frm_num, frame.ack_num) == (0, 0)
    assert frame.data == bytes([1, 0x00, 0x00, 13])     # seq 1, frame control 0, id 0 (legacy), desired v13


def test_a_stick_below_ezsp_v8_is_refused_in_one_line_and_nothing_more_is_asked():
    host = EzspJoiner(ROUTER, descriptor(), seed=1)
    ncp = ScriptedNcp(host)
    host.connection_made(0.0)
    [version] = ncp.exchange()
    assert version[2] == 0 and version[3] == 13
    # EmberZNet 6.3 answers in the legacy header: v7, stack 6.3.0.0
    after = ncp.answer(bytes([version[0], 0x80, 0x00, 7, 2]) + (0x6300).to_bytes(2, "little"))
    assert after == [] and host.state is JoinState.REFUSED
    [refused] = host.pop_events()
    assert refused.reason == "the stick speaks EZSP v7; attach needs v8 to v19 (EmberZNet 6.7 or later)"


def test_a_stick_speaking_another_version_is_asked_again_in_it_then_its_library_is_checked():
    host = EzspJoiner(ROUTER, descriptor(), seed=1)
    ncp = ScriptedNcp(host)
    host.connection_made(0.0)
    [first] = ncp.exchange()
    answer = ezsp.encode_response("version", 8, first[0], legacy_header=True, protocol_version=8, stack_type=2,
                                  stack_version=0x6A00)
    [second] = ncp.answer(answer)
    assert second == ezsp.encode_request("version", 8, 2, legacy_header=False, desired_protocol_version=8)
    [library] = ncp.answer(ezsp.encode_response("version", 8, 2, protocol_version=8, stack_type=2,
                                                stack_version=0x6A00))
    assert host.state is JoinState.CHECKING and host.version == 8 and host.stack_version == "6.10.0.0"
    assert ezsp.decode(library, 8) == ("getLibraryStatus", {"library_id": 0})
    # an end-device-only stack: the router role is refused, nothing is configured
    assert ncp.answer(ezsp.encode_response("getLibraryStatus", 8, library[0], status=0x80)) == []
    assert host.state is JoinState.REFUSED
    assert host.pop_events()[0].reason == ("the stick cannot join as router: getLibraryStatus reports 0x80 (an "
                                           "end-device-only ZigBee PRO stack)")


def test_a_bring_up_command_the_stick_does_not_know_is_refused():
    host = EzspJoiner(END_DEVICE, descriptor("B3"), seed=1)
    ncp = ScriptedNcp(host)
    host.connection_made(0.0)
    [first] = ncp.exchange()
    [library] = ncp.answer(ezsp.encode_response("version", 13, first[0], legacy_header=True, protocol_version=13,
                                                stack_type=2, stack_version=0x7440))
    assert ncp.answer(ezsp.encode_response("invalidCommand", 13, library[0], status=0x31)) == []
    assert host.state is JoinState.REFUSED
    assert "does not know getLibraryStatus (invalidCommand)" in host.pop_events()[0].reason


# -- against the virtual stick -----------------------------------------------------------------------------------

class Wire:
    """The joiner and the virtual EZSP stick joined by a byte wire, on virtual time. tamper(data, to_host)
    may change what crosses."""

    def __init__(self, host: EzspJoiner, ncp: EzspCoordinator, tamper=None):
        self.host, self.ncp, self.tamper = host, ncp, tamper
        self.t = 0.0
        self.events: list = []

    def connect(self) -> None:
        self.ncp.connection_made(self.t)
        self.host.connection_made(self.t)
        self.pump()

    def pump(self) -> None:
        for _ in range(10_000):
            to_ncp, to_host = self.host.pop_bytes(), self.ncp.pop_bytes()
            if not to_ncp and not to_host:
                break
            if self.tamper is not None:
                to_ncp, to_host = self.tamper(to_ncp, False), self.tamper(to_host, True)
            if to_ncp:
                self.ncp.receive_bytes(to_ncp, self.t)
            if to_host:
                self.host.receive_bytes(to_host, self.t)
        self.events += self.host.pop_events()

    def run(self, until, limit: float = 120.0) -> bool:
        self.pump()
        while not until():
            deadlines = [d for d in (self.host.next_deadline(), self.ncp.next_deadline()) if d is not None]
            if not deadlines or min(deadlines) > limit:
                return False
            self.t = max(self.t, min(deadlines))
            self.ncp.timer(self.t)
            self.host.timer(self.t)
            self.pump()
        return True

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def pair(role=ROUTER, bridge_type="B4", tamper=None, version=13, network=NETWORK, **ncp_args) -> Wire:
    ncp = EzspCoordinator(NCP_IEEE, seed=1, version=version, **ncp_args)
    ncp.radio_network = network
    wire = Wire(EzspJoiner(role, descriptor(bridge_type), seed=2), ncp, tamper)
    wire.connect()
    return wire


@pytest.mark.parametrize("version", [8, 13, 14, 19])
def test_a_blank_stick_scans_hears_the_beacon_and_joins_as_a_router_with_the_bridge_endpoint(version):
    wire = pair(version=version)
    assert wire.run(lambda: wire.of(ezsp_join.Joined))
    joined = wire.of(ezsp_join.Joined)[0]
    assert (joined.nwk, joined.pan_id, joined.extended_pan_id, joined.channel, joined.role, joined.ieee) == (
        NETWORK.nwk, NETWORK.pan_id, NETWORK.extended_pan_id, NETWORK.channel, "router", NCP_IEEE)
    host, ncp = wire.host, wire.ncp
    assert host.state is JoinState.JOINED and host.version == version and host.stats["scans"] == 1
    assert ncp.node_type == ezsp.EmberNodeType.ROUTER and ncp.node_id == NETWORK.nwk and ncp.on_network
    assert ncp.network.pan_id == NETWORK.pan_id and ncp.network.network_key == NETWORK.network_key   # tokened
    want = descriptor()
    assert ncp._endpoints[1]["output_clusters"] == [OTA] and ncp._endpoints[1]["profile_id"] == 0x0104
    assert ncp._endpoints[1]["input_clusters"] == list(want["input_clusters"])
    assert ncp._pending_security["bitmask"] == 0x0904                 # global TC link key, encrypted key
    assert ncp._pending_security["preconfigured_key"] == b"ZigBeeAlliance09"
    assert not ncp.gaps and ncp.stats["malformed"] == 0


def test_a_sleepy_bridge_joins_as_a_sleepy_end_device_and_an_end_device_only_stack_will_do():
    wire = pair(END_DEVICE, "B3", device_types=0x04)
    assert wire.run(lambda: wire.of(ezsp_join.Joined))
    assert wire.of(ezsp_join.Joined)[0].role == "end device"
    assert wire.ncp.node_type == ezsp.EmberNodeType.SLEEPY_END_DEVICE and wire.ncp.end_device


def test_once_joined_frames_travel_both_ways_as_send_unicast_and_incoming_messages():
    wire = pair(version=14)
    assert wire.run(lambda: wire.host.is_joined)
    ncp, host = wire.ncp, wire.host
    assert host.send(0x0000, OTA, b"\x01\x02\x01abc", wire.t)
    request = zdo.encode("Node_Desc_req", tsn=9, nwk_addr_of_interest=0x0000)
    assert host.send(0x0000, ZDO_KEY | 0x0002, request, wire.t)
    wire.pump()
    out = ncp.pop_network()
    assert [(a.dst_nwk, a.cluster, a.profile, a.src_ep, a.dst_ep, a.payload) for a in out] == [
        (0x0000, OTA, 0x0104, 1, 1, b"\x01\x02\x01abc"), (0x0000, 0x0002, 0x0000, 0, 0, request)]
    ncp.network_received(0x0000, 1, 1, 0x0104, OTA, b"\x19\x05\x02\x00", 255, wire.t)
    answer = zdo.encode("Node_Desc_req", tsn=4, nwk_addr_of_interest=NETWORK.nwk)
    ncp.network_received(0x0000, 0, 0, 0, 0x0002, answer, 255, wire.t)
    wire.pump()
    assert wire.of(ezsp_join.Received) == [ezsp_join.Received(0x0000, OTA, b"\x19\x05\x02\x00"),
                                           ezsp_join.Received(0x0000, ZDO_KEY | 0x0002, answer)]
    assert host.stats["send_failed"] == host.stats["confirm_failed"] == 0 and host.stats["sent"] == 2


def test_with_no_network_in_range_it_scans_again_with_backoff_until_one_appears():
    wire = pair(network=None)
    assert not wire.run(lambda: wire.host.is_joined, limit=60.0)
    scans = wire.host.stats["scans"]
    assert scans >= 4 and wire.host.last_join_failure == "no network permitting joins in range"
    assert wire.host.state in (JoinState.BACKING_OFF, JoinState.SCANNING)
    assert TRANSITIONS.taken[JoinState.BACKING_OFF, "retry"] >= scans - 1
    wire.ncp.radio_network = NETWORK
    assert wire.run(lambda: wire.host.is_joined, limit=200.0)
    assert wire.ncp.stats["joins"] == 1 and not wire.of(ezsp_join.Down)


def test_a_network_of_another_role_in_the_tokens_is_left_before_joining_as_a_router():
    formed = EzspCoordinator(NCP_IEEE, seed=1)
    formed._tokens["network"] = {"extended_pan_id": 0x1111, "pan_id": 0x2222, "radio_tx_power": 8,
                                 "radio_channel": 20, "join_method": 0, "nwk_manager_id": 0, "nwk_update_id": 0,
                                 "channels": 1 << 20, "node_type": ezsp.EmberNodeType.COORDINATOR, "node_id": 0,
                                 "network_key": bytes(16).hex(), "key_seq": 0, "tc_link_key": bytes(16).hex(),
                                 "security_bitmask": 0, "nwk_frame_counter": 0, "aps_frame_counter": 0}
    wire = pair(nv=formed.nv_snapshot())
    assert wire.run(lambda: wire.host.is_joined)
    assert TRANSITIONS.taken[JoinState.NETWORK_INFO, "wrong_role"] >= 1
    assert TRANSITIONS.taken[JoinState.LEAVING, "left"] >= 1
    assert wire.ncp.node_type == ezsp.EmberNodeType.ROUTER and wire.ncp.network.pan_id == NETWORK.pan_id


def test_an_ncp_reset_is_a_down_then_the_endpoint_is_added_again_and_it_is_back_from_its_tokens():
    wire = pair()
    assert wire.run(lambda: wire.host.is_joined)
    wire.ncp.reset(wire.t)                           # reset pin: an unasked RSTACK
    assert not wire.ncp.on_network and not wire.ncp._endpoints
    assert wire.run(lambda: len(wire.of(ezsp_join.Joined)) == 2)
    assert [d.reason for d in wire.of(ezsp_join.Down)] == ["the stick reset (RSTACK, reset code 0x01)"]
    assert 1 in wire.ncp._endpoints and wire.ncp.on_network
    assert wire.host.stats["ncp_resets"] == 1 and wire.host.stats["scans"] == 1   # networkInit, no new join
    assert wire.ncp.stats["joins"] == 1


def test_an_ash_error_from_the_ncp_is_a_down_a_link_reset_and_a_rejoin():
    wire = pair()
    assert wire.run(lambda: wire.host.is_joined)
    wire.host.receive_bytes(ash.ErrorFrame(2, 0x51).to_wire(), wire.t)
    assert wire.host.state is JoinState.LINK_RESET
    assert wire.run(lambda: len(wire.of(ezsp_join.Joined)) == 2)
    assert [d.reason for d in wire.of(ezsp_join.Down)] == [
        "the link to the stick failed (the NCP reported error 0x51)"]


def test_a_lost_port_is_a_down_and_the_next_connection_resets_the_link_and_rejoins():
    wire = pair()
    assert wire.run(lambda: wire.host.is_joined)
    wire.host.connection_lost(wire.t)
    wire.ncp.connection_lost(wire.t)
    assert wire.host.state is JoinState.OFFLINE and not wire.host.send(0, OTA, b"x", wire.t)
    assert [d.reason for d in wire.of(ezsp_join.Down)] + [d.reason for d in wire.host.pop_events()] == [
        "the link to the stick was lost"]
    wire.t += 5.0
    wire.connect()
    assert wire.run(lambda: len(wire.of(ezsp_join.Joined)) == 2)
    assert wire.host.stats["link_resets"] == 2


def test_a_silent_ncp_is_a_down_and_the_link_is_reset_until_it_answers():
    wire = pair()
    assert wire.run(lambda: wire.host.is_joined)
    deaf = {"on": True}
    wire.tamper = lambda data, to_host: b"" if deaf["on"] else data
    wire.host.send(0x0000, OTA, b"\x01\x02\x01", wire.t)
    assert not wire.run(lambda: len(wire.of(ezsp_join.Joined)) == 2, limit=wire.t + 30.0)
    assert len(wire.of(ezsp_join.Down)) == 1 and wire.host.state is JoinState.LINK_RESET
    deaf["on"] = False
    assert wire.run(lambda: len(wire.of(ezsp_join.Joined)) == 2, limit=wire.t + 60.0)


def test_corrupted_bytes_and_noise_are_skipped_and_the_join_still_completes():
    rng = random.Random(5)

    def tamper(data: bytes, to_host: bool) -> bytes:
        if not data:
            return data
        data = bytearray(data)
        if rng.random() < 0.15:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.2:
            data[0:0] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
        return bytes(data)
    wire = pair(tamper=tamper)
    assert wire.run(lambda: wire.host.is_joined, limit=600.0)
    assert wire.host.ash.stats["bad_frames"] + wire.ncp.ash.stats["bad_frames"] > 0
    assert wire.of(ezsp_join.Joined)[-1].nwk == NETWORK.nwk


@pytest.mark.parametrize("bad", [{"role": 0}, {"endpoint": {"endpoint": 1}}, {"channels": 0x7FF},
                                 {"wanted_version": 7}])
def test_bad_arguments_are_one_line_errors(bad):
    args = {"role": ROUTER, "endpoint": descriptor(), **bad}
    with pytest.raises(ValueError) as e:
        EzspJoiner(args.pop("role"), args.pop("endpoint"), **args)
    assert "\n" not in str(e.value)
