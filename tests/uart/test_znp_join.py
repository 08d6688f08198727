"""ZnpJoiner (the host side of a joining ZNP stick) against the virtual dongle in its router /
end-device role, on virtual time, over a byte wire the test can corrupt: it joins as a router and
as an end device, carries ZCL and ZDO both ways once joined, retries steering while no network is
in range, re-runs its bring-up after a reset of the stick (before and after joining) and a lost
link, skips garbage and corrupted frames, and refuses, with one clear line, a stick built for the
coordinator role only."""
from __future__ import annotations

import random

import pytest

from bridge_emu.codec import mt, zdo
from bridge_emu.emulator.profiles import profile
from bridge_emu.emulator.zigbee_node import NodeIdentity
from bridge_emu.uart import znp_join
from bridge_emu.uart.znp_join import END_DEVICE, ROUTER, ZDO_KEY, JoinState, ZnpJoiner
from bridge_emu.uart.znp_ncp import JoinableNetwork, ZnpDongle

NETWORK = JoinableNetwork(pan_id=0x1A2B, extended_pan_id=0x00124B00DEADBEEF, channel=15, nwk=0x0004,
                          parent_nwk=0x0001, network_key=bytes(range(16)))
OTA = 0x0019


def identity(bridge_type: str) -> NodeIdentity:
    return NodeIdentity(0x02AABBCCDDEEFF00, 0xFFFE, profile(bridge_type))


class Wire:
    """A host machine and a dongle joined by a byte wire, on virtual time. tamper(data, to_host) may
    change what crosses."""

    def __init__(self, host: ZnpJoiner, ncp: ZnpDongle, tamper=None):
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
        """Advance to each deadline in turn until until() holds or virtual time passes limit."""
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


def joined_pair(role=ROUTER, bridge_type="B4", tamper=None, **ncp_args) -> Wire:
    ncp = ZnpDongle(0x00124B0001020304, seed=1, **ncp_args)
    ncp.radio_network = NETWORK
    host = ZnpJoiner(role, identity(bridge_type).simple_descriptor(), seed=2)
    wire = Wire(host, ncp, tamper)
    wire.connect()
    return wire


def test_a_blank_stick_is_made_a_router_registers_the_bridge_endpoint_and_joins():
    wire = joined_pair(ROUTER)
    assert wire.run(lambda: wire.of(znp_join.Joined))
    joined = wire.of(znp_join.Joined)[0]
    assert (joined.nwk, joined.pan_id, joined.extended_pan_id, joined.channel, joined.role) == (
        NETWORK.nwk, NETWORK.pan_id, NETWORK.extended_pan_id, NETWORK.channel, "router")
    assert wire.host.state is JoinState.JOINED and wire.host.joined == joined
    ncp = wire.ncp
    assert ncp.logical_type == 1 and ncp.state == mt.DeviceState.JOINED_AS_ROUTER and ncp.on_network
    assert ncp.stats["resets"] == 1            # the new role took one reset (startup option: clear state)
    assert ncp.network.nwk == NETWORK.nwk      # written to NV as a joined Z-Stack keeps it
    # the endpoint is the node's simple descriptor, as the stick answers it for itself
    want = identity("B4").simple_descriptor()
    assert ncp._endpoints[1].input_clusters == tuple(want["input_clusters"])
    assert ncp._endpoints[1].output_clusters == (OTA,) and ncp._endpoints[1].profile == 0x0104
    assert znp_join.TRANSITIONS.taken[JoinState.RESETTING, "reset_ind"] >= 1   # the role written, then a reset


def test_once_joined_frames_travel_both_ways_as_af_and_zdo():
    wire = joined_pair(ROUTER)
    assert wire.run(lambda: wire.host.is_joined)
    ncp, host = wire.ncp, wire.host
    ncp.pop_network()
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
    assert wire.of(znp_join.Received) == [znp_join.Received(0x0000, OTA, b"\x19\x05\x02\x00"),
                                          znp_join.Received(0x0000, ZDO_KEY | 0x0002, answer)]
    assert host.stats["send_failed"] == 0 and host.stats["confirm_failed"] == 0


