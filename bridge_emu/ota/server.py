"""The ZigBee OTA Upgrade server (the Communications Hub's role), as a sans-I/O machine.

Bytes and time in, frames and the next deadline out: no sockets, threads or
sleeps. `OtaServer` implements the Machine protocol of bridge_emu.net.transport
(receive / timer / pop_outgoing / next_deadline), so a Driver runs it on the
simulated premises network (net.sim) or, later, over a serial dongle. Facts it
builds on: docs/zigbee-ota.md and gbcs-firmware.md.

API
    ImageStore                      OTA files by (manufacturer, image_type, file_version)
        ImageStore.from_folder(path) / .load_folder(path) / .add_file(path)
        / .add_bytes(data, name)    read with the tolerant reader; unservable files
                                    are skipped, logged, and listed in .skipped
        .get(m, t, v), .find(spec), .select(m, t, current_version, hw, version=...)
    OtaImage                        one servable image (bytes precomputed for the block path)
    Policy                          how the server behaves (frozen dataclass);
        Policy.preset(name, **overrides), PRESETS: "zigpy", "herdsman", "gbcs-ch"
    OtaServer(store, policy, address=0x0000)
        receive(src, cluster, payload, now), timer(now), pop_outgoing(), next_deadline()
        offer(addr, image) / clear_offer(addr)    per-client override (wins the selection)
        notify(dst, now, payload_type=0, query_jitter=100, image=None)   Image Notify
        notify_all(now, addrs=None, ...)          broadcast (0xFFFF) or one per address
        abort(addr)                               the next block/page request gets ABORT
        read_attributes(dst, attribute_ids)       Read Attributes of a client's OTA cluster
        clients: {addr: ClientState}, events: [(kind, addr, detail, t)], on_event,
        counters: frames_in, ignored, malformed, errors

Behaviour (choices documented here; real servers differ, and a client must cope):
- Query Next Image: SUCCESS with the chosen image's id and size, else
  NO_IMAGE_AVAILABLE. The choice: a per-client override if one is set (even an
  older image or one for other hardware: that is the point of it), unless the
  client already runs that file version; otherwise the highest file_version
  with the client's manufacturer and image type (a file's 0xFFFF in either
  is a wildcard), its hardware range containing the client's hardware version
  when both are given, that is newer than the client's (policy.version "newer")
  or just different ("any"). Files meant for one device (upgrade file
  destination set) are offered only through an override.
- Image Block Request: blocks are stateless, as in every real server: any
  image in the store is served by its id at any offset, whatever was offered.
  Data: file[offset : offset + min(max_data_size, block_cap)] (shorter at the
  end). An id not in the store gets `unknown_image_status` (NO_IMAGE_AVAILABLE,
  as Silicon Labs' server), an offset at or past the end, or max_data_size 0,
  gets `past_end_status` (MALFORMED_COMMAND, as zigpy), each as an Image Block
  Response carrying only the status (block_error_form "response") or as a
  Default Response (block_error_form "default-response", Silicon Labs' form).
  After abort(addr): ABORT once.
- WAIT_FOR_DATA (throttling): every `wait_every`-th block request of a client,
  and every block request sooner than `min_block_period_ms` after the last
  block sent to that client, is answered WAIT_FOR_DATA with current_time
  (ZigBee UTC, or 0 when wait_utc is False: relative), request_time =
  current_time + the wait in whole seconds (wait_s, or the rest of the period
  rounded up) and minimum_block_period = min_block_period_ms (milliseconds, as
  in current ZCL revisions).
- response_delay_s (zigbee-herdsman's responseDelay): block responses to one
  client are sent at least that long after the previous one ("since_last",
  herdsman's rule), or that long after the request ("fixed"); via deadlines.
- Image Page Request, pages enabled: the page is sent as a burst of Image
  Block Responses (request's tsn, no default responses), the first at once
  (or after the response delay), the next every response_spacing ms
  (honour_page_spacing False: the response delay alone paces them, as
  herdsman). A new page request from the same client replaces the rest of
  the previous burst. Pages disabled: "silent" (nothing: the client falls back
  to block requests after its timeout; what the reference describes) or
  "default-response" (UNSUP_CLUSTER_COMMAND: Silicon Labs' server without its
  page-request plugin).
- Upgrade End Request: SUCCESS is answered with an Upgrade End Response
  echoing the request's image id, with current_time / upgrade_time per
  policy.upgrade_time: "now" 0/0 (zigpy), "plus_one" 0/1 (zigbee-herdsman),
  "delay:N" UTC now / now+N, "wait" UTC now / 0xFFFFFFFF (the CH on the GBCS
  11.1 route: activation by a later CS06). Any other status is recorded, and
  answered as policy.end_failure says: "default-response" (Default Response
  SUCCESS unless the request disabled default responses: the ZCL rule, as
  Silicon Labs), "silent" (herdsman), or "end-response" (zigpy answers every
  Upgrade End Request with an Upgrade End Response).
- Query Device Specific File: Query Device Specific File Response NO_IMAGE_AVAILABLE.
- Read Attributes (of the server's cluster): ClusterRevision 3, other ids
  UNSUPPORTED_ATTRIBUTE. A Read Attributes Response from a client (see
  read_attributes) is stored in its ClientState.attributes. Default Responses
  from clients are counted, not answered.
- Anything the codec refuses (short, malformed, unknown command) is answered
  with the Default Response the codec names (MALFORMED_COMMAND,
  UNSUP_CLUSTER_COMMAND, ...), except where none is due (unreadable header,
  wrong direction); frames for other clusters are ignored. receive() never
  raises: an internal error is logged, counted and recorded as an event.
- Every response disables default responses (as Silicon Labs' server does).

Speed: the block path is one codec decode, two dict lookups, a slice, one
struct pack and a concatenation (per-image prefix precomputed); nothing is
logged and no event is recorded per block (ClientState counters only).
"""
from __future__ import annotations

