"""A hostile OTA client, to fuzz OTA servers: it plays a plan of misbehaviours
(wrong and overlapping offsets, oversize maximum_data_size, odd page requests,
repeated or early Upgrade End, queries for unknown images, bursts, malformed
frames, sessions abandoned midway) and checks every answer against the ZCL OTA
rules. A sans-I/O Machine (bridge_emu.net.transport): frames and time in, frames
and a deadline out, so it meets a server over the simulated network, in process,
or (later) through a serial dongle. A finding is a result about the server, not
an error of this client.

    steps      Query(manufacturer, image_type, version, hardware_version)
               Block(offset, max_size, version_delta)    version_delta != 0: an image never offered
               Page(offset, page_size, max_size, spacing_ms, version_delta)
               End(status, version_delta)
               Raw(payload)                               any bytes on the OTA cluster
               Pause(seconds)
    Block, Page and End name the image the server last offered (by Query), or, before
    any offer, the query's ids with version 1.

The rules (ZCL 11.13; each finding names its rule):
    reply_malformed     every frame the server sends on the OTA cluster decodes
    tsn                 a response carries the TSN of a request this client sent
    offer_id            a Query Next Image Response SUCCESS offers the manufacturer and image
                        type asked for (or a wildcard), and a size above the OTA header's
    block_id            an Image Block Response SUCCESS is for the image asked for
    block_offset        ... at the offset asked for
    block_size          ... with no more data than maximum_data_size
    block_past_end      ... and none past the end of the image the server offered
    block_consistent    the same offset of the same image always gives the same bytes
    never_offered       no SUCCESS data for an image the server never offered
    page_window         blocks answering a page lie inside it
    end_id              an Upgrade End Response is for the image that ended, or a wildcard
    malformed_answered  a request the server could not have read gets no SUCCESS answer
"""
from __future__ import annotations

from dataclasses import dataclass, field

from bridge_emu.codec import zcl
from bridge_emu.codec.ota_file import FIXED_HEADER_SIZE
from bridge_emu.codec.zcl import Direction, Frame, Status

OTA = zcl.OTA_CLUSTER_ID


@dataclass(frozen=True)
class Query:
    manufacturer: int
    image_type: int
    version: int
    hardware_version: int | None = None


@dataclass(frozen=True)
class Block:
    offset: int
    max_size: int
    version_delta: int = 0


@dataclass(frozen=True)
class Page:
    offset: int
    page_size: int
    max_size: int
    spacing_ms: int = 0
    version_delta: int = 0


@dataclass(frozen=True)
class End:
    status: int = Status.SUCCESS
    version_delta: int = 0


@dataclass(frozen=True)
class Raw:
    payload: bytes


@dataclass(frozen=True)
class Pause:
    seconds: float


Step = Query | Block | Page | End | Raw | Pause


@dataclass(frozen=True)
class Finding:
    rule: str
    detail: str
    t: float


@dataclass
class _Asked:
    step: Step
    image: tuple[int, int, int]
    t: float


