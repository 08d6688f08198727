"""bridge_emu.codec.zdo against zigpy's own ZDO schemas (zigpy.zdo.types.CLUSTERS), both ways.

For every command, hypothesis draws field values; our encoding must parse with zigpy's
schema, zigpy's re-serialisation of what it parsed must give the same bytes, and our
decoder must read those bytes back into the values drawn. Named fields are compared
with zigpy's values too, so a layout that only round-trips with itself fails."""
from __future__ import annotations

import pytest
import zigpy.types as zt
import zigpy.zdo.types as zdo_t
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge_emu.codec import zdo
from bridge_emu.codec.zdo import ZdoError

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 2**64 - 1)
clusters = st.lists(u16, max_size=8)
multi_address = st.one_of(
    st.builds(lambda nwk: {"addr_mode": 1, "nwk": nwk, "ieee": None, "endpoint": None}, u16),
    st.builds(lambda ieee, ep: {"addr_mode": 3, "nwk": None, "ieee": ieee, "endpoint": ep}, u64, u8),
)
node_descriptor = st.fixed_dictionaries({
    "logical_type": st.integers(0, 2), "complex_descriptor_available": st.integers(0, 1),
    "user_descriptor_available": st.integers(0, 1), "reserved": st.integers(0, 7), "aps_flags": st.integers(0, 7),
    "frequency_band": st.sampled_from([0, 1, 4, 8, 16]), "mac_capability_flags": u8, "manufacturer_code": u16,
    "maximum_buffer_size": u8, "maximum_incoming_transfer_size": u16, "server_mask": u16,
    "maximum_outgoing_transfer_size": u16, "descriptor_capability_field": st.integers(0, 3),
})
simple_descriptor = st.fixed_dictionaries({
    "endpoint": u8, "profile": u16, "device_type": u16, "device_version": u8, "input_clusters": clusters,
    "output_clusters": clusters,
})
addr_tail = st.one_of(
    st.just({}),
    st.builds(lambda devices, start: {"num_assoc_dev": len(devices), "start_index": start,
                                      "nwk_addr_assoc_dev_list": devices}, st.lists(u16, max_size=6), u8),
)
status = st.sampled_from([0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x89])


def nwk_update(duration: int, rest: dict) -> dict:
    return {"scan_duration": duration, "scan_count": None, "nwk_update_id": None, "nwk_manager_addr": None, **rest}


FIELDS = {
    0x0000: st.fixed_dictionaries({"ieee": u64, "request_type": st.integers(0, 1), "start_index": u8}),
    0x0001: st.fixed_dictionaries({"nwk_addr_of_interest": u16, "request_type": st.integers(0, 1),
                                   "start_index": u8}),
    0x0002: st.fixed_dictionaries({"nwk_addr_of_interest": u16}),
    0x0004: st.fixed_dictionaries({"nwk_addr_of_interest": u16, "endpoint": u8}),
    0x0005: st.fixed_dictionaries({"nwk_addr_of_interest": u16}),
    0x0006: st.fixed_dictionaries({"nwk_addr_of_interest": u16, "profile": u16, "in_clusters": clusters,
                                   "out_clusters": clusters}),
    0x0013: st.fixed_dictionaries({"nwk": u16, "ieee": u64, "capability": u8}),
    0x0021: st.fixed_dictionaries({"src_address": u64, "src_endpoint": u8, "cluster_id": u16,
                                   "dst_address": multi_address}),
    0x0022: st.fixed_dictionaries({"src_address": u64, "src_endpoint": u8, "cluster_id": u16,
                                   "dst_address": multi_address}),
    0x0034: st.fixed_dictionaries({"device_address": u64, "options": u8}),
    0x0036: st.fixed_dictionaries({"permit_duration": u8, "tc_significant": st.integers(0, 1)}),
    0x0038: st.one_of(
        st.builds(lambda d, c, n: {"scan_channels": c, **nwk_update(d, {"scan_count": n})}, st.integers(0, 5), u32, u8),
        st.builds(lambda c, i: {"scan_channels": c, **nwk_update(0xFE, {"nwk_update_id": i})}, u32, u8),
        st.builds(lambda c, i, m: {"scan_channels": c, **nwk_update(0xFF, {"nwk_update_id": i,
                                                                            "nwk_manager_addr": m})}, u32, u8, u16),
    ),
    0x8000: st.builds(lambda s, i, n, tail: {"status": s, "ieee": i, "nwk": n, **tail}, status, u64, u16, addr_tail),
    0x8001: st.builds(lambda s, i, n, tail: {"status": s, "ieee": i, "nwk": n, **tail}, status, u64, u16, addr_tail),
    0x8002: st.builds(lambda s, n, d: {"status": s, "nwk_addr_of_interest": n, "node_descriptor": d}, status, u16,
                      st.none() | node_descriptor),
    0x8004: st.builds(lambda s, n, d: {"status": s, "nwk_addr_of_interest": n, "simple_descriptor": d}, status, u16,
                      st.none() | simple_descriptor),
    0x8005: st.fixed_dictionaries({"status": status, "nwk_addr_of_interest": u16, "active_ep_list": st.lists(u8)}),
    0x8006: st.fixed_dictionaries({"status": status, "nwk_addr_of_interest": u16, "match_list": st.lists(u8)}),
    0x8021: st.fixed_dictionaries({"status": status}),
    0x8022: st.fixed_dictionaries({"status": status}),
    0x8034: st.fixed_dictionaries({"status": status}),
    0x8036: st.fixed_dictionaries({"status": status}),
    0x8038: st.fixed_dictionaries({"status": status, "scanned_channels": u32, "total_transmissions": u16,
                                   "transmission_failures": u16, "energy_values": st.lists(u8, max_size=16)}),
}


