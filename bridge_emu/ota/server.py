"""The ZigBee OTA Upgrade server (the Communications Hub's role), as a sans-I/O machine.

Bytes and time in, frames and the next deadline out: no sockets, threads or
sleeps. `OtaServer` implements the Machine protocol of bridge_emu.net.transport
(receive / timer / pop_outgoing / next_deadline), so a Driver runs it on the
simulated premises network (net.sim) or, later, over a serial dongle. Facts it
builds on: docs/zigbee-ota.md and gbcs-firmware.md.

This module is the server's public face; the parts live beside it:
    policy          Policy, its choice enums, PRESETS, ZigBee UTC
    image_store     OtaImage, ImageStore: the only part that reads files
    server_machine  OtaServer, ClientState: the machine (bytes and time only)
    server_states   ClientPhase and the per-client table of moves (bridge_emu.fsm)
    server_events   what goes in and out: Outgoing, ServerEvent, EventKind, Timer, Due

API
    ImageStore                      OTA files by (manufacturer, image_type, file_version)
        ImageStore.from_folder(path) / .load_folder(path) / .add_file(path)
        / .add_bytes(data, name)    read with the tolerant reader; unservable files
                                    are skipped, logged, and listed in .skipped
        .get(m, t, v), .find(spec), .select(m, t, current_version, hw, version=...)
    OtaImage                        one servable image: its bytes, id, size and header
    Policy                          how the server behaves (frozen dataclass; choice
                                    fields are StrEnums, given as members or strings);
        Policy.preset(name, **overrides), PRESETS: "zigpy", "herdsman", "gbcs-ch"
    OtaServer(store, policy, address=0x0000)
        receive(src, cluster, payload, now), timer(now), pop_outgoing(), next_deadline()
        offer(addr, image) / clear_offer(addr)    per-client override (wins the selection)
        notify(dst, now, payload_type=0, query_jitter=100, image=None)   Image Notify
        notify_all(now, addrs=None, ...)          broadcast (0xFFFF) or one per address
        abort(addr)                               the next block/page request gets ABORT
        read_attributes(dst, attribute_ids)       Read Attributes of a client's OTA cluster
        clients: {addr: ClientState}, events: [ServerEvent(kind, addr, detail, t)],
        on_event, counters: frames_in, ignored, malformed, errors,
        transitions: this server's copy of the phase table, with its `taken` tally
    ClientState                     one client: its phase (ClientPhase), what it was
                                    offered and served, its Upgrade End, counters

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

Per client, the server keeps a phase (IDLE, OFFERED, DOWNLOADING, PAGING,
ABORTING, UPGRADING, END_FAILED): most only say what the client is doing,
PAGING and ABORTING change what the server does next. Every move is a row of
one table (server_states, rendered in its docstring).

Speed: a plain Image Block Request (no optional fields) from a client already
DOWNLOADING, unthrottled and undelayed, is read straight from its bytes
(codec.zcl.read_image_block_request: one struct unpack, no command, header or
Frame built), served with two dict lookups, a slice and one struct pack
(encode_image_block_response); every other frame, and any such request that
needs more (the first block, an error, WAIT_FOR_DATA, a delay), takes the
general path: decode, the handler table, the phase table. Nothing is logged,
no event is recorded and the phase table is not consulted per block
(ClientState counters and one identity test only).
"""
from __future__ import annotations

from bridge_emu.ota.image_store import ImageKey, ImageStore, OtaImage
from bridge_emu.ota.policy import (
    DEFAULT_UTC_AT_ZERO,
    MAX_BLOCK_DATA,
    PRESETS,
    ZIGBEE_EPOCH,
    BlockErrorForm,
    DelayMode,
    EndFailure,
    PageRefusal,
    Policy,
    UpgradeTime,
    VersionRule,
    zigbee_utc,
)
from bridge_emu.ota.server_events import Due, EventKind, Outgoing, ServerEvent, Timer
from bridge_emu.ota.server_machine import (
    BROADCAST_ALL,
    BROADCAST_ROUTERS,
    BROADCAST_RX_ON,
    CLUSTER_REVISION,
    ClientState,
    OtaServer,
)
from bridge_emu.ota.server_states import CLIENT_TRANSITIONS, ClientPhase, Trigger

#: One record of OtaServer.events (the name older code knows it by).
Event = ServerEvent

__all__ = [
    "BROADCAST_ALL", "BROADCAST_ROUTERS", "BROADCAST_RX_ON", "CLIENT_TRANSITIONS", "CLUSTER_REVISION",
    "DEFAULT_UTC_AT_ZERO", "MAX_BLOCK_DATA", "PRESETS", "ZIGBEE_EPOCH",
    "BlockErrorForm", "ClientPhase", "ClientState", "DelayMode", "Due", "EndFailure", "Event",
    "EventKind", "ImageKey", "ImageStore", "OtaImage", "OtaServer", "Outgoing", "PageRefusal",
    "Policy", "ServerEvent", "Timer", "Trigger", "UpgradeTime", "VersionRule", "zigbee_utc",
]
