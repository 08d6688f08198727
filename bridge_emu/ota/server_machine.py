"""The OTA Upgrade server machine: `OtaServer` and what it keeps per client
(`ClientState`). Sans-I/O: frames and the time in, frames and the next
deadline out; it reads no files (an ImageStore, from image_store, is handed
in) and imports no transport. Behaviour: bridge_emu.ota.server's docstring;
the per-client phases and their table: server_states.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from itertools import count
from typing import TYPE_CHECKING

from bridge_emu.codec.zcl import (
    OTA_CLUSTER_ID,
    AttributeId,
    DefaultResponse,
    Direction,
    Frame,
    ImageBlockAbort,
    ImageBlockRequest,
    ImageBlockWait,
    ImageNotify,
    ImagePageRequest,
    QueryDeviceSpecificFileRequest,
    QueryDeviceSpecificFileResponse,
    QueryNextImageRequest,
    QueryNextImageResponse,
    ReadAttributeRecord,
    ReadAttributes,
    ReadAttributesResponse,
    Status,
    UpgradeEndRequest,
    UpgradeEndResponse,
    ZclError,
    ZclHeader,
    decode,
    default_response_to,
    encode,
    encode_image_block_response,
    read_image_block_request,
)
from bridge_emu.fsm import Transitions
from bridge_emu.ota.policy import BlockErrorForm, DelayMode, EndFailure, PageRefusal, Policy
from bridge_emu.ota.server_events import Due, EventKind, Outgoing, ServerEvent, Timer
from bridge_emu.ota.server_states import (
    ABORT_REQUESTED,
    ABORT_SENT,
    ABORTING,
    BLOCK_REFUSED,
    BLOCK_SENT,
    BURST_DONE,
    CLIENT_TRANSITIONS,
    DOWNLOADING,
    END_FAILURE,
    END_SUCCESS,
    IDLE,
    PAGE_REFUSED,
    PAGE_SENT,
    PAGE_STARTED,
    PAGE_UNSUPPORTED,
    PAGING,
    QUERY_NO_IMAGE,
    QUERY_OFFERED,
    WAIT_SENT,
    ClientPhase,
    Trigger,
)

if TYPE_CHECKING:
    from bridge_emu.ota.image_store import ImageKey, ImageStore, OtaImage

log = logging.getLogger("bridge_emu.ota.server")

BROADCAST_ALL = 0xFFFF          # every device, sleepy ones included
BROADCAST_RX_ON = 0xFFFD        # devices with the receiver on when idle
BROADCAST_ROUTERS = 0xFFFC      # routers and the coordinator
CLUSTER_REVISION = 3

_C2S = Direction.CLIENT_TO_SERVER
_S2C = Direction.SERVER_TO_CLIENT

# Every Image Block Response the server sends has the same header but for its
# tsn (the request's): the codec builds the 256 of them once, so the block path
# makes only the command and the Frame.
def _block_response(tsn: int, image: OtaImage, offset: int, chunk: bytes) -> bytes:
    """The Image Block Response (SUCCESS) carrying chunk, answering request tsn:
    the one place the server encodes a block, through the codec's block encoder."""
    return encode_image_block_response(tsn, image.manufacturer, image.image_type, image.file_version, offset, chunk)


class Burst:
    """A page burst under way: the PAGING phase's data. Its blocks on the
    deadline heap carry it; they go out only while it is their client's
    current burst (a new page request or abort() replaces or drops it)."""
    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = 0               # its blocks still on the heap


