"""One emulated Alt HAN bridge: its boot core, its OTA client, the GBCS
firmware flow and the behaviour of the firmware it runs.

A Bridge is a sans-I/O machine (the Machine protocol of bridge_emu.net.transport):
frames and time in, frames and a deadline out, so it runs on the simulated
network or on a real transport alike. Its persistent state is its flash (a
Device); its RAM state is rebuilt at every power-on, as a real bridge's is.

Its phases and every move between them: bridge_states (the table). Its timers
and the records of its event log: bridge_events. What a booted image does
(crash, fail its self test, never rejoin): behaviours. The checks on the
downloaded image: gbcs_flow.

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

import hashlib
import json
import pathlib
import random
from dataclasses import dataclass, field

from bridge_emu.codec import gbcs, zcl
from bridge_emu.codec.firmware import FirmwareManifest, file_version, running_manifest
from bridge_emu.core.device import Device
from bridge_emu.emulator import bridge_events as logged
from bridge_emu.emulator.behaviours import BridgeConfig, firmware_timers
from bridge_emu.emulator.bridge_events import Timer
from bridge_emu.emulator.bridge_states import TRANSITIONS, Phase
from bridge_emu.emulator.gbcs_flow import activation_refusal, held_image_hash, verify_slot
from bridge_emu.emulator.profiles import BridgeProfile
from bridge_emu.emulator.store import DeviceStore
from bridge_emu.errors import ImageError, NoBootableImage, PowerCut, StateError
from bridge_emu.keys import verify_raw
from bridge_emu.ota import client as ota
from bridge_emu.retry import Backoff

__all__ = ["Bridge", "BridgeConfig", "DeviceStore", "Phase", "Timer", "UpdateRecord"]

# For the per-frame checks only: on Python 3.11 reading Phase.RUNNING costs
# ~0.1 us (the enum metaclass), a module global a third of that.
_RUNNING = Phase.RUNNING

class _SlotStore(DeviceStore):
    """DeviceStore, telling the OTA client where in flash the download starts (so its
    buffered writes end on page boundaries)."""

    def download_base(self) -> int:
        return self.device.download_addr()


ACTIVATION_REBOOT_DELAY_S = 0.05   # after a CS06 SUCCESS: the response leaves before the reset


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


@dataclass
class UnackedAlert:
    """An alert the hub has not acknowledged: sent again at `due` (None: once the
    bridge is back on the network), until `give_up_at`."""
    msg: gbcs.AlertMessage
    give_up_at: float
    due: float | None = None
    tries: int = 0


class Bridge:
    """An Alt HAN bridge: Machine for the Driver; power_on() starts it.

    `phase` (a bridge_states.Phase) only changes through TRANSITIONS; the OTA
    client exists exactly while the phase is RUNNING.
    """

    def __init__(self, name: str, profile: BridgeProfile, device: Device, *, supplier_key,
                 hub: int = 0x0000, config: BridgeConfig | None = None, max_payload: int = 82,
                 log_path: pathlib.Path | None = None, seed: int = 0, address: int = 0,
                 authority_key=None):
        """authority_key: the public key that must have signed a CS06 (the
        supplier's by default); address: this bridge's id, which a CS06 signs."""
        self.name = name
        self.profile = profile
        self.device = device
        self.supplier_key = supplier_key
        self.authority_key = authority_key if authority_key is not None else supplier_key
        self.address = address
        self.hub = hub
        self.cfg = config or BridgeConfig()
        self.max_payload = max_payload
        self.log_path = log_path
        self.seed = seed
        self.events: list[dict] = []
        self.record = UpdateRecord(erases_before=device.flash.stats["erases"])
        self.on_network_change = None      # fn(bool): the runner takes the node off the air
        self.on_fast_poll = None           # fn(bool): a sleepy bridge polls fast while replies are due
        self.on_log = None                 # fn(entry): every event-log entry as it is written (scenarios)
        self._fast = False                 # what on_fast_poll was last told
        self._fast_until = 0.0             # ... and until this time after it joins a network (poll_fast_for)
        self._off_s_after_cut: float | None = None   # the off time of an armed cut (cut_power_at_op)
        self.manifest: FirmwareManifest | None = None
        self.client: ota.OtaClient | None = None
        self.phase = Phase.OFF
        self.confirmed = False             # the running image is confirmed (PROVE_TIMEOUT is armed until then)
        self._outgoing: list[tuple[int, int, bytes]] = []
        self._timers: dict[Timer, float] = {}
        self._on_timer = {
            Timer.POWER_ON: self._power_back,
            Timer.RESTART: self._out_of_reset,
            Timer.CRASH: self._firmware_crashed,
            Timer.WATCHDOG: self._watchdog,
            Timer.SELF_TEST_FAILED: self._self_test_failed,
            Timer.PROVE_TIMEOUT: self._prove_timeout,
            Timer.JOINED: self._joined,
            Timer.ACTIVATE: self._future_activation_due,
            Timer.REBOOT_FOR_ACTIVATION: self._reboot_to_activate,
            Timer.ALERT_RETRY: self._alert_retry,
            Timer.FAST_POLL_END: lambda now: None,     # only wakes _guard, which works out the poll rate
        }
        self._on_client_event = {
            ota.QueryAnswered: self._query_answered,
            ota.OfferDeclined: self._offer_declined,
            ota.DownloadStarted: self._download_started,
            ota.DownloadComplete: self._download_complete,
            ota.DownloadFailed: self._download_failed,
            ota.WaitingForActivation: self._waiting_for_activation,
            ota.UpgradeScheduled: self._upgrade_scheduled,
            ota.Activate: self._activate_now,
        }
        self.unacked: list[UnackedAlert] = []    # alerts sent again until the hub acknowledges them
        self._rng = random.Random(seed)
        self._alert_backoff = Backoff(self.cfg.alert_retry_s, self.cfg.alert_retry_cap_s)
        self._running_hash: bytes | None = None  # SHA-256 of the running image (= the manufacturer image's)
        self._cs06_answered: dict[int, int] = {}   # originator counter -> outcome, this boot
        self._gbcs_in = gbcs.Reassembly()          # GBCS frames in (RAM: a reset loses parts)
        self.last_heard: tuple[float, int, bytes] | None = None   # (time, cluster, payload) of the last frame
        self._held_hash: bytes | None = None     # of the verified download, for the self-activating route
        self._future_hash: bytes | None = None   # named by a future-dated CS06
        self._gbcs_seq = 0
        self._boots = 0

    # ------------------------------------------------------------ Machine

    def pop_outgoing(self):
        out = self._outgoing
        client = self.client
        if not out:
            return [] if client is None else client.pop_outgoing()
        self._outgoing = []
        if client is not None:
            out += client.pop_outgoing()
        return out

    def next_deadline(self) -> float | None:
        timers = self._timers
        d = min(timers.values()) if timers else None
        if self.phase is _RUNNING:
            c = self.client.next_deadline()
            if c is not None and (d is None or c < d):
                d = c
        return d

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if self.phase is not _RUNNING:
            return  # not on the network: frames are lost
        self._guard(now, self._receive, src, cluster, payload, now)

    def timer(self, now: float) -> None:
        self._guard(now, self._timer, now)

    # ------------------------------------------------------------ power

    def power_on(self, now: float) -> None:
        self._guard(now, self._power_on, now)

    def power_off(self, now: float, why: str = "power off") -> None:
        """Power lost between flash operations (a cut inside one comes as PowerCut).
        A cut armed and not yet fired dies with the power: it was a fault of this supply."""
        self.device.flash.disarm()
        self._off_s_after_cut = None
        self._down(now, why)

    def poll_fast_for(self, now: float, seconds: float) -> None:
        """A sleepy bridge just let into a network polls fast for a while, as ZigBee end
        devices do, so the coordinator's interview does not wait a slow poll per request."""
        if self.profile.sleepy and self.phase is _RUNNING:
            self._fast_until = max(self._fast_until, now + seconds)
            self._timers[Timer.FAST_POLL_END] = self._fast_until
            self._guard(now, lambda: None)

    def cut_power_at_op(self, n: int, tear: str = "none", seed: int = 0, off_s: float | None = None) -> None:
        """Arm a cut at the n-th flash operation from now (it surfaces as PowerCut).
        off_s: how long the power then stays off (None: the configured off time; a
        brown-out's supply dip is over in milliseconds)."""
        self.device.flash.arm_cut(n, tear, seed)
        self._off_s_after_cut = off_s

    def _move(self, trigger: str) -> None:
        self.phase = TRANSITIONS.go(self.phase, trigger)

    def _guard(self, now: float, fn, *args) -> None:
        """Run one input; a power cut inside any flash operation it makes ends in _down."""
        try:
            fn(*args)
            if self.phase is _RUNNING and self.client._events:
                self._client_events(now)
            if self.on_fast_poll is not None:
                fast = self.client is not None and (self.client.expecting or now < self._fast_until)
                if fast != self._fast:
                    self._fast = fast
                    self.on_fast_poll(fast)
        except PowerCut:
            self._down(now, "power cut during a flash operation")

    def _down(self, now: float, why: str) -> None:
        self._log(now, logged.PowerLost(why))
        self._move("power_lost")
        self.client = None
        off_s, self._off_s_after_cut = self._off_s_after_cut, None   # a brown-out's short dip: this loss only
        self._timers = {Timer.POWER_ON: now + (self.cfg.off_after_cut_s if off_s is None else off_s)}
        self._outgoing = []
        self._alerts_off_network()
        self._network(False)
        self.record.reboots.append((now, None))

    def _network(self, up: bool) -> None:
        if self.on_network_change is not None:
            self.on_network_change(up)

    def _power_on(self, now: float, warm: bool = False) -> None:
        """Boot: cold after power came (back), warm out of a reset."""
        self._move("restart" if warm else "power_on")
        self._timers = {}
        if warm:
            self.device.reopen()  # a reset: RAM is gone, the flash chip (and an armed cut) stays
        else:
            self.device.power_cycle()
        self._boots += 1
        self.confirmed = False
        self._network(False)
        try:
            res = self.device.boot()
        except NoBootableImage as e:
            self._move("no_bootable_image")
            self._log(now, logged.NothingToBoot(str(e)))
            self.record.outcome = "bricked"
            return
        self._move("booted")
        self.confirmed = res.confirmed
        self._cs06_answered = {}
        self._gbcs_in = gbcs.Reassembly()
        self._fast_until = 0.0
        image = self.device.running_image()
        self._running_hash = hashlib.sha256(image).digest()
        before = self.manifest.version if self.manifest else None
        self.manifest = running_manifest(image, self.profile.bridge_type)
        version = str(self.manifest.version)
        if not self.record.version_before:
            self.record.version_before = version
        self.record.version_after = version
        self._log(now, logged.Boot(version, res.confirmed, list(res.actions), res.refused, res.busy_us / 1000))
        if res.refused:
            self._alert(now, gbcs.Alert.FIRMWARE_VERIFICATION_FAILED_AT_POWER_ON, res.refused.encode())
        if "installed" in res.actions or "reverted" in res.actions or (before and before != self.manifest.version):
            self._alert(now, gbcs.Alert.FIRMWARE_VERSION_CHANGED, file_version(version).to_bytes(4, "little"))
            if "reverted" in res.actions:
                self.record.outcome = "rolled back"
        if res.confirmed and self.record.outcome == "no update" and version != self.record.version_before:
            # the new image's confirmation reached the flash, but power went before
            # the firmware saw it (a cut inside confirm): it runs confirmed now
            self._log(now, logged.Confirmed(version))
            self.record.outcome = "upgraded"
        ready = now + self.cfg.boot_overhead_s + res.busy_us / 1e6
        self._timers = firmware_timers(self.manifest, res.confirmed, now, ready, self.cfg)

    def _reset(self, now: float, trigger: str, why: str) -> None:
        """A deliberate or watchdog reset: no flash operation is interrupted, and
        the bridge boots again at once (warm)."""
        self._log(now, logged.Reset(why))
        self._move(trigger)
        self.client = None
        self._network(False)
        self.record.reboots.append((now, None))
        self._timers = {Timer.RESTART: now}
        self._alerts_off_network()

    # ------------------------------------------------------------ timers

    def _timer(self, now: float) -> None:
        due = sorted((at, timer) for timer, at in self._timers.items() if at <= now)
        for at, timer in due:
            if self._timers.get(timer) != at:
                continue  # cleared or re-armed by an earlier timer of this batch (a reset clears all)
            del self._timers[timer]
            self._on_timer[timer](now)
        if self.phase is _RUNNING:
            self.client.timer(now)

    def _power_back(self, now: float) -> None:
        self._power_on(now)

    def _out_of_reset(self, now: float) -> None:
        self._power_on(now, True)   # positional: bench/bench_ota.py wraps _power_on

    def _firmware_crashed(self, now: float) -> None:
        self._log(now, logged.FirmwareCrashed())
        self._move("crash")
        self._timers = {Timer.WATCHDOG: now + self.cfg.watchdog_s}

    def _watchdog(self, now: float) -> None:
        self._reset(now, "watchdog", "watchdog")

    def _self_test_failed(self, now: float) -> None:
        self._log(now, logged.SelfTestFailed())
        self._reset(now, "self_test_failed", "self-test failed")

    def _prove_timeout(self, now: float) -> None:
        # armed only while the image is unconfirmed (the hub's answer disarms it)
        self._log(now, logged.ProveTimeout())
        self._reset(now, "prove_timeout", "new firmware did not reach the hub in time (watchdog)")

    def _joined(self, now: float) -> None:
        self._move("joined")
        self._network(True)
        for i, (down, up) in enumerate(self.record.reboots):
            if up is None:
                self.record.reboots[i] = (down, now)
        self._log(now, logged.Joined())
        c = self.cfg
        self.client = ota.OtaClient(ota.ClientConfig(
            manufacturer=self.profile.manufacturer, image_type=self.profile.image_type,
            current_file_version=file_version(str(self.manifest.version)),
            hardware_version=self.profile.hw_version, server=self.hub,
            max_data_size=ota.max_data_size_for(self.max_payload),
            query_interval_s=c.query_interval_s, seed=self.seed * 7919 + self._boots,
            # a trial image keeps asking until the hub answers (its proof of life)
            query_retry_cap_s=None if self.confirmed else c.trial_query_cap_s,
            # blocks go to the flash a page at a time, as a bridge's RAM buffer would
            write_buffer=self.profile.geometry.page_size),
            _SlotStore(self.device, self.profile.image_offset(0)), now)
        self.client.query_now(now)
        for u in self.unacked:
            if u.due is None:
                self._send_alert(u, now)

    def _future_activation_due(self, now: float) -> None:
        """A future-dated CS06 comes due: activate, and tell the hub how it went."""
        outcome = self._activate(now, self._future_hash, reboot=True)
        self._alert(now, gbcs.Alert.FUTURE_DATED_OUTCOME, bytes([outcome]))

    def _reboot_to_activate(self, now: float) -> None:
        self._reset(now, "activation_reboot", "activating new firmware")

    # ------------------------------------------------------------ frames

    def _receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        self.last_heard = (now, cluster, payload)
        if cluster == gbcs.GBCS_CLUSTER:
            if src != self.hub:
                return
            try:
                msg = self._gbcs_in.receive(payload)
            except gbcs.GbcsError as e:
                self._log(now, logged.GbcsMalformed(str(e)))
                return
            if isinstance(msg, gbcs.ActivateFirmware):
                self._cs06(msg, now)
            elif isinstance(msg, gbcs.AlertAck):
                self._acknowledged(lambda a: msg.acknowledges(a))
            return
        self.client.receive(src, cluster, payload, now)

    # ------------------------------------------------------------ OTA client events

    def _client_events(self, now: float) -> None:
        for ev in self.client.pop_events():
            if self.phase is not _RUNNING:
                break  # a handler reset the bridge: the client whose events these were is gone
            handler = self._on_client_event.get(type(ev))
            if handler is not None:
                handler(ev, now)

    def _query_answered(self, ev: ota.QueryAnswered, now: float) -> None:
        """The hub answered: a new image has proved itself and confirms."""
        if self.confirmed:
            return
        self.device.confirm()
        self.confirmed = True
        self._timers.pop(Timer.PROVE_TIMEOUT, None)
        self._log(now, logged.Confirmed(str(self.manifest.version)))
        if self.record.outcome != "rolled back":
            self.record.outcome = "upgraded"

    def _offer_declined(self, ev: ota.OfferDeclined, now: float) -> None:
        """The hub offers an image that is not this bridge's to take (a user's file for
        another device, or the version it runs): its update ends there."""
        if self.record.outcome == "no update" and self.confirmed:
            self.record.outcome = "declined"
            self._log(now, logged.OfferDeclined(f"{ev.image.file_version:08x}", ev.reason))

    def _download_started(self, ev: ota.DownloadStarted, now: float) -> None:
        if self.record.download_started is None:
            self.record.download_started = now
        if ev.offset:
            self.record.resumed_from.append(ev.offset)
        self._log(now, logged.DownloadStarted(f"{ev.image.file_version:08x}", ev.size, ev.offset))

    def _download_complete(self, ev: ota.DownloadComplete, now: float) -> None:
        self.record.download_done = now
        self.record.download_bytes = ev.size
        self._verify(ev, now)

    def _download_failed(self, ev: ota.DownloadFailed, now: float) -> None:
        self._log(now, logged.DownloadFailed(ev.reason))

    def _waiting_for_activation(self, ev: ota.WaitingForActivation, now: float) -> None:
        self._log(now, logged.WaitingForActivation())

    def _upgrade_scheduled(self, ev: ota.UpgradeScheduled, now: float) -> None:
        self._log(now, logged.UpgradeScheduled(ev.at))

    def _activate_now(self, ev: ota.Activate, now: float) -> None:
        """The self-activating route: the Upgrade End Response's upgrade time came."""
        self._activate(now, self._held_hash, reboot=True)

    def _verify(self, ev: ota.DownloadComplete, now: float) -> None:
        """What the bridge checks before it reports Firmware Verification Successful."""
        try:
            image_hash = verify_slot(self.device, self.profile, self.supplier_key, ev.size)
        except ImageError as e:
            self._log(now, logged.VerificationFailed(e.name))
            if self.record.outcome == "no update":
                self.record.outcome = "refused"      # until a later download verifies
            self._alert(now, gbcs.Alert.FIRMWARE_VERIFICATION_FAILED, e.name.encode())
            self._held_hash = None
            self.client.verified(False, now)
            return
        self._held_hash = image_hash
        self._log(now, logged.Verified(image_hash.hex()))
        self._alert(now, gbcs.Alert.FIRMWARE_VERIFICATION_SUCCESSFUL, image_hash)
        self.client.verified(True, now)

    # ------------------------------------------------------------ activation

    def _cs06(self, cmd: gbcs.ActivateFirmware, now: float) -> None:
        utc_now = self.cfg.utc0 + int(now)
        self._log(now, logged.Cs06Received(cmd.image_hash.hex(), cmd.execution_time))
        if not cmd.signature:
            self._refuse(cmd, gbcs.Refusal.UNSIGNED, now)
            return
        if not verify_raw(self.authority_key, cmd.signed_bytes(self.address), cmd.signature):
            self._refuse(cmd, gbcs.Refusal.BAD_SIGNATURE, now)
            return
        repeat = self._cs06_answered.get(cmd.originator_counter)
        if (repeat is None and cmd.originator_counter == self.device.origin_counter
                and cmd.image_hash == self._running_hash and not cmd.execution_time):
            # the last command accepted, and the image it names runs already: it was
            # acted on and its response lost before the reboot
            repeat = gbcs.Outcome.SUCCESS
        if repeat is not None:
            self._verification_heard()
            self._log(now, logged.Cs06Repeated(gbcs.Outcome(repeat).name))
            self._respond(cmd, repeat)
            return
        try:
            # committed to flash before anything is acted on: a cut after it loses
            # the action, never the protection (the hub asks again with a new counter)
            self.device.accept_origin(cmd.originator_counter)
        except StateError as e:
            if e.name != "BE_ERR_STALE":
                raise
            self._refuse(cmd, gbcs.Refusal.STALE_COUNTER, now)
            return
        self._verification_heard()
        if cmd.execution_time and cmd.execution_time > utc_now:
            self._future_hash = cmd.image_hash
            self._timers[Timer.ACTIVATE] = now + (cmd.execution_time - utc_now)
            self._cs06_answered[cmd.originator_counter] = gbcs.Outcome.ACCEPTED
            self._respond(cmd, gbcs.Outcome.ACCEPTED)
            return
        outcome = self._activate(now, cmd.image_hash, reboot=False)
        self._cs06_answered[cmd.originator_counter] = outcome
        self._respond(cmd, outcome)
        if outcome == gbcs.Outcome.SUCCESS:
            self._timers[Timer.REBOOT_FOR_ACTIVATION] = now + ACTIVATION_REBOOT_DELAY_S

    def _verification_heard(self) -> None:
        """An authentic CS06 means the hub heard 0x8F72: no need to tell it again."""
        self._acknowledged(lambda a: a.code == gbcs.Alert.FIRMWARE_VERIFICATION_SUCCESSFUL)

    def _refuse(self, cmd: gbcs.ActivateFirmware, why: gbcs.Refusal, now: float) -> None:
        """GBCS discards a command that fails its checks and raises an alert."""
        self._log(now, logged.Cs06Refused(why.name.lower(), cmd.originator_counter, self.device.origin_counter))
        self._alert(now, gbcs.Alert.AUTHENTICATION_FAILED,
                    cmd.originator_counter.to_bytes(8, "little") + bytes([why]))

    def _activate(self, now: float, image_hash: bytes | None, *, reboot: bool) -> int:
        """Mark the held image pending if it is the one asked for; reboot into it
        now, or leave that to the caller (a CS06 response must leave first)."""
        held = held_image_hash(self.device, self.profile, self.supplier_key)
        outcome = activation_refusal(held, image_hash)
        if outcome is None:
            try:
                self.device.mark_pending(permanent=False)
                outcome = gbcs.Outcome.SUCCESS
            except ImageError as e:
                self._log(now, logged.ActivationRefused(e.name))
                if self.record.outcome == "no update":
                    self.record.outcome = "refused"      # the image cannot boot here: until another one can
                if self.client is not None:
                    self.client.abandon(f"activation refused: {e.name}", now)
                outcome = gbcs.Outcome.ACTIVATION_FAILURE
        self._log(now, logged.Activation(gbcs.Outcome(outcome).name))
        if outcome == gbcs.Outcome.SUCCESS and reboot:
            self._reset(now, "activation_reboot", "activating new firmware")
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
        self._log(now, logged.AlertRaised(name, data.hex()))
        u = UnackedAlert(msg, now + self.cfg.alert_give_up_s)
        self.unacked.append(u)
        if self.phase is Phase.RUNNING:
            self._send_alert(u, now)
        # else: sent once the bridge is back on the network

    def stalled_at(self) -> str:
        """The step this bridge waits on, in words: why a run that ends here has not settled."""
        if self.phase is Phase.DEAD:
            return "nothing to boot"
        if self.phase is not _RUNNING:
            return f"off the network ({self.phase.value})"
        if not self.confirmed:
            return f"trial firmware {self.manifest.version} has not heard the hub yet"
        for u in self.unacked:
            return f"alert 0x{u.msg.code:04X} sent {u.tries} times, never acknowledged"
        c = self.client
        st = c.state
        if st in (ota.ClientState.DOWNLOADING, ota.ClientState.PAUSED):
            return f"download {st.name.lower()} at byte {c.offset} of {c.size}"
        if st is ota.ClientState.ENDING:
            return f"Upgrade End Request sent {c.end_tries} times, unanswered"
        if st in (ota.ClientState.WAITING_FOR_SERVER, ota.ClientState.WAITING_FOR_COMMAND):
            return f"holds verified {c.image.file_version:08x}, waiting for the hub to activate it"
        if st is not ota.ClientState.IDLE:
            return f"OTA client {st.name.lower().replace('_', ' ')}"
        return "no image taken (the hub offers none, or no query was answered)"

    def heard(self) -> str:
        """What the bridge last heard, in words."""
        if self.last_heard is None:
            return "nothing heard"
        t, cluster, payload = self.last_heard
        if cluster == gbcs.GBCS_CLUSTER:
            try:
                what = type(gbcs.decode(payload)).__name__
            except gbcs.GbcsError:
                what = "a malformed GBCS message"
        else:
            try:
                what = type(zcl.decode(payload, zcl.Direction.SERVER_TO_CLIENT).command).__name__
            except zcl.ZclError:
                what = f"a malformed frame on cluster 0x{cluster:04X}"
        return f"last heard {what} at t={t:.1f} s"

    def _send_alert(self, u: UnackedAlert, now: float) -> None:
        self._send_gbcs(u.msg)
        u.due = now + self._alert_backoff.delay(u.tries, self._rng)
        u.tries += 1
        self._arm_alert_retry()

    def _arm_alert_retry(self) -> None:
        dues = [u.due for u in self.unacked if u.due is not None]
        if dues:
            self._timers[Timer.ALERT_RETRY] = min(dues)
        else:
            self._timers.pop(Timer.ALERT_RETRY, None)

    def _alert_retry(self, now: float) -> None:
        for u in list(self.unacked):
            if u.due is None or u.due > now:
                continue
            if now >= u.give_up_at:
                self.unacked.remove(u)
                self._log(now, logged.AlertGivenUp(f"0x{u.msg.code:04X}", u.tries))
            else:
                self._send_alert(u, now)
        self._arm_alert_retry()

    def _acknowledged(self, which) -> None:
        self.unacked = [u for u in self.unacked if not which(u.msg)]
        self._arm_alert_retry()

    def _alerts_off_network(self) -> None:
        for u in self.unacked:
            u.due = None

    def _send_gbcs(self, msg) -> None:
        self._outgoing.append((self.hub, gbcs.GBCS_CLUSTER, gbcs.encode(msg)))

    def _log(self, now: float, record: logged.Record) -> None:
        entry = {"t": round(now, 6), "bridge": self.name, "event": record.kind, **vars(record)}
        self.events.append(entry)
        if self.on_log is not None:
            self.on_log(entry)
        if self.log_path is not None:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(entry, sort_keys=True) + "\n")
