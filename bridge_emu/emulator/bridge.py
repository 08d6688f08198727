"""One emulated Alt HAN bridge: its boot core, its OTA client, the GBCS
firmware flow and the behaviour of the firmware it runs.

A Bridge is a sans-I/O machine (bridge_emu.net.transport.Machine): frames and
time in, frames and a deadline out, so it runs on the simulated network or on
a real transport alike. Its persistent state is its flash (a Device); its RAM
state is rebuilt at every power-on, as a real bridge's is.

The GBCS flow (docs/gbcs-firmware.md):
  download complete -> verify in C -> alert 0x8F72 (with the manufacturer
  image hash) or 0x8F1C and discard -> Upgrade End Request.
  Activation: a CS06 Activate Firmware command (hash must match; immediate or
  future-dated) or, on the self-activating route, the Upgrade End Response's
  upgrade time -> mark pending (test) -> reboot -> the bootloader swaps.
  The new firmware proves itself: it rejoins the network and gets an answer
  from the hub within prove_timeout_s, then confirms. Otherwise the watchdog
  resets it and the bootloader reverts. Alert 0x8F43 on a change of running
  version, 0x8F1B when the power-on verification refuses an image.
"""
from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass, field

from bridge_emu.codec import gbcs
from bridge_emu.core.device import Device
from bridge_emu.errors import ImageError, NoBootableImage, PowerCut
from bridge_emu.codec.firmware import FirmwareManifest, file_version, manifest_from_image
from bridge_emu.ota import client as ota
from bridge_emu.core.ota_verify import verify_ota_in_flash
from bridge_emu.emulator.profiles import BridgeProfile



@dataclass
class BridgeConfig:
    """Timing of the emulated firmware (assumptions, all configurable)."""
    boot_overhead_s: float = 0.4        # bootloader + firmware start, besides flash work
    rejoin_s: float = 3.0               # to rejoin the HAN and become a router again
    self_test_s: float = 1.0            # a failing self-test resets the bridge after this
    crash_after_s: float = 0.2          # firmware that crashes at boot dies this soon
    watchdog_s: float = 8.0             # a hung or crashed firmware is reset after this
    prove_timeout_s: float = 60.0       # new firmware must reach the hub within this
    off_after_cut_s: float = 2.0        # a power cut keeps the bridge off this long
    query_interval_s: float = 300.0
    utc0: int = 0                       # ZigBee UTC seconds at simulation time 0


class DeviceStore:
    """The OTA client's DownloadStore over the boot core's download slot."""

    def __init__(self, device: Device):
        self.device = device

    def begin(self, size: int, image_offset: int) -> None:
        self.device.begin_download(size, image_offset)

    def write(self, offset: int, data: bytes) -> None:
        self.device.write_download(offset, data)

    def read(self, offset: int, n: int) -> bytes:
        return self.device.read_download(offset, n)

    def held(self) -> tuple[int, int] | None:
        size = self.device.download_size
        return None if size is None else (size, self.device.resume_offset())

    def discard(self) -> None:
        self.device.discard_download()


@dataclass
class UpdateRecord:
    """What one bridge did during a run, for tables and tests."""
    version_before: str = ""
    version_after: str = ""
    download_started: float | None = None
    download_done: float | None = None
    download_bytes: int = 0
    resumed_from: list[int] = field(default_factory=list)
    reboots: list[tuple[float, float | None]] = field(default_factory=list)  # (went down, back on the network)
    alerts: list[str] = field(default_factory=list)
    outcome: str = "no update"
    erases_before: int = 0