def zigpy_parse(cluster: int, data: bytes) -> list:
    _, types = zdo_t.CLUSTERS[cluster]
    values, rest = zt.deserialize(data[1:], types)
    assert rest == b""
    return values


def zigpy_serialize(cluster: int, values: list) -> bytes:
    _, types = zdo_t.CLUSTERS[cluster]
    return b"".join(v.serialize() for v in values if v is not None) if values else b""


def plain(value):
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def test_the_table_covers_what_zigpy_names_alike():
    for cluster, command in zdo.COMMANDS.items():
        assert zdo_t.ZDOCmd(cluster).name == command.name
    assert set(FIELDS) == set(zdo.COMMANDS)


@pytest.mark.parametrize("cluster", sorted(FIELDS), ids=lambda c: zdo.COMMANDS[c].name)
@settings(max_examples=40, deadline=None)
@given(data=st.data(), tsn=u8)
def test_ours_and_zigpys_agree_both_ways(cluster, data, tsn):
    fields = data.draw(FIELDS[cluster])
    ours = zdo.encode(cluster, tsn=tsn, **fields)
    values = zigpy_parse(cluster, ours)
    assert bytes([tsn]) + zigpy_serialize(cluster, values) == ours
    names, _ = zdo_t.CLUSTERS[cluster]
    decoded = zdo.decode(cluster, ours)
    assert (decoded.tsn, decoded.name) == (tsn, zdo_t.ZDOCmd(cluster).name)
    expected = {k: v for k, v in fields.items()}
    for name in zdo.COMMANDS[cluster].tail_names:
        expected.setdefault(name, None)
    got = plain(dict(decoded.fields))
    assert got == expected
    # spot checks by zigpy's names: the first field, and the descriptors' insides
    first = names[0]
    if first in ("Status", "NWKAddrOfInterest", "IEEEAddr", "NWKAddr", "SrcAddress", "DeviceAddress",
                 "PermitDuration"):
        value = values[0]
        as_int = int.from_bytes(value.serialize(), "little") if isinstance(value, zt.EUI64) else int(value)
        assert as_int == fields[zdo.COMMANDS[cluster].field_names[0]]
    if cluster == 0x8002 and fields["node_descriptor"] is not None:
        assert values[2].manufacturer_code == fields["node_descriptor"]["manufacturer_code"]
        assert values[2].logical_type == fields["node_descriptor"]["logical_type"]
    if cluster == 0x8004 and fields["simple_descriptor"] is not None:
        assert list(values[2].output_clusters) == fields["simple_descriptor"]["output_clusters"]


def test_zigpys_own_requests_decode():
    data = bytes([9]) + zt.serialize([0x1234, 1], zdo_t.CLUSTERS[0x0004][1])
    frame = zdo.decode(0x0004, data)
    assert (frame.tsn, frame.fields.nwk_addr_of_interest, frame.fields.endpoint) == (9, 0x1234, 1)


@pytest.mark.parametrize("cluster, data, words", [
    (0x0002, b"", "empty"),
    (0x0002, b"\x01\x34", "Node_Desc_req"),
    (0x0002, b"\x01\x34\x12\x00", "after the last field"),
    (0x0021, b"\x01" + bytes(11) + b"\x02", "Bind_req"),
    (0x7777, b"\x01", "not in the table"),
])
def test_malformed_payloads_are_one_line_errors(cluster, data, words):
    with pytest.raises(ZdoError) as error:
        zdo.decode(cluster, data)
    assert words in str(error.value) and "\n" not in str(error.value)


def test_encoding_errors_name_the_field():
    with pytest.raises(ZdoError, match="missing field 'endpoint'"):
        zdo.encode("Simple_Desc_req", tsn=1, nwk_addr_of_interest=0)
    with pytest.raises(ZdoError, match="unknown field 'bogus'"):
        zdo.encode("Active_EP_req", tsn=1, nwk_addr_of_interest=0, bogus=1)
    with pytest.raises(ZdoError, match="cannot encode"):
        zdo.encode("Active_EP_req", tsn=1, nwk_addr_of_interest=0x10000)
