"""The rollout on the campaign clock: the halt rule, retries, the activation
window, airtime contention, lost service."""
from __future__ import annotations

import pytest

from bridge_emu.campaign import load_campaign, run_campaign
from bridge_emu.campaign.clock import _activation, contended_s, simulate
from bridge_emu.campaign.engines import LocalEngine
from bridge_emu.campaign.fleet import Fleet, clock_draws
from bridge_emu.campaign.model import FastModel
from bridge_emu.campaign.spec import parse_campaign


def test_a_canary_with_many_faulty_images_halts_the_campaign(tiny):
    spec = load_campaign(tiny(homes=400, faulty=0.6, sample=1))
    doc, _ = run_campaign(spec, LocalEngine())
    res = doc["results"]
    canary = res["waves"][0]
    assert canary["kind"] == "canary" and canary["homes"] == 20          # 5 % of 400
    assert canary["failure_rate"] > 0.2 and canary["halted_after"]
    assert res["halted_after_wave"] == 0 and len(res["waves"]) == 1
    assert res["homes_attempted"] == 20                                   # no wave after the canary started
    assert canary["home_outcomes"]["rolled back"] == round(canary["failure_rate"] * 20)
    assert res["time_to_upgraded_h"]["100%"] is None


def test_a_healthy_canary_goes_on_to_every_wave(tiny):
    spec = load_campaign(tiny(homes=400, faulty=0.0, sample=1))
    doc, _ = run_campaign(spec, LocalEngine())
    res = doc["results"]
    assert res["halted_after_wave"] is None and [w["homes"] for w in res["waves"]] == [20, 100, 280]
    assert res["homes_upgraded"] == 400 and res["time_to_upgraded_h"]["100%"] is not None
    starts = [w["start_h"] for w in res["waves"]]
    ends = [w["end_h"] for w in res["waves"]]
    assert all(starts[k + 1] >= ends[k] + 24 for k in range(2))           # soak_hours (default 24) between
    assert res["lost_service_minutes"]["any"] > 0 and res["peak_homes_offline_at_once"] >= 1


SYNTH = 'name = "s"\nhomes = {homes}\nseed = 1\n[population]\ngsme-mains = 1\n[hub]\ndistribution_days = 0\n' \
        '[rollout]\nwaves = [100]\njitter_hours = 0\nmax_concurrent_homes = {cap}\nretry = {{ attempts = {retries},' \
        ' after_hours = 5 }}\n'


def _rec(name, rtype, outcome, download_s=3600.0, downtime_s=60.0, offline=False):
    return (name, rtype, "next", outcome, "", download_s, downtime_s, 1, 0.0, 0.0, offline, 0.0)


def _simulate(spec, b2, model):
    """Every home of spec a gsme-mains whose b1 upgrades and whose b2 gives record b2."""
    table = list(model.table) + [_rec("b1", "B1", "upgraded"), b2]
    fleet = Fleet(spec)
    for i in range(spec.homes):
        fleet.put_home(i, (0, 0, 0, 0), clock_draws(spec, i), (len(table) - 2, len(table) - 1))
    return simulate(spec, fleet, table, model)


def test_stuck_downloads_are_retried_and_only_they_download_again():
    spec = parse_campaign(SYNTH.format(homes=4, cap=100, retries=1), "s.toml")
    model = FastModel([_rec("b2", "B2", "upgraded")], {"gbcs-ch|B2|next": [0, 0]})
    out = _simulate(spec, _rec("b2", "B2", "stuck", download_s=4 * 3600, downtime_s=0), model)
    assert out["retries"] == 4 and out["homes_upgraded"] == 4
    assert out["bridge_outcomes"] == {"upgraded": 8}
    # b1 1 h + b2 stuck 4 h (one download at a time per hub), retry 5 h later: b2 1 h more, then the
    # CS06 window (02:00-04:00 the next day), then the reboot
    assert all(26 <= t <= 28.1 for t in [out["time_to_upgraded_h"]["100%"]])


def test_without_retries_a_stuck_home_stays_stuck():
    spec = parse_campaign(SYNTH.format(homes=4, cap=100, retries=0), "s.toml")
    out = _simulate(spec, _rec("b2", "B2", "stuck", downtime_s=0), FastModel([], {}))
    assert out["retries"] == 0 and out["homes_upgraded"] == 0 and out["home_outcomes"] == {"stuck": 4}


def test_the_campaign_wide_cap_queues_homes():
    one = _simulate(parse_campaign(SYNTH.format(homes=6, cap=1, retries=0), "s.toml"),
                    _rec("b2", "B2", "upgraded"), FastModel([], {}))
    six = _simulate(parse_campaign(SYNTH.format(homes=6, cap=6, retries=0), "s.toml"),
                    _rec("b2", "B2", "upgraded"), FastModel([], {}))
    # one home at a time: 6 homes x 2 h of downloads before the last can activate
    assert six["time_to_upgraded_h"]["100%"] < 4.1
    assert one["time_to_upgraded_h"]["100%"] >= 12 and one["homes_upgraded"] == 6


def test_a_dead_bridge_keeps_its_home_offline_to_the_end():
    spec = parse_campaign(SYNTH.format(homes=2, cap=10, retries=0), "s.toml")
    out = _simulate(spec, _rec("b2", "B2", "bricked", offline=True), FastModel([], {}))
    assert out["home_outcomes"] == {"bricked": 2}
    # from the CS06 (02:00 onwards) to the campaign's end, for both homes: minutes of lost meter link
    assert out["lost_service_minutes"]["meter"] == out["lost_service_minutes"]["any"] > 0
    assert out["lost_service_minutes"]["display"] == 0
    # downtime per bridge type: the bricked B2 never came back, and its minutes are the meter's
    down = out["downtime"]
    b1, b2 = down["per_type"]["B1"], down["per_type"]["B2"]
    assert (b1["mode"], b1["reboots"], b1["came_back"], b1["downtime_s"]["p50"]) == ("copy-swap", 2, 2, 60.0)
    assert (b2["mode"], b2["reboots"], b2["left_offline"], b2["downtime_s"]["mean"]) == ("bank-switch", 2, 2, None)
    assert b1["link_minutes"] == {"meter": 2.0, "display": 0.0}
    assert b2["link_minutes"]["meter"] == out["lost_service_minutes"]["meter"]
    assert down["per_mode"]["copy-swap"]["reboots"] == 2 and down["per_mode"]["bank-switch"]["left_offline"] == 2
    hub = down["per_hub"]["gbcs-ch"]
    assert (hub["homes"], hub["homes_upgraded"]) == (2, 0)
    assert hub["lost_service_minutes"] == out["lost_service_minutes"]


def test_activation_waits_for_the_daily_window():
    spec = parse_campaign(SYNTH.format(homes=1, cap=1, retries=0), "s.toml")
    assert _activation(spec, 2.5, 0.7) == 2.5                # inside 02:00-04:00: at once
    assert _activation(spec, 5.0, 0.25) == 26.5              # after it: the next day's window
    assert _activation(spec, 0.5, 0.5) == 3.0                # before it: today's


@pytest.mark.parametrize("n, m, expect", [(1, 0.0, 100.0), (2, 0.0, 150.0), (1, 0.5, 150.0), (3, 0.5, 350.0)])
def test_airtime_contention_stretches_only_the_airtime_share(n, m, expect):
    # half of the 100 s download is airtime on the home's channel
    assert contended_s(100.0, 50.0, n, m) == pytest.approx(expect)
