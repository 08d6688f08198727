"""The calibrated fast model against held-out full-fidelity runs, and the
statistics the check uses."""
from __future__ import annotations

import dataclasses
import random

import pytest

from bridge_emu.campaign import parse_campaign, run_campaign
from bridge_emu.campaign.engines import LocalEngine
from bridge_emu.campaign.homes import draw_home, full_fidelity
from bridge_emu.campaign.model import FastModel, calibration_homes, ks_critical, ks_statistic, strata

CHECK = """
name = "check"
homes = 2000
seed = 21
[population]
gsme-mains = 1
[conditions.near]
loss = [0.0, 0.03]
latency_ms = [10, 40]
throughput_kbps = [60, 120]
[fidelity]
sample_homes = 12
calibration_runs = 10
"""


def test_the_fast_model_agrees_with_held_out_full_fidelity_runs():
    """12 campaign homes at full fidelity, never used in calibration (10 other runs
    are), against 20 fast predictions each. Stated tolerances: the KS statistic of
    download time and downtime under its 1 % critical value, each outcome share
    within 0.10; and the medians within 15 % of the full runs'."""
    spec = parse_campaign(CHECK, "check.toml")
    doc, _ = run_campaign(spec, LocalEngine())
    check = doc["model_check"]
    assert check["held_out_homes"] == 12 and check["ok"], check
    for rtype in ("B1", "B2"):
        entry = check["per_type"][rtype]
        assert entry["held_out_bridges"] == 12 and entry["predictions"] == 240
        for field in ("download_s", "downtime_s"):
            f = entry[field]
            assert f["ks"] <= f["ks_critical_1pct"]
            full_med, fast_med = f["full_p10_p50_p90"][1], f["fast_p10_p50_p90"][1]
            assert fast_med == pytest.approx(full_med, rel=0.15)
        assert entry["outcome_shares"]["upgraded"]["full"] == entry["outcome_shares"]["upgraded"]["fast"] == 1.0


def test_a_model_calibrated_on_the_wrong_conditions_fails_the_check():
    """The check has teeth: a model calibrated on a fast link predicts a slow one badly."""
    fast_link = parse_campaign(CHECK.replace("throughput_kbps = [60, 120]", "throughput_kbps = 250")
                               .replace("loss = [0.0, 0.03]", "loss = 0"), "fast.toml")
    slow_link = parse_campaign(CHECK.replace("throughput_kbps = [60, 120]", "throughput_kbps = 10")
                               .replace("loss = [0.0, 0.03]", "loss = 0.05"), "slow.toml")
    from bridge_emu.campaign.homes import rng_for
    from bridge_emu.campaign.model import check
    model = FastModel.calibrate([(h, full_fidelity(fast_link, h)) for h in calibration_homes(fast_link)[:2]])
    held = [(h, full_fidelity(slow_link, h)) for h in (draw_home(slow_link, i) for i in range(4))]
    result = check(slow_link, model, held, rng_for)
    assert not result["ok"]
    assert not result["per_type"]["B2"]["download_s"]["ok"]


def test_strata_cover_every_kind_of_download_the_campaign_can_draw():
    spec = parse_campaign('name = "s"\nhomes = 10\n[population]\ngsme-mains = 1\ngsme-battery = 1\n'
                          '[devices]\nfaulty_share = 0.1\nincompatible_share = 0.1\n'
                          'b3_battery = { good = 9, low = 1 }\n'
                          '[fidelity]\ncalibration_runs = 3\n', "s.toml")
    kinds = {(f["config"], f["faulty_type"], f["incompatible_type"], f["battery"]) for f in strata(spec)}
    assert ("gsme-battery", None, None, "low") in kinds
    assert ("gsme-mains", None, None, "good") in kinds and ("gsme-battery", None, None, "good") in kinds
    assert {t for _, t, _, _ in kinds if t} == {"B1", "B2", "B3"}
    assert {t for _, _, t, _ in kinds if t} == {"B1", "B2", "B3"}
    assert len(strata(spec)) == len(kinds) * 3