def test_a_sleepy_bridge_makes_the_stick_an_end_device():
    wire = joined_pair(END_DEVICE, "B3")
    assert identity("B3").logical_type == END_DEVICE
    assert wire.run(lambda: wire.of(znp_join.Joined))
    assert wire.of(znp_join.Joined)[0].role == "end device"
    assert wire.ncp.logical_type == 2 and wire.ncp.state == mt.DeviceState.JOINED_AS_END_DEVICE


def test_with_no_network_in_range_steering_is_retried_with_backoff_until_one_appears():
    ncp = ZnpDongle(0x00124B0001020304, seed=1)         # radio_network None: nothing in range
    host = ZnpJoiner(ROUTER, identity("B4").simple_descriptor(), seed=2)
    wire = Wire(host, ncp)
    wire.connect()
    assert not wire.run(lambda: host.is_joined, limit=60.0)
    tries = host.stats["steering"]
    assert tries >= 3 and ncp.stats["steering_failed"] == tries
    assert host.state in (JoinState.BACKING_OFF, JoinState.STEERING)
    assert "NO_NETWORK" in host.last_steering_failure
    ncp.radio_network = NETWORK
    assert wire.run(lambda: host.is_joined, limit=200.0)
    assert wire.of(znp_join.Joined)[0].nwk == NETWORK.nwk and not wire.of(znp_join.Down)


def test_a_reset_during_the_bring_up_starts_it_again_and_it_still_joins():
    register = mt.encode_command("AF.Register", **{
        "endpoint": 1, "profile_id": 0x0104, "device_id": 0x0008, "device_version": 0, "latency_req": 0,
        "input_clusters": [], "output_clusters": []}).encode()[2:4]          # its cmd0, cmd1
    done = []

    def reset_as_register_goes(data: bytes, to_host: bool) -> bytes:
        if not to_host and not done and data[2:4] == register:
            done.append(wire.host.state)
            wire.ncp.reset(wire.t)                       # the stick resets as the request reaches it
        return data
    wire = joined_pair(ROUTER, tamper=reset_as_register_goes)
    assert wire.run(lambda: wire.host.is_joined)
    assert done == [JoinState.REGISTERING]
    assert not wire.of(znp_join.Down)                  # it was not on the network yet
    assert wire.host.stats["resets_seen"] == 2 and len(wire.of(znp_join.Joined)) == 1


def test_a_reset_of_a_joined_stick_is_a_down_then_the_endpoint_is_registered_again_and_it_rejoins():
    wire = joined_pair(ROUTER)
    assert wire.run(lambda: wire.host.is_joined)
    wire.ncp.reset(wire.t)                              # RAM lost: endpoints, the joined state
    assert not wire.ncp.on_network and not wire.ncp._endpoints
    assert wire.run(lambda: len(wire.of(znp_join.Joined)) == 2)
    assert [d.reason for d in wire.of(znp_join.Down)] == ["the stick reset (SYS.ResetInd)"]
    assert 1 in wire.ncp._endpoints and wire.ncp.on_network
    assert wire.ncp.stats["resets"] == 2                # the one it was given; none more (the role was kept)
    assert wire.of(znp_join.Joined)[1].nwk == NETWORK.nwk


def test_a_lost_link_is_a_down_and_the_next_connection_rejoins_without_a_reset():
    wire = joined_pair(ROUTER)
    assert wire.run(lambda: wire.host.is_joined)
    wire.host.connection_lost(wire.t)
    wire.ncp.connection_lost(wire.t)
    wire.pump()
    assert wire.host.state is JoinState.OFFLINE and not wire.host.send(0, OTA, b"x", wire.t)
    assert [d.reason for d in wire.of(znp_join.Down)] == ["the link to the stick was lost"]
    wire.t += 5.0
    wire.connect()
    assert wire.run(lambda: len(wire.of(znp_join.Joined)) == 2)
    assert wire.ncp.stats["resets"] == 1                # the stick stayed on the network all along


