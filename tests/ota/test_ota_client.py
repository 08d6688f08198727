"""The OTA Upgrade client (bridge_emu.ota.client) over a real download slot.

1. A hypothesis state machine drives one client, whose DownloadStore is a real
   DeviceStore over an emulated B4 bridge (copy-swap, 4 KiB sectors, 256-byte
   program pages), against a hostile server: it answers queries and serves the
   offered image, but also drops, duplicates, reorders and delays, answers
   WAIT_FOR_DATA, ABORT, wrong offsets, wrong image ids, oversize blocks,
   malformed and truncated frames, frames from another node, unsolicited
   answers, and cuts the power (Flash.arm_cut, or between operations); a reboot
   builds a new client from the device, as Bridge does. Invariants after every
   step: the client never raises (a PowerCut through the store is a reboot);
   flash outside the download blob's sectors and the state log never changes;
   the running image and boot state change only through activation (never
   here); FileOffset never goes backwards but by a reported failure or a resume
   after a reboot, which restarts within one flash page of what was written and
   never past a byte the flash does not hold; DownloadComplete means the slot
   holds exactly the served file, and nothing activates before verified(True).
   At the end a well-behaved server (the real OtaServer) must take the client
   to activation: it never gets stuck. And the client's state says it all:
   its ImageUpgradeStatus, which timer runs (client_states.TIMERS) and whether
   it holds an image follow from it.
2. Unit behaviours against a scripted server, on virtual time.
"""
from __future__ import annotations

import re
import sys

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bridge_emu.codec import firmware, ota_file, zcl
from bridge_emu.codec.zcl import (
    AttributeId,
    DefaultResponse,
    Direction,
    Frame,
    ImageBlockAbort,
    ImageBlockRequest,
    ImageBlockResponse,
    ImageBlockWait,
    ImageNotify,
    ImagePageRequest,
    ImageUpgradeStatus,
    QueryNextImageRequest,
    QueryNextImageResponse,
    ReadAttributes,
    ReadAttributesResponse,
    Status,
    UpgradeActivationPolicy,
    UpgradeEndRequest,
    UpgradeEndResponse,
    UpgradeTimeoutPolicy,
)
from bridge_emu.core._ffi import SANITIZED, ffi, lib
from bridge_emu.core.device import Device
from bridge_emu.core.ota_verify import verify_ota_in_flash
from bridge_emu.emulator.bridge import DeviceStore
from bridge_emu.emulator.factory import factory_program
from bridge_emu.emulator.profiles import profile
from bridge_emu.errors import PowerCut
from bridge_emu.keys import key_paths, load_private_key
from bridge_emu.ota import client as oc
from bridge_emu.ota.client import ClientConfig, ClientState, OtaClient, max_data_size_for
from bridge_emu.ota.client_states import TIMERS
from bridge_emu.ota.server import ImageStore, OtaServer, Policy
from bridge_emu.tools import imagetool
from support.paths import IMAGES

pytestmark = pytest.mark.native

KEYS = IMAGES / "keys"
MANUFACTURER_KEY = load_private_key(key_paths(KEYS, "manufacturer").private)
SUPPLIER_KEY = load_private_key(key_paths(KEYS, "supplier").private)
B4 = profile("B4")
HUB, ME, STRANGER = 0x0000, 0x1004, 0x2B2B
OTA = zcl.OTA_CLUSTER_ID
SERVER_ALLOWED, OUT_OF_BAND_ONLY = UpgradeActivationPolicy.SERVER_ALLOWED, UpgradeActivationPolicy.OUT_OF_BAND_ONLY
APPLY_AFTER_TIMEOUT, DO_NOT_APPLY = UpgradeTimeoutPolicy.APPLY_AFTER_TIMEOUT, UpgradeTimeoutPolicy.DO_NOT_APPLY
C2S, S2C = Direction.CLIENT_TO_SERVER, Direction.SERVER_TO_CLIENT

# small firmware files (the committed ones are 120 KB: too slow for hundreds of runs)
CURRENT = imagetool.build(imagetool.BuildSpec("B4", "1.0.0", 1, payload_size=1200),
                          MANUFACTURER_KEY, SUPPLIER_KEY)[1]
NEW = imagetool.build(imagetool.BuildSpec("B4", "1.1.0", 2, payload_size=2200),
                      MANUFACTURER_KEY, SUPPLIER_KEY)[1]
HEADER = ota_file.read_strict(NEW, ota_file.BodyKind.GBCS).header
HDR_LEN = HEADER.header_length
ID = (HEADER.manufacturer, HEADER.image_type, HEADER.file_version)
OTHER_ID = (HEADER.manufacturer, HEADER.image_type, HEADER.file_version + 1)
V_CURRENT = firmware.file_version("1.0.0")
SECTOR = B4.geometry.regions[0].size
PAGE = B4.geometry.page_size


def new_device() -> Device:
    dev = Device.create(None, B4.geometry, B4.layout(), keys=[MANUFACTURER_KEY.public_key()])
    factory_program(dev, CURRENT)
    return dev


def config(**kw) -> ClientConfig:
    base = dict(manufacturer=B4.manufacturer, image_type=B4.image_type, current_file_version=V_CURRENT,
                hardware_version=B4.hw_version, server=HUB, max_data_size=max_data_size_for(82))
    base.update(kw)
    return ClientConfig(**base)


def blob_addr(dev: Device) -> int:
    """Flash address of file byte 0 in the download slot, from the layout (copy-swap:
    the secondary slot, the image at image_off, the OTA header just before it)."""
    return dev.image_addr(1) - HDR_LEN


def core_blob_addr(dev: Device) -> int | None:
    out = ffi.new("uint32_t *")
    return None if lib.be_dl_addr(dev.ctx, out) else int(out[0])


def slot_bytes(dev: Device, n: int = len(NEW)) -> bytes:
    return dev.flash.contents()[blob_addr(dev):blob_addr(dev) + n]


BLOB_ADDR = blob_addr(new_device())


def resume_floor(written: int) -> int:
    """The least resume offset a store may give after `written` file bytes went in
    whole: the start of the flash page (pages are flash addresses; the blob starts
    mid-page) holding the last of those bytes that is not 0xFF."""
    last = len(NEW[:written].rstrip(b"\xff")) - 1
    if last < 0:
        return 0
    a = BLOB_ADDR + last
    return max(0, a - a % PAGE - BLOB_ADDR)


# ------------------------------------------------------------------ helpers


def frame(cmd, tsn: int = 1, **kw) -> bytes:
    return zcl.encode(Frame.of(cmd, tsn, **kw))


def sent(client: OtaClient) -> list:
    """The client's frames, decoded as a server reads them (all to the hub, OTA cluster)."""
    out = []
    for dst, cluster, payload in client.pop_outgoing():
        assert (dst, cluster) == (HUB, OTA)
        out.append(zcl.decode(payload, C2S))
    return out


def commands(frames) -> list:
    return [f.command for f in frames]


def send(client: OtaClient, cmd, now: float, src: int = HUB, tsn: int = 1, **kw) -> None:
    client.receive(src, OTA, frame(cmd, tsn, **kw), now)


def block(offset: int, n: int, image_id=ID, data: bytes | None = None) -> ImageBlockResponse:
    return ImageBlockResponse(*image_id, offset, NEW[offset:offset + n] if data is None else data)


def offer(size: int = len(NEW), image_id=ID) -> QueryNextImageResponse:
    return QueryNextImageResponse(Status.SUCCESS, *image_id, size)


def of_type(events, cls) -> list:
    return [e for e in events if isinstance(e, cls)]


