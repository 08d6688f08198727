"""The OTA Upgrade cluster client: what an emulated bridge runs to take a new
image from its server (the Communications Hub).

Sans-I/O, like h11: frames (bytes) and the current time go in through
receive() and timer(); frames to send (pop_outgoing), the next deadline
(next_deadline) and events for the device (pop_events) come out. No sockets,
threads or sleeps, so the same client runs on virtual time in the simulator,
in real time over a serial dongle, and under hypothesis.

Three modules, as h11 has: client_states holds the states, the timers and
the tables of every move between them; client_events the inputs (the tables'
triggers) and the events that come out; this one turns frames, calls and
time into inputs and moves, and back into frames and events. The names of
both are re-exported here.

Downloaded bytes go to the device's download slot through a DownloadStore
(the C boot core): the flash is the progress, so a bridge that loses power
resumes from what its flash holds. With config.write_buffer set (a Bridge sets
its flash page size) blocks are held in RAM and written a whole flash page at
a time, as a real bridge's page buffer does: what a power cut takes from RAM
was never counted as durable (the resume offset is read from the flash), and
the buffer is written out before the download is reported complete and when
it pauses.

Speed: an Image Block Response (SUCCESS) is read straight from its bytes and
the next Image Block Request written straight to bytes (codec.zcl's
read_image_block_response / encode_image_block_request); no command, header
or Frame is built per block. Everything else goes through zcl.decode/encode.

Behaviour follows the reference stacks (docs/zigbee-ota.md):
query jitter on Image Notify; block or page requests with fallback to blocks;
SUCCESS / WAIT_FOR_DATA / ABORT block responses; wrong-offset and wrong-image
blocks ignored; a timed-out request is retried at the same offset, never from
zero; Upgrade End Request SUCCESS or INVALID_IMAGE after the device verified
the image; Upgrade End Response timing (now, count down, 0xFFFFFFFF = wait for
activation, re-asking periodically); activation and timeout policies.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

from bridge_emu.codec import ota_file, zcl
from bridge_emu.codec.zcl import (
    AttributeId,
    DataType,
    ImageUpgradeStatus,
    Status,
    UpgradeActivationPolicy,
    UpgradeTimeoutPolicy,
)
from bridge_emu.errors import CoreError, PowerCut
from bridge_emu.ota.client_events import (  # noqa: F401
    Activate,
    DownloadComplete,
    DownloadFailed,
    DownloadStarted,
    Event,
    Ignored,
    ImageId,
    Input,
    OfferDeclined,
    QueryAnswered,
    UpgradeScheduled,
    WaitingForActivation,
)
from bridge_emu.ota.client_states import (  # noqa: F401
    BEFORE_COMPLETE,
    COMPLETE,
    EXPECTING_REPLIES,
    HOLDING_IMAGE,
    IN_PROGRESS,
    QUERY_TRANSITIONS,
    TIMERS,
    TRANSITIONS,
    VERIFIED,
    ClientState,
    QueryState,
    Timer,
)
from bridge_emu.retry import Backoff

OTA = zcl.OTA_CLUSTER_ID
FOREVER = float("inf")

# Read on every block exchange, so bound once: looking a member up through its
# Enum class costs more than the test itself.
_PAUSED, _ASKED = ClientState.PAUSED, QueryState.ASKED
_DOWNLOADING = ClientState.DOWNLOADING
_BLOCK_TIMEOUT, _PAGE_TIMEOUT = Timer.BLOCK_TIMEOUT, Timer.PAGE_TIMEOUT
# the block exchange straight from and to bytes (the codec's plain-form readers/writers)
_read_block_response = zcl.read_image_block_response
_encode_block_request = zcl.encode_image_block_request


class DownloadStore(Protocol):
    """Where the image goes: the device's download slot (bridge_emu.core.device.Device)."""

    def begin(self, size: int, header_length: int) -> None: ...   # the file's header is header_length bytes
    def write(self, offset: int, data: bytes) -> None: ...
    def read(self, offset: int, n: int) -> bytes: ...
    def held(self) -> tuple[int, int] | None: ...  # (size, safe resume offset) of a download in flash
    def discard(self) -> None: ...
    # optional: the flash address (or its phase modulo write_buffer) of the
    # download's byte 0, so buffered writes end on whole flash pages
    # def download_base(self) -> int: ...


