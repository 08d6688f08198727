"""EzspCoordinator against the real bellows + zigpy, over socket:// on 127.0.0.1:
bellows connects, negotiates the EZSP version, forms a network (on a channel it
gives, or on one zigpy picks by energy scan), starts it, backs it up, restores a
backup with link keys into the key table, and comes back to the same network from
the tokens. (Joins and the interview: tests/dongle/test_dongle_bellows.py.)"""
from __future__ import annotations

import asyncio
import contextlib

import pytest
import zigpy.config
import zigpy.state
import zigpy.types as zt
from bellows.zigbee.application import ControllerApplication

from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.serial_link import StreamDriver, serve_tcp
from bridge_emu.uart.ezsp_ncp import EzspCoordinator

NCP_IEEE = 0x00_0B_57_FF_FE_12_34_56


def slow(version: int):
    """A version this test runs at in `make test-slow` only: every run covers each test at one version,
    and each layout (v8, v13, v14, v16) at least once across the file."""
    return pytest.param(version, marks=pytest.mark.slow)


CHANNEL = 15            # given, so zigpy forms without the energy scan the NCP does not emulate


@contextlib.asynccontextmanager
async def running(ncp: EzspCoordinator, *, channel: int | None = CHANNEL):
    """The NCP behind socket://127.0.0.1:port, and a started bellows application on it.
    channel None: zigpy picks one by energy scan, and scans again at startup."""
    loop = asyncio.get_running_loop()
    link = await serve_tcp("127.0.0.1", 0)
    driver = StreamDriver(ncp, link, AsyncioClock(loop))
    driver.start()
    app = ControllerApplication({
        zigpy.config.CONF_DEVICE: {zigpy.config.CONF_DEVICE_PATH: link.url, "flow_control": None},
        zigpy.config.CONF_NWK: {zigpy.config.CONF_NWK_CHANNEL: channel},
        zigpy.config.CONF_NWK_BACKUP_ENABLED: False,
        zigpy.config.CONF_TOPO_SCAN_ENABLED: False,
        zigpy.config.CONF_STARTUP_ENERGY_SCAN: channel is None,
    })
    try:
        await asyncio.wait_for(app.startup(auto_form=True), 30)
        yield app, driver
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(app.shutdown(), 10)
        driver.stop()
        link.close()


async def form_restart_backup(version: int) -> None:
    ncp = EzspCoordinator(NCP_IEEE, seed=1, version=version)
    async with running(ncp) as (app, _):
        assert ncp.network is not None
        assert app.state.network_info.channel == CHANNEL == ncp.network.channel
        assert app.state.network_info.pan_id == ncp.network.pan_id
        assert app.state.node_info.ieee == zt.EUI64(NCP_IEEE.to_bytes(8, "little"))
        backup = await app.backups.create_backup()
        assert bytes(backup.network_info.network_key.key) == ncp.network.network_key
        assert not ncp.gaps, ncp.gaps
        formed = ncp.network
    resumed = EzspCoordinator(NCP_IEEE, ncp.nv_snapshot(), seed=2, version=version)
    async with running(resumed) as (app, _):
        assert resumed.network == formed
        assert app.state.network_info.pan_id == formed.pan_id


@pytest.mark.parametrize("version", [13, slow(16)])
def test_form_restart_backup(version):
    asyncio.run(asyncio.wait_for(form_restart_backup(version), 50))


def test_garbage_never_raises():
    ncp = EzspCoordinator(NCP_IEEE)
    ncp.receive_bytes(b"\x1a\xc0\x38\xbc\x7e" + bytes(range(256)) + b"\x7e", 0.0)
    assert ncp.network is None and isinstance(ncp.pop_bytes(), bytes)


async def form_by_energy_scan(version: int) -> None:
    ncp = EzspCoordinator(NCP_IEEE, seed=3, version=version)
    async with running(ncp, channel=None) as (app, _):
        energy = await app.energy_scan(zt.Channels.ALL_CHANNELS, duration_exp=2, count=1)
        assert sorted(energy) == list(range(11, 27))
        assert all(0 <= e <= 255 for e in energy.values())
        # zigpy formed on a channel of its preferred set, picked from the first scan's results
        assert ncp.network.channel == app.state.network_info.channel
        assert ncp.network.channel in list(app.config[zigpy.config.CONF_NWK][zigpy.config.CONF_NWK_CHANNELS])
        assert not ncp.gaps, ncp.gaps


@pytest.mark.parametrize("version", [slow(13), 16])
def test_zigpy_picks_a_channel_by_energy_scan_and_forms_on_it(version):
    asyncio.run(asyncio.wait_for(form_by_energy_scan(version), 50))