import logging
import math
import os
import struct
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from heapq import heappop, heappush
from itertools import count
from pathlib import Path
from typing import Callable, Iterable, Iterator

from bridge_emu.codec.ota_file import OtaFileError, OtaHeader, read_tolerant
from bridge_emu.codec.zcl import (OTA_CLUSTER_ID, UPGRADE_TIME_WAIT, WILDCARD_IMAGE_TYPE,
                                  WILDCARD_MANUFACTURER, AttributeId, DefaultResponse, Direction,
                                  Frame, ImageBlockAbort, ImageBlockRequest, ImageBlockWait,
                                  ImageNotify, ImagePageRequest, QueryDeviceSpecificFileRequest,
                                  QueryDeviceSpecificFileResponse, QueryNextImageRequest,
                                  QueryNextImageResponse, ReadAttributeRecord, ReadAttributes,
                                  ReadAttributesResponse, Status, UpgradeEndRequest,
                                  UpgradeEndResponse, ZclError, ZclHeader, decode,
                                  default_response_to, encode)

log = logging.getLogger(__name__)

ZIGBEE_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)


def zigbee_utc(when: datetime) -> int:
    """ZigBee UTC time: whole seconds since 2000-01-01 00:00:00 UTC."""
    return int((when - ZIGBEE_EPOCH).total_seconds())


#: Default origin of the virtual clock: time 0 is 2026-01-01 00:00:00 UTC.
DEFAULT_UTC_AT_ZERO = zigbee_utc(datetime(2026, 1, 1, tzinfo=timezone.utc))

BROADCAST_ALL = 0xFFFF          # every device, sleepy ones included
BROADCAST_RX_ON = 0xFFFD        # devices with the receiver on when idle
BROADCAST_ROUTERS = 0xFFFC      # routers and the coordinator
MAX_BLOCK_DATA = 254            # an octet string's length byte; 0xFF is ZCL's invalid string
CLUSTER_REVISION = 3

_C2S = Direction.CLIENT_TO_SERVER
_S2C = Direction.SERVER_TO_CLIENT
# Image Block Response, SUCCESS: frame control (cluster-specific, server->client,
# default response disabled), tsn, then a per-image 10-byte prefix (command id,
# status, manufacturer, image type, file version), file offset, data length.
_FC_RESPONSE = 0x01 | 0x08 | 0x10
_BLOCK_HEAD = struct.Struct("<BB10sIB")
_BLOCK_PREFIX = struct.Struct("<BBHHI")


