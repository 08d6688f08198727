"""Who may change the firmware (issue 8, part 6).

CS06 Activate Firmware is a critical GBCS command: signed by the authorising
party (ECDSA P-256, SHA-256) over the target bridge's id and the command, with
an originator counter the bridge accepts only above the last one it accepted,
kept in its flash. Forged, unsigned, misdirected, replayed and old commands are
discarded with alert 0x8F84 and an event; the hub signs what it sends.
"""
from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from test_premises import BridgeSpec, bootable, continue_until_settled, events, premises, remote, slot

from bridge_emu.codec import gbcs
from bridge_emu.emulator.hub import signed
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.runner import PremisesRun
from support.paths import IMAGES

QUIET = {"latency_ms": 20, "loss": 0.0}


@pytest.fixture(scope="module")
def images() -> ImageSet:
    return ImageSet(IMAGES)


def waiting_run(images, **hub):
    """b1 (B1) holding its verified "next" image, waiting for a CS06 the hub does not send."""
    spec = premises(BridgeSpec("b1", "B1"), remote("b4", "B4", offer="none", link=QUIET),
                    hub={"personality": "gbcs-ch", "activation": "none", **hub})
    run = PremisesRun(spec, images)
    run.start()
    b1 = slot(run, "b1")
    run.net.scheduler.run(lambda: bool(events(b1.bridge, "waiting_for_activation")), limit=4 * 3600)
    return run, b1, hashlib.sha256(bootable(images, "B1", "next")).digest()


def send(run, address: int, cmd: gbcs.ActivateFirmware) -> None:
    for frame in gbcs.frames(cmd):
        run.hub_driver.transport.send(address, gbcs.GBCS_CLUSTER, frame)
    run.step(run.clock.now() + 5.0)


def refusals(bridge) -> list[tuple[str, int]]:
    return [(e["reason"], e["counter"]) for e in events(bridge, "cs06_refused")]


def held(b) -> bool:
    """Nothing acted on: still running 1.0.0 with the download held, not pending."""
    return b.bridge.device.state.state == "downloading" and b.bridge.record.version_after.startswith("1.0.0")


def test_forged_unsigned_and_misdirected_commands_are_refused(images):
    run, b1, good = waiting_run(images)
    other = ec.generate_private_key(ec.SECP256R1())
    cmd = gbcs.ActivateFirmware(0x9000, good)
    send(run, b1.address, cmd)                                          # unsigned
    send(run, b1.address, signed(cmd, other, b1.address))              # someone else's key
    send(run, b1.address, signed(cmd, images.supplier_signer, 99))     # signed for another bridge
    tampered = signed(cmd, images.supplier_signer, b1.address)
    send(run, b1.address, gbcs.ActivateFirmware(0x9000, bytes(32), signature=tampered.signature))
    assert refusals(b1.bridge) == [("unsigned", 0x9000), ("bad_signature", 0x9000),
                                   ("bad_signature", 0x9000), ("bad_signature", 0x9000)]
    assert held(b1) and b1.bridge.device.origin_counter == 0
    # each refusal is told to the hub, GBCS-style, in alert 0x8F84
    alerts = [e for e in b1.bridge.events if e["event"] == "alert" and e["code"] == "0x8F84"]
    assert len(alerts) == 4 and bytes.fromhex(alerts[0]["data"]) == (0x9000).to_bytes(8, "little") + b"\x01"
    assert [e["reason"] for e in run.hub_log if e["event"] == "cs06_refused"] == [
        "unsigned", "bad_signature", "bad_signature", "bad_signature"]
    # the genuine command still works afterwards
    send(run, b1.address, signed(cmd, images.supplier_signer, b1.address))
    assert continue_until_settled(run)
    assert b1.bridge.record.outcome == "upgraded" and b1.bridge.device.origin_counter == 0x9000


def test_replayed_and_old_counters_are_refused_across_a_power_cut(images):
    run, b1, good = waiting_run(images)

    def sign(counter: int, image_hash: bytes = good) -> gbcs.ActivateFirmware:
        return signed(gbcs.ActivateFirmware(counter, image_hash), images.supplier_signer, b1.address)
    wrong = bytes(31) + b"\x01"
    send(run, b1.address, sign(0x5000, wrong))      # accepted (counter committed), answered HASH_MISMATCH
    assert run.hub.outcomes[b1.address] == gbcs.Outcome.HASH_MISMATCH
    assert b1.bridge.device.origin_counter == 0x5000
    # whole-rig power cut: the counter is in flash, the command cache in RAM is gone
    b1.bridge.power_off(run.clock.now(), "test power cut")
    b1.driver.poke()    # the driver takes up the bridge's new deadline (power back)
    run.step(run.clock.now() + 60.0)
    assert b1.bridge.phase == "running" and b1.bridge.device.origin_counter == 0x5000
    send(run, b1.address, sign(0x5000))             # a replay of the counter, now naming the good hash
    send(run, b1.address, sign(0x4FFF))             # an older command
    assert refusals(b1.bridge) == [("stale_counter", 0x5000), ("stale_counter", 0x4FFF)]
    assert held(b1)
    send(run, b1.address, sign(0x5001))             # a valid one after the power cut
    assert continue_until_settled(run)
    assert b1.bridge.record.outcome == "upgraded" and b1.bridge.device.origin_counter == 0x5001


def test_a_hub_that_cannot_sign_is_refused_and_stops_asking(images):
    spec = premises(BridgeSpec("b1", "B1"), remote("b4", "B4", offer="none", link=QUIET))
    run = PremisesRun(spec, images)
    run.hub.signer = None
    b1 = slot(run, "b1")
    assert not run.run(limit_s=3 * 3600)
    assert refusals(b1.bridge) and {r for r, _ in refusals(b1.bridge)} == {"unsigned"}
    assert b1.address not in run.hub.pending            # a refused command is not sent again
    assert len([e for e in run.hub_log if e["event"] == "cs06_sent"]) == 1
    assert held(b1)


def test_the_hub_signs_and_its_counter_rises(images):
    spec = premises(BridgeSpec("b1", "B1"), remote("b4", "B4", link=QUIET))
    run = PremisesRun(spec, images)
    assert run.run(limit_s=4 * 3600)
    sent = [e["counter"] for e in run.hub_log if e["event"] == "cs06_sent"]
    assert len(set(sent)) == 2 and not any(refusals(s.bridge) for s in run.slots)
    for s in run.slots:
        assert s.bridge.record.outcome == "upgraded"
        assert s.bridge.device.origin_counter in sent


def test_a_fragment_lost_is_made_good_by_the_retry():
    r = gbcs.Reassembly()
    cmd = gbcs.ActivateFirmware(7, bytes(range(32)), 0, 3, signature=bytes(64))
    first, second = gbcs.frames(cmd)
    assert max(map(len, (first, second))) <= gbcs.FRAME_MAX
    assert r.receive(second) is None                  # its partner lost
    assert r.receive(second) is None and r.receive(first) == cmd   # the retry completes it
    with pytest.raises(gbcs.GbcsError):
        r.receive(b"\x05\x03\x02\x02xx")              # index beyond the count


def test_the_signed_flow_fits_the_smallest_payload_a_premises_allows(images):
    from bridge_emu.premises.schema import MIN_PAYLOAD
    link = dict(QUIET, payload_limit=MIN_PAYLOAD)
    spec = premises(BridgeSpec("b1", "B1"), remote("b4", "B4", link=link))
    run = PremisesRun(spec, images)
    assert run.run(limit_s=4 * 3600)
    assert [s.bridge.record.outcome for s in run.slots] == ["upgraded", "upgraded"]
