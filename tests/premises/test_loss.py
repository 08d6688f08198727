"""The GBCS flow over a lossy network: every step that waits on the other side
repeats until it gets through, repeats are harmless, a valid image is never
rolled back because frames were lost, and a run that cannot settle says which
step stalled.

The sweep runs every built-in premises at 0 %, 1 % and 5 % loss on every
remote link, with a burst outage of a few seconds on each bridge's hop during
its download and again as its trial firmware comes up, for "next" (must end
upgraded) and "faulty" (must end rolled back) images. A seed or two of it runs
with the suite; `make test-slow` runs many more.
"""
from __future__ import annotations

import dataclasses

import pytest

from bridge_emu.codec import gbcs, zcl
from bridge_emu.emulator.bridge import Phase
from bridge_emu.premises.images import ImageSet
from bridge_emu.premises.report import bridge_rows
from bridge_emu.premises.runner import PremisesRun
from bridge_emu.premises.schema import BridgeSpec, PremisesSpec, builtin_premises
from support.paths import IMAGES

LIMIT_S = 4 * 3600
BURST_S = 5.0
REMOTE = {"latency_ms": 20, "jitter_ms": 5, "loss": 0.01, "throughput_kbps": 100, "payload_limit": 82}


@pytest.fixture(scope="module")
def images() -> ImageSet:
    return ImageSet(IMAGES)


def with_loss(spec: PremisesSpec, loss: float, offer: str) -> PremisesSpec:
    bridges = []
    for b in spec.bridges:
        link = b.link if b.parent is None else {**b.link, "loss": loss}
        bridges.append(dataclasses.replace(b, link=link, offer=offer))
    return dataclasses.replace(spec, bridges=tuple(bridges))


class Bursts:
    """One burst outage on each bridge's own hop when its download is half done,
    and one as its trial firmware boots."""

    def __init__(self, run: PremisesRun):
        self.run = run
        self.download: set[str] = set()
        self.trial: set[str] = set()

    def __call__(self) -> None:
        now = self.run.clock.now()
        for s in self.run.slots:
            link = self.run.net.link(s.address)
            c = s.bridge.client
            name = s.spec.name
            if name not in self.download and c is not None and c.size and c.offset >= c.size // 2:
                self.download.add(name)
                link.outage(now, BURST_S)
            if (name not in self.trial and s.bridge.phase is not Phase.RUNNING
                    and any(e["event"] == "boot" and not e["confirmed"] for e in s.bridge.events)):
                self.trial.add(name)
                link.outage(now, BURST_S)


def run_case(images: ImageSet, spec: PremisesSpec, seed: int, bursts: bool = True):
    run = PremisesRun(spec, images, seed=seed)
    watch = Bursts(run) if bursts else None
    run.start()
    t = 0.0
    while t < LIMIT_S and not run.done():
        t += 1.0
        run.step(t)
        if watch is not None:
            watch()
    return run, watch


def problems(run: PremisesRun) -> list[str]:
    want = {"next": "upgraded", "faulty": "rolled back"}
    out = []
    for s, row in zip(run.slots, bridge_rows(run)):
        if row["outcome"] != want[s.spec.offer]:
            out.append(f"{s.spec.name}: {row['outcome']} ({row.get('stalled', '')})")
    return out


def sweep(images: ImageSet, seeds) -> list[str]:
    failures = []
    for name, spec in builtin_premises().items():
        for loss in (0.0, 0.01, 0.05):
            for offer in ("next", "faulty"):
                for seed in seeds:
                    run, watch = run_case(images, with_loss(spec, loss, offer), seed)
                    # the bursts really happened: every bridge downloaded and booted a trial
                    assert watch.download == watch.trial == {b.name for b in spec.bridges}, (name, seed)
                    failures += [f"{name} loss={loss} {offer} seed={seed}: {p}" for p in problems(run)]
    return failures


def test_every_builtin_premises_settles_as_offered_under_loss_and_bursts(images):
    assert sweep(images, seeds=[1]) == []


@pytest.mark.slow
def test_every_builtin_premises_settles_as_offered_under_loss_and_bursts_many_seeds(images):
    assert sweep(images, seeds=range(2, 32)) == []


# ------------------------------------------------------------------ each retry, one frame at a time


class Dropping:
    """A transport that loses the frames `drop(dst, cluster, payload)` picks, n at most."""

    def __init__(self, inner, drop, n: int = 1):
        self.inner, self.drop, self.left, self.dropped = inner, drop, n, []

    def send(self, dst: int, cluster: int, payload: bytes) -> None:
        if self.left and self.drop(dst, cluster, payload):
            self.left -= 1
            self.dropped.append(payload)
            return
        self.inner.send(dst, cluster, payload)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def first_part(payload: bytes) -> bytes:
    """A message's frame, or for a fragmented one (a signed CS06) its first fragment's data."""
    return payload[4:] if payload[:1] == b"\x05" and payload[2:3] == b"\x00" else payload


