"""ZnpCoordinator against the real zigpy-znp (and zigpy above it), over socket:// on 127.0.0.1.

zigpy forms a network on a blank dongle, starts, shuts down, and a second dongle built
from the first one's NV snapshot restores the same network without forming; zigpy-znp's
own backup tool reads the key and PAN id back; a device joins while permit-join is open
and zigpy interviews it through a fake radio side (the test answers what pop_network
gives); garbage and corrupted frames on the line do not break a session."""
from __future__ import annotations

import asyncio
import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zigpy_znp.api import ZNP
from zigpy_znp.tools.network_backup import backup_network
from zigpy_znp.zigbee.application import ControllerApplication

from bridge_emu.codec import mt, zdo
from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.serial_link import StreamDriver, serve_tcp
from bridge_emu.uart.znp_ncp import ZnpCoordinator

NCP_IEEE = 0x00124B0001020304
DEVICE_IEEE = 0x00124B00AABBCCDD
DEVICE_NWK = 0x4A2B


@contextlib.asynccontextmanager
async def dongle(ncp: ZnpCoordinator):
    """The NCP behind socket://127.0.0.1:PORT in this loop; yields (url, driver)."""
    link = await serve_tcp("127.0.0.1", 0)
    driver = StreamDriver(ncp, link, AsyncioClock(asyncio.get_running_loop()))
    driver.start()
    try:
        yield link.url, driver
    finally:
        driver.stop()
        link.close()
        await asyncio.sleep(0.05)   # let the server's client task see the close


def app_config(url: str) -> dict:
    # sockets have no DTR/RTS pins: no toggling, just ping
    return {"device": {"path": url}, "database_path": None, "backup_enabled": False, "topo_scan_enabled": False,
            "ota": {"enabled": False},
            "znp_config": {"connect_rts_pin_states": [], "connect_dtr_pin_states": []}}


async def started_app(url: str) -> ControllerApplication:
    app = ControllerApplication(app_config(url))
    await asyncio.wait_for(app.startup(auto_form=True), 30)
    return app


def as_int(eui64) -> int:
    return int.from_bytes(eui64.serialize(), "little")


def test_zigpy_forms_a_network_and_a_restart_from_nv_restores_it():
    async def run():
        ncp = ZnpCoordinator(NCP_IEEE, seed=7)
        async with dongle(ncp) as (url, _):
            app = await started_app(url)
            info = app.state.network_info
            assert as_int(app.state.node_info.ieee) == NCP_IEEE
            network = ncp.network
            assert network is not None
            assert (info.channel, info.pan_id, as_int(info.extended_pan_id)) == (
                network.channel, network.pan_id, network.extended_pan_id)
            assert info.network_key.key.serialize() == network.network_key
            await app.shutdown()
        assert ncp.stats["formations"] >= 1 and ncp.stats["unknown_sreqs"] == 0
        snapshot = ncp.nv_snapshot()

        again = ZnpCoordinator(NCP_IEEE, nv=snapshot, seed=8)
        assert again.network == network
        async with dongle(again) as (url, _):
            app = await started_app(url)
            info = app.state.network_info
            assert (info.channel, info.pan_id, info.network_key.key.serialize()) == (
                network.channel, network.pan_id, network.network_key)
            await app.shutdown()
        assert again.stats["formations"] == 0
        assert again.network == network

        blank = ZnpCoordinator(NCP_IEEE, seed=7)      # nv=None: a fresh dongle, no network
        assert blank.network is None

    asyncio.run(run())


def test_zigpy_znp_backup_reads_the_network_key_and_pan_id():
    async def run():
        ncp = ZnpCoordinator(NCP_IEEE, seed=3)
        async with dongle(ncp) as (url, _):
            app = await started_app(url)
            await app.shutdown()
            znp = ZNP(ControllerApplication.SCHEMA(app_config(url)))
            await znp.connect()
            try:
                backup = await backup_network(znp)
            finally:
                await znp.disconnect()
        network = ncp.network
        assert backup["network_key"]["key"] == network.network_key.hex()
        assert backup["pan_id"] == f"{network.pan_id:04x}"
        assert backup["channel"] == network.channel
        assert backup["coordinator_ieee"] == f"{NCP_IEEE:016x}"

    asyncio.run(run())


