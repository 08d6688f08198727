"""Hosts that misbehave against the virtual dongle (DongleRig on socket://127.0.0.1):
one that sends garbage and leaves, one that goes away and comes back, two at
once. The rig must survive each (no error in the paced premises, none from the
NCP machine) and serve the next, unmodified host as if nothing had happened.

Garbage is seeded random bytes plus what a confused host or a noisy line sends:
for ZNP half MT frames, bad FCS, impossible lengths; for EZSP ASH frames with a
bad CRC, lone CANCEL and SUBSTITUTE bytes, bad escapes, a flood of RST."""
from __future__ import annotations

import asyncio
import os
import pathlib
import random
import signal
import socket
import subprocess
import sys

import pytest
import zigpy.config
from bellows.zigbee.application import ControllerApplication as BellowsApp
from zigpy_znp.zigbee.application import ControllerApplication as ZnpApp

from bridge_emu.codec import ash, mt
from bridge_emu.dongle.rig import DongleRig
from bridge_emu.emulator.zigbee_node import eui64
from bridge_emu.net.serial_link import serve_tcp
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.schema import builtin_premises
from support.paths import IMAGES

pytestmark = pytest.mark.native
SPEC = builtin_premises()["ihd"]                      # B1 and B4, both mains
ROOT = pathlib.Path(__file__).resolve().parents[2]
WANT = {eui64(SPEC.name, b.name): f"ALT-HAN-{b.type}" for b in SPEC.bridges}
PING_SRSP = mt.encode_response("SYS.Ping", capabilities=0x0659).encode()


def znp_config(url: str) -> dict:
    # sockets have no DTR/RTS pins: no toggling, just ping
    return {"device": {"path": url}, "database_path": None, "backup_enabled": False, "topo_scan_enabled": False,
            "ota": {"enabled": False},
            "znp_config": {"connect_rts_pin_states": [], "connect_dtr_pin_states": []}}


def bellows_config(url: str) -> dict:
    return {
        zigpy.config.CONF_DEVICE: {zigpy.config.CONF_DEVICE_PATH: url, "flow_control": None},
        zigpy.config.CONF_DATABASE: None,
        zigpy.config.CONF_NWK: {zigpy.config.CONF_NWK_CHANNEL: 15},     # no energy scan: not emulated
        zigpy.config.CONF_NWK_BACKUP_ENABLED: False,
        zigpy.config.CONF_TOPO_SCAN_ENABLED: False,
        zigpy.config.CONF_STARTUP_ENERGY_SCAN: False,
        zigpy.config.CONF_OTA: {zigpy.config.CONF_OTA_ENABLED: False},
    }


def as_int(ieee) -> int:
    return int.from_bytes(ieee.serialize(), "little")


async def interviewed(app, want: dict[int, str], timeout_s: float = 30.0) -> dict[int, str]:
    """{ieee: model} of the devices of `want` that passed zigpy's interview, once all have (or the timeout)."""
    done: dict[int, str] = {}
    for _ in range(int(timeout_s / 0.02)):
        done = {as_int(d.ieee): d.model for d in app.devices.values()
                if as_int(d.ieee) in want and d.is_initialized and d.model is not None}
        if len(done) == len(want):
            break
        await asyncio.sleep(0.02)
    return done


