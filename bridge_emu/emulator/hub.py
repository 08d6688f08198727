"""The Communications Hub of a premises: the OTA server plus the GBCS side
(verification alerts answered with CS06 Activate Firmware, running-version
alerts, no second push of an image once activated or rolled back).

Over a lossy link every exchange is repeated until it is known to have got
through: the hub acknowledges every alert (the bridge sends it again until
then) and sends a CS06 again until the bridge answers it, or says in an alert
0x8F43 that it runs other firmware now. Repeats are harmless: an alert heard
twice is acknowledged twice and acted on once, a CS06 keeps its originator
counter, and the bridge answers a CS06 it has acted on without acting again.
"""
from __future__ import annotations

import collections
import dataclasses
import random
from dataclasses import dataclass

from bridge_emu.codec import gbcs, zcl
from bridge_emu.keys import sign_raw
from bridge_emu.retry import Backoff

HUB = 0x0000    # the hub's network address
_QUERY = int(zcl.OtaCommand.QUERY_NEXT_IMAGE_REQUEST)


CS06_RETRY = Backoff(5.0, 120.0)   # a CS06 unanswered is sent again after this, doubling
CS06_GIVE_UP_S = 3600.0
SEEN_ALERTS = 32                   # per bridge: an alert heard again within these is a repeat


@dataclass
class PendingCommand:
    """A CS06 sent and not yet answered."""
    cmd: gbcs.ActivateFirmware
    give_up_at: float
    due: float
    tries: int = 1


def signed(cmd: gbcs.ActivateFirmware, key, target: int) -> gbcs.ActivateFirmware:
    """cmd signed by the authorising party's private key for the bridge at target."""
    return dataclasses.replace(cmd, signature=sign_raw(key, cmd.signed_bytes(target)))