# (cluster, attribute) -> ZCL type and value: Basic's manufacturer and model (strings), OTA's current file version
ATTRIBUTES = {
    (0x0000, 0x0004): b"\x42\x0abridge-emu",
    (0x0000, 0x0005): b"\x42\x09ALT-HAN-1",
    (0x0019, 0x0002): b"\x23" + (0x01000000).to_bytes(4, "little"),
}


class FakeDevice:
    """The radio side: one device (endpoint 1, HA, in Basic, out OTA) answering what the host sends it."""

    def __init__(self, ncp: ZnpCoordinator, driver: StreamDriver, loop: asyncio.AbstractEventLoop):
        self.ncp, self.driver, self.loop = ncp, driver, loop
        self.seen: list[int] = []

    def reply(self, src_ep: int, dst_ep: int, profile: int, cluster: int, payload: bytes) -> None:
        self.ncp.network_received(DEVICE_NWK, src_ep, dst_ep, profile, cluster, payload, 200, self.loop.time())
        self.driver.poke()

    def handle(self, aps) -> None:
        if aps.dst_nwk != DEVICE_NWK:
            return
        self.seen.append(aps.cluster)
        if aps.profile == zdo.ZDO_PROFILE:
            request = zdo.decode(aps.cluster, aps.payload)
            answer = {
                "Node_Desc_req": {"status": 0, "nwk_addr_of_interest": DEVICE_NWK, "node_descriptor": {
                    "logical_type": 1, "complex_descriptor_available": 0, "user_descriptor_available": 0,
                    "reserved": 0, "aps_flags": 0, "frequency_band": 8, "mac_capability_flags": 0x8E,
                    "manufacturer_code": 0x1234, "maximum_buffer_size": 82, "maximum_incoming_transfer_size": 82,
                    "server_mask": 0x2C00, "maximum_outgoing_transfer_size": 82,
                    "descriptor_capability_field": 0}},
                "Active_EP_req": {"status": 0, "nwk_addr_of_interest": DEVICE_NWK, "active_ep_list": [1]},
                "Simple_Desc_req": {"status": 0, "nwk_addr_of_interest": DEVICE_NWK, "simple_descriptor": {
                    "endpoint": 1, "profile": 0x0104, "device_type": 0x0051, "device_version": 0,
                    "input_clusters": [0x0000], "output_clusters": [0x0019]}},
            }.get(request.name)
            if answer is not None:
                self.reply(0, 0, 0, aps.cluster | zdo.RESPONSE, zdo.encode(aps.cluster | zdo.RESPONSE,
                                                                           tsn=request.tsn, **answer))
        elif aps.payload[0] & 0x03 == 0 and aps.payload[2] == 0x00:      # a ZCL Read Attributes
            tsn, body = aps.payload[1], aps.payload[3:]
            records = b""
            for i in range(0, len(body), 2):
                value = ATTRIBUTES.get((aps.cluster, int.from_bytes(body[i:i + 2], "little")))
                records += body[i:i + 2] + (b"\x00" + value if value is not None else b"\x86")  # 0x86: unsupported
            # the reverse direction of the request, default response disabled
            direction = 0x08 ^ (aps.payload[0] & 0x08)
            self.reply(aps.dst_ep, aps.src_ep, 0x0104, aps.cluster, bytes([0x10 | direction, tsn, 0x01]) + records)

    async def run(self) -> None:
        while True:
            for aps in self.ncp.pop_network():
                self.handle(aps)
            await asyncio.sleep(0.01)


def test_a_device_joins_while_permit_join_is_open_and_zigpy_interviews_it():
    async def run():
        loop = asyncio.get_running_loop()
        ncp = ZnpCoordinator(NCP_IEEE, seed=11)
        async with dongle(ncp) as (url, driver):
            app = await started_app(url)
            assert not ncp.device_joined(DEVICE_NWK, DEVICE_IEEE, 0x0000, loop.time())   # joins closed
            await app.permit(60)
            assert ncp.permit_joining
            device_side = FakeDevice(ncp, driver, loop)
            radio = asyncio.create_task(device_side.run())
            try:
                assert ncp.device_joined(DEVICE_NWK, DEVICE_IEEE, 0x0000, loop.time())
                driver.poke()
                device = None
                for _ in range(1000):
                    device = next((d for d in app.devices.values() if as_int(d.ieee) == DEVICE_IEEE), None)
                    if device is not None and device.is_initialized and device.model is not None:
                        break
                    await asyncio.sleep(0.02)
                assert device is not None and device.is_initialized, device_side.seen
                assert device.nwk == DEVICE_NWK
                assert 0x0019 in device.endpoints[1].out_clusters
                assert 0x0000 in device.endpoints[1].in_clusters
                assert (device.manufacturer, device.model) == ("bridge-emu", "ALT-HAN-1"), device_side.seen
            finally:
                radio.cancel()
                await app.shutdown()

    asyncio.run(run())