# ---------------------------------------------------------------------- images


class OtaImage:
    """One servable OTA image: the file's bytes from the magic to total_image_size.

    name: the file name (or the name given with the bytes); header: the OtaHeader;
    notes: the tolerant reader's findings (a wrapper before the magic, trailing
    bytes, header-string notes...), as text.
    """
    __slots__ = ("name", "header", "data", "size", "manufacturer", "image_type",
                 "file_version", "min_hardware_version", "max_hardware_version",
                 "device_specific", "notes", "key", "block_prefix")

    def __init__(self, name: str, header: OtaHeader, data: bytes, notes: tuple[str, ...] = ()):
        self.name = name
        self.header = header
        self.data = data
        self.size = len(data)
        self.manufacturer = header.manufacturer
        self.image_type = header.image_type
        self.file_version = header.file_version
        self.min_hardware_version = header.min_hardware_version
        self.max_hardware_version = header.max_hardware_version
        self.device_specific = header.upgrade_file_destination is not None
        self.notes = notes
        self.key = (self.manufacturer, self.image_type, self.file_version)
        self.block_prefix = _BLOCK_PREFIX.pack(0x05, Status.SUCCESS, *self.key)

    def fits_hardware(self, hardware_version: int | None) -> bool:
        """True unless both the client's version and the file's range are known
        and the version is outside the range."""
        if hardware_version is None or self.min_hardware_version is None:
            return True
        return self.min_hardware_version <= hardware_version <= self.max_hardware_version

    def __repr__(self) -> str:
        hw = ("" if self.min_hardware_version is None else
              f" hw {self.min_hardware_version:#x}..{self.max_hardware_version:#x}")
        return (f"<OtaImage {self.name} {self.manufacturer:04X}-{self.image_type:04X}-"
                f"{self.file_version:08X}{hw} {self.size} bytes>")