def test_a_stick_that_stops_answering_is_a_down_and_is_pinged_again_with_backoff():
    wire = joined_pair(ROUTER)
    assert wire.run(lambda: wire.host.is_joined)
    deaf = {"on": True}
    wire.tamper = lambda data, to_host: b"" if deaf["on"] else data
    wire.host.send(0x0000, OTA, b"\x01\x02\x01", wire.t)
    assert not wire.run(lambda: len(wire.of(znp_join.Joined)) == 2, limit=wire.t + 20.0)
    assert [d.reason for d in wire.of(znp_join.Down)] == ["the stick did not answer AF.DataRequestExt (3 tries)"]
    assert wire.host.state is JoinState.PINGING and wire.host.stats["retries"] >= 4
    deaf["on"] = False
    assert wire.run(lambda: len(wire.of(znp_join.Joined)) == 2, limit=wire.t + 60.0)


def test_garbage_and_corrupted_frames_are_skipped_and_the_join_still_completes():
    rng = random.Random(5)

    def tamper(data: bytes, to_host: bool) -> bytes:
        if not data:
            return data
        data = bytearray(data)
        if rng.random() < 0.15:                          # a bit flipped somewhere: that frame is lost
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.3:                           # line noise between frames
            data[0:0] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))
        return bytes(data)
    wire = joined_pair(ROUTER, tamper=tamper)
    assert wire.run(lambda: wire.host.is_joined, limit=600.0)
    assert wire.host.parser.bad_frames + wire.ncp.parser.bad_frames + wire.host.stats["undecodable"] > 0
    assert wire.host.parser.skipped_bytes > 0 and wire.host.stats["retries"] > 0
    wire.tamper = None
    wire.ncp.network_received(0x0000, 1, 1, 0x0104, OTA, b"\x19\x05\x02\x00", 255, wire.t)
    wire.host.receive_bytes(b"\xfe\x03garbage\x00\xfe", wire.t)     # a torn frame, then the real one
    wire.pump()
    assert znp_join.Received(0x0000, OTA, b"\x19\x05\x02\x00") in wire.of(znp_join.Received)


def test_a_coordinator_only_stick_is_refused_with_a_clear_message_and_left_as_it_was():
    wire = joined_pair(ROUTER, device_types=0x01)
    assert wire.run(lambda: wire.of(znp_join.Refused))
    wire.run(lambda: False, limit=30.0)
    refused = wire.of(znp_join.Refused)
    assert len(refused) == 1 and wire.host.state is JoinState.REFUSED
    assert refused[0].reason == ("the stick cannot join as router: UTIL.GetDeviceInfo reports device types 0x01 "
                                 "(coordinator only)")
    assert "\n" not in refused[0].reason
    assert wire.ncp.logical_type == 0 and wire.ncp.stats["resets"] == 0   # nothing written, nothing reset
    assert not wire.of(znp_join.Joined)


def test_an_end_device_only_role_missing_is_refused_too():
    wire = joined_pair(END_DEVICE, "B3", device_types=0x03)
    assert wire.run(lambda: wire.of(znp_join.Refused))
    assert "cannot join as end device" in wire.of(znp_join.Refused)[0].reason


@pytest.mark.parametrize("bad", [{"role": 0}, {"endpoint": {"endpoint": 1}}, {"channels": 0x7FF}])
def test_bad_arguments_are_one_line_errors(bad):
    args = {"role": ROUTER, "endpoint": identity("B4").simple_descriptor(), **bad}
    with pytest.raises(ValueError) as e:
        ZnpJoiner(args.pop("role"), args.pop("endpoint"), **args)
    assert "\n" not in str(e.value)