class ClientState:
    """What the server knows of one client (node address), for progress bars and tables.

    phase: where it stands (ClientPhase; moves in server_states' table);
    offered: the image last offered in a Query Next Image Response (None: none);
    serving: the image of the last block served; bytes_served / blocks_served
    count SUCCESS blocks sent (page bursts included; a delayed block response,
    which nothing cancels, counts when scheduled); last_offset and last_length
    are the last block's; waits counts WAIT_FOR_DATA answers, block_errors the
    status-only answers; upgrade_end_status is the status of the last Upgrade
    End Request (None: none yet) and upgrade_end_at its time; current_version /
    hardware_version as the last query said; minimum_block_period the last one
    a block request carried; attributes the last Read Attributes Response values
    (attribute id -> value).
    """
    __slots__ = ("address", "phase", "burst", "offered", "serving", "bytes_served",
                 "blocks_served", "last_offset", "last_length", "first_block_at",
                 "last_block_at", "waits", "block_requests", "block_errors", "queries", "pages",
                 "upgrade_end_status", "upgrade_end_at", "upgrade_end_version", "current_version",
                 "hardware_version", "minimum_block_period", "attributes", "next_send_at")

    def __init__(self, address: int):
        self.address = address
        self.phase = IDLE
        self.burst: Burst | None = None         # PAGING only: the burst under way
        self.offered: OtaImage | None = None
        self.serving: OtaImage | None = None
        self.bytes_served = 0
        self.blocks_served = 0
        self.last_offset: int | None = None
        self.last_length = 0
        self.first_block_at: float | None = None
        self.last_block_at: float | None = None   # time the last block was (to be) sent
        self.waits = 0
        self.block_requests = 0
        self.block_errors = 0
        self.queries = 0
        self.pages = 0
        self.upgrade_end_status: int | None = None
        self.upgrade_end_at: float | None = None
        self.upgrade_end_version: int | None = None
        self.current_version: int | None = None
        self.hardware_version: int | None = None
        self.minimum_block_period: int | None = None
        self.attributes: dict[int, int] = {}
        self.next_send_at = -math.inf     # herdsman pacing: no block response before this

    @property
    def abort_pending(self) -> bool:
        """The next block or page request from this client is answered ABORT."""
        return self.phase is ABORTING

    @property
    def progress(self) -> float:
        """Fraction of the offered (else the served) image reached by the last block."""
        image = self.offered or self.serving
        if image is None or self.last_offset is None or not image.size:
            return 0.0
        return min(1.0, (self.last_offset + self.last_length) / image.size)

    def __repr__(self) -> str:
        offered = "none" if self.offered is None else f"{self.offered.file_version:08X}"
        return (f"<ClientState 0x{self.address:04x} {self.phase.name} offered {offered} "
                f"{self.blocks_served} blocks {self.bytes_served} bytes "
                f"end {self.upgrade_end_status!r}>")