class ImageStore:
    """OTA images indexed by id and by (manufacturer, image_type).

    Files are read with the tolerant reader; a file is skipped (logged, and
    listed in `skipped` as (name, reason)) when it has no readable header,
    holds fewer bytes than its total_image_size, or repeats an id already held
    with other bytes (the first one stays). A wrapper before the magic and
    bytes after total_image_size are dropped: what is served is the OTA file.
    """

    def __init__(self, images: Iterable[OtaImage] = ()):
        self.images: list[OtaImage] = []
        self.skipped: list[tuple[str, str]] = []
        self._by_id: dict[tuple[int, int, int], OtaImage] = {}
        self._by_type: dict[tuple[int, int], list[OtaImage]] = {}
        for image in images:
            self.add(image)

    @classmethod
    def from_folder(cls, path: str | os.PathLike, recursive: bool = True) -> "ImageStore":
        store = cls()
        store.load_folder(path, recursive)
        return store

    def __len__(self) -> int:
        return len(self.images)

    def __iter__(self) -> Iterator[OtaImage]:
        return iter(self.images)

    def __repr__(self) -> str:
        return f"<ImageStore {len(self.images)} images, {len(self.skipped)} skipped>"

    # -- loading

    def load_folder(self, path: str | os.PathLike, recursive: bool = True) -> list[OtaImage]:
        """Add every readable OTA file under path (sorted by name); returns those added."""
        root = Path(path)
        files = root.rglob("*") if recursive else root.iterdir()
        added = []
        for p in sorted(f for f in files if f.is_file()):
            image = self.add_file(p)
            if image is not None:
                added.append(image)
        return added

    def add_file(self, path: str | os.PathLike) -> OtaImage | None:
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            return self._skip(str(path), f"cannot read: {e}", found_magic=True)
        return self.add_bytes(data, str(path))

    def add_bytes(self, data: bytes, name: str = "<bytes>") -> OtaImage | None:
        """Read one OTA file from bytes; the OtaImage added, or None if skipped."""
        try:
            found = read_tolerant(data)
        except OtaFileError as e:
            return self._skip(name, e.reason, found_magic=e.kind != "magic")
        except Exception as e:          # the reader promises OtaFileError; stay safe anyway
            return self._skip(name, f"reader failed: {e!r}", found_magic=True)
        header = found.file.header
        total = header.total_image_size
        start = found.start
        data = bytes(data)
        if total is None or total < (header.header_length or 0):
            return self._skip(name, f"total_image_size {total} is shorter than the header",
                              found_magic=True)
        if len(data) - start < total:
            return self._skip(name, f"truncated: {len(data) - start} bytes after the magic, "
                                    f"total_image_size says {total}", found_magic=True)
        notes = tuple(f"{a.kind} at {a.offset}: {a.message}" for a in found.anomalies)
        return self.add(OtaImage(name, header, data[start:start + total], notes))

    def add(self, image: OtaImage) -> OtaImage | None:
        held = self._by_id.get(image.key)
        if held is not None:
            if held.data == image.data:
                return self._skip(image.name, f"same file as {held.name}", found_magic=False)
            return self._skip(image.name, f"id {image.key[0]:04X}-{image.key[1]:04X}-"
                                          f"{image.key[2]:08X} already held by {held.name} "
                                          "with other bytes", found_magic=True)
        self.images.append(image)
        self._by_id[image.key] = image
        same = self._by_type.setdefault((image.manufacturer, image.image_type), [])
        same.append(image)
        same.sort(key=lambda i: i.file_version, reverse=True)
        for note in image.notes:
            log.info("OTA image %s: %s", image.name, note)
        return image

    def _skip(self, name: str, reason: str, found_magic: bool) -> None:
        self.skipped.append((name, reason))
        (log.warning if found_magic else log.info)("OTA image %s skipped: %s", name, reason)
        return None

    # -- lookup

    def get(self, manufacturer: int, image_type: int, file_version: int) -> OtaImage | None:
        return self._by_id.get((manufacturer, image_type, file_version))

    def find(self, spec: "OtaImage | tuple[int, int, int] | str") -> OtaImage:
        """An image by OtaImage, id tuple, or file name (full, or its last part).
        Raises KeyError if the store does not hold it."""
        if isinstance(spec, OtaImage):
            if self._by_id.get(spec.key) is spec:
                return spec
            raise KeyError(f"{spec!r} is not in this store")
        if isinstance(spec, tuple):
            image = self._by_id.get(tuple(spec))
            if image is None:
                raise KeyError(f"no image with id {spec!r}")
            return image
        matches = [i for i in self.images
                   if i.name == spec or Path(i.name).name == spec or i.name.endswith(os.sep + spec)]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} images named {spec!r}")
        return matches[0]

    def select(self, manufacturer: int, image_type: int, current_version: int,
               hardware_version: int | None = None, version: str = "newer") -> OtaImage | None:
        """The image to offer a client, or None (rule in the module docstring)."""
        best = None
        for key in ((manufacturer, image_type), (WILDCARD_MANUFACTURER, image_type),
                    (manufacturer, WILDCARD_IMAGE_TYPE),
                    (WILDCARD_MANUFACTURER, WILDCARD_IMAGE_TYPE)):
            for image in self._by_type.get(key, ()):        # highest version first
                v = image.file_version
                if best is not None and v <= best.file_version:
                    break
                if image.device_specific or not image.fits_hardware(hardware_version):
                    continue
                if v > current_version if version == "newer" else v != current_version:
                    best = image
                    break
        return best


# ---------------------------------------------------------------------- policy

_UPGRADE_MODES = ("now", "plus_one", "wait")


