"""What every ZigBee device answers on its own, whatever its application: the
ZDO requests a coordinator sends while it interviews a new device (node
descriptor, active endpoints, simple descriptor, addresses) and reads of the
Basic cluster (manufacturer, model, power source). Everything else goes to the
application machine, the bridge. A device that is not on the network answers
nothing.

A bridge is one HA endpoint (1): Basic as a server cluster, OTA Upgrade as a
client (output) cluster, which is what a host stack needs to see before it
offers an update, and the project's GBCS cluster. ZDO frames travel the
simulated network under `ZDO | cluster` (bridge_emu.net.transport).
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from bridge_emu.codec import gbcs, zdo
from bridge_emu.codec.zdo import ZdoError
from bridge_emu.emulator.profiles import BridgeProfile
from bridge_emu.net.transport import ZDO, Machine

HA_PROFILE = 0x0104
ENDPOINT = 1
BASIC, OTA = 0x0000, 0x0019
RANGE_EXTENDER = 0x0008          # the HA device id closest to what a bridge is
MANUFACTURER_NAME = "bridge-emu"
SUCCESS, NOT_SUPPORTED, UNSUPPORTED_ATTRIBUTE = 0x00, 0x84, 0x86
ROUTER, END_DEVICE = 1, 2
# MAC capability: alternate PAN coordinator 0, device type bit 1, mains bit 2, rx-on bit 3, allocate address bit 7
ROUTER_CAPABILITY, SLEEPY_CAPABILITY = 0x8E, 0x80


def eui64(premises: str, bridge: str) -> int:
    """A stable, locally administered EUI-64 for an emulated bridge (bit 1 of the
    first octet set: not from an IEEE-assigned block)."""
    raw = bytearray(hashlib.sha256(f"bridge-emu/{premises}/{bridge}".encode()).digest()[:8])
    raw[0] = (raw[0] | 0x02) & 0xFE
    return int.from_bytes(raw, "big")


@dataclass(frozen=True)
class NodeIdentity:
    """Who a bridge is on a ZigBee network."""
    ieee: int
    nwk: int
    profile: BridgeProfile

    @property
    def logical_type(self) -> int:
        return END_DEVICE if self.profile.sleepy else ROUTER

    @property
    def mac_capability(self) -> int:
        return SLEEPY_CAPABILITY if self.profile.sleepy else ROUTER_CAPABILITY

    @property
    def model(self) -> str:
        return self.profile.model

    def node_descriptor(self) -> dict:
        return {"logical_type": self.logical_type, "complex_descriptor_available": 0,
                "user_descriptor_available": 0, "reserved": 0, "aps_flags": 0, "frequency_band": 0x08,  # 2.4 GHz
                "mac_capability_flags": self.mac_capability, "manufacturer_code": self.profile.manufacturer,
                "maximum_buffer_size": 82, "maximum_incoming_transfer_size": 82, "server_mask": 0x2C00,
                "maximum_outgoing_transfer_size": 82, "descriptor_capability_field": 0}

    def simple_descriptor(self) -> dict:
        return {"endpoint": ENDPOINT, "profile": HA_PROFILE, "device_type": RANGE_EXTENDER, "device_version": 0,
                "input_clusters": [BASIC, gbcs.GBCS_CLUSTER], "output_clusters": [OTA]}

    def basic_attributes(self) -> dict[int, bytes]:
        """Basic cluster attribute id -> ZCL type byte and value bytes."""
        power = 0x03 if self.profile.power == "battery" else 0x01
        return {0x0000: b"\x20\x03",                         # ZCL version 3 (uint8)
                0x0004: _string(MANUFACTURER_NAME),
                0x0005: _string(self.model),
                0x0007: bytes([0x30, power])}                # power source (enum8)


def _string(text: str) -> bytes:
    data = text.encode()
    return bytes([0x42, len(data)]) + data                   # character string: length-prefixed


class ZigbeeNode:
    """A Machine (bridge_emu.net.transport) in front of an application machine."""

    def __init__(self, app: Machine, identity: NodeIdentity, on_network: Callable[[], bool]):
        self.app = app
        self.identity = identity
        self.on_network = on_network
        self._replies: list[tuple[int, int, bytes]] = []
        self.refused = 0          # requests it could not decode

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if cluster >= ZDO:
            if self.on_network():
                self._zdo(src, cluster - ZDO, payload)
        elif cluster == BASIC:
            if self.on_network():
                self._basic(src, payload)
        else:
            self.app.receive(src, cluster, payload, now)

    def timer(self, now: float) -> None:
        self.app.timer(now)

    def next_deadline(self) -> float | None:
        return self.app.next_deadline()

    def pop_outgoing(self):
        out, self._replies = self._replies, []
        return out + list(self.app.pop_outgoing())

    # -- ZDO

    def _zdo(self, src: int, cluster: int, payload: bytes) -> None:
        if zdo.is_response(cluster):
            return
        try:
            request = zdo.decode(cluster, payload)
        except ZdoError:
            self.refused += 1
            return
        me = self.identity
        fields = request.fields
        asked = fields.get("nwk_addr_of_interest", me.nwk)
        if request.name == "Node_Desc_req":
            answer = {"status": SUCCESS, "nwk_addr_of_interest": me.nwk, "node_descriptor": me.node_descriptor()}
        elif request.name == "Active_EP_req":
            answer = {"status": SUCCESS, "nwk_addr_of_interest": me.nwk, "active_ep_list": [ENDPOINT]}
        elif request.name == "Simple_Desc_req":
            if fields.endpoint != ENDPOINT:
                answer = {"status": 0x82, "nwk_addr_of_interest": me.nwk, "simple_descriptor": None}  # INVALID_EP
            else:
                answer = {"status": SUCCESS, "nwk_addr_of_interest": me.nwk,
                          "simple_descriptor": me.simple_descriptor()}
        elif request.name in ("NWK_addr_req", "IEEE_addr_req"):
            if request.name == "NWK_addr_req" and fields.ieee != me.ieee:
                return                                     # asked of someone else (a broadcast)
            answer = {"status": SUCCESS, "ieee": me.ieee, "nwk": me.nwk, "num_assoc_dev": None,
                      "start_index": None, "nwk_addr_assoc_dev_list": None}
        else:
            return
        if asked != me.nwk:
            return
        rsp = cluster | zdo.RESPONSE
        self._replies.append((src, ZDO | rsp, zdo.encode(rsp, tsn=request.tsn, **answer)))

    # -- Basic

    def _basic(self, src: int, payload: bytes) -> None:
        if len(payload) < 3:
            self.refused += 1
            return
        control = payload[0]
        head = 5 if control & 0x04 else 3                # a manufacturer-specific frame has a 2-byte code
        if control & 0x03 != 0 or len(payload) < head or payload[head - 1] != 0x00 or (len(payload) - head) % 2:
            self.refused += 1                            # only Read Attributes is served
            return
        tsn = payload[1] if head == 3 else payload[3]
        attributes = self.identity.basic_attributes() if head == 3 else {}
        records = bytearray()
        for i in range(head, len(payload), 2):
            aid = payload[i:i + 2]
            value = attributes.get(int.from_bytes(aid, "little"))
            records += aid + (bytes([SUCCESS]) + value if value is not None else bytes([UNSUPPORTED_ATTRIBUTE]))
        # global command, server to client, default response disabled
        self._replies.append((src, BASIC, bytes([0x18, tsn, 0x01]) + records))