async def until(condition, timeout_s: float = 10.0) -> bool:
    for _ in range(int(timeout_s / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


async def read_until(reader: asyncio.StreamReader, wanted, timeout_s: float = 10.0) -> bytes:
    """Read until wanted(bytes so far) holds; all that was read."""
    got = bytearray()

    async def loop():
        while not wanted(bytes(got)):
            chunk = await reader.read(4096)
            if not chunk:
                break
            got.extend(chunk)
    try:
        await asyncio.wait_for(loop(), timeout_s)
    except TimeoutError:
        pass
    return bytes(got)


class Rig:
    """A DongleRig on a fresh socket:// link, stopped on exit."""

    def __init__(self, protocol: str, run_dir):
        self.protocol, self.run_dir = protocol, run_dir

    async def __aenter__(self):
        self.link = await serve_tcp("127.0.0.1", 0)
        self.rig = DongleRig(SPEC, ImageSet(IMAGES), self.protocol, self.link, run_dir=self.run_dir)
        self.rig.start()
        return self

    async def __aexit__(self, *exc):
        self.rig.stop()
        await asyncio.sleep(0.05)

    @property
    def errors(self) -> list:
        return self.rig.pacer.errors + self.rig.stream.errors


def znp_garbage(rng: random.Random) -> list[bytes]:
    """Chunks a broken ZNP host could send: noise, half frames, bad FCS, impossible lengths."""
    ping = mt.encode_command("SYS.Ping").encode()
    version = mt.encode_command("SYS.Version").encode()
    chunks = [rng.randbytes(rng.randint(1, 600)) for _ in range(30)]
    chunks += [ping[:2], ping[:3], version[:-1],                     # half frames
               ping[:-1] + bytes([ping[-1] ^ 0x5A]),                 # bad FCS
               b"\xfe\xff\x21\x01" + bytes(250),                     # length over 250
               b"\xfe\xfa" + bytes(20),                              # a long frame that never ends ...
               b"\xfe" * 300,                                        # ... and a run of SOF bytes
               bytes([0xFE, 0x00, 0xE1, 0x01, 0xE0])]                # reserved type 7 with a right FCS
    rng.shuffle(chunks)
    return chunks


def test_a_znp_host_sending_garbage_then_leaving_leaves_the_dongle_serving_the_next_zigpy(tmp_path):
    rng = random.Random(20261203)

    async def main():
        async with Rig("znp", tmp_path) as r:
            host, port = r.link.address
            reader, writer = await asyncio.open_connection(host, port)
            for chunk in znp_garbage(rng):
                writer.write(chunk)
                await writer.drain()
            # what a stuck SOF swallowed, the parser gives back: after at most 256 more bytes a ping is a ping
            writer.write(bytes(256) + mt.encode_command("SYS.Ping").encode())
            answered = await read_until(reader, lambda got: PING_SRSP in got)
            writer.write(mt.encode_command("SYS.Version").encode()[:4])   # and leave in the middle of a frame
            await writer.drain()
            writer.close()
            assert await until(lambda: not r.link.connected)
            stats = dict(r.rig.ncp.stats)

            app = ZnpApp(znp_config(r.link.url))
            try:
                await asyncio.wait_for(app.startup(auto_form=True), 30)
                await app.permit(60)
                done = await interviewed(app, WANT)
            finally:
                await app.shutdown()
            return answered, stats, done, r.errors, r.link.connections

    answered, stats, done, errors, connections = asyncio.run(main())
    assert PING_SRSP in answered
    assert stats["undecodable"] > 0 and stats["formations"] == 0
    assert not errors
    assert done == WANT
    assert connections == 2


HOSTS = {"znp": (ZnpApp, znp_config), "ezsp": (BellowsApp, bellows_config)}




@pytest.mark.parametrize("protocol", ["znp", "ezsp"])
def test_a_zigpy_host_that_comes_back_finds_its_network_and_its_bridges_on_the_dongle(tmp_path, protocol):
    App, config = HOSTS[protocol]

    async def main():
        async with Rig(protocol, tmp_path) as r:
            first = App(config(r.link.url))
            try:
                await asyncio.wait_for(first.startup(auto_form=True), 30)
                await first.permit(60)
                joined = await interviewed(first, WANT)
                net = first.state.network_info
                before = (net.pan_id, net.extended_pan_id, net.network_key.key, net.channel)
                nwks = {as_int(d.ieee): d.nwk for d in first.devices.values() if as_int(d.ieee) in WANT}
            finally:
                await first.shutdown()
            assert await until(lambda: not r.link.connected)
            formations = r.rig.ncp.stats.get("formations")        # (ZNP counts them; EZSP does not)
            await asyncio.sleep(0.5)                               # the dongle runs on without a host

            second = App(config(r.link.url))                      # a new host, no database: it knows nothing
            try:
                await asyncio.wait_for(second.startup(auto_form=False), 30)   # restores, or fails: no re-forming
                net = second.state.network_info
                after = (net.pan_id, net.extended_pan_id, net.network_key.key, net.channel)
                models = {}
                for ieee, nwk in nwks.items():                    # a new interview of each bridge, by its address
                    device = second.add_device(next(d.ieee for d in first.devices.values()
                                                    if as_int(d.ieee) == ieee), nwk)
                    device.schedule_initialize()                   # (zigpy also starts one on any frame)
                    await until(lambda d=device: d.is_initialized and d.model is not None, 20)
                    basic = device.endpoints[1].in_clusters[0x0000]
                    read, _ = await asyncio.wait_for(basic.read_attributes(["model"], allow_cache=False), 10)
                    models[ieee] = (device.model, read.get("model"))
            finally:
                await second.shutdown()
            return joined, before, after, formations, r.rig.ncp.stats.get("formations"), models, r.errors

    joined, before, after, formations_then, formations_now, models, errors = asyncio.run(main())
    assert joined == WANT
    assert after == before                                              # a new formation draws a new PAN and key
    assert formations_now == formations_then                            # the second host formed nothing
    assert models == {ieee: (model, model) for ieee, model in WANT.items()}
    assert not errors


def test_a_second_host_replaces_the_first_which_sees_its_connection_closed(tmp_path):
    async def main():
        async with Rig("znp", tmp_path) as r:
            host, port = r.link.address
            first = ZnpApp(znp_config(r.link.url))
            lost: list = []
            try:
                await asyncio.wait_for(first.startup(auto_form=True), 30)
                net = first.state.network_info
                formed = (net.pan_id, net.extended_pan_id, net.network_key.key)
                first.connection_lost = lost.append               # zigpy would reconnect; we want to see it
                reader, writer = await asyncio.open_connection(host, port)    # a second host, at once
                writer.write(mt.encode_command("SYS.Ping").encode())
                second_served = await read_until(reader, lambda got: PING_SRSP in got)
                first_told = await until(lambda: bool(lost))
            finally:
                await first.shutdown()
            writer.close()
            assert await until(lambda: not r.link.connected)

            third = ZnpApp(znp_config(r.link.url))                # and the dongle serves whoever comes next
            try:
                await asyncio.wait_for(third.startup(auto_form=False), 30)
                net = third.state.network_info
                again = (net.pan_id, net.extended_pan_id, net.network_key.key)
            finally:
                await third.shutdown()
            return second_served, first_told, formed, again, r.errors, r.link.connections

    second_served, first_told, formed, again, errors, connections = asyncio.run(main())
    assert PING_SRSP in second_served
    assert first_told
    assert again == formed
    assert not errors
    assert connections == 3


def ezsp_garbage(rng: random.Random) -> list[bytes]:
    """Chunks a broken EZSP host or a noisy line could send."""
    data = ash.DataFrame(0, False, 0, b"\x00\x00\x00\x04").encode()
    bad_crc = data[:-1] + bytes([data[-1] ^ 0x01])
    chunks = [rng.randbytes(rng.randint(1, 400)) for _ in range(30)]
    chunks += [ash.stuff(bad_crc) + ash.FLAG,                            # a DATA frame with a bad CRC
               ash.stuff(ash.RstFrame().encode()[:-1]) + ash.FLAG,       # a RST cut short
               b"\x1a", b"\x18", b"\x1a\x1a", b"\x18\x7e",                # lone CANCEL and SUBSTITUTE
               b"\x7d\x7e", b"\x7d\x00\x7e",                              # ESCAPE then FLAG; a bad escape
               bytes([0xC7, 0x00, 0x00, 0x7E]),                          # an unknown control byte
               rng.randbytes(600) + ash.FLAG,                            # longer than any frame
               ash.DataFrame(3, False, 5, b"\x07\x00\x00\x04").to_wire(),  # a good frame out of sequence
               ash.RstFrame().to_wire() * 200]                           # a flood of RST
    rng.shuffle(chunks)
    return chunks


def test_an_ezsp_host_sending_garbage_then_leaving_leaves_the_dongle_serving_bellows(tmp_path):
    rng = random.Random(20261204)
    rstack = ash.RstAckFrame(ash.ASH_VERSION, 0x0B)

    async def main():
        async with Rig("ezsp", tmp_path) as r:
            host, port = r.link.address
            reader, writer = await asyncio.open_connection(host, port)
            for chunk in ezsp_garbage(rng):
                writer.write(chunk)
                await writer.drain()
            # then as a host starts: CANCEL drops any half frame, RST asks for RSTACK, and the first
            # EZSP command (version, legacy header) goes as DATA frame 0
            writer.write(ash.RstFrame().to_wire(cancel_first=True)
                         + ash.DataFrame(0, False, 0, b"\x00\x00\x00\x04").to_wire())
            got = await read_until(reader, lambda got: any(isinstance(f, ash.DataFrame)
                                                           for f in ash.AshParser().feed(got)))
            heard = ash.AshParser().feed(got)
            writer.write(ash.stuff(ash.RstFrame().encode()[:2]))       # and leave in the middle of a frame
            await writer.drain()
            writer.close()
            assert await until(lambda: not r.link.connected)
            stats = dict(r.rig.ncp.ash.stats)

            app = BellowsApp(bellows_config(r.link.url))
            try:
                await asyncio.wait_for(app.startup(auto_form=True), 40)
                net = app.state.network_info
                channel = net.channel
                await app.permit(60)
                done = await interviewed(app, WANT)
            finally:
                await app.shutdown()
            return heard, stats, channel, done, r.errors

    heard, stats, channel, done, errors = asyncio.run(main())
    assert not any(isinstance(f, ash.BadFrame) for f in heard)          # nothing the NCP sent was malformed
    assert sum(isinstance(f, ash.RstAckFrame) for f in heard) >= 200     # every RST of the flood was answered
    # the last RST answered, then the version command acknowledged and answered (EZSP v13, stack type 2)
    assert heard[-3:-1] == [rstack, ash.AckFrame(1)]
    reply = heard[-1]
    assert isinstance(reply, ash.DataFrame) and reply.frm_num == 0 and reply.data[:5] == b"\x00\x80\x00\x0d\x02"
    assert stats["bad_frames"] > 0
    assert not errors
    assert channel == 15
    assert done == WANT


def test_sigterm_with_a_host_still_connected_ends_the_dongle_command_cleanly(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "bridge_emu.cli", "dongle", "ihd", "--protocol", "znp",
                             "--listen", "127.0.0.1:0", "--dir", str(tmp_path / "rig")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        first = proc.stdout.readline().strip()
        assert first.startswith("listening on socket://127.0.0.1:"), first
        port = int(first.rpartition(":")[2])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as host:
            host.sendall(mt.encode_command("SYS.Ping").encode())
            got = b""
            while PING_SRSP not in got:
                chunk = host.recv(4096)
                assert chunk, got
                got += chunk
            proc.send_signal(signal.SIGTERM)            # while the host is still connected
            rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    assert rc == 0 and "Traceback" not in err and "Exception" not in err, err