@dataclass(frozen=True)
class Policy:
    """How the server behaves (details in the module docstring)."""
    name: str = "custom"
    block_cap: int = 64                 # image bytes per block at most (1..254)
    version: str = "newer"              # offer "newer" versions only, or "any" different one
    pages: bool = True                  # answer Image Page Requests with bursts of blocks
    page_refusal: str = "silent"        # pages False: "silent" or "default-response"
    honour_page_spacing: bool = True    # space page blocks by the request's response_spacing
    wait_every: int = 0                 # every Nth block request of a client: WAIT_FOR_DATA
    min_block_period_ms: int = 0        # per client: blocks sooner than this after the last: WAIT
    wait_s: int = 1                     # request_time - current_time for wait_every
    wait_utc: bool = True               # WAIT_FOR_DATA times as ZigBee UTC (False: current_time 0)
    response_delay_s: float = 0.0       # block responses delayed (herdsman's responseDelay)
    response_delay_mode: str = "since_last"   # "since_last" (herdsman) or "fixed"
    upgrade_time: str = "now"           # "now", "plus_one", "delay:N", "wait"
    utc_at_zero: int = DEFAULT_UTC_AT_ZERO    # ZigBee UTC of the virtual clock's time 0
    unknown_image_status: int = Status.NO_IMAGE_AVAILABLE
    past_end_status: int = Status.MALFORMED_COMMAND
    block_error_form: str = "response"  # "response" (Image Block Response) or "default-response"
    end_failure: str = "default-response"     # "default-response", "silent", "end-response"
    upgrade_delay_s: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        def bad(what: str) -> ValueError:
            return ValueError(f"Policy {self.name!r}: {what}")
        if not 1 <= self.block_cap <= MAX_BLOCK_DATA:
            raise bad(f"block_cap {self.block_cap} outside 1..{MAX_BLOCK_DATA}")
        mode = self.upgrade_time
        if mode.startswith("delay:"):
            try:
                delay = int(mode[6:])
            except ValueError:
                raise bad(f"upgrade_time {mode!r}: delay:N takes whole seconds") from None
            if not 0 <= delay < UPGRADE_TIME_WAIT:
                raise bad(f"upgrade_time {mode!r} out of range")
            object.__setattr__(self, "upgrade_delay_s", delay)
        elif mode not in _UPGRADE_MODES:
            raise bad(f"upgrade_time {mode!r}: want now, plus_one, delay:N or wait")
        for name, value, allowed in (
                ("version", self.version, ("newer", "any")),
                ("page_refusal", self.page_refusal, ("silent", "default-response")),
                ("response_delay_mode", self.response_delay_mode, ("since_last", "fixed")),
                ("block_error_form", self.block_error_form, ("response", "default-response")),
                ("end_failure", self.end_failure,
                 ("default-response", "silent", "end-response"))):
            if value not in allowed:
                raise bad(f"{name} {value!r}: want one of {', '.join(allowed)}")
        if self.wait_every < 0 or self.min_block_period_ms < 0 or self.wait_s < 0:
            raise bad("wait_every, min_block_period_ms and wait_s must be >= 0")
        if not 0 <= self.min_block_period_ms <= 0xFFFF:
            raise bad("min_block_period_ms must fit 16 bits")
        if self.response_delay_s < 0:
            raise bad("response_delay_s must be >= 0")
        for status in (self.unknown_image_status, self.past_end_status):
            if status in (Status.SUCCESS, Status.WAIT_FOR_DATA) or not 0 <= status <= 0xFF:
                raise bad(f"block error status {status!r} must be a status byte other than "
                          "SUCCESS and WAIT_FOR_DATA")

    @classmethod
    def preset(cls, name: str, **overrides) -> "Policy":
        """A named personality (PRESETS), with any fields overridden."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"no policy preset {name!r}; presets: {', '.join(PRESETS)}") from None
        return replace(base, **overrides) if overrides else base

    @property
    def throttled(self) -> bool:
        return bool(self.wait_every or self.min_block_period_ms)

    def utc(self, now: float) -> int:
        """ZigBee UTC (whole seconds) at virtual time now."""
        return int(self.utc_at_zero + now) & 0xFFFFFFFF

    def upgrade_times(self, now: float) -> tuple[int, int]:
        """(current_time, upgrade_time) of an Upgrade End Response sent at now."""
        mode = self.upgrade_time
        if mode == "now":
            return 0, 0
        if mode == "plus_one":
            return 0, 1
        current = self.utc(now)
        if mode == "wait":
            return current, UPGRADE_TIME_WAIT
        return current, min(current + self.upgrade_delay_s, UPGRADE_TIME_WAIT - 1)


PRESETS: dict[str, Policy] = {
    # zigpy (zigpy/ota/manager.py): 50-byte blocks, no WAIT_FOR_DATA, pages sent as
    # blocks spaced by response_spacing (no acknowledgement), Upgrade End answered
    # 0 / 0 whatever its status, MALFORMED_COMMAND for an offset past the end.
    "zigpy": Policy(name="zigpy", block_cap=50, pages=True, upgrade_time="now",
                    end_failure="end-response"),
    # zigbee-herdsman (src/controller/helpers/ota.ts; zigbee2mqtt's defaults):
    # 50-byte blocks, 250 ms between block responses, pages paced by that delay
    # alone, upgrade 0 / 1, nothing sent after a failed Upgrade End.
    "herdsman": Policy(name="herdsman", block_cap=50, pages=True, honour_page_spacing=False,
                       response_delay_s=0.25, response_delay_mode="since_last",
                       upgrade_time="plus_one", end_failure="silent"),
    # The Communications Hub on the GBCS 11.1 route: 64-byte blocks, upgrade_time
    # 0xFFFFFFFF (activation by CS06), and a Silicon Labs-style server otherwise:
    # no page support (UNSUP_CLUSTER_COMMAND), NO_IMAGE_AVAILABLE for unknown ids
    # and offsets past the end. Throttling is off unless configured:
    # Policy.preset("gbcs-ch", min_block_period_ms=..., wait_every=...).
    "gbcs-ch": Policy(name="gbcs-ch", block_cap=64, pages=False,
                      page_refusal="default-response", upgrade_time="wait",
                      past_end_status=Status.NO_IMAGE_AVAILABLE),
}


# ---------------------------------------------------------------------- clients


class ClientState:
    """What the server knows of one client (node address), for progress bars and tables.

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
    __slots__ = ("address", "offered", "serving", "bytes_served", "blocks_served",
                 "last_offset", "last_length", "first_block_at", "last_block_at", "waits",
                 "block_requests", "block_errors", "queries", "pages", "upgrade_end_status",
                 "upgrade_end_at", "upgrade_end_version", "current_version",
                 "hardware_version", "minimum_block_period", "attributes", "abort_pending",
                 "page_token", "next_send_at")

    def __init__(self, address: int):
        self.address = address
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
        self.abort_pending = False
        self.page_token = 0
        self.next_send_at = -math.inf     # herdsman pacing: no block response before this

    @property
    def progress(self) -> float:
        """Fraction of the offered (else the served) image reached by the last block."""
        image = self.offered or self.serving
        if image is None or self.last_offset is None or not image.size:
            return 0.0
        return min(1.0, (self.last_offset + self.last_length) / image.size)

    def __repr__(self) -> str:
        offered = "none" if self.offered is None else f"{self.offered.file_version:08X}"
        return (f"<ClientState 0x{self.address:04x} offered {offered} {self.blocks_served} blocks "
                f"{self.bytes_served} bytes end {self.upgrade_end_status!r}>")