class OtaServer:
    """The OTA Upgrade server as a Machine (see bridge_emu.ota.server's docstring).

    transitions: this server's copy of the per-client table; its `taken`
    tally counts the moves its clients made (but the block path's stay in
    DOWNLOADING, which skips the lookup: see server_states).
    """

    def __init__(self, store: ImageStore, policy: Policy | str = "zigpy", address: int = 0x0000,
                 on_event: Callable[[ServerEvent], None] | None = None):
        self.store = store
        self._policy = Policy.preset(policy) if isinstance(policy, str) else policy
        self.address = address
        self.on_event = on_event
        self.clients: dict[int, ClientState] = {}
        self.events: list[ServerEvent] = []
        self.overrides: dict[int, OtaImage | None] = {}   # None: offer this node nothing
        self.frames_in = 0
        self.ignored = 0            # frames for other clusters, or that need no answer
        self.malformed = 0          # frames the codec refused
        self.errors = 0             # internal errors caught in receive()/timer()
        self.transitions = Transitions(CLIENT_TRANSITIONS, name=CLIENT_TRANSITIONS.name)
        self._go = self.transitions.go
        self._out: list[Outgoing] = []
        self._later: list[Due] = []       # heap, earliest first
        self._seq = count()
        self._tsn = 0
        self._images_by_id = store.by_id
        self._handlers = {
            ImageBlockRequest: self._on_block,
            QueryNextImageRequest: self._on_query,
            ImagePageRequest: self._on_page,
            UpgradeEndRequest: self._on_upgrade_end,
            QueryDeviceSpecificFileRequest: self._on_device_specific,
            ReadAttributes: self._on_read_attributes,
            ReadAttributesResponse: self._on_read_attributes_response,
            DefaultResponse: self._on_default_response,
        }

    @property
    def policy(self) -> Policy:
        """Fixed for the server's life: the phase table relies on it (a server
        that refuses pages never has a client PAGING)."""
        return self._policy

    def jump_clock(self, seconds: int) -> None:
        """The server's real-time clock jumps (an NTP step, a battery-backed RTC
        reset): the ZigBee UTC it sends from now on moves by `seconds`. Nothing
        else of the policy changes."""
        self._policy = dataclasses.replace(self._policy, utc_at_zero=self._policy.utc_at_zero + int(seconds))

    def restart(self) -> None:
        """A restart of the server (power lost, process restarted): every session,
        queued frame and timer is forgotten; its images and offers (configuration) stay."""
        self.clients.clear()
        self._out.clear()
        self._later.clear()

    # -- Machine

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        """A frame from node src arrived. Never raises."""
        self.frames_in += 1
        if cluster != OTA_CLUSTER_ID:
            self.ignored += 1
            return
        req = read_image_block_request(payload)
        if req is not None:
            try:
                if self._serve_block(src, req, now):
                    return
            except Exception as e:  # noqa: BLE001
                self._internal_error(src, e, now)
                return
        try:
            frame = decode(payload, _C2S)
        except ZclError as e:
            self._refuse(src, e, now)
            return
        except Exception as e:  # noqa: BLE001 - a codec bug must not escape either
            self._internal_error(src, e, now)
            return
        try:
            self._handlers[frame.command.__class__](src, frame.header, frame.command, now)
        except Exception as e:  # noqa: BLE001
            self._internal_error(src, e, now)

    def timer(self, now: float) -> None:
        """Send every delayed answer due by now (page bursts, response delays)."""
        later = self._later
        clients = self.clients
        out = self._out
        try:
            while later and later[0].at <= now:
                due = heappop(later)
                if due.timer is Timer.PAGE_BLOCK:
                    st = clients[due.dst]
                    burst = due.burst
                    if burst is not st.burst:
                        continue            # a newer page request replaced it, or abort() ended it
                    self._count_block(st, due.offset, due.length, now)
                    burst.left -= 1
                    if not burst.left:
                        self._move(st, BURST_DONE)
                out.append((due.dst, OTA_CLUSTER_ID, due.payload))
        except Exception as e:  # noqa: BLE001
            self._internal_error(None, e, now)

    def pop_outgoing(self) -> list[Outgoing]:
        out = self._out
        if out:
            self._out = []
        return out

    def next_deadline(self) -> float | None:
        return self._later[0].at if self._later else None

    # -- the emulator's controls

    def offer(self, address: int, image: OtaImage | ImageKey | str | None) -> OtaImage | None:
        """Offer this image (from the store) to this node, whatever the normal
        choice; None offers it nothing."""
        found = None if image is None else self.store.find(image)
        self.overrides[address] = found
        return found

    def clear_offer(self, address: int) -> None:
        self.overrides.pop(address, None)

    def abort(self, address: int) -> None:
        """The next block or page request from address is answered ABORT, and any
        page burst under way to it stops."""
        self._move(self._client(address), ABORT_REQUESTED)

    def notify(self, dst: int, now: float, payload_type: int = 0, query_jitter: int = 100,
               image: OtaImage | ImageKey | str | None = None) -> bytes:
        """Send an Image Notify to dst (a node, or a broadcast address). payload_type
        1..3 adds the image's manufacturer, image type, file version: from `image`,
        else from dst's override. Returns the frame's bytes."""
        if not 0 <= payload_type <= 3:
            raise ValueError(f"payload_type {payload_type} outside 0..3")
        if not 1 <= query_jitter <= 100:
            raise ValueError(f"query_jitter {query_jitter} outside 1..100")
        ids: tuple = ()
        if payload_type:
            img = self.store.find(image) if image is not None else self.overrides.get(dst)
            if img is None:
                raise ValueError(f"payload_type {payload_type} needs an image (none given, "
                                 f"no override for 0x{dst:04x})")
            ids = img.key[:payload_type]
        cmd = ImageNotify(query_jitter, *ids)
        payload = encode(Frame.of(cmd, self._next_tsn(), disable_default_response=True))
        self._out.append((dst, OTA_CLUSTER_ID, payload))
        self._event(EventKind.NOTIFY, dst, payload_type, now)
        return payload

    def notify_all(self, now: float, addrs: Iterable[int] | None = None, payload_type: int = 0,
                   query_jitter: int = 100,
                   image: OtaImage | ImageKey | str | None = None) -> None:
        """One broadcast Image Notify to 0xFFFF (addrs None), or one unicast per address.
        The simulated network (net.sim) routes unicasts only: give addrs there."""
        if addrs is None:
            self.notify(BROADCAST_ALL, now, payload_type, query_jitter, image)
        else:
            for a in addrs:
                self.notify(a, now, payload_type, query_jitter, image)

    def read_attributes(self, dst: int, attribute_ids: Iterable[int]) -> bytes:
        """Ask a client for OTA client attributes; the answer lands in
        clients[dst].attributes."""
        frame = Frame.of(ReadAttributes(tuple(attribute_ids)), self._next_tsn(), direction=_S2C)
        payload = encode(frame)
        self._out.append((dst, OTA_CLUSTER_ID, payload))
        return payload

    # -- phases

    def _client(self, address: int) -> ClientState:
        st = self.clients.get(address)
        if st is None:
            st = self.clients[address] = ClientState(address)
        return st

    def _move(self, st: ClientState, trigger: Trigger) -> ClientPhase:
        """The one way a client's phase changes: through the table."""
        phase = st.phase = self._go(st.phase, trigger)
        if phase is not PAGING:
            st.burst = None         # a burst is PAGING's alone
        return phase

    # -- handlers

    def _serve_block(self, src: int, req: tuple, now: float) -> bool:
        """The block path from the request's fields (a plain Image Block Request,
        read without building its objects): what _on_block does for a client
        DOWNLOADING an image in the store, a block in range, unthrottled and
        undelayed. Anything else (returns False, nothing changed) goes the
        general way."""
        st = self.clients.get(src)
        if st is None or st.phase is not DOWNLOADING:
            return False
        policy = self._policy
        if policy.throttled or policy.response_delay_s:
            return False
        tsn, m, t, v, offset, n = req
        image = self._images_by_id.get((m, t, v))
        if image is None or offset >= image.size or not n:
            return False
        st.block_requests += 1
        if n > policy.block_cap:
            n = policy.block_cap
        chunk = image.data[offset:offset + n]
        n = len(chunk)
        payload = encode_image_block_response(tsn, image.manufacturer, image.image_type, image.file_version,
                                              offset, chunk)
        st.serving = image
        st.blocks_served += 1
        st.bytes_served += n
        st.last_offset = offset
        st.last_length = n
        st.last_block_at = now
        if st.first_block_at is None:
            st.first_block_at = now
        self._out.append((src, OTA_CLUSTER_ID, payload))
        return True

    def _on_block(self, src: int, h: ZclHeader, cmd: ImageBlockRequest, now: float) -> None:
        # The hot path: one per block of every download.
        st = self.clients.get(src)
        if st is None:
            st = self._client(src)
        st.block_requests += 1
        if cmd.minimum_block_period is not None:
            st.minimum_block_period = cmd.minimum_block_period
        image = self._images_by_id.get((cmd.manufacturer, cmd.image_type, cmd.file_version))
        offset = cmd.file_offset
        n = cmd.max_data_size
        if image is None or st.phase is ABORTING or offset >= image.size or not n:
            self._block_error(src, h, st, image, BLOCK_REFUSED, now)
            return
        policy = self._policy
        if n > policy.block_cap:
            n = policy.block_cap
        if policy.throttled and self._wait(src, h, st, now):
            return
        chunk = image.data[offset:offset + n]
        n = len(chunk)
        payload = _block_response(h.tsn, image, offset, chunk)
        st.serving = image
        if st.phase is not DOWNLOADING:     # staying there is no move (server_states)
            self._move(st, BLOCK_SENT)
        if policy.response_delay_s:
            at = self._paced(st, now)
            if at > now:
                heappush(self._later, Due(at, next(self._seq), Timer.DELAYED_BLOCK, src, payload))
                self._count_block(st, offset, n, at)
                return
        self._count_block(st, offset, n, now)
        self._out.append((src, OTA_CLUSTER_ID, payload))

    @staticmethod
    def _count_block(st: ClientState, offset: int, n: int, at: float) -> None:
        st.blocks_served += 1
        st.bytes_served += n
        st.last_offset = offset
        st.last_length = n
        st.last_block_at = at
        if st.first_block_at is None:
            st.first_block_at = at

    def _paced(self, st: ClientState, now: float) -> float:
        """When the next block response to st may go (response_delay_s); books it."""
        policy = self._policy
        if policy.response_delay_mode is DelayMode.FIXED:
            return now + policy.response_delay_s
        at = st.next_send_at
        if at < now:
            at = now
        st.next_send_at = at + policy.response_delay_s
        return at

    def _wait(self, src: int, h: ZclHeader, st: ClientState, now: float) -> bool:
        """Answer WAIT_FOR_DATA if the policy throttles this request; True if it did."""
        policy = self._policy
        throttle = bool(policy.wait_every) and st.block_requests % policy.wait_every == 0
        wait = policy.wait_s if throttle else 0
        if policy.min_block_period_ms and st.last_block_at is not None:
            rest = st.last_block_at + policy.min_block_period_ms / 1000 - now
            if rest > 1e-9:
                throttle = True
                wait = max(wait, math.ceil(rest - 1e-9))
        if not throttle:
            return False
        current = policy.utc(now) if policy.wait_utc else 0
        cmd = ImageBlockWait(current, (current + wait) & 0xFFFFFFFF, policy.min_block_period_ms)
        st.waits += 1
        self._move(st, WAIT_SENT)
        self._out.append((src, OTA_CLUSTER_ID,
                          encode(Frame.of(cmd, h.tsn, disable_default_response=True))))
        return True

    def _block_error(self, src: int, h: ZclHeader, st: ClientState, image: OtaImage | None,
                     refused: Trigger, now: float) -> None:
        """Answer a block or page request that gets no block: the pending ABORT
        first, else the policy's status for an unknown image or a bad range."""
        policy = self._policy
        if st.phase is ABORTING:
            status, trigger = Status.ABORT, ABORT_SENT
        elif image is None:
            status, trigger = policy.unknown_image_status, refused
        else:
            status, trigger = policy.past_end_status, refused
        st.block_errors += 1
        self._move(st, trigger)
        self._event(EventKind.BLOCK_ERROR, src, status, now)
        self._send_error(src, h, status)

    def _send_error(self, src: int, h: ZclHeader, status: int) -> None:
        if self._policy.block_error_form is BlockErrorForm.DEFAULT_RESPONSE:
            frame = default_response_to(h, status)
        else:
            frame = Frame.of(ImageBlockAbort(status), h.tsn, disable_default_response=True)
        self._out.append((src, OTA_CLUSTER_ID, encode(frame)))

    def _on_query(self, src: int, h: ZclHeader, cmd: QueryNextImageRequest, now: float) -> None:
        st = self._client(src)
        st.queries += 1
        st.current_version = cmd.current_file_version
        st.hardware_version = cmd.hardware_version
        image = self.overrides.get(src)
        if image is not None and image.file_version == cmd.current_file_version:
            image = None        # it runs the override already: nothing more to offer
        elif src not in self.overrides:
            image = self.store.select(cmd.manufacturer, cmd.image_type, cmd.current_file_version,
                                      cmd.hardware_version, self._policy.version)
        st.offered = image
        if image is None:
            rsp = QueryNextImageResponse(Status.NO_IMAGE_AVAILABLE)
        else:
            rsp = QueryNextImageResponse(Status.SUCCESS, *image.key, image.size)
        self._move(st, QUERY_NO_IMAGE if image is None else QUERY_OFFERED)
        self._out.append((src, OTA_CLUSTER_ID,
                          encode(Frame.of(rsp, h.tsn, disable_default_response=True))))
        self._event(EventKind.QUERY, src, None if image is None else image.file_version, now)

    def _on_page(self, src: int, h: ZclHeader, cmd: ImagePageRequest, now: float) -> None:
        st = self._client(src)
        policy = self._policy
        if not policy.pages:
            self._move(st, PAGE_UNSUPPORTED)
            self._event(EventKind.PAGE_REFUSED, src, cmd.file_offset, now)
            if policy.page_refusal is PageRefusal.DEFAULT_RESPONSE:
                self._out.append((src, OTA_CLUSTER_ID, encode(
                    default_response_to(h, Status.UNSUP_CLUSTER_COMMAND))))
            return
        st.pages += 1
        image = self._images_by_id.get((cmd.manufacturer, cmd.image_type, cmd.file_version))
        offset = cmd.file_offset
        n = min(cmd.max_data_size, policy.block_cap)
        if image is None or st.phase is ABORTING or offset >= image.size or not n or not cmd.page_size:
            self._block_error(src, h, st, image, PAGE_REFUSED, now)
            return
        self._event(EventKind.PAGE, src, offset, now)
        st.serving = image
        end = min(offset + cmd.page_size, image.size)
        spacing = cmd.response_spacing / 1000 if policy.honour_page_spacing else 0.0
        burst = Burst()
        t = now
        later = self._later
        tsn = h.tsn
        while offset < end:
            chunk = image.data[offset:min(offset + n, end)]
            k = len(chunk)
            payload = _block_response(tsn, image, offset, chunk)
            at = t
            if policy.response_delay_s:
                if policy.response_delay_mode is DelayMode.FIXED:
                    at = t + policy.response_delay_s
                else:
                    at = max(t, st.next_send_at)
                    st.next_send_at = at + policy.response_delay_s
            if at <= now:
                self._count_block(st, offset, k, now)
                self._out.append((src, OTA_CLUSTER_ID, payload))
            else:
                heappush(later, Due(at, next(self._seq), Timer.PAGE_BLOCK, src, payload, burst,
                                    offset, k))
                burst.left += 1
            offset += k
            t = at + spacing
        # A new page replaces what is left of the last one (the move drops it, or
        # the new burst takes its place).
        if burst.left:
            self._move(st, PAGE_STARTED)
            st.burst = burst
        else:
            self._move(st, PAGE_SENT)

    def _on_upgrade_end(self, src: int, h: ZclHeader, cmd: UpgradeEndRequest, now: float) -> None:
        st = self._client(src)
        st.upgrade_end_status = cmd.status
        st.upgrade_end_at = now
        st.upgrade_end_version = cmd.file_version
        succeeded = cmd.status == Status.SUCCESS
        self._move(st, END_SUCCESS if succeeded else END_FAILURE)
        self._event(EventKind.UPGRADE_END, src, cmd.status, now)
        policy = self._policy
        if succeeded or policy.end_failure is EndFailure.END_RESPONSE:
            current, upgrade = policy.upgrade_times(now)
            rsp = UpgradeEndResponse(cmd.manufacturer, cmd.image_type, cmd.file_version,
                                     current, upgrade)
            frame = Frame.of(rsp, h.tsn, disable_default_response=True)
        elif policy.end_failure is EndFailure.DEFAULT_RESPONSE and not h.disable_default_response:
            frame = default_response_to(h, Status.SUCCESS)
        else:
            return
        self._out.append((src, OTA_CLUSTER_ID, encode(frame)))

    def _on_device_specific(self, src: int, h: ZclHeader, cmd: QueryDeviceSpecificFileRequest,
                            now: float) -> None:
        self._event(EventKind.DEVICE_SPECIFIC_QUERY, src, None, now)
        rsp = QueryDeviceSpecificFileResponse(Status.NO_IMAGE_AVAILABLE)
        self._out.append((src, OTA_CLUSTER_ID,
                          encode(Frame.of(rsp, h.tsn, disable_default_response=True))))

    def _on_read_attributes(self, src: int, h: ZclHeader, cmd: ReadAttributes,
                            now: float) -> None:
        records = tuple(ReadAttributeRecord.of(a, CLUSTER_REVISION)
                        if a == AttributeId.CLUSTER_REVISION
                        else ReadAttributeRecord(a, Status.UNSUPPORTED_ATTRIBUTE)
                        for a in cmd.attribute_ids)
        frame = Frame.of(ReadAttributesResponse(records), h.tsn, direction=_S2C,
                         manufacturer=h.manufacturer, disable_default_response=True)
        self._out.append((src, OTA_CLUSTER_ID, encode(frame)))

    def _on_read_attributes_response(self, src: int, h: ZclHeader, cmd: ReadAttributesResponse,
                                     now: float) -> None:
        attrs = self._client(src).attributes
        for r in cmd.records:
            if r.status == Status.SUCCESS:
                attrs[r.attribute_id] = r.value

    def _on_default_response(self, src: int, h: ZclHeader, cmd: DefaultResponse,
                             now: float) -> None:
        self.ignored += 1

    # -- faults

    def _refuse(self, src: int, e: ZclError, now: float) -> None:
        """The codec refused a frame: answer the Default Response it names, if one is due."""
        self.malformed += 1
        h, status = e.header, e.status
        if h is not None and status is not None and not (
                h.frame_type == 0 and h.command_id == DefaultResponse.COMMAND_ID):
            try:
                self._out.append((src, OTA_CLUSTER_ID, encode(default_response_to(h, status))))
            except Exception as err:  # noqa: BLE001
                self._internal_error(src, err, now)
                return
        else:
            status = None
        self._event(EventKind.MALFORMED, src, status, now)

    def _internal_error(self, src: int | None, e: Exception, now: float) -> None:
        self.errors += 1
        log.exception("OTA server: internal error on a frame from %s",
                      "-" if src is None else f"0x{src:04x}", exc_info=e)
        self._event(EventKind.ERROR, -1 if src is None else src, repr(e), now)

    def _event(self, kind: EventKind, address: int, detail: object, now: float) -> None:
        ev = ServerEvent(kind, address, detail, now)
        self.events.append(ev)
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001 - an observer's bug must not stop the server
                log.exception("OTA server: on_event callback failed")

    def _next_tsn(self) -> int:
        self._tsn = (self._tsn + 1) & 0xFF
        return self._tsn
