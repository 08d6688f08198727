"""The premises schema (issue 8, part 3): unknown keys, wrong types, values out
of range, unsafe names and impossible premises are refused with one line that
names the field; nothing else escapes parse_premises."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge_emu.premises.schema import (
    PremisesError,
    builtin_premises,
    load_premises,
    parse_document,
    parse_premises,
)

GOOD = """
name = "p"
seed = 3
[hub]
activation = "immediate"
[[bridge]]
name = "b1"
type = "B1"
[[bridge]]
name = "b3"
type = "B3"
parent = "b1"
link = { latency_ms = 20, loss = 0.01, payload_limit = 82 }
power_cut = { at_fraction = 0.5, tear = "bits" }
"""

# (what is changed, replaced by, what the one-line message must name)
HOSTILE = [
    ('name = "b1"\ntype = "B1"', 'name = "b1"\ntype = "B1"\nofer = "next"',
     "bridge[1].ofer: unknown key (did you mean 'offer'"),
    ("power_cut =", "powercut =", "bridge[2].powercut: unknown key (did you mean 'power_cut'"),
    ("seed = 3", "sede = 3", "p.toml.sede: unknown key (did you mean 'seed'"),
    ("loss = 0.01", "los = 0.01", "bridge[2].link.los: unknown key"),
    ("loss = 0.01", 'loss = "high"', "bridge[2].link.loss: expected a number, got a string"),
    ("loss = 0.01", "loss = true", "bridge[2].link.loss: expected a number, got a boolean"),
    ("loss = 0.01", "loss = 1.0", "bridge[2].link.loss: 1.0 is outside"),
    ("latency_ms = 20", "latency_ms = inf", "bridge[2].link.latency_ms: inf is outside"),
    ("latency_ms = 20", "latency_ms = nan", "bridge[2].link.latency_ms: nan is outside"),
    ("latency_ms = 20", "throughput_kbps = 0.001", "bridge[2].link.throughput_kbps: 0.001 is outside"),
    ("payload_limit = 82", "payload_limit = 0", "bridge[2].link.payload_limit: 0 is outside"),
    ("payload_limit = 82", "payload_limit = 20", "bridge[2].link.payload_limit: 20 is outside"),
    ("payload_limit = 82", "payload_limit = 83", "bridge[2].link.payload_limit: 83 is outside"),
    ("at_fraction = 0.5", "at_fraction = 2", "bridge[2].power_cut.at_fraction: 2 is outside"),
    ("seed = 3", "seed = -1", "p.toml.seed: -1 is negative"),
    ("seed = 3", 'seed = "x"', "p.toml.seed: expected an integer, got a string"),
    ('[hub]\nactivation = "immediate"', 'hub = "gbcs"', "p.toml.hub: expected a table, got a string"),
    ('link = { latency_ms', 'link = [1]\nxlink = { latency_ms', "bridge[2].link: expected a table"),
    ('name = "b3"', 'name = "../../x"', "bridge[2].name: '../../x' is not a plain name"),
    ('name = "b3"', 'name = "/tmp/x"', "bridge[2].name: '/tmp/x' is not a plain name"),
    ('name = "p"', 'name = ".."', "p.toml.name: '..' is not a plain name"),
    ('name = "b3"\ntype = "B3"', 'name = "b3"\ntype = "B1"', "exactly one B1"),
    ('parent = "b1"\n', '', "bridge b3: a B3 reaches the hub through a parent bridge"),
    ('type = "B3"', 'type = "B9"', "bridge b3"),
]


@pytest.mark.parametrize("old,new,named", HOSTILE, ids=[h[1][:30] for h in HOSTILE])
def test_hostile_documents_get_one_line_naming_the_field(old, new, named):
    assert old in GOOD
    doc = GOOD.replace(old, new, 1)
    with pytest.raises(PremisesError) as e:
        parse_premises(doc, "p.toml")
    message = str(e.value)
    assert "\n" not in message and named in message, message


def test_the_good_document_and_every_builtin_parse():
    spec = parse_premises(GOOD, "p.toml")
    assert [b.name for b in spec.bridges] == ["b1", "b3"] and spec.seed == 3
    assert len(builtin_premises()) == 7


def test_a_premises_is_two_or_three_bridges():
    one = GOOD.split("[[bridge]]\nname = \"b3\"")[0]
    with pytest.raises(PremisesError, match="2 or 3 bridges, not 1"):
        parse_premises(one, "p.toml")


def test_unreadable_files_are_named(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'name = "\xff"\n')
    with pytest.raises(PremisesError, match="bad.toml: not UTF-8"):
        load_premises(bad)
    with pytest.raises(PremisesError, match="cannot read"):
        load_premises(tmp_path)


_scalar = st.one_of(st.integers(-3, 100), st.floats(allow_nan=True), st.text(max_size=8), st.booleans())
_values = st.recursive(_scalar, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                       max_leaves=8)
_keys = st.sampled_from(["name", "type", "parent", "offer", "link", "power_cut", "loss", "payload_limit",
                         "latency_ms", "at_fraction", "tear", "seed", "authority_key", "x"])
_hub = st.dictionaries(st.sampled_from(["personality", "activation", "signing_key", "x"]), _values, max_size=3)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(top=st.dictionaries(st.sampled_from(["name", "seed", "hub", "bridge", "description", "sede"]), _values,
                           max_size=5),
       hub=st.none() | _hub, bridges=st.lists(st.dictionaries(_keys, _values, max_size=6), max_size=4))
def test_any_document_parses_or_is_refused_with_one_line(top, hub, bridges):
    doc = {**top, "bridge": bridges} if bridges else top
    if hub is not None:
        doc["hub"] = hub
    try:
        parse_document(doc, "p.toml")
    except PremisesError as e:
        assert "\n" not in str(e) and str(e).startswith("p.toml")
