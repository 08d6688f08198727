"""The ZDO and Basic answers every emulated bridge gives on its own, read back
with zigpy's own ZDO and ZCL types (what a host stack's interview decodes)."""
from __future__ import annotations

import pytest
import zigpy.types as zt
import zigpy.zdo.types as zdo_t
from zigpy.zcl import foundation
from zigpy.zcl.clusters.general import Basic

from bridge_emu.codec import zdo
from bridge_emu.emulator.profiles import profile
from bridge_emu.emulator.zigbee_node import OTA, NodeIdentity, ZigbeeNode, eui64
from bridge_emu.net.transport import ZDO

HOST = 0x0000


class App:
    """The application behind the node: records what reaches it."""

    def __init__(self):
        self.got = []

    def receive(self, src, cluster, payload, now):
        self.got.append((src, cluster, payload))

    def timer(self, now):
        pass

    def next_deadline(self):
        return 42.0

    def pop_outgoing(self):
        return [(HOST, OTA, b"app")]


def node(bridge_type: str = "B1", up: bool = True) -> tuple[ZigbeeNode, App]:
    app = App()
    ident = NodeIdentity(eui64("p", "b1"), 0x1234, profile(bridge_type))
    return ZigbeeNode(app, ident, lambda: up), app


def ask(n: ZigbeeNode, cluster: int, **fields) -> list:
    n.receive(HOST, ZDO | cluster, zdo.encode(cluster, tsn=9, **fields), 0.0)
    return [r for r in n.pop_outgoing() if r[1] != OTA]


def zigpy_zdo(cluster: int, payload: bytes) -> list:
    tsn, rest = zt.uint8_t.deserialize(payload)
    schema = zdo_t.CLUSTERS[cluster]
    values, rest = zt.deserialize(rest, schema[1])
    assert tsn == 9 and rest == b""
    return values


@pytest.mark.parametrize(("bridge_type", "logical", "capability"), [("B1", 1, 0x8E), ("B3", 2, 0x80)])
def test_the_interview_answers_decode_with_zigpy(bridge_type, logical, capability):
    n, _ = node(bridge_type)
    [(dst, cluster, payload)] = ask(n, 0x0002, nwk_addr_of_interest=0x1234)
    assert dst == HOST and cluster == ZDO | 0x8002
    status, nwk, desc = zigpy_zdo(0x8002, payload)
    assert (status, nwk) == (0, 0x1234)
    assert desc.logical_type == logical and desc.mac_capability_flags == capability
    assert desc.manufacturer_code == profile(bridge_type).manufacturer
    [(_, _, payload)] = ask(n, 0x0005, nwk_addr_of_interest=0x1234)
    assert zigpy_zdo(0x8005, payload) == [0, 0x1234, [1]]
    [(_, _, payload)] = ask(n, 0x0004, nwk_addr_of_interest=0x1234, endpoint=1)
    status, _, simple = zigpy_zdo(0x8004, payload)
    assert status == 0 and simple.profile == 0x0104 and OTA in simple.output_clusters
    assert 0x0000 in simple.input_clusters
    [(_, _, payload)] = ask(n, 0x0004, nwk_addr_of_interest=0x1234, endpoint=7)
    assert zigpy_zdo(0x8004, payload)[0] == 0x82                    # no such endpoint


def test_ieee_addr_and_a_request_for_another_node():
    n, _ = node()
    [(_, _, payload)] = ask(n, 0x0001, nwk_addr_of_interest=0x1234, request_type=0, start_index=0)
    status, ieee, nwk = zigpy_zdo(0x8001, payload)[:3]
    assert status == 0 and int.from_bytes(ieee.serialize(), "little") == eui64("p", "b1") and nwk == 0x1234
    assert ask(n, 0x0002, nwk_addr_of_interest=0x9999) == []


def test_basic_reads_give_manufacturer_model_and_power_source():
    n, app = node("B3")
    hdr = foundation.ZCLHeader.general(5, foundation.GeneralCommand.Read_Attributes)
    req = hdr.serialize() + foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes].schema(
        attribute_ids=[0x0004, 0x0005, 0x0007, 0x1234]).serialize()
    n.receive(HOST, 0x0000, req, 0.0)
    [(dst, cluster, payload)] = [r for r in n.pop_outgoing() if r[1] == 0x0000]
    header, rest = foundation.ZCLHeader.deserialize(payload)
    assert header.tsn == 5 and header.command_id == foundation.GeneralCommand.Read_Attributes_rsp
    assert header.frame_control.direction == foundation.Direction.Server_to_Client
    records, rest = foundation.GENERAL_COMMANDS[foundation.GeneralCommand.Read_Attributes_rsp].schema.deserialize(
        rest)
    got = {r.attrid: (r.status, r.value.value if r.value is not None else None) for r in records.status_records}
    assert got[0x0004] == (0, "bridge-emu") and got[0x0005] == (0, "ALT-HAN-B3")
    assert got[0x0007] == (0, 0x03)                                    # B3 runs on a battery
    assert got[0x1234][0] == foundation.Status.UNSUPPORTED_ATTRIBUTE
    assert Basic.AttributeDefs.model.id == 0x0005 and app.got == []


def test_other_frames_go_to_the_bridge_and_a_node_off_the_network_answers_nothing():
    n, app = node(up=False)
    assert ask(n, 0x0002, nwk_addr_of_interest=0x1234) == []
    n.receive(HOST, OTA, b"\x01\x02\x03", 1.0)
    assert app.got == [(HOST, OTA, b"\x01\x02\x03")]
    assert n.next_deadline() == 42.0 and n.pop_outgoing() == [(HOST, OTA, b"app")]


def test_garbage_is_counted_not_raised():
    n, _ = node()
    for cluster, payload in [(ZDO | 0x0002, b""), (ZDO | 0x0002, b"\x01"), (ZDO | 0x7777, b"\x01\x02"),
                             (0x0000, b""), (0x0000, b"\x01\x02\x00"), (0x0000, b"\x00\x01\x00\x04")]:
        n.receive(HOST, cluster, payload, 0.0)
    assert [r for r in n.pop_outgoing() if r[1] != OTA] == [] and n.refused == 6


def test_eui64_is_stable_and_locally_administered():
    a, b = eui64("p", "b1"), eui64("p", "b2")
    assert a == eui64("p", "b1") and a != b
    assert (a >> 56) & 0x03 == 0x02                                    # local, unicast


def test_every_bridge_of_a_premises_answers_an_interview_across_the_network():
    from bridge_emu.premises.images import ImageSet
    from bridge_emu.premises.runner import PremisesRun
    from bridge_emu.premises.schema import builtin_premises
    from support.paths import IMAGES

    run = PremisesRun(builtin_premises()["both-apart-battery"], ImageSet(IMAGES))
    heard = []
    hub_in = run.hub_driver.transport.on_receive

    def tap(src, cluster, payload):
        if cluster >= ZDO:
            heard.append((src, cluster, payload))
        else:
            hub_in(src, cluster, payload)
    run.hub_driver.transport.on_receive = tap
    run.start()
    run.step(30.0)
    for s in run.slots:
        request = zdo.encode(0x0002, tsn=9, nwk_addr_of_interest=s.address)
        run.hub_driver.transport.send(s.address, ZDO | 0x0002, request)
    run.step(run.clock.now() + 60.0)
    answered = {src: zigpy_zdo(0x8002, payload)[2].logical_type for src, cluster, payload in heard
                if cluster == ZDO | 0x8002}
    assert answered == {s.address: 2 if s.bridge.profile.sleepy else 1 for s in run.slots}