def test_garbage_and_corrupted_frames_in_a_live_session_change_nothing():
    async def run():
        loop = asyncio.get_running_loop()
        ncp = ZnpCoordinator(NCP_IEEE, seed=5)
        rng = random.Random(5)
        async with dongle(ncp) as (url, driver):
            app = await started_app(url)
            for _ in range(20):
                ncp.receive_bytes(rng.randbytes(rng.randrange(1, 40)), loop.time())
            ncp.receive_bytes(bytes([0xFE, 0x01, 0x21, 0x01, 0x00, 0x00]), loop.time())     # bad FCS
            ncp.receive_bytes(mt.Frame(mt.CommandType.SREQ, mt.Subsystem.SYS, 0x01, b"\x01\x02").encode(),
                              loop.time())   # Ping with a payload: malformed, dropped
            ncp.receive_bytes(b"\x00" * 8, loop.time())   # flush any frame the garbage left half-read
            ncp.pop_bytes()   # what the garbage provoked (RPC errors the host would not expect)
            driver.poke()
            await app.permit(10)                           # the session still works
            assert ncp.permit_joining
            await app.shutdown()
        assert ncp.stats["undecodable"] > 0

    asyncio.run(run())


PING = mt.encode_command("SYS.Ping").encode()
VERSION = mt.encode_command("SYS.Version").encode()
no_sof = st.binary(max_size=30).map(lambda b: bytes(x for x in b if x != mt.SOF))
corrupted = st.sampled_from([PING, VERSION]).map(lambda f: f[:-1] + bytes([(f[-1] ^ 0x5A)]))


@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.tuples(no_sof, corrupted | no_sof), min_size=1, max_size=8), split=st.integers(1, 7))
def test_every_valid_request_between_garbage_is_answered(pieces, split):
    ncp = ZnpCoordinator(NCP_IEEE)
    stream = b"".join(garbage + noise + PING for garbage, noise in pieces)
    for i in range(0, len(stream), split):   # in small writes, frames split across them
        ncp.receive_bytes(stream[i:i + split], 0.0)
    answers = [mt.decode(f) for f in mt.FrameParser().feed(ncp.pop_bytes())]
    assert [a.name for a in answers] == ["SYS.Ping"] * len(pieces)


def test_unknown_sreqs_get_command_not_recognized_and_nothing_raises():
    ncp = ZnpCoordinator(NCP_IEEE)
    ncp.receive_bytes(mt.Frame(mt.CommandType.SREQ, mt.Subsystem.MAC, 0x05, b"").encode(), 0.0)
    ncp.receive_bytes(mt.Frame(mt.CommandType.SREQ, mt.Subsystem.SYS, 0x77, b"\x01").encode(), 0.0)
    answers = [mt.decode(f) for f in mt.FrameParser().feed(ncp.pop_bytes())]
    assert [a.name for a in answers] == ["RPC_ERROR.CommandNotRecognized"] * 2
    assert answers[0].fields.error_code == mt.RpcErrorCode.INVALID_SUBSYSTEM
    assert answers[1].fields.request_header == (0x21 | 0x77 << 8)


@pytest.mark.parametrize("duration", [1, 5])
def test_permit_join_closes_when_its_duration_runs_out(duration):
    ncp = ZnpCoordinator(NCP_IEEE)
    ncp.receive_bytes(mt.encode_command("ZDO.MgmtPermitJoinReq", addr_mode=mt.AddrMode.NWK, dst=0, duration=duration,
                                        tc_significance=1).encode(), 100.0)
    assert ncp.permit_joining and ncp.next_deadline() == 100.0 + duration
    ncp.timer(100.0 + duration)
    assert not ncp.permit_joining