class Bridge:
    """An Alt HAN bridge: Machine for the Driver; power_on() starts it."""

    def __init__(self, name: str, profile: BridgeProfile, device: Device, *, supplier_key,
                 hub: int = 0x0000, config: BridgeConfig | None = None, max_payload: int = 82,
                 log_path: pathlib.Path | None = None, seed: int = 0):
        self.name = name
        self.profile = profile
        self.device = device
        self.supplier_key = supplier_key
        self.hub = hub
        self.cfg = config or BridgeConfig()
        self.max_payload = max_payload
        self.log_path = log_path
        self.seed = seed
        self.events: list[dict] = []
        self.record = UpdateRecord(erases_before=device.flash.stats["erases"])
        self.on_network_change = None      # fn(bool): the runner takes the node off the air
        self.on_fast_poll = None           # fn(bool): a sleepy bridge polls fast while replies are due
        self._fast = False
        self.manifest: FirmwareManifest | None = None
        self.client: ota.OtaClient | None = None
        self.phase = "off"                 # off, booting, joining, running, dead
        self.confirmed = False
        self._outgoing: list[tuple[int, int, bytes]] = []
        self._timers: dict[str, float] = {}
        self._pending_alerts: list[gbcs.AlertMessage] = []
        self._held_hash: bytes | None = None
        self._gbcs_seq = 0
        self._boots = 0
        self._future_hash: bytes | None = None
        self._warm = False                 # the next power_on is a reset: the chip kept its power

    # ------------------------------------------------------------ Machine

    def pop_outgoing(self):
        out = self._outgoing
        self._outgoing = []
        if self.client is not None:
            out += self.client.pop_outgoing()
        return out

    def next_deadline(self) -> float | None:
        times = list(self._timers.values())
        if self.client is not None and self.phase == "running":
            d = self.client.next_deadline()
            if d is not None:
                times.append(d)
        return min(times) if times else None

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if self.phase != "running":
            return  # not on the network: frames are lost
        self._guard(now, self._receive, src, cluster, payload, now)

    def timer(self, now: float) -> None:
        self._guard(now, self._timer, now)

    # ------------------------------------------------------------ power

    def power_on(self, now: float) -> None:
        self._guard(now, self._power_on, now)

    def power_off(self, now: float, why: str = "power off") -> None:
        """Power lost between flash operations (a cut inside one comes as PowerCut)."""
        self._down(now, why)

    def cut_power_at_op(self, n: int, tear: str = "none", seed: int = 0) -> None:
        """Arm a cut at the n-th flash operation from now (it surfaces as PowerCut)."""
        self.device.flash.arm_cut(n, tear, seed)

    def _guard(self, now: float, fn, *args) -> None:
        try:
            fn(*args)
            if self.client is not None and self.phase == "running":
                self._client_events(now)
            fast = self.client is not None and self.client.expecting
            if fast != self._fast and self.on_fast_poll is not None:
                self._fast = fast
                self.on_fast_poll(fast)
        except PowerCut:
            self._down(now, "power cut during a flash operation")

    def _down(self, now: float, why: str) -> None:
        self._log(now, "power_lost", reason=why)
        self._warm = False
        self.phase = "off"
        self.client = None
        self._timers = {"power_on": now + self.cfg.off_after_cut_s}
        self._outgoing = []
        self._network(False)
        self.record.reboots.append((now, None))

    def _network(self, up: bool) -> None:
        if self.on_network_change is not None:
            self.on_network_change(up)

    def _power_on(self, now: float) -> None:
        if self._warm:
            self.device.reopen()  # a reset: RAM is gone, the flash chip (and an armed cut) stays
        else:
            self.device.power_cycle()
        self._warm = False
        self._boots += 1
        self.phase = "booting"
        self.confirmed = False
        self._network(False)
        try:
            res = self.device.boot()
        except NoBootableImage as e:
            self.phase = "dead"
            self._log(now, "no_bootable_image", error=str(e))
            self.record.outcome = "bricked"
            return
        self.confirmed = res.confirmed
        image = self.device.running_image()
        before = self.manifest.version if self.manifest else None
        self.manifest = manifest_from_image(image)
        if not self.record.version_before:
            self.record.version_before = str(self.manifest.version)
        self.record.version_after = str(self.manifest.version)
        self._log(now, "boot", version=str(self.manifest.version), confirmed=res.confirmed,
                  actions=list(res.actions), refused=res.refused, flash_busy_ms=res.busy_us / 1000)
        if res.refused:
            self._alert(now, gbcs.Alert.FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON, res.refused.encode())
        if "installed" in res.actions or "reverted" in res.actions or (before and before != self.manifest.version):
            v = file_version(str(self.manifest.version)).to_bytes(4, "little")
            self._alert(now, gbcs.Alert.FIRMWARE_VERSION_CHANGED, v)
            if "reverted" in res.actions:
                self.record.outcome = "rolled back"
        if (res.confirmed and self.record.outcome == "no update"
                and str(self.manifest.version) != self.record.version_before):
            # the new image's confirmation reached the flash, but power went before
            # the firmware saw it (a cut inside confirm): it runs confirmed now
            self._log(now, "confirmed", version=str(self.manifest.version))
            self.record.outcome = "upgraded"
        ready = now + self.cfg.boot_overhead_s + res.busy_us / 1e6
        m = self.manifest
        self._timers = {}
        if m.crashes_at_boot:
            self._timers["crash"] = ready + self.cfg.crash_after_s
        elif m.fails_self_test and not res.confirmed:
            self._timers["self_test_failed"] = ready + self.cfg.self_test_s
        if not m.never_rejoins and not m.crashes_at_boot:
            self._timers["joined"] = ready + self.cfg.rejoin_s
        if not res.confirmed:
            self._timers["prove_timeout"] = now + self.cfg.prove_timeout_s

    def _reset(self, now: float, why: str) -> None:
        """A deliberate or watchdog reset: no flash operation is interrupted."""
        self._log(now, "reset", reason=why)
        self._warm = True
        self.phase = "off"
        self.client = None
        self._network(False)
        self.record.reboots.append((now, None))
        self._timers = {"power_on": now}

    # ------------------------------------------------------------ timers

    def _timer(self, now: float) -> None:
        due = sorted((t, name) for name, t in self._timers.items() if t <= now)
        for _, name in due:
            self._timers.pop(name, None)
            getattr(self, "_t_" + name)(now)
        if self.client is not None and self.phase == "running":
            self.client.timer(now)

    def _t_power_on(self, now: float) -> None:
        self._power_on(now)

    def _t_crash(self, now: float) -> None:
        self._log(now, "firmware_crashed")
        self._timers = {"watchdog": now + self.cfg.watchdog_s}

    def _t_watchdog(self, now: float) -> None:
        self._reset(now, "watchdog")

    def _t_self_test_failed(self, now: float) -> None:
        self._log(now, "self_test_failed")
        self._reset(now, "self-test failed")

    def _t_prove_timeout(self, now: float) -> None:
        if not self.confirmed:
            self._log(now, "prove_timeout")
            self._reset(now, "new firmware did not reach the hub in time (watchdog)")

    def _t_joined(self, now: float) -> None:
        self.phase = "running"
        self._network(True)
        for i, (down, up) in enumerate(self.record.reboots):
            if up is None:
                self.record.reboots[i] = (down, now)
        self._log(now, "joined")
        c = self.cfg
        self.client = ota.OtaClient(ota.ClientConfig(
            manufacturer=self.profile.manufacturer, image_type=self.profile.image_type,
            current_file_version=file_version(str(self.manifest.version)),
            hardware_version=self.profile.hw_version, server=self.hub,
            max_data_size=ota.max_data_size_for(self.max_payload),
            query_interval_s=c.query_interval_s, seed=self.seed * 7919 + self._boots),
            DeviceStore(self.device), now)
        self.client.query_now(now)
        for a in self._pending_alerts:
            self._send_gbcs(a)
        self._pending_alerts = []

    def _t_activate(self, now: float) -> None:
        """A future-dated CS06 comes due."""
        outcome = self._activate(now, self._future_hash, reboot=True)
        self._alert(now, gbcs.Alert.FUTURE_DATED_OUTCOME, bytes([outcome]))

    # ------------------------------------------------------------ frames

    def _receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if cluster == gbcs.GBCS_CLUSTER:
            if src != self.hub:
                return
            try:
                msg = gbcs.decode(payload)
            except gbcs.GbcsError as e:
                self._log(now, "gbcs_malformed", error=str(e))
                return
            if isinstance(msg, gbcs.ActivateFirmware):
                self._cs06(msg, now)
            return
        if self.client is not None:
            self.client.receive(src, cluster, payload, now)

    def _client_events(self, now: float) -> None:
        for ev in self.client.pop_events():
            if isinstance(ev, ota.QueryAnswered):
                if not self.confirmed:
                    self.device.confirm()
                    self.confirmed = True
                    self._timers.pop("prove_timeout", None)
                    self._log(now, "confirmed", version=str(self.manifest.version))
                    if self.record.outcome != "rolled back":
                        self.record.outcome = "upgraded"
            elif isinstance(ev, ota.DownloadStarted):
                if self.record.download_started is None:
                    self.record.download_started = now
                if ev.offset:
                    self.record.resumed_from.append(ev.offset)
                self._log(now, "download_started", version=f"{ev.image.file_version:08x}", size=ev.size,
                          offset=ev.offset)
            elif isinstance(ev, ota.DownloadComplete):
                self.record.download_done = now
                self.record.download_bytes = ev.size
                self._verify(ev, now)
            elif isinstance(ev, ota.DownloadFailed):
                self._log(now, "download_failed", reason=ev.reason)
            elif isinstance(ev, ota.WaitingForActivation):
                self._log(now, "waiting_for_activation")
            elif isinstance(ev, ota.UpgradeScheduled):
                self._log(now, "upgrade_scheduled", at=ev.at)
            elif isinstance(ev, ota.Activate):
                self._activate(now, self._held_hash, reboot=True)

    def _verify(self, ev: ota.DownloadComplete, now: float) -> None:
        """What the bridge checks before it reports Firmware Verification Successful."""
        try:
            addr = self.device.download_addr()
            r = verify_ota_in_flash(self.device.flash, addr, ev.size, manufacturer=self.profile.manufacturer,
                                    image_type=self.profile.image_type, hw_version=self.profile.hw_version,
                                    body="gbcs", supplier_key=self.supplier_key)
        except ImageError as e:
            self._log(now, "verification_failed", error=e.name)
            self._alert(now, gbcs.Alert.FIRMWARE_VERIFICATION_FAILED, e.name.encode())
            self._held_hash = None
            self.client.verified(False, now)
            return
        self._held_hash = r.manufacturer_image_hash
        self._log(now, "verified", hash=r.manufacturer_image_hash.hex())
        self._alert(now, gbcs.Alert.FIRMWARE_VERIFICATION_SUCCESSFUL, r.manufacturer_image_hash)
        self.client.verified(True, now)


    # ------------------------------------------------------------ activation

    def _held_image_hash(self) -> bytes | None:
        """Hash the image the slot holds, now (GBCS: 'hash it, compare')."""
        held = DeviceStore(self.device).held()
        if held is None:
            return None  # (a partial download fails the verification below)
        try:
            r = verify_ota_in_flash(self.device.flash, self.device.download_addr(), held[0],
                                    manufacturer=self.profile.manufacturer, image_type=self.profile.image_type,
                                    hw_version=self.profile.hw_version, body="gbcs",
                                    supplier_key=self.supplier_key)
        except ImageError:
            return None
        return r.manufacturer_image_hash

    def _cs06(self, cmd: gbcs.ActivateFirmware, now: float) -> None:
        utc_now = self.cfg.utc0 + int(now)
        self._log(now, "cs06", hash=cmd.image_hash.hex(), execution_time=cmd.execution_time)
        if cmd.execution_time and cmd.execution_time > utc_now:
            self._future_hash = cmd.image_hash
            self._timers["activate"] = now + (cmd.execution_time - utc_now)
            self._respond(cmd, gbcs.Outcome.ACCEPTED)
            return
        outcome = self._activate(now, cmd.image_hash, reboot=False)
        self._respond(cmd, outcome)
        if outcome == gbcs.Outcome.SUCCESS:
            self._timers["reboot_for_activation"] = now + 0.05  # the response leaves first

    def _t_reboot_for_activation(self, now: float) -> None:
        self._reset(now, "activating new firmware")

    def _activate(self, now: float, image_hash: bytes | None, *, reboot: bool) -> int:
        held = self._held_image_hash()
        if held is None:
            outcome = gbcs.Outcome.NO_IMAGE_HELD
        elif image_hash is not None and image_hash != held:
            outcome = gbcs.Outcome.HASH_MISMATCH
        else:
            try:
                self.device.mark_pending(permanent=False)
                outcome = gbcs.Outcome.SUCCESS
            except ImageError as e:
                self._log(now, "activation_refused", error=e.name)
                if self.client is not None:
                    self.client.abandon(f"activation refused: {e.name}", now)
                outcome = gbcs.Outcome.ACTIVATION_FAILURE
        self._log(now, "activation", outcome=gbcs.Outcome(outcome).name)
        if outcome == gbcs.Outcome.SUCCESS and reboot:
            self._reset(now, "activating new firmware")
        return outcome

    def _respond(self, cmd: gbcs.ActivateFirmware, outcome: int) -> None:
        v = file_version(str(self.manifest.version))
        self._send_gbcs(gbcs.ActivateResponse(cmd.originator_counter, int(outcome), v, cmd.sequence))

    # ------------------------------------------------------------ alerts, log

    def _alert(self, now: float, code: int, data: bytes = b"") -> None:
        self._gbcs_seq = (self._gbcs_seq + 1) & 0xFF
        msg = gbcs.AlertMessage(int(code), self.cfg.utc0 + int(now), data, self._gbcs_seq)
        name = f"0x{int(code):04X}"
        self.record.alerts.append(name)
        self._log(now, "alert", code=name, data=data.hex())
        if self.phase == "running":
            self._send_gbcs(msg)
        else:
            self._pending_alerts.append(msg)  # sent once the bridge is back on the network

    def _send_gbcs(self, msg) -> None:
        self._outgoing.append((self.hub, gbcs.GBCS_CLUSTER, gbcs.encode(msg)))

    def _log(self, now: float, event: str, **fields) -> None:
        entry = {"t": round(now, 6), "bridge": self.name, "event": event, **fields}
        self.events.append(entry)
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")