def test_ks_statistic():
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0
    assert ks_statistic([1, 2, 3], [4, 5, 6]) == 1
    assert ks_statistic([1, 2, 3, 4], [3, 4, 5, 6]) == 0.5
    assert ks_statistic([1, 1, 2], [1, 2, 2]) == pytest.approx(1 / 3, abs=1e-4)   # ties step together
    rng = random.Random(3)
    a = [rng.gauss(0, 1) for _ in range(400)]
    b = [rng.gauss(0, 1) for _ in range(400)]
    c = [rng.gauss(0.5, 1) for _ in range(400)]
    assert ks_statistic(a, b) < ks_critical(400, 400) < ks_statistic(a, c)
    assert ks_critical(100, 100) == pytest.approx(1.628 * (2 / 100) ** 0.5, abs=1e-4)


MIXED = """
name = "mixed"
homes = 300
seed = 4
[population]
gsme-mains = 1
[hub]
personality = { gbcs-ch = 1, herdsman = 1 }
[fidelity]
sample_homes = 2
calibration_runs = 1
"""


def test_a_mix_of_hubs_calibrates_each_hub_and_reports_each():
    """Each home draws its hub; every stratum is run under each hub, a bridge's
    record comes from its own hub's buckets, and downtime is reported per hub."""
    spec = parse_campaign(MIXED, "mixed.toml")
    assert spec.hubs == ("gbcs-ch", "herdsman")
    assert [s["personality"] for s in strata(spec)] == ["gbcs-ch", "herdsman"]
    hubs = [draw_home(spec, i).personality for i in range(200)]
    assert 60 < hubs.count("herdsman") < 140
    doc, _ = run_campaign(spec, LocalEngine())
    buckets = doc["fast_model"]
    # herdsman's pacing (250 ms between blocks) against gbcs-ch's
    assert buckets["herdsman|B1|next"]["download_s_p50"] > 5 * buckets["gbcs-ch|B1|next"]["download_s_p50"]
    per_hub = doc["results"]["downtime"]["per_hub"]
    assert sorted(per_hub) == ["gbcs-ch", "herdsman"]
    assert sum(h["homes"] for h in per_hub.values()) == 300
    assert sum(h["per_type"]["B2"]["reboots"] for h in per_hub.values()) == \
        doc["results"]["downtime"]["per_type"]["B2"]["reboots"] >= 300
    # the hub is drawn last: everything else about a home is what a single-hub campaign draws
    single = parse_campaign(MIXED.replace("{ gbcs-ch = 1, herdsman = 1 }", '"gbcs-ch"'), "single.toml")
    for i in range(20):
        assert dataclasses.replace(draw_home(spec, i), personality="gbcs-ch") == draw_home(single, i)


def test_the_flash_work_of_a_download_is_charged_to_its_time_and_energy():
    """Full fidelity: the erases and programming a download does (a B1's blob
    sectors; a B3's resume after a brown-out erases the sector it resumes in)
    are added to its download time, and the factory programming before the
    update is not in a B3's energy."""
    spec = parse_campaign('name = "f"\nhomes = 10\n[population]\ngsme-battery = 1\n'
                          '[devices]\nb3_battery = { good = 1, low = 1 }\n', "f.toml")
    force = {"config": "gsme-battery", "faulty_type": None, "incompatible_type": None}
    good = full_fidelity(spec, draw_home(spec, 0, "calibration", dict(force, battery="good")))
    low = full_fidelity(spec, draw_home(spec, 0, "calibration", dict(force, battery="low")))
    b1, b3 = good
    assert b1[1] == "B1" and b1[7] >= 46 and b1[11] >= 46 * 0.045      # the blob's 46 sector erases at 45 ms
    assert b3[1] == "B3" and b3[7] == 0 and b3[11] < 0.1               # a blank bank: programming only
    b3_low = low[1]
    assert b3_low[11] >= 0.25 + b3[11]                                  # the resume's erase (250 or 700 ms)
    for rec in (b1, b3, b3_low):
        assert rec[5] > rec[11] > 0                                     # inside the download time
    # energy: radio and flash of the update only (premises/report.py's model, less the factory programming)
    assert b3_low[8] > b3[8] > 0 and b1[8] == 0.0