def gbcs_kind(payload_type):
    """Frames of a message of this type (a fragmented message's first fragment)."""
    kind = {gbcs.AlertMessage: 1, gbcs.ActivateFirmware: 2, gbcs.ActivateResponse: 3, gbcs.AlertAck: 4}[payload_type]

    def pick(dst, cluster, payload):
        return cluster == gbcs.GBCS_CLUSTER and first_part(payload)[:1] == bytes([kind])
    return pick


def alert_code(code):
    def pick(dst, cluster, payload):
        return gbcs_kind(gbcs.AlertMessage)(dst, cluster, payload) and gbcs.decode(payload).code == code
    return pick


def zcl_command(command_type, direction=zcl.Direction.CLIENT_TO_SERVER):
    def pick(dst, cluster, payload):
        if cluster != zcl.OTA_CLUSTER_ID:
            return False
        try:
            return isinstance(zcl.decode(payload, direction).command, command_type)
        except zcl.ZclError:
            return False
    return pick


def two_bridges(offer: str = "next", loss: float = 0.0) -> PremisesSpec:
    return PremisesSpec("drops", "", (BridgeSpec("b1", "B1", offer=offer),
                                      BridgeSpec("b2", "B2", parent="b1", offer=offer,
                                                 link={**REMOTE, "loss": loss})),
                        {"personality": "gbcs-ch", "activation": "immediate"}, 5)


def on_bridge(run: PremisesRun, name: str, drop, n: int = 1) -> Dropping:
    s = next(s for s in run.slots if s.spec.name == name)
    s.driver.transport = Dropping(s.driver.transport, drop, n)
    return s.driver.transport


def on_hub(run: PremisesRun, drop, n: int = 1) -> Dropping:
    run.hub_driver.transport = Dropping(run.hub_driver.transport, drop, n)
    return run.hub_driver.transport


def outcomes(run: PremisesRun) -> dict[str, str]:
    return {r["bridge"]: r["outcome"] for r in bridge_rows(run)}


def kinds(bridge, kind: str) -> list[dict]:
    return [e for e in bridge.events if e["event"] == kind]


@pytest.mark.parametrize("lost", [3, 1])
def test_a_lost_verification_alert_is_sent_again_until_the_hub_hears_it(images, lost):
    run = PremisesRun(two_bridges(), images)
    d = on_bridge(run, "b2", alert_code(gbcs.Alert.FIRMWARE_VERIFICATION_SUCCESSFUL), n=lost)
    assert run.run(limit_s=LIMIT_S), outcomes(run)
    assert len(d.dropped) == lost and outcomes(run)["b2"] == "upgraded"
    heard = [e for e in run.hub_log if e["from"] == 2 and e["event"] == "alert" and e["code"] == "0x8F72"]
    assert len(heard) == 1     # the alert counts once, though sent lost + 1 times


def test_a_lost_acknowledgement_makes_a_repeat_the_hub_acts_on_once(images):
    run = PremisesRun(two_bridges(), images)
    ack_8f72 = gbcs_kind(gbcs.AlertAck)
    d = on_hub(run, lambda dst, c, p: dst == 2 and ack_8f72(dst, c, p)
               and gbcs.decode(p).code == gbcs.Alert.FIRMWARE_VERIFICATION_SUCCESSFUL, n=1)
    cs06 = on_hub(run, lambda dst, c, p: dst == 2 and gbcs_kind(gbcs.ActivateFirmware)(dst, c, p), n=1)
    assert run.run(limit_s=LIMIT_S), outcomes(run)
    assert len(d.dropped) == 1 and len(cs06.dropped) == 1
    # one CS06 (one originator counter) for the image, however often the alert came
    sent = [e for e in run.hub_log if e["event"] == "cs06_sent" and e["from"] == 2]
    assert len(sent) >= 2 and len({e["counter"] for e in sent}) == 1, run.hub_log
    assert outcomes(run)["b2"] == "upgraded"


def test_a_lost_cs06_response_is_answered_again_without_acting_twice(images):
    run = PremisesRun(two_bridges(), images)
    d = on_bridge(run, "b2", gbcs_kind(gbcs.ActivateResponse), n=1)
    assert run.run(limit_s=LIMIT_S), outcomes(run)
    b2 = next(s for s in run.slots if s.spec.name == "b2").bridge
    assert len(d.dropped) == 1 and outcomes(run)["b2"] == "upgraded"
    # activated once: one activation reboot, one install; the hub's repeat is answered as done
    assert [e["outcome"] for e in kinds(b2, "activation")] == ["SUCCESS"]
    assert len([e for e in kinds(b2, "boot") if "installed" in e["actions"]]) == 1
    assert run.hub.outcomes[2] == gbcs.Outcome.SUCCESS and 2 not in run.hub.pending