@dataclass
class ClientConfig:
    manufacturer: int
    image_type: int
    current_file_version: int
    hardware_version: int | None = None
    server: int = 0x0000
    max_data_size: int = 64             # bytes of image per block (from the link's payload limit)
    query_interval_s: float = 300.0     # how often to ask for a new image
    response_timeout_s: float = 3.0     # a request unanswered this long is sent again
    # an unanswered query is asked again after query_retry_s, doubling (with
    # jitter) up to query_retry_cap_s (None: query_interval_s), then every interval
    query_retry_s: float = 3.0
    query_retry_cap_s: float | None = None
    max_timeouts: int = 10              # in a row, before the download pauses until the next query
    use_pages: bool = False
    page_size: int = 1024
    response_spacing_ms: int = 50
    page_fallback_s: float = 10.0       # a page answered by nothing: use block requests instead
    minimum_block_period_ms: int = 0
    # bytes of blocks held in RAM and written to the store together, ending on a
    # multiple of write_buffer in flash (a flash page: one program call per page);
    # 0: every block is written as it comes. Power-cut safe: what is in RAM is
    # lost with the power, and the resume offset is what the flash holds.
    write_buffer: int = 0
    # an unanswered Upgrade End Request is sent again after end_retry_s, doubling
    # (with jitter) up to end_retry_max_s; after end_max_tries the timeout policy
    # applies (about 150 s after the first). The first retry comes well inside
    # zigpy's 60 s final-block window; a server that answered and then forgot the
    # update (zigpy, once its Upgrade End Response is lost) is not waited on long.
    end_retry_s: float = 10.0
    end_retry_max_s: float = 300.0
    end_max_tries: int = 4
    recheck_s: float = 3600.0           # waiting or counting down: re-ask at most this often
    activation_policy: UpgradeActivationPolicy = UpgradeActivationPolicy.SERVER_ALLOWED
    timeout_policy: UpgradeTimeoutPolicy = UpgradeTimeoutPolicy.APPLY_AFTER_TIMEOUT
    seed: int = 0

    def __post_init__(self) -> None:
        # the attribute values (0, 1) are accepted too; a reserved value raises ValueError
        self.activation_policy = UpgradeActivationPolicy(self.activation_policy)
        self.timeout_policy = UpgradeTimeoutPolicy(self.timeout_policy)
        self.query_backoff, self.end_backoff  # noqa: B018 (a bad retry setting raises here, not mid-run)

    @property
    def query_backoff(self) -> Backoff:
        cap = self.query_interval_s if self.query_retry_cap_s is None else self.query_retry_cap_s
        return Backoff(min(self.query_retry_s, cap), cap)

    @property
    def end_backoff(self) -> Backoff:
        return Backoff(min(self.end_retry_s, self.end_retry_max_s), self.end_retry_max_s)


def _status_name(status: int) -> str:
    """A status byte's name, or its value for bytes ZCL does not name."""
    return Status(status).name if status in Status._value2member_map_ else f"status 0x{status:02x}"


def max_data_size_for(max_payload: int) -> int:
    """Image bytes per block that fit a frame of max_payload bytes (ZCL header 3,
    block response fields 1+2+2+4+4, length 1)."""
    return max(1, min(255, max_payload - 3 - 13 - 1))


# -- the fixed OTA header, read field by field from a file's first bytes as
# blocks arrive (ota_file owns the layout).

_LENGTH_KNOWN_AT = sum(ota_file.FIXED_FIELDS["header_length"])    # bytes that give magic and header_length
_header_field = ota_file.fixed_field


def _header_length(prefix: bytes) -> int | None:
    """header_length from at least _LENGTH_KNOWN_AT first bytes of a file; None if they lack the magic."""
    if _header_field(prefix, "magic") != ota_file.OTA_MAGIC:
        return None
    return _header_field(prefix, "header_length")


def _header_image(prefix: bytes) -> ImageId:
    """The image a fixed header (FIXED_HEADER_SIZE first bytes, or more) names."""
    return ImageId(_header_field(prefix, "manufacturer"), _header_field(prefix, "image_type"),
                   _header_field(prefix, "file_version"))