@dataclass
class HostileClient:
    """Plays `plan` from `start` on, one step every `gap_s` (Pause steps add to it)."""
    plan: list[Step]
    server: int = 0x0000
    gap_s: float = 0.05
    start: float = 0.0
    findings: list[Finding] = field(default_factory=list)
    heard: list[tuple[float, Frame]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._next = 0
        self._due = self.start
        self._tsn = 0
        self._asked: dict[int, _Asked] = {}        # tsn -> what that request asked
        self._out: list[tuple[int, int, bytes]] = []
        self._offered: dict[tuple[int, int, int], int] = {}     # image id -> size, as offered
        self._current: tuple[int, int, int] | None = None
        self._seen_blocks: dict[tuple[tuple[int, int, int], int], bytes] = {}
        self._pages: list[_Asked] = []
        self._query: Query | None = None

    # -- Machine

    def receive(self, src: int, cluster: int, payload: bytes, now: float) -> None:
        if cluster != OTA or src != self.server:
            return
        try:
            frame = zcl.decode(payload, Direction.SERVER_TO_CLIENT)
        except zcl.ZclError as e:
            self._find("reply_malformed", f"{payload.hex()}: {e}", now)
            return
        self.heard.append((now, frame))
        self._check(frame, now)

    def timer(self, now: float) -> None:
        while self._next < len(self.plan) and now >= self._due:
            step = self.plan[self._next]
            self._next += 1
            if isinstance(step, Pause):
                self._due = now + max(0.0, step.seconds)
                continue
            self._send(step, now)
            self._due = now + self.gap_s

    def next_deadline(self) -> float | None:
        return self._due if self._next < len(self.plan) else None

    def pop_outgoing(self):
        out, self._out = self._out, []
        return out

    @property
    def done(self) -> bool:
        return self._next >= len(self.plan)

    def resume_at(self, t: float) -> None:
        """Play the next step at t: a client made with start=inf waits for this (a
        network to play on: a stick that has joined)."""
        self._due = t

    # -- sending

    def _image(self, delta: int) -> tuple[int, int, int]:
        if self._current is not None:
            m, t, v = self._current
        elif self._query is not None:
            m, t, v = self._query.manufacturer, self._query.image_type, 1
        else:
            m, t, v = 0x1234, 0x0001, 1
        return m, t, (v + delta) & 0xFFFFFFFF

    def _send(self, step: Step, now: float) -> None:
        if isinstance(step, Raw):
            self._out.append((self.server, OTA, bytes(step.payload)))
            self._tsn_of_raw(step.payload, now)
            return
        if isinstance(step, Query):
            self._query = step
            cmd = zcl.QueryNextImageRequest(step.manufacturer, step.image_type, step.version, step.hardware_version)
            image = (step.manufacturer, step.image_type, step.version)
        elif isinstance(step, Block):
            image = self._image(step.version_delta)
            cmd = zcl.ImageBlockRequest(*image, step.offset & 0xFFFFFFFF, step.max_size & 0xFF)
        elif isinstance(step, Page):
            image = self._image(step.version_delta)
            cmd = zcl.ImagePageRequest(*image, step.offset & 0xFFFFFFFF, step.max_size & 0xFF,
                                       step.page_size & 0xFFFF, step.spacing_ms & 0xFFFF)
        else:
            image = self._image(step.version_delta)
            cmd = zcl.UpgradeEndRequest(step.status, *image)
        self._tsn = (self._tsn + 1) & 0xFF
        self._asked[self._tsn] = asked = _Asked(step, image, now)
        if isinstance(step, Page):
            self._pages.append(asked)
        self._out.append((self.server, OTA, zcl.encode(Frame.of(cmd, self._tsn))))

    def _tsn_of_raw(self, payload: bytes, now: float) -> None:
        """A raw frame's TSN, if it has one, counts as asked: a server may answer it
        (with a Default Response), but never with SUCCESS data."""
        if len(payload) >= 2:
            tsn = payload[3] if payload[0] & 0x04 and len(payload) >= 4 else payload[1]
            self._asked[tsn] = _Asked(Raw(payload), (0, 0, 0), now)

    # -- checking

    def _find(self, rule: str, detail: str, now: float) -> None:
        self.findings.append(Finding(rule, detail, round(now, 3)))

    def _check(self, frame: Frame, now: float) -> None:
        cmd = frame.command
        if isinstance(cmd, zcl.ImageNotify):
            return                                        # unsolicited: it answers nothing
        tsn = frame.header.tsn
        asked = self._asked.get(tsn)
        # a block answers the Block request of its TSN if its offset and size fit that request; else
        # a page whose window holds it, if any (pages may reuse any TSN, the server's own included)
        block_asked = asked is not None and isinstance(asked.step, Block)
        fits_block = block_asked and cmd.file_offset == asked.step.offset and len(cmd.data) <= asked.step.max_size \
            if isinstance(cmd, zcl.ImageBlockResponse) else False
        if isinstance(cmd, zcl.ImageBlockResponse) and not fits_block \
                and (not block_asked or self._page_for(cmd) is not None):
            # a page's blocks may carry TSNs of the server's own, and several pages may be
            # answered at once: a block belongs to any page of its image whose window holds it
            page = self._page_for(cmd)
            if page is not None:
                self._check_block(cmd, page, now, page=True)
            elif self._pages:
                self._find("page_window", f"block {cmd.file_offset}+{len(cmd.data)} of {self._image_of(cmd)} "
                                          "lies in no page asked for", now)
            else:
                self._find("tsn", f"ImageBlockResponse with TSN {tsn}, which no block request of ours had", now)
            return
        if asked is None:
            self._find("tsn", f"{type(cmd).__name__} with TSN {tsn}, which no request of ours had", now)
            return
        step = asked.step
        if isinstance(step, Raw):
            ok = isinstance(cmd, zcl.DefaultResponse | zcl.ImageBlockAbort) or getattr(cmd, "status", 1) != 0
            if not ok:
                self._find("malformed_answered", f"{step.payload.hex()} answered {type(cmd).__name__}", now)
            return
        if isinstance(cmd, zcl.QueryNextImageResponse) and cmd.status == Status.SUCCESS:
            q = step if isinstance(step, Query) else None
            if q is not None and (cmd.manufacturer not in (q.manufacturer, zcl.WILDCARD_MANUFACTURER)
                                  or cmd.image_type not in (q.image_type, zcl.WILDCARD_IMAGE_TYPE)):
                self._find("offer_id", f"asked {q.manufacturer:04x}/{q.image_type:04x}, offered "
                                       f"{cmd.manufacturer:04x}/{cmd.image_type:04x}", now)
            if cmd.image_size <= FIXED_HEADER_SIZE:
                self._find("offer_id", f"offered an image of {cmd.image_size} bytes", now)
            image = (cmd.manufacturer, cmd.image_type, cmd.file_version)
            self._offered[image] = cmd.image_size
            self._current = image
        elif isinstance(cmd, zcl.ImageBlockResponse):
            self._check_block(cmd, asked, now, page=False)
        elif isinstance(cmd, zcl.UpgradeEndResponse):
            m, t, v = asked.image
            if (cmd.manufacturer not in (m, zcl.WILDCARD_MANUFACTURER)
                    or cmd.image_type not in (t, zcl.WILDCARD_IMAGE_TYPE)
                    or cmd.file_version not in (v, zcl.WILDCARD_FILE_VERSION)):
                self._find("end_id", f"ended {m:04x}/{t:04x}/{v:08x}, answered for {cmd.manufacturer:04x}/"
                                     f"{cmd.image_type:04x}/{cmd.file_version:08x}", now)

    @staticmethod
    def _image_of(cmd) -> tuple[int, int, int]:
        return cmd.manufacturer, cmd.image_type, cmd.file_version

    def _page_for(self, cmd) -> _Asked | None:
        end = cmd.file_offset + len(cmd.data)
        fitting = [p for p in reversed(self._pages)
                   if p.step.offset <= cmd.file_offset and end <= p.step.offset + p.step.page_size
                   and len(cmd.data) <= p.step.max_size]
        for p in fitting:                     # the latest page it fits, of its image if one is
            if p.image == self._image_of(cmd):
                return p
        if fitting:
            return fitting[0]
        for p in reversed(self._pages):       # no page fits it whole: blame the latest that holds its start
            if p.step.offset <= cmd.file_offset < p.step.offset + max(1, p.step.page_size):
                return p
        return None

    def _check_block(self, cmd: zcl.ImageBlockResponse, asked: _Asked, now: float, *, page: bool) -> None:
        step = asked.step
        image = (cmd.manufacturer, cmd.image_type, cmd.file_version)
        if image != asked.image:
            self._find("block_id", f"asked {asked.image}, answered with {image}", now)
        if image not in self._offered:
            self._find("never_offered", f"{len(cmd.data)} bytes of {image} at {cmd.file_offset}, "
                                        "an image it never offered", now)
        max_size = getattr(step, "max_size", 0)
        if len(cmd.data) > max_size:
            self._find("block_size", f"{len(cmd.data)} bytes for maximum_data_size {max_size}", now)
        if page:
            lo, hi = step.offset, step.offset + step.page_size
            if not (lo <= cmd.file_offset and cmd.file_offset + len(cmd.data) <= hi):
                self._find("page_window", f"block {cmd.file_offset}+{len(cmd.data)} outside page "
                                          f"{lo}..{hi}", now)
        elif cmd.file_offset != step.offset:
            self._find("block_offset", f"asked offset {step.offset}, answered {cmd.file_offset}", now)
        size = self._offered.get(image)
        if size is not None and (cmd.file_offset + len(cmd.data) > size or (not cmd.data and cmd.file_offset >= size)):
            self._find("block_past_end", f"{len(cmd.data)} bytes at {cmd.file_offset} of a {size}-byte image",
                       now)
        key = (image, cmd.file_offset)
        before = self._seen_blocks.get(key)
        if before is not None:
            n = min(len(before), len(cmd.data))
            if before[:n] != cmd.data[:n]:
                self._find("block_consistent", f"offset {cmd.file_offset} of {image} gave other bytes", now)
        else:
            self._seen_blocks[key] = cmd.data


def summary(findings: list[Finding]) -> dict[str, int]:
    """How many findings per rule."""
    out: dict[str, int] = {}
    for f in findings:
        out[f.rule] = out.get(f.rule, 0) + 1
    return out