def good_answers(f, cap: int = 64, pages: bool = True) -> list[bytes]:
    """What a well-behaved server answers (pages as a burst of blocks)."""
    cmd = f.command
    tsn = f.header.tsn
    if isinstance(cmd, QueryNextImageRequest):
        return [frame(offer(), tsn)]
    if isinstance(cmd, (ImageBlockRequest, ImagePageRequest)):
        if (cmd.manufacturer, cmd.image_type, cmd.file_version) != ID:
            return [frame(ImageBlockAbort(Status.NO_IMAGE_AVAILABLE), tsn)]
        if cmd.file_offset >= len(NEW) or not cmd.max_data_size:
            return [frame(ImageBlockAbort(Status.MALFORMED_COMMAND), tsn)]
        n = min(cmd.max_data_size, cap)
        if isinstance(cmd, ImageBlockRequest):
            return [frame(block(cmd.file_offset, n), tsn)]
        if not pages:
            return []
        end = min(len(NEW), cmd.file_offset + cmd.page_size)
        return [frame(block(o, min(n, end - o)), tsn) for o in range(cmd.file_offset, end, n)]
    return []


def download(client: OtaClient, now: float = 0.0, *, cap: int = 64, pages: bool = True,
             limit: int = 5000) -> tuple[float, list, list]:
    """Run the client against a well-behaved server until DownloadComplete.
    Returns (now, events, requests the client sent)."""
    events, requests = [], []
    for _ in range(limit):
        events += client.pop_events()
        if of_type(events, oc.DownloadComplete):
            return now, events, requests
        frames = sent(client)
        if not frames:
            deadline = client.next_deadline()
            assert deadline is not None, "client stuck"
            now = max(now, deadline)
            client.timer(now)
            continue
        requests += frames
        for f in frames:
            for payload in good_answers(f, cap, pages):
                client.receive(HUB, OTA, payload, now)
    raise AssertionError("download did not complete")


def downloaded_client(**kw) -> tuple[OtaClient, Device, float]:
    """A client that downloaded NEW and was told it verified: its Upgrade End
    Request SUCCESS is out (and popped)."""
    dev = new_device()
    client = OtaClient(config(**kw), DeviceStore(dev), 0.0)
    client.query_now(0.0)
    now, _, _ = download(client)
    assert slot_bytes(dev) == NEW
    client.verified(True, now)
    ends = commands(sent(client))
    assert ends == [UpgradeEndRequest(Status.SUCCESS, *ID)]
    return client, dev, now


# ---------------------------------------------------------- the hostile peer


class TracingStore(DeviceStore):
    """The real DeviceStore, remembering the last call (to reason about a cut)."""

    def __init__(self, device: Device):
        super().__init__(device)
        self.last: tuple = ()

    def begin(self, size, image_offset):
        self.last = ("begin", size)
        super().begin(size, image_offset)

    def write(self, offset, data):
        self.last = ("write", offset, len(data))
        super().write(offset, data)

    def discard(self):
        self.last = ("discard",)
        super().discard()


MISBEHAVIOURS = ("drop", "wait", "wait_utc", "abort", "no_image", "wrong_offset", "wrong_image",
                 "oversize", "empty", "truncated", "duplicate", "delay", "other_source")
INJECTIONS = ("random", "truncated_block", "other_source_block", "other_cluster", "notify",
              "notify_running", "read_attributes", "end_response", "query_response",
              "query_no_image", "default_response", "wait", "abort")


