"""Who may change firmware, named in the premises (issue 8, part 6): the hub's
`signing_key` and each bridge's `authority_key`, used as a user would, through
`bridge-emu run`. Relative paths are taken from the premises file's folder."""
from __future__ import annotations

import json
import os
import pathlib
import re

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from bridge_emu import cli, keys
from bridge_emu.premises.schema import PremisesError, load_premises, parse_premises

pytestmark = pytest.mark.native

PREMISES = """
name = "ops"
[hub]
activation = "immediate"
{hub}
[[bridge]]
name = "b1"
type = "B1"
{b1}
[[bridge]]
name = "b4"
type = "B4"
parent = "b1"
offer = "none"
link = {{ loss = 0.0 }}
"""


def operator_keys(folder: pathlib.Path) -> None:
    """An authorising party of the user's own: its private key and public key."""
    folder.mkdir(parents=True)
    key = keys.generate_key()
    keys.save_key(key, folder / "ops.key.pem")
    (folder / "ops.pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))


def write(tmp_path: pathlib.Path, hub: str = "", b1: str = "") -> pathlib.Path:
    path = tmp_path / "site" / "ops.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(PREMISES.format(hub=hub, b1=b1))
    return path


def run(capsys, path: pathlib.Path, out: pathlib.Path) -> dict:
    """b1 of the premises at `path`, run from another folder (so relative keys are the file's)."""
    cwd = os.getcwd()
    os.chdir(out.parent)
    try:
        rc = cli.main(["run", str(path), "--json", "--dir", str(out), "--limit", "10800"])
    finally:
        os.chdir(cwd)
    report = json.loads(capsys.readouterr().out)
    b1 = next(b for b in report["bridges"] if b["bridge"] == "b1")
    return {"rc": rc, **b1, "events": [json.loads(line) for line in (out / "ops" / "b1" / "events.jsonl").open()]}


def refusals(b1: dict) -> set[str]:
    return {e["reason"] for e in b1["events"] if e["event"] == "cs06_refused"}


@pytest.fixture
def site(tmp_path: pathlib.Path) -> pathlib.Path:
    operator_keys(tmp_path / "site" / "keys")
    (tmp_path / "work").mkdir()
    return tmp_path


def test_a_bridge_takes_cs06_from_the_authority_the_premises_names(capsys, site):
    path = write(site, hub='signing_key = "keys/ops.key.pem"', b1='authority_key = "keys/ops.pub.pem"')
    b1 = run(capsys, path, site / "work" / "out")
    assert b1["rc"] == 0 and b1["outcome"] == "upgraded" and not refusals(b1)


def test_a_hub_with_the_default_key_is_refused_by_a_bridge_of_another_authority(capsys, site):
    path = write(site, b1='authority_key = "keys/ops.pub.pem"')
    b1 = run(capsys, path, site / "work" / "out")
    assert b1["outcome"] != "upgraded" and refusals(b1) == {"bad_signature"}
    assert b1["version_after"] == b1["version_before"] and "0x8F84" in b1["alerts"]


def test_a_hub_that_signs_with_another_key_than_the_bridges_default_is_refused(capsys, site):
    path = write(site, hub='signing_key = "keys/ops.key.pem"')
    b1 = run(capsys, path, site / "work" / "out")
    assert b1["outcome"] != "upgraded" and refusals(b1) == {"bad_signature"}


def test_a_hub_that_signs_nothing_is_refused(capsys, site):
    path = write(site, hub='signing_key = "none"')
    b1 = run(capsys, path, site / "work" / "out")
    assert b1["outcome"] != "upgraded" and refusals(b1) == {"unsigned"}


def test_a_certificate_or_a_private_key_serves_as_the_authority(site):
    path = write(site, b1='authority_key = "keys/ops.key.pem"')
    assert load_premises(path).bridges[0].authority_key == site / "site" / "keys" / "ops.key.pem"
    absolute = (site / "site" / "keys" / "ops.pub.pem").resolve()
    spec = parse_premises(PREMISES.format(hub="", b1=f'authority_key = "{absolute}"'), "p.toml")
    assert spec.bridges[0].authority_key == absolute and spec.signing_key is None


def bad_keys(folder: pathlib.Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (folder / "rsa.pem").write_bytes(rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    p384 = ec.generate_private_key(ec.SECP384R1())
    (folder / "p384.pem").write_bytes(p384.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    keys.save_key(keys.generate_key(), folder / "locked.pem", password=b"secret")
    (folder / "junk.pem").write_bytes(b"not a key\n")


@pytest.mark.parametrize(("field", "value", "culprit"), [
    ("hub", 'signing_key = "keys/missing.pem"', "hub.signing_key: "),
    ("hub", 'signing_key = "keys/ops.pub.pem"', "not a PEM private key"),
    ("hub", 'signing_key = "keys/rsa.pem"', "RSA"),
    ("hub", 'signing_key = "keys/locked.pem"', "locked.pem"),
    ("hub", 'signing_key = 7', "hub.signing_key: expected a string"),
    ("b1", 'authority_key = "keys/p384.pem"', "bridge[1].authority_key: "),
    ("b1", 'authority_key = "keys/junk.pem"', "junk.pem"),
    ("b1", 'authority_key = "keys"', "cannot read key file"),
    ("b1", 'authority = "keys/ops.pub.pem"', "did you mean 'authority_key'?"),
])
def test_a_bad_key_is_refused_in_one_line_before_anything_runs(capsys, site, field, value, culprit):
    bad_keys(site / "site" / "keys")
    path = write(site, **{field: value})
    with pytest.raises(PremisesError, match=re.escape(culprit)) as e:
        load_premises(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)
    out = site / "work" / "out"
    assert cli.main(["run", str(path), "--dir", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and culprit in err and not out.exists()