PARTNER = 0x00_12_4B_00_11_22_33_44
PARTNER_KEY = bytes(range(0x30, 0x40))
PARTNER_NWK = 0x4D2E


def eui(value: int) -> zt.EUI64:
    return zt.EUI64(value.to_bytes(8, "little"))


async def restore_with_link_key(version: int) -> None:
    ncp = EzspCoordinator(NCP_IEEE, seed=4, version=version)
    async with running(ncp) as (app, _):
        backup = await app.backups.create_backup()
        assert backup.network_info.key_table == []
        partner = eui(PARTNER)
        key = zigpy.state.Key(key=zt.KeyData(PARTNER_KEY), partner_ieee=partner)
        backup = backup.replace(network_info=backup.network_info.replace(
            key_table=[key], children=[partner], nwk_addresses={partner: zt.NWK(PARTNER_NWK)}))
        await app.backups.restore_backup(backup)
        nv = ncp.nv_snapshot()
        assert [(k["eui64"], k["key"]) for k in nv["key_table"]] == [(f"{PARTNER:016x}", PARTNER_KEY.hex())]
        again = (await app.backups.create_backup()).network_info
        if version < 14:    # bellows 1.2.1 reads v14+ exportLinkKeyByIndex answers in the v13 order: it skips them
            assert [bytes(k.key) for k in again.key_table] == [PARTNER_KEY]
        if version >= 9:    # setChildData is v9+; bellows writes no children before
            assert [(c["nwk"], c["eui64"]) for c in nv["children"]] == [(PARTNER_NWK, f"{PARTNER:016x}")]
            assert again.children == [partner] and again.nwk_addresses[partner] == PARTNER_NWK
        assert not ncp.gaps, ncp.gaps
    resumed = EzspCoordinator(NCP_IEEE, ncp.nv_snapshot(), version=version)     # the key table is a token
    assert resumed.nv_snapshot()["key_table"] == ncp.nv_snapshot()["key_table"]


@pytest.mark.parametrize("version", [slow(8), 13, slow(16)])
def test_a_restore_writes_its_link_keys_and_children_into_the_tokens(version):
    asyncio.run(asyncio.wait_for(restore_with_link_key(version), 50))


SLEEPY_END_DEVICE_CAPABILITY = 0x80       # no router, rx off when idle


async def end_device_joins_and_leaves(version: int) -> None:
    ncp = EzspCoordinator(NCP_IEEE, seed=5, version=version)
    async with running(ncp) as (app, driver):
        clock = AsyncioClock(asyncio.get_running_loop())
        heard: asyncio.Queue = asyncio.Queue()

        class Listener:
            def device_joined(self, device):
                heard.put_nowait(("joined", device.nwk, device.ieee))

            def device_left(self, device):
                heard.put_nowait(("left", device.nwk, device.ieee))

        app.add_listener(Listener())
        assert not ncp.device_joined(PARTNER_NWK, PARTNER, 0x0000, clock.now())     # joining is closed
        await app.permit(60)
        assert ncp.device_joined(PARTNER_NWK, PARTNER, 0x0000, clock.now(),
                                 mac_capabilities=SLEEPY_END_DEVICE_CAPABILITY)
        driver.poke()
        assert await asyncio.wait_for(heard.get(), 10) == ("joined", PARTNER_NWK, eui(PARTNER))
        # it is the coordinator's child now: bellows' backup reads it from the child table
        backup = (await app.backups.create_backup()).network_info
        assert backup.children == [eui(PARTNER)] and backup.nwk_addresses[eui(PARTNER)] == PARTNER_NWK
        ncp.device_left(PARTNER_NWK, PARTNER, clock.now())
        driver.poke()
        while (event := await asyncio.wait_for(heard.get(), 10))[0] != "left":
            pass      # a second join report (its Device_annce) may come first
        assert event == ("left", PARTNER_NWK, eui(PARTNER))
        assert ncp.nv_snapshot()["children"] == []
        assert not ncp.gaps, ncp.gaps


@pytest.mark.parametrize("version", [slow(13), 14])
def test_an_end_device_joins_as_the_coordinators_child_and_leaves(version):
    asyncio.run(asyncio.wait_for(end_device_joins_and_leaves(version), 50))


def test_a_damaged_snapshot_is_a_one_line_error():
    snapshot = EzspCoordinator(NCP_IEEE).nv_snapshot()
    snapshot["key_table"] = [{"index": 0, "eui64": "not hex", "key": ""}]
    with pytest.raises(ValueError, match=r"^nv: a damaged bridge-emu/ezsp-nv snapshot \(ValueError: [^\n]*\)$"):
        EzspCoordinator(NCP_IEEE, snapshot)