class OtaClient:
    """One bridge's OTA client. `now` is seconds on whatever clock drives it.

    `state` and `query` are its two machines (client_states); `status`, the
    ImageUpgradeStatus a server reads, follows from `state`."""

    def __init__(self, config: ClientConfig, store: DownloadStore, now: float = 0.0):
        self.config = config
        self.store = store
        self.rng = random.Random(config.seed)
        self.state = ClientState.IDLE
        self.query = QueryState.NOT_ASKED
        self.image: ImageId | None = None       # being downloaded or held (None: IDLE)
        self.size = 0
        self.offset = 0                          # FileOffset: next byte wanted
        self.minimum_block_period_ms = config.minimum_block_period_ms
        self._outgoing: list[tuple[int, int, bytes]] = []
        self._events: list[Event] = []
        self._tsn = self.rng.randrange(256)
        self._deadline = FOREVER
        self._timer: Timer | None = None        # what the deadline is for
        # file bytes held in RAM until the OTA header is whole (the slot placement
        # needs its length); None once the slot holds this download
        self._unplaced: bytes | None = b""
        # blocks taken but not yet written (config.write_buffer): file bytes
        # [offset - len(_buf), offset); _base is the flash phase of file offset 0
        self._buf = bytearray()
        self._base = 0
        self._timeouts = 0
        self._pages = config.use_pages
        self._page_end = 0
        self._page_heard = False                # a block came since the last page request
        self._end_tries = 0
        self._query_tries = 0                   # unanswered queries in a row
        self._countdown_at = FOREVER
        self._last_request = -FOREVER
        self._restore(now)

    # -------------------------------------------------------------- outputs

    def pop_outgoing(self) -> list[tuple[int, int, bytes]]:
        out, self._outgoing = self._outgoing, []
        return out

    def pop_events(self) -> list[Event]:
        out, self._events = self._events, []
        return out

    def next_deadline(self) -> float | None:
        return None if self._deadline == FOREVER else self._deadline

    def next_timer(self) -> Timer | None:
        """What next_deadline() is for."""
        return self._timer

    @property
    def status(self) -> ImageUpgradeStatus:
        return self.state.upgrade_status

    @property
    def downloaded_version(self) -> int | None:
        """DownloadedFileVersion: the image's, once the device verified it."""
        return self.image.file_version if self.state in VERIFIED else None

    @property
    def end_tries(self) -> int:
        """Upgrade End Requests sent for the held image (answered or not)."""
        return self._end_tries

    @property
    def expecting(self) -> bool:
        """True while replies are due (a sleepy device polls its parent fast then)."""
        return self.query is _ASKED or self.state in EXPECTING_REPLIES

    # --------------------------------------------------------------- inputs

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if cluster != OTA:
            return
        if src != self.config.server:
            self._events.append(Ignored(f"frame from 0x{src:04x}, not the server"))
            return
        block = _read_block_response(payload)
        if block is not None:   # the hot path: what decode + _block_response would do
            self._take_block(block[1], block[2], block[3], block[4], block[5], now)
            return
        try:
            frame = zcl.decode(payload, zcl.Direction.SERVER_TO_CLIENT)
        except zcl.ZclError as e:
            self._events.append(Ignored(f"malformed frame: {e}"))
            return
        cmd = frame.command
        handler = self._HANDLERS.get(type(cmd))
        if handler is None:
            self._events.append(Ignored(f"unexpected {type(cmd).__name__}"))
            return
        handler(self, frame, cmd, now)

    def timer(self, now: float) -> None:
        if now < self._deadline:
            return
        timer, self._deadline, self._timer = self._timer, FOREVER, None
        self._ON_TIMER[timer](self, now)

    def query_now(self, now: float) -> None:
        """Ask the server for a new image (at boot, or when told one is waiting)."""
        if self.state is ClientState.IDLE and self.query is QueryState.NOT_ASKED:
            self._send_query(now)

    def verified(self, ok: bool, now: float) -> None:
        """The device's verdict on the image of DownloadComplete."""
        if self.state not in COMPLETE:
            return
        if ok:
            self._end_tries = 0
            self._enter(ClientState.ENDING, Input.VERIFIED)
            self._send_end(now)
        else:
            self._request(zcl.UpgradeEndRequest(Status.INVALID_IMAGE, *self._id()))
            self._abandon("the device refused the image", now, report=False)

    def abandon(self, reason: str, now: float) -> None:
        """Drop the held or downloading image (e.g. the activation failed)."""
        self._abandon(reason, now)

    # ----------------------------------------------------------- attributes

    def attributes(self) -> dict[int, tuple[int, int]]:
        """Attribute id -> (ZCL data type, value), as a server reads them."""
        c = self.config
        version = self.downloaded_version
        return {
            AttributeId.FILE_OFFSET: (DataType.UINT32, self.offset),
            AttributeId.CURRENT_FILE_VERSION: (DataType.UINT32, c.current_file_version),
            AttributeId.DOWNLOADED_FILE_VERSION: (DataType.UINT32, 0xFFFFFFFF if version is None else version),
            AttributeId.IMAGE_UPGRADE_STATUS: (DataType.ENUM8, int(self.status)),
            AttributeId.MANUFACTURER_ID: (DataType.UINT16, c.manufacturer),
            AttributeId.IMAGE_TYPE_ID: (DataType.UINT16, c.image_type),
            AttributeId.MINIMUM_BLOCK_PERIOD: (DataType.UINT16, self.minimum_block_period_ms),
            AttributeId.UPGRADE_ACTIVATION_POLICY: (DataType.ENUM8, int(c.activation_policy)),
            AttributeId.UPGRADE_TIMEOUT_POLICY: (DataType.ENUM8, int(c.timeout_policy)),
        }

    # ------------------------------------------------------------ internals

    def _enter(self, state: ClientState, trigger: Input) -> None:
        """Move to `state` on `trigger`, unless already there (a stay has no row)."""
        if self.state is not state:
            self.state = TRANSITIONS.go(self.state, trigger)
            assert self.state is state, (trigger, self.state, state)

    def _ask(self) -> None:
        if self.query is QueryState.NOT_ASKED:
            self.query = QUERY_TRANSITIONS.go(self.query, Input.ASK)

    def _settle_query(self, trigger: Input) -> None:
        if self.query is QueryState.ASKED:
            self.query = QUERY_TRANSITIONS.go(self.query, trigger)

    def _id(self) -> tuple[int, int, int]:
        return (self.image.manufacturer, self.image.image_type, self.image.file_version)

    def _at(self, t: float, timer: Timer) -> None:
        self._deadline, self._timer = t, timer

    def _request(self, cmd, **kw) -> None:
        self._tsn = (self._tsn + 1) & 0xFF
        self._outgoing.append((self.config.server, OTA, zcl.encode(zcl.Frame.of(cmd, self._tsn, **kw))))

    def _restore(self, now: float) -> None:
        """After a reset: a download the flash holds is resumed (identity from
        the OTA header at the start of the slot); otherwise query in a while."""
        held = self.store.held()
        if held is not None:
            size, resume = held
            image = self._image_in_slot(size, resume)
            if image is not None:
                self.image, self.size, self.offset, self._unplaced = image, size, resume, None
                self._buf = bytearray()
                self._base = self._download_base()
                if resume >= size:
                    self._enter(ClientState.DOWNLOADED, Input.FLASH_HOLDS_ALL)
                    self._events.append(DownloadComplete(self.image, size))
                    return
                self._enter(ClientState.DOWNLOADING, Input.FLASH_HOLDS_PART)
                self._events.append(DownloadStarted(self.image, size, self.offset))
                self._send_block(now)
                return
            self.store.discard()
        self._at(now + self.rng.uniform(0, min(30.0, self.config.query_interval_s)), Timer.QUERY)

    def _image_in_slot(self, size: int, resume: int) -> ImageId | None:
        """The image whose header starts the slot, if it can be trusted: only if the
        store's safe resume offset lies past it (a cut while it was written can leave
        the magic and the id but not the rest)."""
        try:
            head = self.store.read(0, min(size, ota_file.FIXED_HEADER_SIZE))
        except CoreError:
            return None
        if len(head) < ota_file.FIXED_HEADER_SIZE:
            return None
        length = _header_length(head)
        if length is None or not ota_file.FIXED_HEADER_SIZE <= length <= min(size, resume):
            return None
        return _header_image(head)

    # -- query

    def _send_query(self, now: float) -> None:
        c = self.config
        self._ask()
        self._request(zcl.QueryNextImageRequest(c.manufacturer, c.image_type, c.current_file_version,
                                                c.hardware_version))
        self._at(now + c.response_timeout_s, Timer.QUERY_TIMEOUT)

    def _on_query(self, now: float) -> None:
        if self.state is ClientState.IDLE or self.state is ClientState.PAUSED:
            self._send_query(now)   # paused: is the image still offered?

    def _on_query_timeout(self, now: float) -> None:
        self._settle_query(Input.TIMED_OUT)
        self._query_tries += 1
        self._at(now + self.config.query_backoff.delay(self._query_tries - 1, self.rng), Timer.QUERY)

    def _image_notify(self, frame, cmd: zcl.ImageNotify, now: float) -> None:
        c = self.config
        if self.state is not ClientState.IDLE or self.query is QueryState.ASKED:
            self._events.append(Ignored("image notify while busy"))
            return
        if cmd.manufacturer is not None and cmd.manufacturer not in (c.manufacturer, zcl.WILDCARD_MANUFACTURER):
            self._events.append(Ignored("image notify for another manufacturer"))
            return
        if cmd.image_type is not None and cmd.image_type not in (c.image_type, zcl.WILDCARD_IMAGE_TYPE):
            self._events.append(Ignored("image notify for another image type"))
            return
        if cmd.file_version is not None and cmd.file_version == c.current_file_version:
            self._events.append(Ignored("image notify for the running version"))
            return
        if self.rng.randint(1, 100) > cmd.query_jitter:
            self._events.append(Ignored("image notify: not drawn within the query jitter"))
            return
        self._send_query(now)

    def _query_response(self, frame, cmd: zcl.QueryNextImageResponse, now: float) -> None:
        c = self.config
        if self.query is QueryState.NOT_ASKED:
            self._events.append(Ignored("query response without a query"))
            return
        self._settle_query(Input.ANSWERED)
        self._query_tries = 0
        if self.state not in BEFORE_COMPLETE:
            # a late answer to a query made while paused: the download completed since;
            # it must neither discard the image nor replace the Upgrade End deadline
            self._events.append(Ignored("query response after the download completed"))
            return
        if cmd.status != Status.SUCCESS:
            self._events.append(QueryAnswered(None, 0))
            if self.state is ClientState.IDLE:
                self._at(now + c.query_interval_s, Timer.QUERY)
            else:
                self._abandon(f"server no longer offers the image ({_status_name(cmd.status)})", now)
            return
        image = ImageId(cmd.manufacturer, cmd.image_type, cmd.file_version)
        self._events.append(QueryAnswered(image, cmd.image_size))
        declined = ("another manufacturer" if image.manufacturer != c.manufacturer
                    else "another image type" if image.image_type != c.image_type
                    else "the version it runs" if image.file_version == c.current_file_version
                    else "too short to be an image" if cmd.image_size <= ota_file.FIXED_HEADER_SIZE else None)
        if declined:
            self._events.append(OfferDeclined(image, declined))
            if self.state is ClientState.IDLE:
                self._at(now + c.query_interval_s, Timer.QUERY)
            return
        if self.state is not ClientState.IDLE:
            if self.image == image and self.size == cmd.image_size:
                self._timeouts = 0
                self._enter(ClientState.DOWNLOADING, Input.OFFER)
                self._send_block(now)  # resume the paused download where it stopped
                return
            self._abandon("the server offers a different image", now, report=False)
        self.image, self.size, self.offset = image, cmd.image_size, 0
        self._unplaced, self._timeouts, self._end_tries = b"", 0, 0
        self._buf = bytearray()
        self._pages = c.use_pages
        self._enter(ClientState.DOWNLOADING, Input.OFFER)
        self._events.append(DownloadStarted(image, self.size, 0))
        self._send_block(now)

    # -- blocks

    def _send_block(self, now: float) -> None:
        c = self.config
        earliest = self._last_request + self.minimum_block_period_ms / 1000
        if now < earliest:
            self._at(earliest, Timer.SEND_BLOCK)
            return
        want = min(c.max_data_size, self.size - self.offset)
        period = self.minimum_block_period_ms if self.minimum_block_period_ms else None
        if self._pages:
            page = min(c.page_size, self.size - self.offset)
            self._page_end, self._page_heard = self.offset + page, False
            self._request(zcl.ImagePageRequest(*self._id(), self.offset, want, page, c.response_spacing_ms))
            self._at(now + c.page_fallback_s, _PAGE_TIMEOUT)
        else:
            tsn = self._tsn = (self._tsn + 1) & 0xFF
            img = self.image
            self._outgoing.append((c.server, OTA, _encode_block_request(
                tsn, img.manufacturer, img.image_type, img.file_version, self.offset, want, period)))
            self._deadline, self._timer = now + c.response_timeout_s, _BLOCK_TIMEOUT
        self._last_request = now

    def _on_send_block(self, now: float) -> None:
        self._send_block(now)

    def _on_block_timeout(self, now: float) -> None:
        self._timeouts += 1
        if self._timeouts >= self.config.max_timeouts:
            # pause: the slot keeps what arrived; the next query resumes it
            self._events.append(DownloadFailed(self.image, f"{self._timeouts} requests unanswered; paused"))
            self._timeouts = 0
            self._flush_all(now)   # a long pause: what came is made durable (RAM may go)
            self._enter(ClientState.PAUSED, Input.TOO_MANY_TIMEOUTS)
            self._at(now + self.config.query_interval_s, Timer.QUERY)
            return
        self._send_block(now)  # the same offset again

    def _on_page_timeout(self, now: float) -> None:
        if not self._page_heard:
            self._pages = False  # pages get nothing here: fall back to block requests
        self._send_block(now)

    def _block_response(self, frame, cmd: zcl.ImageBlockResponse, now: float) -> None:
        self._take_block(cmd.manufacturer, cmd.image_type, cmd.file_version, cmd.file_offset, cmd.data, now)

    def _take_block(self, manufacturer: int, image_type: int, file_version: int, file_offset: int,
                    data: bytes, now: float) -> None:
        """An Image Block Response (SUCCESS), by its fields."""
        state = self.state
        if state is not _DOWNLOADING and state not in IN_PROGRESS:
            self._events.append(Ignored("block response while not downloading"))
            return
        img = self.image
        if (manufacturer != img.manufacturer or image_type != img.image_type
                or file_version != img.file_version):
            self._events.append(Ignored("block of another image"))
            return
        if file_offset != self.offset:
            self._events.append(Ignored(f"block at offset {file_offset}, expected {self.offset}"))
            return
        if not data or len(data) > self.config.max_data_size or self.offset + len(data) > self.size:
            self._events.append(Ignored(f"block of {len(data)} bytes does not fit"))
            return
        if not self._store(data, now):
            return
        self.offset += len(data)
        self._timeouts = 0
        self._page_heard = True
        if self.offset >= self.size:
            if not self._flush_all(now):
                return
            self._deadline, self._timer = FOREVER, None
            self._enter(ClientState.DOWNLOADED, Input.LAST_BLOCK)
            self._events.append(DownloadComplete(self.image, self.size))
            return
        if self.state is _PAUSED:
            self._enter(ClientState.DOWNLOADING, Input.BLOCK)   # a late answer takes it on
        if self._pages and self.offset < self._page_end:
            # more of this page is on its way; if it stops, ask again from here
            spacing = self.config.response_spacing_ms / 1000
            self._at(now + spacing + self.config.response_timeout_s, _PAGE_TIMEOUT)
        else:
            self._send_block(now)

    def _store(self, data: bytes, now: float) -> bool:
        """Write block bytes; until the OTA header is whole they wait in RAM
        (the slot placement needs the header's length)."""
        try:
            if self._unplaced is None:
                size = self.config.write_buffer
                if not size:
                    self.store.write(self.offset, data)
                    return True
                buf = self._buf
                buf += data
                end = self.offset + len(data)
                n = len(buf) - (self._base + end) % size      # up to the last boundary in it
                if n > 0:
                    self.store.write(end - len(buf), bytes(buf[:n]))
                    del buf[:n]
                return True
            head = self._unplaced = self._unplaced + data
            if len(head) < _LENGTH_KNOWN_AT:
                return True
            length = _header_length(head)
            if length is None or not ota_file.FIXED_HEADER_SIZE <= length < self.size:
                self._abandon("not an OTA file (bad magic or header length)", now)
                return False
            if len(head) < length:
                return True
            if _header_image(head) != self.image:
                self._abandon("the file's header names another image", now)
                return False
            self.store.begin(self.size, length)
            self.store.write(0, head)
            self._unplaced = None
            self._buf = bytearray()
            self._base = self._download_base()
            return True
        except PowerCut:
            raise
        except CoreError as e:
            self._abandon(f"the slot refused the image: {e}", now)
            return False

    def _download_base(self) -> int:
        base = getattr(self.store, "download_base", None)
        if base is None or not self.config.write_buffer:
            return 0
        try:
            return base()
        except CoreError:
            return 0

    def _flush_all(self, now: float) -> bool:
        """Write what the RAM buffer holds; False if the slot refused it (abandoned)."""
        buf = self._buf
        if not buf or self._unplaced is not None:
            return True
        try:
            self.store.write(self.offset - len(buf), bytes(buf))
        except PowerCut:
            raise
        except CoreError as e:
            self._abandon(f"the slot refused the image: {e}", now)
            return False
        self._buf = bytearray()
        return True

    def _block_wait(self, frame, cmd: zcl.ImageBlockWait, now: float) -> None:
        if self.state not in IN_PROGRESS:
            return
        self.minimum_block_period_ms = cmd.minimum_block_period
        delay = max(0, cmd.request_time - cmd.current_time)
        self._enter(ClientState.DOWNLOADING, Input.WAIT_FOR_DATA)
        self._at(now + delay + cmd.minimum_block_period / 1000, Timer.SEND_BLOCK)

    def _block_abort(self, frame, cmd: zcl.ImageBlockAbort, now: float) -> None:
        if self.state not in IN_PROGRESS:
            return
        self._abandon(f"server answered {_status_name(cmd.status)}", now)

    def _abandon(self, reason: str, now: float, report: bool = True) -> None:
        if report:
            self._events.append(DownloadFailed(self.image, reason))
        if self._unplaced is None:
            self.store.discard()
        self._buf = bytearray()
        self.image, self.size, self.offset = None, 0, 0
        self._unplaced, self._end_tries = b"", 0
        self._settle_query(Input.ABANDON)
        self._enter(ClientState.IDLE, Input.ABANDON)
        self._at(now + self.config.query_interval_s, Timer.QUERY)

    # -- upgrade end

    def _send_end(self, now: float) -> None:
        self._end_tries += 1
        self._request(zcl.UpgradeEndRequest(Status.SUCCESS, *self._id()))
        self._at(now + self.config.end_backoff.delay(self._end_tries - 1, self.rng), Timer.END_RETRY)

    def _on_end_retry(self, now: float) -> None:
        if self._end_tries >= self.config.end_max_tries:
            if self.config.timeout_policy == UpgradeTimeoutPolicy.APPLY_AFTER_TIMEOUT:
                self._activate(Input.TIMEOUT_APPLY)
            else:
                self._enter(ClientState.WAITING_FOR_COMMAND, Input.TIMEOUT_HOLD)
                self._events.append(WaitingForActivation(self.image))
            return
        self._send_end(now)

    def _on_recheck(self, now: float) -> None:
        self._request(zcl.UpgradeEndRequest(Status.SUCCESS, *self._id()))
        self._at(now + self.config.recheck_s, Timer.RECHECK)

    def _on_countdown(self, now: float) -> None:
        if now >= self._countdown_at:
            self._activate(Input.UPGRADE_TIME_REACHED)
        else:  # long waits: re-ask before the time comes
            self._request(zcl.UpgradeEndRequest(Status.SUCCESS, *self._id()))
            self._at(min(self._countdown_at, now + self.config.recheck_s), Timer.COUNTDOWN)

    def _end_response(self, frame, cmd: zcl.UpgradeEndResponse, now: float) -> None:
        if self.state not in HOLDING_IMAGE:
            self._events.append(Ignored("upgrade end response with nothing downloaded"))
            return
        if self.state is ClientState.DOWNLOADED:
            # no Upgrade End Request sent yet: the device has not verified the image
            self._events.append(Ignored("upgrade end response before the image was verified"))
            return
        m, t, v = self._id()
        if (cmd.manufacturer not in (m, zcl.WILDCARD_MANUFACTURER)
                or cmd.image_type not in (t, zcl.WILDCARD_IMAGE_TYPE)
                or cmd.file_version not in (v, zcl.WILDCARD_FILE_VERSION)):
            self._events.append(Ignored("upgrade end response for another image"))
            return
        if cmd.upgrade_time == zcl.UPGRADE_TIME_WAIT:
            self._enter(ClientState.WAITING_FOR_SERVER, Input.UPGRADE_WAIT)
            self._events.append(WaitingForActivation(self.image))
            self._at(now + self.config.recheck_s, Timer.RECHECK)
            return
        if self.config.activation_policy == UpgradeActivationPolicy.OUT_OF_BAND_ONLY:
            self._outgoing.append((self.config.server, OTA,
                                   zcl.encode(zcl.default_response_to(frame.header, Status.NOT_AUTHORIZED))))
            self._enter(ClientState.WAITING_FOR_COMMAND, Input.OUT_OF_BAND_ONLY)
            self._events.append(WaitingForActivation(self.image))
            self._deadline, self._timer = FOREVER, None  # answered: no retry, no timeout policy
            return
        # a server without a clock sends current_time 0: upgrade_time is then a delay
        delay = cmd.upgrade_time - cmd.current_time if cmd.current_time else cmd.upgrade_time
        if delay <= 0:
            self._activate(Input.UPGRADE_NOW)
            return
        self._countdown_at = now + delay
        self._enter(ClientState.COUNTING_DOWN, Input.UPGRADE_LATER)
        self._events.append(UpgradeScheduled(self.image, self._countdown_at))
        self._at(min(self._countdown_at, now + self.config.recheck_s), Timer.COUNTDOWN)

    def _activate(self, trigger: Input) -> None:
        self._enter(ClientState.ACTIVATING, trigger)
        self._deadline, self._timer = FOREVER, None
        self._events.append(Activate(self.image))

    # -- attributes and others

    def _read_attributes(self, frame, cmd: zcl.ReadAttributes, now: float) -> None:
        attrs = self.attributes()
        records = []
        for aid in cmd.attribute_ids:
            if aid in attrs:
                dtype, value = attrs[aid]
                records.append(zcl.ReadAttributeRecord.of(aid, value, dtype))
            else:
                records.append(zcl.ReadAttributeRecord(aid, Status.UNSUPPORTED_ATTRIBUTE))
        reply = zcl.Frame.of(zcl.ReadAttributesResponse(tuple(records)), frame.header.tsn,
                             direction=zcl.Direction.CLIENT_TO_SERVER)
        self._outgoing.append((self.config.server, OTA, zcl.encode(reply)))

    def _default_response(self, frame, cmd: zcl.DefaultResponse, now: float) -> None:
        # a server that answers our query with a Default Response has nothing for us
        if cmd.command == zcl.OtaCommand.QUERY_NEXT_IMAGE_REQUEST and self.query is QueryState.ASKED:
            self._settle_query(Input.ANSWERED)
            self._query_tries = 0
            if self.state not in BEFORE_COMPLETE:
                return  # the download completed since (see _query_response): keep its deadline
            self._events.append(QueryAnswered(None, 0))
            if self.state is ClientState.DOWNLOADING:   # resumed by late blocks meanwhile
                self._enter(ClientState.PAUSED, Input.QUERY_DEFAULT_RESPONSE)
            self._at(now + self.config.query_interval_s, Timer.QUERY)

    _HANDLERS = {
        zcl.ImageNotify: _image_notify,
        zcl.QueryNextImageResponse: _query_response,
        zcl.ImageBlockResponse: _block_response,
        zcl.ImageBlockWait: _block_wait,
        zcl.ImageBlockAbort: _block_abort,
        zcl.UpgradeEndResponse: _end_response,
        zcl.ReadAttributes: _read_attributes,
        zcl.DefaultResponse: _default_response,
    }

    _ON_TIMER = {
        Timer.QUERY: _on_query,
        Timer.QUERY_TIMEOUT: _on_query_timeout,
        Timer.SEND_BLOCK: _on_send_block,
        Timer.BLOCK_TIMEOUT: _on_block_timeout,
        Timer.PAGE_TIMEOUT: _on_page_timeout,
        Timer.END_RETRY: _on_end_retry,
        Timer.RECHECK: _on_recheck,
        Timer.COUNTDOWN: _on_countdown,
    }