class HostileOta(RuleBasedStateMachine):
    """One client, one real device, one hostile server, on virtual time."""

    def __init__(self):
        super().__init__()
        self.device = new_device()
        self.baseline = self.device.flash.contents()
        self.running = self.device.running_image()
        self.flash_ops = None           # flash writes and erases at the last check
        self.now = 0.0
        self.inbox: list = []           # decoded client requests the server has not handled
        self.inflight: list = []        # (src, cluster, payload) on their way to the client
        self.delayed: list = []         # answers held back, delivered late by `release`
        self.client: OtaClient | None = None
        self.cfg: ClientConfig | None = None
        self.pages_ok = True            # the server answers page requests (with bursts)
        self.boots = 0
        self.failed = False             # a DownloadFailed in the current step
        self.rebooted = False           # a reboot in the current step
        self.last = (None, 0)           # (image, offset) after the previous step
        self.awaiting_verify = False
        self.verified_ok = False
        self.activated = False
        a = blob_addr(self.device)
        self.blob = (a, a + len(NEW))
        self.blob_sectors = (a - a % SECTOR, -(-(a + len(NEW)) // SECTOR) * SECTOR)
        log = self.device.config.layout.log
        self.log_sectors = [(int(x), int(x) + SECTOR) for x in log]

    # -- plumbing

    @initialize(max_data=st.sampled_from([17, 50, 64, 65]), pages=st.booleans(),
                seed=st.integers(0, 2 ** 16), mbp=st.sampled_from([0, 0, 250]),
                max_timeouts=st.sampled_from([2, 10]), end_max_tries=st.sampled_from([2, 10]),
                activation_policy=st.sampled_from([SERVER_ALLOWED, SERVER_ALLOWED, OUT_OF_BAND_ONLY]),
                server_pages=st.booleans())
    def start(self, max_data, pages, seed, mbp, max_timeouts, end_max_tries, activation_policy, server_pages):
        self.pages_ok = server_pages
        self.cfg = config(max_data_size=max_data, use_pages=pages, page_size=256, seed=seed,
                          minimum_block_period_ms=mbp, max_timeouts=max_timeouts,
                          end_max_tries=end_max_tries, activation_policy=activation_policy)
        self._boot_client()

    def _boot_client(self):
        self.store = TracingStore(self.device)
        self.boots += 1
        cfg = ClientConfig(**{**vars(self.cfg), "seed": self.cfg.seed * 31 + self.boots})
        self.awaiting_verify = self.verified_ok = self.activated = False
        self.client = OtaClient(cfg, self.store, self.now)
        self.client.query_now(self.now)
        self._collect()

    def _call(self, fn, *args) -> list:
        """Call into the client; a PowerCut is a reboot. Returns the frames it sent."""
        try:
            fn(*args)
        except PowerCut:
            self._reboot(self.store.last)
            return []
        return self._collect()

    def _reboot(self, cut: tuple | None):
        """Power off (cut: the store call the cut fell in; None: between operations),
        power on, boot, and a new client from what the flash holds."""
        old = self.client
        state = self.device.state.state
        if cut and cut[0] == "write":
            written = cut[1]                      # bytes before the write that was cut
            upto = cut[1] + cut[2]
        elif cut is None and state == "downloading" and old.image is not None:
            written = upto = old.offset
        else:
            written, upto = 0, len(NEW)
        self.device.power_cycle()
        res = self.device.boot()
        assert not {"installed", "reverted", "resumed"} & set(res.actions), res.actions
        assert self.device.running_slot == 0 and self.device.running_image() == self.running
        self.rebooted = True
        self.inbox = []
        self._boot_client()
        c = self.client
        if c.status in (ImageUpgradeStatus.DOWNLOAD_IN_PROGRESS, ImageUpgradeStatus.DOWNLOAD_COMPLETE) \
                and c.image is not None and c.offset:
            # resumed: never past a byte the flash does not hold as the file has it
            assert c.image == oc.ImageId(*ID)
            assert c.offset <= upto
            assert slot_bytes(self.device, c.offset) == NEW[:c.offset]
            resumed = True
        else:
            resumed = False
        event(f"reboot: {'resumed' if resumed else 'fresh'} ({cut[0] if cut else 'between operations'})")
        floor = resume_floor(written)
        if old is not None and old.image == oc.ImageId(*ID) and floor >= HDR_LEN and state == "downloading":
            assert resumed, f"a download with {written} bytes in flash was not resumed"
            assert c.offset >= floor, (c.offset, floor, written)

    def _collect(self) -> list:
        c = self.client
        frames = []
        for dst, cluster, payload in c.pop_outgoing():
            assert (dst, cluster) == (HUB, OTA)
            f = zcl.decode(payload, C2S)            # everything it sends is well formed
            frames.append(f)
            cmd = f.command
            if isinstance(cmd, (ImageBlockRequest, ImagePageRequest)):
                assert 0 < cmd.max_data_size <= self.cfg.max_data_size
                assert cmd.file_offset <= c.offset or c.image is None
        self.inbox += frames
        for ev in c.pop_events():
            self._event(ev)
        return frames

    def _event(self, ev):
        why = re.sub(r"0x[0-9a-f]+|\d+", "N", ev.reason.split(":")[0]) if hasattr(ev, "reason") else ""
        event(f"{type(ev).__name__} {why}".strip())
        if isinstance(ev, oc.DownloadStarted):
            self.verified_ok = self.awaiting_verify = False
        elif isinstance(ev, oc.DownloadComplete):
            assert ev.image == oc.ImageId(*ID) and ev.size == len(NEW)
            assert slot_bytes(self.device) == NEW, "DownloadComplete, but the slot is not the file"
            self.awaiting_verify = True
        elif isinstance(ev, oc.DownloadFailed):
            self.failed = True
        elif isinstance(ev, (oc.Activate, oc.UpgradeScheduled, oc.WaitingForActivation)):
            assert self.verified_ok, f"{ev} before the device verified the image"
            if isinstance(ev, oc.Activate):
                self.activated = True

    def _deliver(self, src, cluster, payload):
        self._call(self.client.receive, src, cluster, payload, self.now)

    def _answer_to(self, f) -> list:
        return [(HUB, OTA, p) for p in good_answers(f, pages=self.pages_ok)]

    # -- the server's rules

    @precondition(lambda self: self.inbox)
    @rule(i=st.integers(0, 3))
    def serve(self, i):
        """Answer a request (mostly the oldest) as a good server would."""
        f = self.inbox.pop(min(i, len(self.inbox) - 1) if i == 3 else 0)
        if isinstance(f.command, UpgradeEndRequest) and f.command.status == Status.SUCCESS:
            return  # answered by answer_end
        self.inflight += self._answer_to(f)

    @precondition(lambda self: self.inbox)
    @rule(kind=st.sampled_from(MISBEHAVIOURS), n=st.integers(0, 300))
    def misbehave(self, kind, n):
        f = self.inbox.pop(0)
        cmd, tsn = f.command, f.header.tsn
        good = self._answer_to(f)
        if kind == "drop" or not isinstance(cmd, (ImageBlockRequest, ImagePageRequest)):
            return
        off = cmd.file_offset
        size = min(cmd.max_data_size, 64)
        out = []
        if kind == "wait":
            out = [frame(ImageBlockWait(0, n % 4, n % 700), tsn)]
        elif kind == "wait_utc":
            out = [frame(ImageBlockWait(800_000_000, 800_000_000 + n, 1000), tsn)]
        elif kind == "abort":
            out = [frame(ImageBlockAbort(Status.ABORT), tsn)]
        elif kind == "no_image":
            out = [frame(ImageBlockAbort(Status.NO_IMAGE_AVAILABLE), tsn)]
        elif kind == "wrong_offset":
            o = (off + 1 + n) % len(NEW)
            out = [frame(block(o, size), tsn)]
        elif kind == "wrong_image":
            out = [frame(block(off, size, image_id=OTHER_ID), tsn)]
        elif kind == "oversize":
            out = [frame(block(off, self.cfg.max_data_size + 1 + n % 20,
                               data=(NEW + bytes(300))[off:off + self.cfg.max_data_size + 1 + n % 20]), tsn)]
        elif kind == "empty":
            out = [frame(block(off, 0, data=b""), tsn)]
        elif kind == "truncated":
            out = [p[:n % len(p)] for _, _, p in good]
        elif kind == "duplicate":
            out = [p for _, _, p in good] * 2
        elif kind == "delay":
            self.delayed += good
            return
        elif kind == "other_source":
            self.inflight += [(STRANGER, OTA, p) for _, _, p in good]
            return
        self.inflight += [(HUB, OTA, p) for p in out]

    @precondition(lambda self: self.inbox)
    @rule(mode=st.sampled_from(["wait", "now", "plus_one", "delay", "past"]))
    def answer_end(self, mode):
        """Answer the oldest request if it is an Upgrade End Request (else drop it)."""
        f = self.inbox.pop(0)
        if not isinstance(f.command, UpgradeEndRequest):
            return
        current, upgrade = {"wait": (800_000_000, zcl.UPGRADE_TIME_WAIT), "now": (0, 0), "plus_one": (0, 1),
                            "delay": (800_000_000, 800_007_200), "past": (800_000_000, 799_000_000)}[mode]
        self.inflight.append((HUB, OTA, frame(UpgradeEndResponse(*ID, current, upgrade), f.header.tsn)))

    @precondition(lambda self: self.inflight)
    @rule(i=st.integers(0, 10), keep=st.sampled_from([False, False, False, True]))
    def deliver(self, i, keep):
        """Deliver a frame: the oldest mostly, another one (reordered) sometimes, and
        sometimes keep it to deliver again (duplicate)."""
        j = 0 if i < 6 else i % len(self.inflight)
        item = self.inflight[j] if keep else self.inflight.pop(j)
        before = (self.client.image, self.client.offset)
        src = item[0]
        self._deliver(*item)
        if src != HUB and not self.rebooted:
            assert (self.client.image, self.client.offset) == before, "a stranger's frame was used"

    @precondition(lambda self: self.delayed)
    @rule(i=st.integers(0, 10))
    def release(self, i):
        """A held-back answer arrives, late and out of order."""
        self.inflight.append(self.delayed.pop(i % len(self.delayed)))

    @rule(kind=st.sampled_from(INJECTIONS), data=st.binary(max_size=40), n=st.integers(0, 255))
    def inject(self, kind, data, n):
        """Frames nobody asked for."""
        c = self.client
        off = c.offset if c.offset < len(NEW) else 0
        if kind == "random":
            self._deliver(HUB, OTA, data)
        elif kind == "truncated_block":
            p = frame(block(off, 40), n)
            self._deliver(HUB, OTA, p[:n % len(p)])
        elif kind in ("other_source_block", "other_cluster"):
            before = (c.image, c.offset, c.status)
            src, cluster = (STRANGER, OTA) if kind == "other_source_block" else (HUB, 0x0006)
            self._deliver(src, cluster, frame(block(off, min(40, len(NEW) - off)), n))
            if not self.rebooted:
                assert (c.image, c.offset, c.status) == before
        elif kind == "notify":
            self._deliver(HUB, OTA, frame(ImageNotify(max(1, n % 101), *ID[:n % 4]), n))
        elif kind == "notify_running":
            before = len(self.inbox)
            self._deliver(HUB, OTA, frame(ImageNotify(100, ID[0], ID[1], V_CURRENT), n))
            assert len(self.inbox) == before, "a notify for the running version was answered"
        elif kind == "read_attributes":
            ids = (AttributeId.FILE_OFFSET, AttributeId.IMAGE_UPGRADE_STATUS,
                   AttributeId.CURRENT_FILE_VERSION, 0x7777)
            out = self._call(c.receive, HUB, OTA, frame(ReadAttributes(ids), n, direction=S2C), self.now)
            if self.client is c:
                (resp,) = [f for f in out if isinstance(f.command, ReadAttributesResponse)]
                self.inbox.remove(resp)
                assert resp.header.tsn == n
                vals = {r.attribute_id: r.value for r in resp.command.records}
                assert vals[AttributeId.FILE_OFFSET] == c.offset
                assert vals[AttributeId.IMAGE_UPGRADE_STATUS] == c.status
                assert vals[AttributeId.CURRENT_FILE_VERSION] == V_CURRENT
                assert resp.command.records[3].status == Status.UNSUPPORTED_ATTRIBUTE
        elif kind == "end_response":
            self._deliver(HUB, OTA, frame(UpgradeEndResponse(0xFFFF, 0xFFFF, 0xFFFFFFFF, 0, n % 3), n))
        elif kind == "query_response":
            self._deliver(HUB, OTA, frame(offer(), n))
        elif kind == "query_no_image":
            self._deliver(HUB, OTA, frame(QueryNextImageResponse(n if n not in (0,) else 0x98), n))
        elif kind == "default_response":
            self._deliver(HUB, OTA, frame(DefaultResponse(1, Status.NO_IMAGE_AVAILABLE), n, direction=S2C))
        elif kind == "wait":
            self._deliver(HUB, OTA, frame(ImageBlockWait(0, n % 3, n), n))
        elif kind == "abort":
            self._deliver(HUB, OTA, frame(ImageBlockAbort(Status.ABORT), n))

    @rule()
    def to_deadline(self):
        d = self.client.next_deadline()
        if d is not None:
            self.now = max(self.now, d)
            self._call(self.client.timer, self.now)

    @rule(dt=st.floats(0, 20))
    def wait(self, dt):
        self.now += dt
        self._call(self.client.timer, self.now)

    @rule(n=st.integers(1, 40))
    def cooperate(self, n):
        """A stretch of good behaviour: answers delivered in order, timers run."""
        for _ in range(n):
            if self.inflight:
                self._deliver(*self.inflight.pop(0))
            elif self.inbox:
                self.serve(0)
            else:
                self.to_deadline()
            self._check()

    @precondition(lambda self: self.awaiting_verify)
    @rule()
    def verify(self):
        """The device checked the image (the slot equals the file: asserted at DownloadComplete)."""
        self.awaiting_verify = False
        self.verified_ok = True
        out = self._call(self.client.verified, True, self.now)
        assert commands(out) == [UpgradeEndRequest(Status.SUCCESS, *ID)]

    @rule(n=st.integers(1, 3), tear=st.sampled_from(["none", "prefix", "bits"]), seed=st.integers(0, 2 ** 32 - 1))
    def arm_cut(self, n, tear, seed):
        self.device.flash.arm_cut(n, tear, seed)

    @rule()
    def power_off(self):
        if not self.device.flash.cut:
            self._reboot(None)

    # -- invariants

    @invariant()
    def _check(self):
        if self.client is None:
            return
        dev = self.device
        stats = dev.flash.stats
        ops = (stats["writes"], stats["erases"])
        if ops != self.flash_ops:              # (the flash changed only if it was written or erased)
            self.flash_ops = ops
            now = dev.flash.contents()
            keep = [(0, self.log_sectors[0][0]), (self.log_sectors[0][1], self.log_sectors[1][0]),
                    (self.log_sectors[1][1], self.blob_sectors[0]), (self.blob_sectors[1], len(now))]
            assert self.log_sectors[0][1] <= self.log_sectors[1][0] <= self.blob_sectors[0]
            for a, b in keep:
                assert now[a:b] == self.baseline[a:b], f"flash changed outside the download slot at 0x{a:x}.."
            for a, b in ((self.blob_sectors[0], self.blob[0]), (self.blob[1], self.blob_sectors[1])):
                assert set(now[a:b]) <= {0xFF} or now[a:b] == self.baseline[a:b]
        assert dev.state.state in ("confirmed", "downloading"), dev.state
        assert dev.running_slot == 0
        if dev.state.state == "downloading":
            assert core_blob_addr(dev) == self.blob[0] and dev.download_size == len(NEW)
        c = self.client
        assert c.status == c.state.upgrade_status
        timers = TIMERS[c.state]
        assert (c.next_timer() in timers) if timers else c.next_timer() is None, (c.state, c.next_timer())
        assert (c.next_deadline() is None) == (c.next_timer() is None)
        assert (c.image is None) == (c.state is ClientState.IDLE)
        image, offset = self.last
        if not self.rebooted and not self.failed and c.image is not None and c.image == image:
            assert c.offset >= offset, f"FileOffset went back from {offset} to {c.offset}"
        self.last = (c.image, c.offset)
        self.rebooted = self.failed = False

    def teardown(self):
        if self.client is None or sys.exc_info()[0] is not None:
            return  # not started, or a rule failed: that failure is the report
        self.device.flash.disarm()
        self.inflight, self.delayed, self.inbox = [], [], []
        self._check()
        # a good server (the real one) must take it to activation: the client is never stuck
        store = ImageStore()
        store.add_bytes(NEW, "new")
        server = OtaServer(store, Policy(name="good", pages=True, upgrade_time="now"), address=HUB)
        for _ in range(20_000):
            if self.activated or (self.verified_ok and self.cfg.activation_policy is OUT_OF_BAND_ONLY
                                  and self.client.status == ImageUpgradeStatus.WAITING_TO_UPGRADE_VIA_EXTERNAL_EVENT):
                return
            if self.awaiting_verify:
                self.verify()
            requests, self.inbox = self.inbox, []
            for f in requests:
                server.receive(ME, OTA, zcl.encode(f), self.now)
            answers = server.pop_outgoing()
            for dst, cluster, payload in answers:
                assert dst == ME
                self._deliver(HUB, cluster, payload)
            if not requests and not answers and not self.inbox and not self.awaiting_verify:
                c = self.client
                times = [t for t in (c.next_deadline(), server.next_deadline()) if t is not None]
                assert times, f"client stuck: {c.status!r}"
                self.now = max(self.now, min(times))
                server.timer(self.now)
                self._call(c.timer, self.now)
            self._check()
        raise AssertionError("no activation with a good server")


HostileOta.TestCase.settings = settings(max_examples=80 if SANITIZED else 300, stateful_step_count=60, deadline=None,
                                        suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.filter_too_much])
TestHostileServer = HostileOta.TestCase


# ------------------------------------------------------------ unit behaviours


def fresh(**kw) -> tuple[OtaClient, Device]:
    dev = new_device()
    return OtaClient(config(**kw), DeviceStore(dev), 0.0), dev


def start_download(client: OtaClient, now: float = 0.0, until: int = 0) -> list:
    """Query, take the offer, and answer blocks until FileOffset >= until.
    Returns the client's unanswered requests."""
    client.query_now(now)
    (q,) = sent(client)
    assert isinstance(q.command, QueryNextImageRequest)
    send(client, offer(), now, tsn=q.header.tsn)
    requests = sent(client)
    while client.offset < until:
        (r,) = requests
        for payload in good_answers(r):
            client.receive(HUB, OTA, payload, now)
        requests = sent(client)
    return requests


def run_with(server: OtaServer, client: OtaClient, now: float, until, limit: int = 100_000):
    """Client and a real OtaServer, frames delivered at once, virtual time jumping
    to the next deadline. Returns (now, [(time, frame the client sent)], events)."""
    log, events = [], []
    for _ in range(limit):
        events += client.pop_events()
        if until(events):
            return now, log, events
        out = client.pop_outgoing()
        for _, cluster, payload in out:
            log.append((now, zcl.decode(payload, C2S)))
            server.receive(ME, cluster, payload, now)
        answers = server.pop_outgoing()
        for dst, cluster, payload in answers:
            assert dst == ME
            client.receive(HUB, cluster, payload, now)
        if not out and not answers:
            times = [t for t in (client.next_deadline(), server.next_deadline()) if t is not None]
            assert times, "stuck"
            now = max(now, min(times))
            server.timer(now)
            client.timer(now)
    raise AssertionError("did not finish")


def real_server(**policy) -> OtaServer:
    store = ImageStore()
    store.add_bytes(NEW, "new")
    return OtaServer(store, Policy(name="test", **policy), address=HUB)


def complete(events) -> bool:
    return bool(of_type(events, oc.DownloadComplete))


# -- Image Notify and Query Next Image


def test_image_notify_query_jitter():
    dev = new_device()
    store = DeviceStore(dev)

    def queries(jitter: int, n: int, **notify) -> int:
        count = 0
        for seed in range(n):
            c = OtaClient(config(seed=seed), store, 0.0)
            send(c, ImageNotify(jitter, **notify), 1.0)
            out = commands(sent(c))
            assert out in ([], [QueryNextImageRequest(*ID[:2], V_CURRENT, B4.hw_version)])
            count += len(out)
        return count

    assert queries(100, 50) == 50                       # 100: every client asks
    assert queries(100, 20, manufacturer=ID[0], image_type=ID[1], file_version=ID[2]) == 20
    assert queries(1, 300) <= 15                        # 1: about one client in a hundred
    assert 90 <= queries(50, 300) <= 210
    # payload type 3 naming the version it runs: nobody asks, whatever the jitter
    assert queries(100, 30, manufacturer=ID[0], image_type=ID[1], file_version=V_CURRENT) == 0
    c = OtaClient(config(), store, 0.0)
    send(c, ImageNotify(100, ID[0], ID[1], V_CURRENT), 1.0)
    assert sent(c) == [] and of_type(c.pop_events(), oc.Ignored)[0].reason == "image notify for the running version"
    # another manufacturer's or image type's notify is not for us
    assert queries(100, 10, manufacturer=0x1234) == 0
    assert queries(100, 10, manufacturer=ID[0], image_type=0x0B01) == 0


def test_query_next_image_carries_the_hardware_version():
    c, _ = fresh()
    c.query_now(0.0)
    (raw,) = c.pop_outgoing()
    f = zcl.decode(raw[2], C2S)
    assert f.command == QueryNextImageRequest(B4.manufacturer, B4.image_type, V_CURRENT, B4.hw_version)
    assert raw[2][3] & zcl.QUERY_FC_HARDWARE_VERSION  # field control, after the 3-byte ZCL header
    c, _ = fresh(hardware_version=None)
    c.query_now(0.0)
    (f,) = sent(c)
    assert f.command.hardware_version is None and f.command.field_control == 0


@pytest.mark.parametrize("answer", ["no_image", "default_response"])
def test_no_image_available_asks_again_after_the_query_interval(answer):
    c, _ = fresh(query_interval_s=300.0)
    c.query_now(5.0)
    (q,) = sent(c)
    if answer == "no_image":
        send(c, QueryNextImageResponse(Status.NO_IMAGE_AVAILABLE), 5.25, tsn=q.header.tsn)
    else:
        send(c, DefaultResponse(zcl.OtaCommand.QUERY_NEXT_IMAGE_REQUEST, Status.UNSUP_CLUSTER_COMMAND), 5.25,
             tsn=q.header.tsn, direction=S2C)
    assert of_type(c.pop_events(), oc.QueryAnswered) == [oc.QueryAnswered(None, 0)]
    assert c.next_deadline() == 305.25 and c.status == ImageUpgradeStatus.NORMAL
    c.timer(305.2)
    assert sent(c) == []
    c.timer(305.25)
    assert commands(sent(c)) == [QueryNextImageRequest(*ID[:2], V_CURRENT, B4.hw_version)]


def test_unanswered_query_is_asked_again_backing_off_up_to_the_query_interval():
    c, _ = fresh(query_interval_s=120.0, response_timeout_s=3.0, query_retry_s=3.0)
    c.query_now(0.0)
    sent(c)
    now, waits = 0.0, []
    for _ in range(8):
        now += 3.0
        c.timer(now)                        # the query timed out
        assert sent(c) == []
        waits.append(c.next_deadline() - now)
        now = c.next_deadline()
        c.timer(now)
        assert len(sent(c)) == 1            # asked again
    nominal = [3.0, 6.0, 12.0, 24.0, 48.0, 96.0, 120.0, 120.0]
    # jittered: up to a quarter less than the nominal doubling, never more
    assert all(0.75 * n <= w <= n for w, n in zip(waits, nominal)), waits
    assert len(set(waits)) == len(waits)


def test_an_answered_query_starts_the_backoff_again():
    c, _ = fresh(query_interval_s=300.0, response_timeout_s=3.0, query_retry_s=3.0)
    c.query_now(0.0)
    sent(c)
    c.timer(3.0)
    c.timer(c.next_deadline())              # second try
    assert c.next_deadline() > 3.0
    sent(c)
    c.timer(c.next_deadline())              # timed out again
    t = c.next_deadline()
    c.timer(t)                              # third try
    (q,) = sent(c)
    send(c, QueryNextImageResponse(Status.NO_IMAGE_AVAILABLE), t + 0.1, tsn=q.header.tsn)
    assert c.next_deadline() == pytest.approx(t + 0.1 + 300.0)
    c.timer(c.next_deadline())
    sent(c)
    now = c.next_deadline()
    c.timer(now)                            # this query went unanswered: the first short wait again
    assert 0.75 * 3.0 <= c.next_deadline() - now <= 3.0


def test_an_image_that_does_not_fit_is_not_downloaded():
    c, _ = fresh()
    for bad in (offer(image_id=(0x1234, ID[1], ID[2])), offer(image_id=(ID[0], 0x0B01, ID[2])),
                offer(image_id=(ID[0], ID[1], V_CURRENT)), offer(size=40)):
        c.query_now(0.0)
        (q,) = sent(c)
        send(c, bad, 0.0, tsn=q.header.tsn)
        assert c.status == ImageUpgradeStatus.NORMAL and sent(c) == [] and c.next_deadline() == 300.0


# -- blocks: timeouts, WAIT_FOR_DATA, minimum block period, ABORT


def test_a_lost_block_is_asked_again_at_the_same_offset_then_pause_and_resume():
    c, dev = fresh(max_timeouts=3, response_timeout_s=3.0, query_interval_s=300.0)
    (r,) = start_download(c, until=320)
    assert r.command.file_offset == 320
    now = 0.0
    for _ in range(2):                  # lost: asked again at the same offset, never from 0
        now += 3.0
        c.timer(now - 0.001)
        assert sent(c) == []
        c.timer(now)
        (r,) = sent(c)
        assert isinstance(r.command, ImageBlockRequest) and r.command.file_offset == 320
    now += 3.0
    c.timer(now)                        # the third unanswered one: pause until the next query
    assert sent(c) == []
    (failed,) = of_type(c.pop_events(), oc.DownloadFailed)
    assert "paused" in failed.reason
    assert c.status == ImageUpgradeStatus.DOWNLOAD_IN_PROGRESS and c.offset == 320
    assert dev.state.state == "downloading" and c.next_deadline() == now + 300.0
    now += 300.0
    c.timer(now)
    (q,) = sent(c)
    assert isinstance(q.command, QueryNextImageRequest)
    send(c, offer(), now, tsn=q.header.tsn)
    (r,) = sent(c)
    assert isinstance(r.command, ImageBlockRequest) and r.command.file_offset == 320  # resumed
    now, events, _ = download(c, now)
    assert slot_bytes(dev) == NEW


@pytest.mark.parametrize("current, request_time", [(800_000_000, 800_000_005), (0, 5)])
def test_wait_for_data_sets_the_next_request_and_the_minimum_block_period(current, request_time):
    c, _ = fresh()
    (r,) = start_download(c, until=128)
    now = 10.0
    send(c, ImageBlockWait(current, request_time, 500), now, tsn=r.header.tsn)
    assert sent(c) == []
    assert c.next_deadline() == now + 5 + 0.5           # request_time - current_time + period
    assert c.attributes()[AttributeId.MINIMUM_BLOCK_PERIOD] == (zcl.DataType.UINT16, 500)
    c.timer(now + 5.49)
    assert sent(c) == []
    c.timer(now + 5.5)
    (r,) = sent(c)
    assert r.command.file_offset == 128 and r.command.minimum_block_period == 500
    # the server's period now spaces the requests
    send(c, block(128, 65), now + 5.6, tsn=r.header.tsn)
    assert sent(c) == [] and c.next_deadline() == now + 6.0
    c.timer(now + 6.0)
    (r,) = sent(c)
    assert r.command.file_offset == 128 + 65


def test_minimum_block_period_spaces_the_requests():
    c, dev = fresh(minimum_block_period_ms=1500)
    c.query_now(0.0)
    (q,) = sent(c)
    send(c, offer(), 0.0, tsn=q.header.tsn)
    times = []
    now = 0.0
    for _ in range(6):
        frames = sent(c)
        if not frames:
            now = c.next_deadline()
            c.timer(now)
            frames = sent(c)
        (r,) = frames
        assert r.command.minimum_block_period == 1500
        times.append(now)
        now += 0.2
        send(c, block(r.command.file_offset, 65), now, tsn=r.header.tsn)
    assert all(b - a >= 1.5 for a, b in zip(times, times[1:])), times


@pytest.mark.parametrize("status", [Status.ABORT, Status.NO_IMAGE_AVAILABLE, 0xA3])
def test_abort_abandons_the_download(status):
    c, dev = fresh(query_interval_s=300.0)
    (r,) = start_download(c, until=400)
    assert dev.state.state == "downloading"
    send(c, ImageBlockAbort(status), 7.0, tsn=r.header.tsn)
    (failed,) = of_type(c.pop_events(), oc.DownloadFailed)
    assert failed.image == oc.ImageId(*ID)
    assert c.status == ImageUpgradeStatus.NORMAL and c.offset == 0 and c.image is None
    assert dev.state.state == "confirmed"               # the slot is released
    assert sent(c) == [] and c.next_deadline() == 307.0


def test_wrong_blocks_are_ignored():
    c, dev = fresh()
    (r,) = start_download(c, until=200)
    off = c.offset
    for src, cluster, cmd in ((HUB, OTA, block(off + 65, 65)), (HUB, OTA, block(off - 65, 65)),
                              (HUB, OTA, block(off, 65, image_id=OTHER_ID)),
                              (HUB, OTA, block(off, 66, data=NEW[off:off + 66])),
                              (HUB, OTA, block(off, 0, data=b"")),
                              (STRANGER, OTA, block(off, 65)), (HUB, 0x0006, block(off, 65))):
        c.receive(src, cluster, frame(cmd), 1.0)
        assert c.offset == off and sent(c) == []
    for junk in (b"", b"\x19", frame(block(off, 65))[:10], bytes(range(40))):
        c.receive(HUB, OTA, junk, 1.0)
        assert c.offset == off and sent(c) == []
    reasons = [e.reason for e in of_type(c.pop_events(), oc.Ignored)]
    assert len(reasons) == 10 and any("malformed" in r for r in reasons)   # (other cluster: silent)
    send(c, block(off, 65), 1.0)
    assert c.offset == off + 65


def test_max_data_size_from_the_link_payload():
    assert max_data_size_for(82) == 65
    c, _ = fresh(max_data_size=max_data_size_for(82))
    (r,) = start_download(c)
    assert r.command.max_data_size == 65
    send(c, block(0, 65), 0.0, tsn=r.header.tsn)
    assert c.offset == 65
    (r,) = sent(c)
    # a full 82-byte frame carries exactly 65 bytes of image
    assert len(frame(block(65, 65))) == 82
    send(c, block(65, 66), 0.0)
    assert c.offset == 65


# -- pages


def test_page_requests_to_a_server_that_bursts_pages():
    c, dev = fresh(use_pages=True, page_size=1024, response_spacing_ms=50)
    server = real_server(pages=True, block_cap=64)
    c.query_now(0.0)
    now, log, events = run_with(server, c, 0.0, complete)
    kinds = [type(f.command).__name__ for _, f in log]
    assert "ImageBlockRequest" not in kinds
    assert kinds.count("ImagePageRequest") == -(-len(NEW) // 1024)
    assert slot_bytes(dev) == NEW


@pytest.mark.parametrize("refusal", ["silent", "default-response"])
def test_page_requests_fall_back_to_blocks(refusal):
    c, dev = fresh(use_pages=True, page_fallback_s=10.0)
    server = real_server(pages=False, page_refusal=refusal, block_cap=64)
    c.query_now(0.0)
    now, log, events = run_with(server, c, 0.0, complete)
    (t_page, page), (t_block, first) = [(t, f) for t, f in log if not isinstance(f.command, QueryNextImageRequest)][:2]
    assert isinstance(page.command, ImagePageRequest) and isinstance(first.command, ImageBlockRequest)
    assert t_block - t_page == 10.0 and first.command.file_offset == 0
    assert sum(isinstance(f.command, ImagePageRequest) for _, f in log) == 1
    assert slot_bytes(dev) == NEW


# -- Upgrade End


def end_response(client: OtaClient, now: float, current: int, upgrade: int, tsn: int = 9, image_id=ID) -> None:
    send(client, UpgradeEndResponse(*image_id, current, upgrade), now, tsn=tsn)


def test_upgrade_end_now_activates_at_once():
    c, _, now = downloaded_client()
    assert c.status == ImageUpgradeStatus.DOWNLOAD_COMPLETE
    end_response(c, now, 0, 0)
    assert of_type(c.pop_events(), oc.Activate) == [oc.Activate(oc.ImageId(*ID))]
    assert c.status == ImageUpgradeStatus.WAITING_TO_UPGRADE and c.next_deadline() is None


def test_upgrade_end_wildcards_and_other_images():
    c, _, now = downloaded_client()
    end_response(c, now, 0, 0, image_id=OTHER_ID)
    assert not of_type(c.pop_events(), oc.Activate)
    end_response(c, now, 0, 0, image_id=(0xFFFF, 0xFFFF, 0xFFFFFFFF))
    assert of_type(c.pop_events(), oc.Activate)


def test_upgrade_end_zero_one_activates_after_a_second():
    c, _, now = downloaded_client()
    end_response(c, now, 0, 1)
    assert of_type(c.pop_events(), oc.UpgradeScheduled) == [oc.UpgradeScheduled(oc.ImageId(*ID), now + 1)]
    assert c.status == ImageUpgradeStatus.COUNT_DOWN
    c.timer(now + 0.999)
    assert not of_type(c.pop_events(), oc.Activate)
    c.timer(now + 1)
    assert of_type(c.pop_events(), oc.Activate)


def test_upgrade_end_utc_delay_counts_down_and_re_asks_at_most_every_recheck():
    c, _, now = downloaded_client(recheck_s=3600.0)
    t0 = now
    end_response(c, now, 800_000_000, 800_000_000 + 9000)
    assert of_type(c.pop_events(), oc.UpgradeScheduled)[0].at == t0 + 9000
    asked = []
    while True:
        now = c.next_deadline()
        c.timer(now)
        asked += [now] * len(sent(c))
        if of_type(c.pop_events(), oc.Activate):
            break
    assert now == t0 + 9000
    assert asked == [t0 + 3600, t0 + 7200]


def test_upgrade_end_wait_forever_waits_and_re_asks_every_recheck():
    c, _, now = downloaded_client(recheck_s=3600.0)
    t0 = now
    end_response(c, now, 800_000_000, zcl.UPGRADE_TIME_WAIT)
    assert of_type(c.pop_events(), oc.WaitingForActivation)
    assert c.status == ImageUpgradeStatus.WAITING_TO_UPGRADE_VIA_EXTERNAL_EVENT
    for k in (1, 2, 3):
        c.timer(t0 + k * 3600 - 0.001)
        assert sent(c) == []
        c.timer(t0 + k * 3600)
        assert commands(sent(c)) == [UpgradeEndRequest(Status.SUCCESS, *ID)]
    assert not of_type(c.pop_events(), oc.Activate)
    end_response(c, t0 + 3 * 3600 + 1, 0, 0)          # the later command
    assert of_type(c.pop_events(), oc.Activate)


def test_out_of_band_policy_refuses_the_server_time():
    c, _, now = downloaded_client(activation_policy=OUT_OF_BAND_ONLY, end_retry_s=600.0, end_max_tries=3)
    end_response(c, now, 0, 0, tsn=0x5A)
    (f,) = sent(c)
    assert f.header.tsn == 0x5A
    assert f.command == DefaultResponse(zcl.OtaCommand.UPGRADE_END_RESPONSE, Status.NOT_AUTHORIZED)
    assert of_type(c.pop_events(), oc.WaitingForActivation)
    assert c.status == ImageUpgradeStatus.WAITING_TO_UPGRADE_VIA_EXTERNAL_EVENT
    # answered: neither retried as unanswered nor applied by the timeout policy later
    for k in range(1, 20):
        c.timer(now + k * 600.0)
    assert sent(c) == [] and not of_type(c.pop_events(), oc.Activate)
    # 0xFFFFFFFF: waiting anyway, no refusal needed
    c, _, now = downloaded_client(activation_policy=OUT_OF_BAND_ONLY)
    end_response(c, now, 800_000_000, zcl.UPGRADE_TIME_WAIT)
    assert sent(c) == [] and of_type(c.pop_events(), oc.WaitingForActivation)


@pytest.mark.parametrize("timeout_policy", [APPLY_AFTER_TIMEOUT, DO_NOT_APPLY])
def test_unanswered_upgrade_end_requests_then_the_timeout_policy(timeout_policy):
    c, _, now = downloaded_client(end_retry_s=600.0, end_max_tries=4, timeout_policy=timeout_policy)
    t0 = now
    requests = 1                                         # the one verified() sent
    for k in range(1, 12):
        c.timer(t0 + k * 600.0)
        requests += len(sent(c))
    assert requests == 4
    events = c.pop_events()
    if timeout_policy is APPLY_AFTER_TIMEOUT:
        assert of_type(events, oc.Activate) and c.status == ImageUpgradeStatus.WAITING_TO_UPGRADE
    else:
        assert not of_type(events, oc.Activate) and of_type(events, oc.WaitingForActivation)
        assert c.status == ImageUpgradeStatus.WAITING_TO_UPGRADE_VIA_EXTERNAL_EVENT


def test_verified_false_reports_invalid_image_and_discards():
    c, dev = fresh(query_interval_s=300.0)
    c.query_now(0.0)
    now, _, _ = download(c)
    assert dev.state.state == "downloading"
    c.verified(False, now)
    assert commands(sent(c)) == [UpgradeEndRequest(Status.INVALID_IMAGE, *ID)]
    assert c.status == ImageUpgradeStatus.NORMAL and c.image is None
    assert dev.state.state == "confirmed"
    assert c.next_deadline() == now + 300.0
    end_response(c, now, 0, 0)
    assert not of_type(c.pop_events(), oc.Activate)


def test_abandon_after_verification_forgets_the_downloaded_version():
    c, dev, now = downloaded_client()
    assert c.attributes()[AttributeId.DOWNLOADED_FILE_VERSION][1] == ID[2]
    c.abandon("activation refused", now)
    assert of_type(c.pop_events(), oc.DownloadFailed)
    assert c.attributes()[AttributeId.DOWNLOADED_FILE_VERSION][1] == 0xFFFFFFFF
    assert c.status == ImageUpgradeStatus.NORMAL and dev.state.state == "confirmed"
    end_response(c, now, 0, 0)
    assert not of_type(c.pop_events(), oc.Activate)


def test_no_upgrade_end_response_counts_before_the_image_is_verified():
    c, dev = fresh()
    c.query_now(0.0)
    now, _, _ = download(c)
    end_response(c, now, 0, 0, image_id=(0xFFFF, 0xFFFF, 0xFFFFFFFF))
    end_response(c, now, 0, 0)
    events = c.pop_events()
    assert not of_type(events, oc.Activate) and c.status == ImageUpgradeStatus.DOWNLOAD_COMPLETE
    c.verified(True, now)
    assert commands(sent(c)) == [UpgradeEndRequest(Status.SUCCESS, *ID)]
    end_response(c, now, 0, 0)
    assert of_type(c.pop_events(), oc.Activate)


# -- a query answered late, after a paused download completed


def paused_then_completed(**kw) -> tuple[OtaClient, Device, float, int]:
    """A download paused by timeouts whose query goes out, then the late blocks
    complete it before the query is answered. Returns (client, device, now, query tsn)."""
    c, dev = fresh(max_timeouts=1, response_timeout_s=3.0, query_interval_s=300.0, **kw)
    start_download(c, until=1000)
    c.timer(3.0)                                        # lost: paused
    c.timer(303.0)                                      # the next query
    (q,) = sent(c)
    assert isinstance(q.command, QueryNextImageRequest)
    now = 304.0
    while c.status == ImageUpgradeStatus.DOWNLOAD_IN_PROGRESS:   # the late answers arrive
        send(c, block(c.offset, 65), now)
    assert slot_bytes(dev) == NEW
    sent(c)
    c.verified(True, now)
    assert commands(sent(c)) == [UpgradeEndRequest(Status.SUCCESS, *ID)]
    c.pop_events()
    return c, dev, now, q.header.tsn


@pytest.mark.parametrize("answer", ["offer", "no_image", "unknown_status", "default_response"])
def test_a_late_query_answer_keeps_the_completed_download(answer):
    c, dev, now, tsn = paused_then_completed(end_retry_s=600.0)
    if answer == "offer":
        send(c, offer(), now + 1, tsn=tsn)
    elif answer == "no_image":
        send(c, QueryNextImageResponse(Status.NO_IMAGE_AVAILABLE), now + 1, tsn=tsn)
    elif answer == "unknown_status":
        send(c, QueryNextImageResponse(0xA3), now + 1, tsn=tsn)
    else:
        send(c, DefaultResponse(zcl.OtaCommand.QUERY_NEXT_IMAGE_REQUEST, Status.UNSUP_CLUSTER_COMMAND),
             now + 1, tsn=tsn, direction=S2C)
    assert c.status == ImageUpgradeStatus.DOWNLOAD_COMPLETE and c.offset == len(NEW)
    assert dev.state.state == "downloading" and slot_bytes(dev) == NEW
    assert sent(c) == [] and not of_type(c.pop_events(), oc.DownloadStarted)
    # the lost Upgrade End Request is still asked again
    c.timer(now + 600.0)
    assert commands(sent(c)) == [UpgradeEndRequest(Status.SUCCESS, *ID)]


def test_an_unknown_status_while_paused_abandons_without_raising():
    c, dev = fresh(max_timeouts=1, response_timeout_s=3.0, query_interval_s=300.0)
    start_download(c, until=300)
    c.timer(3.0)
    c.timer(303.0)
    (q,) = sent(c)
    send(c, QueryNextImageResponse(0xA3), 304.0, tsn=q.header.tsn)
    failed = of_type(c.pop_events(), oc.DownloadFailed)
    assert "0xa3" in failed[-1].reason
    assert c.status == ImageUpgradeStatus.NORMAL and dev.state.state == "confirmed"


# -- attributes


def test_read_attributes_answers_with_the_client_state():
    c, dev = fresh(minimum_block_period_ms=0)
    start_download(c, until=500)
    ids = (AttributeId.FILE_OFFSET, AttributeId.CURRENT_FILE_VERSION, AttributeId.IMAGE_UPGRADE_STATUS,
           AttributeId.MANUFACTURER_ID, AttributeId.IMAGE_TYPE_ID, AttributeId.MINIMUM_BLOCK_PERIOD,
           AttributeId.DOWNLOADED_FILE_VERSION, AttributeId.UPGRADE_ACTIVATION_POLICY,
           AttributeId.UPGRADE_TIMEOUT_POLICY, AttributeId.UPGRADE_SERVER_ID)
    send(c, ReadAttributes(ids), 1.0, tsn=0x42, direction=S2C)
    (f,) = sent(c)
    assert f.header.tsn == 0x42 and f.header.direction == C2S
    recs = {r.attribute_id: r for r in f.command.records}
    assert [r.attribute_id for r in f.command.records] == list(ids)
    want = {AttributeId.FILE_OFFSET: c.offset, AttributeId.CURRENT_FILE_VERSION: V_CURRENT,
            AttributeId.IMAGE_UPGRADE_STATUS: ImageUpgradeStatus.DOWNLOAD_IN_PROGRESS,
            AttributeId.MANUFACTURER_ID: B4.manufacturer, AttributeId.IMAGE_TYPE_ID: B4.image_type,
            AttributeId.MINIMUM_BLOCK_PERIOD: 0, AttributeId.DOWNLOADED_FILE_VERSION: 0xFFFFFFFF,
            AttributeId.UPGRADE_ACTIVATION_POLICY: 0, AttributeId.UPGRADE_TIMEOUT_POLICY: 0}
    for aid, value in want.items():
        assert recs[aid].status == Status.SUCCESS and recs[aid].value == value, aid
        assert recs[aid].data_type == zcl.ATTRIBUTE_TYPES[aid], aid
    assert recs[AttributeId.UPGRADE_SERVER_ID].status == Status.UNSUPPORTED_ATTRIBUTE
    assert c.offset >= 500
    # after verification, read by the real server
    now, _, _ = download(c, 1.0)
    c.verified(True, now)
    sent(c)
    server = real_server()
    payload = server.read_attributes(ME, ids)
    server.pop_outgoing()
    c.receive(HUB, OTA, payload, now)
    for _, cluster, p in c.pop_outgoing():
        server.receive(ME, cluster, p, now)
    got = server.clients[ME].attributes
    assert got[AttributeId.FILE_OFFSET] == len(NEW)
    assert got[AttributeId.IMAGE_UPGRADE_STATUS] == ImageUpgradeStatus.DOWNLOAD_COMPLETE
    assert got[AttributeId.DOWNLOADED_FILE_VERSION] == ID[2]


def test_policies_are_the_zcl_enums_and_read_as_their_values():
    c, _ = fresh(activation_policy=1, timeout_policy=1)     # the attribute values are accepted
    assert c.config.activation_policy is OUT_OF_BAND_ONLY and c.config.timeout_policy is DO_NOT_APPLY
    attrs = c.attributes()
    assert attrs[AttributeId.UPGRADE_ACTIVATION_POLICY] == (zcl.DataType.ENUM8, 1)
    assert attrs[AttributeId.UPGRADE_TIMEOUT_POLICY] == (zcl.DataType.ENUM8, 1)
    for reserved in (dict(activation_policy=2), dict(timeout_policy=7)):
        with pytest.raises(ValueError):
            config(**reserved)


# -- power cuts


@pytest.mark.parametrize("tear, seed", [("none", 0), ("prefix", 5), ("prefix", 77), ("bits", 12345)])
@pytest.mark.parametrize("at", [700, 1500, 2400])
def test_power_cut_mid_download_resumes_from_the_store(tear, seed, at):
    dev = new_device()
    c = OtaClient(config(), DeviceStore(dev), 0.0)
    (r,) = start_download(c, until=at)
    written = c.offset
    dev.flash.arm_cut(1, tear, seed)
    with pytest.raises(PowerCut):
        for payload in good_answers(r):
            c.receive(HUB, OTA, payload, 1.0)
    # a reboot: power on, the bootloader runs the old image, a new client from the flash
    dev.power_cycle()
    res = dev.boot()
    assert res.slot == 0 and not res.actions and dev.running_image()
    c = OtaClient(config(seed=1), DeviceStore(dev), 2.0)
    (started,) = of_type(c.pop_events(), oc.DownloadStarted)
    resume = started.offset
    assert resume == c.offset == dev.resume_offset()
    assert resume_floor(written) <= resume <= written + 65
    assert written - resume < PAGE + 65                 # within one flash page (and a block)
    assert slot_bytes(dev, resume) == NEW[:resume]
    (r,) = sent(c)                                      # asks on from there at once
    assert isinstance(r.command, ImageBlockRequest) and r.command.file_offset == resume
    for payload in good_answers(r):
        c.receive(HUB, OTA, payload, 2.0)
    now, events, _ = download(c, 2.0)
    assert slot_bytes(dev) == NEW
    verify_ota_in_flash(dev.flash, core_blob_addr(dev), len(NEW), manufacturer=B4.manufacturer,
                        image_type=B4.image_type, hw_version=B4.hw_version, body="gbcs",
                        supplier_key=SUPPLIER_KEY.public_key())


class CutInTheHeader(DeviceStore):
    """Cuts the power in the program of the OTA header (the first write)."""

    def __init__(self, device, tear, seed):
        super().__init__(device)
        self.tear, self.seed = tear, seed

    def write(self, offset, data):
        if offset == 0:
            self.device.flash.arm_cut(1, self.tear, self.seed)
        super().write(offset, data)


@pytest.mark.parametrize("tear, seed", [("prefix", 18), ("prefix", 40), ("prefix", 8), ("bits", 99), ("none", 0)])
def test_power_cut_in_the_header_never_trusts_a_torn_header(tear, seed):
    dev = new_device()
    c = OtaClient(config(), CutInTheHeader(dev, tear, seed), 0.0)
    c.query_now(0.0)
    with pytest.raises(PowerCut):
        download(c)
    assert dev.state.state == "downloading"
    dev.power_cycle()
    dev.boot()
    # the resume offset lies in the header's page: the header may be torn (with the
    # magic and the id intact: prefix 18+), so the download starts again
    assert dev.resume_offset() < HDR_LEN
    c = OtaClient(config(), DeviceStore(dev), 1.0)
    assert not of_type(c.pop_events(), oc.DownloadStarted) and dev.state.state == "confirmed"
    c.query_now(1.0)
    now, events, _ = download(c, 1.0)
    assert of_type(events, oc.DownloadStarted)[0].offset == 0
    assert slot_bytes(dev) == NEW