# ---------------------------------------------------------------------- server

#: One record of OtaServer.events: (kind, address, detail, time). Kinds and details:
#: "query" (file_version offered, or None), "upgrade_end" (status), "block_error"
#: (status), "page" (file_offset), "page_refused" (file_offset), "notify" (payload
#: type), "malformed" (the Default Response status, or None when none was due),
#: "device_specific_query" (None), "error" (repr of an internal error).
Event = tuple[str, int, object, float]


class OtaServer:
    """The OTA Upgrade server as a Machine (see the module docstring)."""

    def __init__(self, store: ImageStore, policy: Policy | str = "zigpy", address: int = 0x0000,
                 on_event: Callable[[Event], None] | None = None):
        self.store = store
        self.policy = Policy.preset(policy) if isinstance(policy, str) else policy
        self.address = address
        self.on_event = on_event
        self.clients: dict[int, ClientState] = {}
        self.events: list[Event] = []
        self.overrides: dict[int, OtaImage | None] = {}   # None: offer this node nothing
        self.frames_in = 0
        self.ignored = 0            # frames for other clusters, or that need no answer
        self.malformed = 0          # frames the codec refused
        self.errors = 0             # internal errors caught in receive()/timer()
        self._out: list[tuple[int, int, bytes]] = []
        self._later: list[tuple] = []     # heap: (t, seq, dst, payload, token, offset, length)
        self._seq = count()
        self._tsn = 0
        self._by_id = store._by_id
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

    # -- Machine

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        """A frame from node src arrived. Never raises."""
        self.frames_in += 1
        if cluster != OTA_CLUSTER_ID:
            self.ignored += 1
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
            while later and later[0][0] <= now:
                _, _, dst, payload, token, offset, length = heappop(later)
                if token is not None:
                    st = clients[dst]
                    if token != st.page_token:
                        continue            # a newer page request replaced this burst
                    if offset is not None:
                        self._count_block(st, offset, length, now)
                out.append((dst, OTA_CLUSTER_ID, payload))
        except Exception as e:  # noqa: BLE001
            self._internal_error(None, e, now)

    def pop_outgoing(self) -> list[tuple[int, int, bytes]]:
        out = self._out
        if out:
            self._out = []
        return out

    def next_deadline(self) -> float | None:
        return self._later[0][0] if self._later else None

    # -- the emulator's controls

    def offer(self, address: int, image: "OtaImage | tuple[int, int, int] | str | None") -> OtaImage | None:
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
        st = self._client(address)
        st.abort_pending = True
        st.page_token += 1

    def notify(self, dst: int, now: float, payload_type: int = 0, query_jitter: int = 100,
               image: "OtaImage | tuple[int, int, int] | str | None" = None) -> bytes:
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
        self._event("notify", dst, payload_type, now)
        return payload

    def notify_all(self, now: float, addrs: Iterable[int] | None = None, payload_type: int = 0,
                   query_jitter: int = 100,
                   image: "OtaImage | tuple[int, int, int] | str | None" = None) -> None:
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

    # -- handlers

    def _client(self, address: int) -> ClientState:
        st = self.clients.get(address)
        if st is None:
            st = self.clients[address] = ClientState(address)
        return st

    def _on_block(self, src: int, h: ZclHeader, cmd: ImageBlockRequest, now: float) -> None:
        st = self.clients.get(src)
        if st is None:
            st = self._client(src)
        st.block_requests += 1
        if cmd.minimum_block_period is not None:
            st.minimum_block_period = cmd.minimum_block_period
        image = self._by_id.get((cmd.manufacturer, cmd.image_type, cmd.file_version))
        offset = cmd.file_offset
        n = cmd.max_data_size
        if image is None or st.abort_pending or offset >= image.size or not n:
            self._block_error(src, h, st, image, offset, n, now)
            return
        policy = self.policy
        if n > policy.block_cap:
            n = policy.block_cap
        if policy.throttled and self._wait(src, h, st, now):
            return
        chunk = image.data[offset:offset + n]
        n = len(chunk)
        payload = _BLOCK_HEAD.pack(_FC_RESPONSE, h.tsn, image.block_prefix, offset, n) + chunk
        st.serving = image
        if policy.response_delay_s:
            at = self._paced(st, now)
            if at > now:
                heappush(self._later, (at, next(self._seq), src, payload, None, None, None))
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
        policy = self.policy
        if policy.response_delay_mode == "fixed":
            return now + policy.response_delay_s
        at = st.next_send_at
        if at < now:
            at = now
        st.next_send_at = at + policy.response_delay_s
        return at

    def _wait(self, src: int, h: ZclHeader, st: ClientState, now: float) -> bool:
        """Answer WAIT_FOR_DATA if the policy throttles this request; True if it did."""
        policy = self.policy
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
        self._out.append((src, OTA_CLUSTER_ID,
                          encode(Frame.of(cmd, h.tsn, disable_default_response=True))))
        return True

    def _block_error(self, src: int, h: ZclHeader, st: ClientState, image: OtaImage | None,
                     offset: int, n: int, now: float) -> None:
        if st.abort_pending:
            st.abort_pending = False
            status = Status.ABORT
        elif image is None:
            status = self.policy.unknown_image_status
        else:
            status = self.policy.past_end_status
        st.block_errors += 1
        self._event("block_error", src, status, now)
        self._send_error(src, h, status)

    def _send_error(self, src: int, h: ZclHeader, status: int) -> None:
        if self.policy.block_error_form == "default-response":
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
                                      cmd.hardware_version, self.policy.version)
        st.offered = image
        if image is None:
            rsp = QueryNextImageResponse(Status.NO_IMAGE_AVAILABLE)
        else:
            rsp = QueryNextImageResponse(Status.SUCCESS, *image.key, image.size)
        self._out.append((src, OTA_CLUSTER_ID,
                          encode(Frame.of(rsp, h.tsn, disable_default_response=True))))
        self._event("query", src, None if image is None else image.file_version, now)

    def _on_page(self, src: int, h: ZclHeader, cmd: ImagePageRequest, now: float) -> None:
        st = self._client(src)
        policy = self.policy
        if not policy.pages:
            self._event("page_refused", src, cmd.file_offset, now)
            if policy.page_refusal == "default-response":
                self._out.append((src, OTA_CLUSTER_ID, encode(
                    default_response_to(h, Status.UNSUP_CLUSTER_COMMAND))))
            return
        st.pages += 1
        st.page_token += 1          # a new page replaces what is left of the last one
        image = self._by_id.get((cmd.manufacturer, cmd.image_type, cmd.file_version))
        offset = cmd.file_offset
        n = min(cmd.max_data_size, policy.block_cap)
        if image is None or st.abort_pending or offset >= image.size or not n or not cmd.page_size:
            self._block_error(src, h, st, image, offset, n, now)
            return
        self._event("page", src, offset, now)
        st.serving = image
        end = min(offset + cmd.page_size, image.size)
        spacing = cmd.response_spacing / 1000 if policy.honour_page_spacing else 0.0
        token = st.page_token
        t = now
        later = self._later
        while offset < end:
            chunk = image.data[offset:min(offset + n, end)]
            k = len(chunk)
            payload = _BLOCK_HEAD.pack(_FC_RESPONSE, h.tsn, image.block_prefix, offset, k) + chunk
            at = t
            if policy.response_delay_s:
                if policy.response_delay_mode == "fixed":
                    at = t + policy.response_delay_s
                else:
                    at = max(t, st.next_send_at)
                    st.next_send_at = at + policy.response_delay_s
            if at <= now:
                self._count_block(st, offset, k, now)
                self._out.append((src, OTA_CLUSTER_ID, payload))
            else:
                heappush(later, (at, next(self._seq), src, payload, token, offset, k))
            offset += k
            t = at + spacing

    def _on_upgrade_end(self, src: int, h: ZclHeader, cmd: UpgradeEndRequest, now: float) -> None:
        st = self._client(src)
        st.upgrade_end_status = cmd.status
        st.upgrade_end_at = now
        st.upgrade_end_version = cmd.file_version
        self._event("upgrade_end", src, cmd.status, now)
        policy = self.policy
        if cmd.status == Status.SUCCESS or policy.end_failure == "end-response":
            current, upgrade = policy.upgrade_times(now)
            rsp = UpgradeEndResponse(cmd.manufacturer, cmd.image_type, cmd.file_version,
                                     current, upgrade)
            frame = Frame.of(rsp, h.tsn, disable_default_response=True)
        elif policy.end_failure == "default-response" and not h.disable_default_response:
            frame = default_response_to(h, Status.SUCCESS)
        else:
            return
        self._out.append((src, OTA_CLUSTER_ID, encode(frame)))

    def _on_device_specific(self, src: int, h: ZclHeader, cmd: QueryDeviceSpecificFileRequest,
                            now: float) -> None:
        self._event("device_specific_query", src, None, now)
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
        self._event("malformed", src, status, now)

    def _internal_error(self, src: int | None, e: Exception, now: float) -> None:
        self.errors += 1
        log.exception("OTA server: internal error on a frame from %s",
                      "-" if src is None else f"0x{src:04x}", exc_info=e)
        self._event("error", -1 if src is None else src, repr(e), now)

    def _event(self, kind: str, address: int, detail: object, now: float) -> None:
        ev = (kind, address, detail, now)
        self.events.append(ev)
        if self.on_event is not None:
            try:
                self.on_event(ev)
            except Exception:  # noqa: BLE001 - an observer's bug must not stop the server
                log.exception("OTA server: on_event callback failed")

    def _next_tsn(self) -> int:
        self._tsn = (self._tsn + 1) & 0xFF
        return self._tsn