def test_a_lost_cs06_is_sent_again_with_the_same_counter(images):
    run = PremisesRun(two_bridges(), images)
    d = on_hub(run, lambda dst, c, p: dst == 2 and gbcs_kind(gbcs.ActivateFirmware)(dst, c, p), n=2)
    assert run.run(limit_s=LIMIT_S), outcomes(run)
    b2 = next(s for s in run.slots if s.spec.name == "b2").bridge
    assert len(d.dropped) == 2 and outcomes(run)["b2"] == "upgraded"
    assert {int.from_bytes(first_part(p)[4:12], "little") for p in d.dropped} == {
        e["counter"] for e in run.hub_log if e.get("event") == "cs06_sent" and e["from"] == 2}
    assert len(kinds(b2, "cs06")) == 1


@pytest.mark.parametrize("lost", [1, 6])
def test_trial_firmware_whose_queries_are_lost_still_confirms(images, lost):
    """Its proof of life is a query the hub answers; lost queries are asked again
    within the proof deadline, so a valid image is not rolled back."""
    run = PremisesRun(two_bridges(), images)
    s = next(s for s in run.slots if s.spec.name == "b2")
    query = zcl_command(zcl.QueryNextImageRequest)
    d = on_bridge(run, "b2", lambda dst, c, p: not s.bridge.confirmed and query(dst, c, p), n=lost)
    assert run.run(limit_s=LIMIT_S), outcomes(run)
    assert len(d.dropped) == lost and outcomes(run)["b2"] == "upgraded"
    assert kinds(s.bridge, "prove_timeout") == []


def test_firmware_that_never_rejoins_is_still_rolled_back(images):
    spec = PremisesSpec("never", "", (BridgeSpec("b1", "B1", offer="next"),
                                      BridgeSpec("b3", "B3", parent="b1", offer="faulty", link=REMOTE)),
                        {"personality": "gbcs-ch", "activation": "immediate"}, 5)
    run = PremisesRun(spec, images)
    assert run.run(limit_s=LIMIT_S), outcomes(run)
    b3 = next(s for s in run.slots if s.spec.name == "b3").bridge
    assert outcomes(run)["b3"] == "rolled back" and len(kinds(b3, "prove_timeout")) == 1


@pytest.mark.parametrize("lost", [1, 3])
def test_a_lost_upgrade_end_request_is_sent_again(images, lost):
    """On the self-activating route (no CS06: the Upgrade End Response says when)."""
    run = PremisesRun(dataclasses.replace(two_bridges(), hub={"personality": "zigpy", "activation": "none"}), images)
    d = on_bridge(run, "b2", zcl_command(zcl.UpgradeEndRequest), n=lost)
    assert run.run(limit_s=LIMIT_S), outcomes(run)
    assert len(d.dropped) == lost and outcomes(run)["b2"] == "upgraded"


def test_a_run_that_cannot_settle_names_the_step_that_stalled(images):
    spec = two_bridges(loss=0.5)
    run = PremisesRun(spec, images)
    assert not run.run(limit_s=1200)
    row = {r["bridge"]: r for r in bridge_rows(run)}["b2"]
    assert row["outcome"].startswith("unsettled")
    assert row["stalled"].startswith("download ") and "of 160801" in row["stalled"]
    assert "last heard ImageBlockResponse at t=" in row["stalled"]


def test_a_hub_that_never_activates_leaves_the_bridge_saying_so(images):
    spec = dataclasses.replace(two_bridges(), hub={"personality": "gbcs-ch", "activation": "none"})
    run = PremisesRun(spec, images)
    assert not run.run(limit_s=1800)
    stalled = {r["bridge"]: r.get("stalled") for r in bridge_rows(run)}
    assert stalled["b2"].startswith("holds verified 01010000, waiting for the hub to activate it")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_against_herdsman_the_new_firmware_announces_itself_within_its_120_s(images, seed):
    """zigbee-herdsman answers Upgrade End with upgrade time 1 and waits 120 s for
    the device to announce itself on the network again; its block requests time
    out after 150 s. At 5 % loss every bridge rejoins inside that window."""
    spec = dataclasses.replace(with_loss(builtin_premises()["both-apart-mains"], 0.05, "next"),
                               hub={"personality": "herdsman", "activation": "none"})
    run = PremisesRun(spec, images, seed=seed)
    assert run.run(limit_s=LIMIT_S), outcomes(run)
    for s in run.slots:
        scheduled = kinds(s.bridge, "upgrade_scheduled")
        installed = next(e for e in s.bridge.events if e["event"] == "boot" and "installed" in e["actions"])
        rejoined = next(e for e in s.bridge.events if e["event"] == "joined" and e["t"] > installed["t"])
        assert scheduled and rejoined["t"] - scheduled[-1]["t"] <= 120.0, s.spec.name
        assert outcomes(run)[s.spec.name] == "upgraded"
