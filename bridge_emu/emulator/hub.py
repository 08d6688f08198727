"""The Communications Hub of a premises: the OTA server plus the GBCS side
(verification alerts answered with CS06 Activate Firmware, running-version
alerts, no second push of an image once activated or rolled back)."""
from __future__ import annotations

from bridge_emu.codec import gbcs, zcl

HUB = 0x0000    # the hub's network address


class Hub:
    """The Communications Hub: the OTA server, plus the GBCS side. It answers a
    Firmware Verification Successful alert with a CS06 Activate Firmware for the
    reported hash (now, or future-dated). An image, once activated on a bridge,
    is not offered to it again (nor after a rollback on the self-activating
    route: alert 0x8F43 with another version, or a Query Next Image Request from
    another version after its Upgrade End, whichever arrives first)."""

    def __init__(self, server, *, activation: str = "immediate", log: list | None = None):
        self.server = server
        self.activation = activation
        self.log = log if log is not None else []
        self.outcomes: dict[int, int] = {}     # bridge -> CS06 outcome
        self.running: dict[int, int] = {}      # bridge -> file version from its last 0x8F43
        self._out: list[tuple[int, int, bytes]] = []
        self._counter = 0x1000

    def pop_outgoing(self):
        # a new list: the server's may be its own (empty) queue, not ours to extend
        out = self.server.pop_outgoing() + self._out
        self._out = []
        return out

    def next_deadline(self):
        return self.server.next_deadline()

    def timer(self, now: float) -> None:
        self.server.timer(now)

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if cluster != gbcs.GBCS_CLUSTER:
            if cluster == zcl.OTA_CLUSTER_ID:
                self._went_back_before_alert(src, payload)
            self.server.receive(src, cluster, payload, now)
            return
        try:
            msg = gbcs.decode(payload)
        except gbcs.GbcsError as e:
            self.log.append({"t": now, "from": src, "event": "malformed", "error": str(e)})
            return
        if isinstance(msg, gbcs.ActivateResponse):
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
        self.log.append({"t": now, "from": src, "event": "alert", "code": f"0x{msg.code:04X}"})
        if msg.code == gbcs.Alert.FIRMWARE_VERIFICATION_SUCCESSFUL and self.activation != "none":
            utc = self.server.policy.utc(now)
            when = 0
            if self.activation.startswith("future:"):
                when = utc + int(self.activation.split(":", 1)[1])
            self._counter += 1
            self._out.append((src, gbcs.GBCS_CLUSTER, gbcs.encode(
                gbcs.ActivateFirmware(self._counter, msg.data, when, msg.sequence))))
        elif msg.code == gbcs.Alert.FIRMWARE_VERSION_CHANGED and len(msg.data) == 4:
            version = int.from_bytes(msg.data, "little")
            self.running[src] = version
            offered = self.server.overrides.get(src)
            if offered is not None and version != offered.file_version:
                self.server.offer(src, None)  # it went back: do not push that image again

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
