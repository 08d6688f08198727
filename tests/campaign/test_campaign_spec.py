"""The campaign file is checked before anything runs; each refusal is one line
naming the file and the field, and the command exits 2 without a traceback."""
from __future__ import annotations

import sys

import pytest

from bridge_emu.campaign import CampaignError, engine, load_campaign, parse_campaign
from bridge_emu.campaign.engines import RAY_MISSING
from bridge_emu.cli import main

BASE = 'name = "c"\nhomes = 10\n[population]\nihd = 1\n'


@pytest.mark.parametrize("text, message", [
    ('name = "c"\n[population]\nihd = 1\n', "c.toml.homes: missing"),
    ('name = "c"\nhomes = 0\n[population]\nihd = 1\n', "c.toml.homes: 0 is outside 1..1e+07"),
    ('name = "c"\nhomes = 2.5\n[population]\nihd = 1\n', "c.toml.homes: expected an integer, got a number"),
    ('name = "c"\nhomse = 3\n', "c.toml.homse: unknown key (did you mean 'homes'?)"),
    ('name = "c"\nhomes = 10\n[population]\nihdd = 1\n',
     "c.toml.population.ihdd: neither a built-in configuration nor a premises file (did you mean 'ihd'?)"),
    ('name = "c"\nhomes = 10\n[population]\nihd = -1\n', "c.toml.population.ihd: weight -1 must be 0 or more"),
    ('name = "c"\nhomes = 10\n[population]\nihd = 0\n', "c.toml.population: the weights add up to 0"),
    (BASE + "[conditions.far]\nloss = 0.7\n", "c.toml.conditions.far.loss: 0.7 is outside 0..0.5"),
    (BASE + "[conditions.far]\nloss = [0.2, 0.1]\n", "c.toml.conditions.far.loss: [0.2, 0.1]: lo is above hi"),
    (BASE + "[conditions.far]\nlatency_ms = [1, 2, 3]\n",
     "c.toml.conditions.far.latency_ms: want a number or [lo, hi] (two numbers), got [1, 2, 3]"),
    (BASE + "[devices]\nfaulty_share = 1.5\n", "c.toml.devices.faulty_share: 1.5 is outside 0..1"),
    (BASE + "[devices]\nb3_battery = { good = 1, flat = 1 }\n",
     "c.toml.devices.b3_battery.flat: unknown key; known keys: good, low"),
    (BASE + '[hub]\npersonality = "z2m"\n', "c.toml.hub.personality: 'z2m' is not one of zigpy, herdsman, gbcs-ch"),
    (BASE + '[hub]\npersonality = { gbcs-ch = 1, z2m = 1 }\n', "c.toml.hub.personality.z2m: 'z2m' is not one of"),
    (BASE + '[hub]\npersonality = { zigpy = 0 }\n', "c.toml.hub.personality: the weights add up to 0"),
    (BASE + '[hub]\npersonality = { zigpy = "x" }\n', "c.toml.hub.personality.zigpy: weight 'x' must be a number"),
    (BASE + "[hub]\npersonality = 3\n", "c.toml.hub.personality: expected a string or a table, got an integer"),
    (BASE + "[hub]\nactivation_window = [4, 2]\n", "c.toml.hub.activation_window: [4, 2]: lo is above hi"),
    (BASE + "[hub]\nmax_concurrent_downloads = 4\n", "c.toml.hub.max_concurrent_downloads: 4 is outside 1..3"),
    (BASE + "[rollout]\nwaves = [10, 5, 100]\n",
     "c.toml.rollout.waves[2]: 5 is not above the wave before (10); waves are cumulative percentages"),
    (BASE + "[rollout]\nwaves = [10, 50]\n", "c.toml.rollout.waves: the last wave must reach 100"),
    (BASE + "[rollout]\nwaves = [120]\n", "c.toml.rollout.waves[1]: 120 is outside 0..100"),
    (BASE + "[rollout]\nhalt = { failure_rate = 2 }\n", "c.toml.rollout.halt.failure_rate: 2 is outside 0..1"),
    (BASE + '[rollout]\nretry = { on = ["broken"] }\n', "c.toml.rollout.retry.on: 'broken' is not one of"),
    (BASE + "[fidelity]\nlimit_hours = 0\n", "c.toml.fidelity.limit_hours: 0 is outside 0.01..48"),
    ('name = "c"\nhomes = 10\n[population\n', "c.toml: not valid TOML"),
])
def test_a_bad_campaign_file_is_one_line_naming_the_field(tmp_path, capsys, text, message):
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(CampaignError) as e:
        load_campaign(path)
    assert message in str(e.value)
    assert str(e.value).startswith(str(path))
    assert "\n" not in str(e.value)
    assert main(["campaign", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()     # refused before anything was written


def test_a_premises_file_in_the_population_is_read_relative_to_the_campaign(tmp_path):
    (tmp_path / "flat.toml").write_text(
        'name = "flat"\n[[bridge]]\nname = "b1"\ntype = "B1"\n[[bridge]]\nname = "b4"\ntype = "B4"\nparent = "b1"\n')
    spec = parse_campaign(BASE + '"flat.toml" = 2\n', "c.toml", tmp_path)
    assert [(n, w) for n, w, _ in spec.population] == [("ihd", 1.0), ("flat.toml", 2.0)]
    (tmp_path / "bad.toml").write_text('name = "bad"\n')
    with pytest.raises(CampaignError, match=r'c.toml.population."bad.toml": .*2 or 3 bridges'):
        parse_campaign(BASE + '"bad.toml" = 2\n', "c.toml", tmp_path)


def test_a_missing_campaign_file_is_one_line(tmp_path, capsys):
    assert main(["campaign", str(tmp_path / "none.toml")]) == 2
    assert capsys.readouterr().err.strip().endswith("cannot read (No such file or directory)")


def test_without_ray_the_ray_engine_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)    # import ray raises ImportError
    with pytest.raises(CampaignError) as e:
        engine("ray", 2)
    assert str(e.value) == RAY_MISSING and "pip install 'bridge-emu[ray]'" in RAY_MISSING


def test_engine_options_that_do_not_fit_are_refused(tiny, capsys, tmp_path):
    assert main(["campaign", str(tiny()), "--engine", "local", "--workers", "2", "--out", str(tmp_path / "o")]) == 2
    assert "--workers is for processes or ray" in capsys.readouterr().err
    assert main(["campaign", str(tiny()), "--ray-address", "x:1", "--out", str(tmp_path / "o")]) == 2
    assert "--ray-address is for --engine ray" in capsys.readouterr().err