class Hub:
    """The Communications Hub: the OTA server, plus the GBCS side. It answers a
    Firmware Verification Successful alert with a CS06 Activate Firmware for the
    reported hash (now, or future-dated). An image, once activated on a bridge,
    is not offered to it again (nor after a rollback on the self-activating
    route: alert 0x8F43 with another version, or a Query Next Image Request from
    another version after its Upgrade End, whichever arrives first)."""

    def __init__(self, server, *, activation: str = "immediate", log: list | None = None, seed: int = 0,
                 signer=None, counter: int = 0x1000):
        """signer: the authorising party's private key, which signs every CS06
        (None: sent unsigned, and bridges refuse them); counter: the originator
        counter last used (each CS06 takes the next)."""
        self.server = server
        self.activation = activation
        self.log = log if log is not None else []
        self.outcomes: dict[int, int] = {}     # bridge -> CS06 outcome
        self.running: dict[int, int] = {}      # bridge -> file version from its last 0x8F43
        self.pending: dict[int, PendingCommand] = {}   # bridge -> its CS06 not yet answered
        self._seen: dict[int, collections.deque] = {}  # bridge -> the alerts last heard from it
        self._answered: set[tuple[int, int]] = set()   # (bridge, originator counter) answered
        self._rng = random.Random(seed)
        self._out: list[tuple[int, int, bytes]] = []
        self.signer = signer
        self.counter = counter

    def restart(self) -> None:
        """The hub restarts and forgets what was in its memory: its OTA sessions, CS06
        commands awaiting an answer, what it heard from each bridge. Its originator
        counter is persistent (a GBCS party's counter outlives its restarts)."""
        self.server.restart()
        self.outcomes.clear()
        self.running.clear()
        self.pending.clear()
        self._seen.clear()
        self._answered.clear()
        self._out.clear()

    def pop_outgoing(self):
        out = self.server.pop_outgoing()
        if self._out:
            # a new list: the server's may be its own (empty) queue, not ours to extend
            out = out + self._out
            self._out = []
        elif not out:
            return []       # not the server's own (empty) queue
        return out

    def next_deadline(self):
        d = self.server.next_deadline()
        if self.pending:
            due = min(p.due for p in self.pending.values())
            if d is None or due < d:
                d = due
        return d

    def timer(self, now: float) -> None:
        self.server.timer(now)
        for src, p in list(self.pending.items()):
            if p.due > now:
                continue
            if now >= p.give_up_at:
                del self.pending[src]
                self.log.append({"t": now, "from": src, "event": "cs06_given_up", "tries": p.tries})
                continue
            p.due = now + CS06_RETRY.delay(p.tries - 1, self._rng)
            p.tries += 1
            self._send_cs06(src, p, now)

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if cluster != gbcs.GBCS_CLUSTER:
            # cluster-specific, not manufacturer-specific: byte 2 is the command id
            if (cluster == zcl.OTA_CLUSTER_ID and len(payload) >= 3 and payload[2] == _QUERY
                    and payload[0] & 0x07 == 0x01):
                self._went_back_before_alert(src, payload)
            self.server.receive(src, cluster, payload, now)
            return
        try:
            msg = gbcs.decode(payload)
        except gbcs.GbcsError as e:
            self.log.append({"t": now, "from": src, "event": "malformed", "error": str(e)})
            return
        if isinstance(msg, gbcs.ActivateResponse):
            if (src, msg.originator_counter) in self._answered:
                # the answer to a repeat of a command already answered: nothing new
                self.log.append({"t": now, "from": src, "event": "cs06_response_repeated",
                                 "outcome": msg.outcome})
                return
            self._answered.add((src, msg.originator_counter))
            p = self.pending.get(src)
            if p is not None and p.cmd.originator_counter == msg.originator_counter:
                del self.pending[src]
            self.outcomes[src] = msg.outcome
            self.log.append({"t": now, "from": src, "event": "cs06_response", "outcome": msg.outcome})
            if msg.outcome in (gbcs.Outcome.SUCCESS, gbcs.Outcome.ACCEPTED):
                # activated (or, future-dated, held for activation): the image was delivered
                # once, as the DCC distributes it; if the bridge rolls it back, it is not pushed
                # again (its 0x8F43 may reach the hub after its next query)
                self.server.offer(src, None)
            return
        if not isinstance(msg, gbcs.AlertMessage):
            return
        self._send(src, gbcs.AlertAck.of(msg))
        seen = self._seen.setdefault(src, collections.deque(maxlen=SEEN_ALERTS))
        if msg in seen:
            return  # a repeat (our acknowledgement was lost): acknowledged again, acted on once
        seen.append(msg)
        self.log.append({"t": now, "from": src, "event": "alert", "code": f"0x{msg.code:04X}"})
        if msg.code == gbcs.Alert.FIRMWARE_VERIFICATION_SUCCESSFUL and self.activation != "none":
            p = self.pending.get(src)
            if p is not None and p.cmd.image_hash == msg.data:
                return  # the command for this image is on its way (and repeated until answered)
            utc = self.server.policy.utc(now)
            when = 0
            if self.activation.startswith("future:"):
                when = utc + int(self.activation.split(":", 1)[1])
            self.counter += 1
            cmd = gbcs.ActivateFirmware(self.counter, msg.data, when, msg.sequence)
            if self.signer is not None:
                cmd = signed(cmd, self.signer, src)
            p = self.pending[src] = PendingCommand(cmd, now + CS06_GIVE_UP_S, now + CS06_RETRY.delay(0, self._rng))
            self._send_cs06(src, p, now)
        elif msg.code == gbcs.Alert.AUTHENTICATION_FAILED and len(msg.data) == 9:
            counter = int.from_bytes(msg.data[:8], "little")
            p = self.pending.get(src)
            if p is not None and p.cmd.originator_counter == counter:
                del self.pending[src]   # sending it again would be refused again
            try:
                reason = gbcs.Refusal(msg.data[8]).name.lower()
            except ValueError:
                reason = f"code {msg.data[8]}"   # a refusal this hub does not know
            self.log.append({"t": now, "from": src, "event": "cs06_refused", "counter": counter, "reason": reason})
        elif msg.code == gbcs.Alert.FIRMWARE_VERSION_CHANGED and len(msg.data) == 4:
            version = int.from_bytes(msg.data, "little")
            self.running[src] = version
            p = self.pending.pop(src, None)
            if p is not None and not p.cmd.execution_time:
                # it rebooted into other firmware: the command was acted on, its answer lost
                self.outcomes[src] = gbcs.Outcome.SUCCESS
                self._answered.add((src, p.cmd.originator_counter))
                self.log.append({"t": now, "from": src, "event": "cs06_answered_by_reboot"})
            offered = self.server.overrides.get(src)
            if offered is not None and version != offered.file_version:
                self.server.offer(src, None)  # it went back: do not push that image again
            elif offered is not None and p is not None:
                self.server.offer(src, None)  # it runs the image: delivered once, as on SUCCESS

    def _send_cs06(self, dst: int, p: PendingCommand, now: float) -> None:
        self.log.append({"t": now, "from": dst, "event": "cs06_sent", "counter": p.cmd.originator_counter,
                         "try": p.tries})
        self._send(dst, p.cmd)

    def _send(self, dst: int, msg) -> None:
        for frame in gbcs.frames(msg):
            self._out.append((dst, gbcs.GBCS_CLUSTER, frame))

    def _went_back_before_alert(self, src: int, payload: bytes) -> None:
        """On the self-activating route a bridge activates once its Upgrade End
        SUCCESS is answered with a time. A Query Next Image Request from another
        version after that means it went back, even if its 0x8F43 alert has not
        arrived (frames on a link can overtake each other, or be lost): stop
        offering before the server answers the query."""
        offered = self.server.overrides.get(src)
        st = self.server.clients.get(src)
        if (offered is None or st is None or self.server.policy.upgrade_time == "wait"
                or st.upgrade_end_status != zcl.Status.SUCCESS or st.upgrade_end_version != offered.file_version):
            return
        # cluster-specific, not manufacturer-specific: byte 2 is the command id
        if len(payload) < 3 or payload[0] & 0x07 != 0x01 or payload[2] != zcl.OtaCommand.QUERY_NEXT_IMAGE_REQUEST:
            return
        try:
            cmd = zcl.decode(payload, zcl.Direction.CLIENT_TO_SERVER).command
        except zcl.ZclError:
            return  # the server answers what is malformed
        if cmd.current_file_version != offered.file_version:
            self.server.offer(src, None)
