"""Hostile inputs, command by command: each gives exit status 2 and one line on
stderr that names the culprit, and touches no file outside the command's output."""
from __future__ import annotations

import hashlib
import json
import pathlib
import shutil

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from bridge_emu import cli
from support.paths import IMAGES

pytestmark = pytest.mark.native


def snapshot(root: pathlib.Path) -> dict[str, str]:
    """Every file's digest (a huge one's size and modification time)."""
    def mark(p: pathlib.Path) -> str:
        st = p.stat()
        return f"{st.st_size}@{st.st_mtime_ns}" if st.st_size > 1 << 24 else hashlib.sha256(p.read_bytes()).hexdigest()
    return {str(p.relative_to(root)): mark(p) for p in sorted(root.rglob("*")) if p.is_file()}


def refused(capsys, tmp_path: pathlib.Path, argv, culprit: str, output: pathlib.Path | None = None) -> str:
    """Run argv (in tmp_path); assert the refusal and that only `output` may have changed."""
    before = snapshot(tmp_path)
    rc = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == 2, (argv, out, err)
    assert err.count("\n") == 1 and err.startswith("bridge-emu") and ": error: " in err, err
    assert culprit in err, (culprit, err)
    after = snapshot(tmp_path)
    if output is not None:
        prefix = str(output.relative_to(tmp_path))
        before = {k: v for k, v in before.items() if not k.startswith(prefix)}
        after = {k: v for k, v in after.items() if not k.startswith(prefix)}
    assert after == before
    return err


# ------------------------------------------------------------------ run --images


def image_folder(tmp_path: pathlib.Path) -> pathlib.Path:
    folder = tmp_path / "im"
    shutil.copytree(IMAGES, folder)
    return folder


def index_of(folder: pathlib.Path) -> dict:
    return json.loads((folder / "index.json").read_text())


def b2_next(folder: pathlib.Path) -> pathlib.Path:
    return folder / index_of(folder)["B2/next"]["file"]


def drop_entry(folder):
    d = index_of(folder)
    del d["B2/next"]
    (folder / "index.json").write_text(json.dumps(d))
    return "no entry 'B2/next'"


def drop_file(folder):
    b2_next(folder).unlink()
    return "missing (index.json names it for B2/next)"


def garbage_offer(folder):
    b2_next(folder).write_bytes(bytes(range(256)) * 3)
    return "not an OTA file the hub can serve"


def empty_offer(folder):
    b2_next(folder).write_bytes(b"")
    return "not an OTA file the hub can serve"


def garbage_current(folder):
    (folder / index_of(folder)["B2/current"]["file"]).write_bytes(b"\x00" * 100)
    return "factory image"


def index_not_an_object(folder):
    (folder / "index.json").write_text("[1, 2]")
    return "JSON object"


def index_not_json(folder):
    (folder / "index.json").write_bytes(b"\xff{")
    return "cannot read the image index"


def entry_escapes(folder):
    d = index_of(folder)
    d["B2/next"]["file"] = "../../etc/passwd"
    (folder / "index.json").write_text(json.dumps(d))
    return "not a file in the folder"


def entry_without_version(folder):
    d = index_of(folder)
    del d["B2/next"]["version"]
    (folder / "index.json").write_text(json.dumps(d))
    return "needs a \"file\" and a \"version\""


def no_keys(folder):
    shutil.rmtree(folder / "keys")
    return "keys"


@pytest.mark.parametrize("damage", [drop_entry, drop_file, garbage_offer, empty_offer, garbage_current,
                                    index_not_an_object, index_not_json, entry_escapes, entry_without_version,
                                    no_keys])
def test_a_damaged_image_folder_is_one_clear_line(capsys, tmp_path, damage):
    folder = image_folder(tmp_path)
    culprit = damage(folder)
    out = tmp_path / "out"
    refused(capsys, tmp_path, ["run", "gsme-mains", "--images", folder, "--dir", out], culprit, output=out)


def test_an_image_folder_that_is_not_one(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    refused(capsys, tmp_path, ["run", "gsme-mains", "--images", tmp_path / "f", "--no-dir"], "not an image folder")
    refused(capsys, tmp_path, ["run", "gsme-mains", "--images", tmp_path / "nothing", "--no-dir"],
            "not an image folder")


# ------------------------------------------------------------------ keys of the wrong kind


def write_key(tmp_path: pathlib.Path, kind: str, private: bool) -> pathlib.Path:
    key = {"rsa": lambda: rsa.generate_private_key(65537, 2048), "ed25519": ed25519.Ed25519PrivateKey.generate,
           "p384": lambda: ec.generate_private_key(ec.SECP384R1())}[kind]()
    path = tmp_path / f"{kind}-{'private' if private else 'public'}.pem"
    if private:
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    else:
        path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


HOLDS = {"rsa": "an RSA key of 2048 bits", "ed25519": "an Ed25519 key", "p384": "an EC key on secp384r1"}


@pytest.mark.parametrize("kind", ["rsa", "ed25519", "p384"])
def test_a_key_of_the_wrong_kind_names_the_option_the_file_and_what_it_holds(capsys, tmp_path, kind):
    vendor = next(IMAGES.glob("B2/*.zigbee"))
    keys = IMAGES / "keys"
    pub, priv = write_key(tmp_path, kind, False), write_key(tmp_path, kind, True)
    cases = [
        (["image", "info", vendor, "--supplier-key", pub], "--supplier-key", pub),
        (["image", "info", vendor, "--manufacturer-key", priv], "--manufacturer-key", priv),
        (["image", "verify", vendor, "--supplier-key", pub], "--supplier-key", pub),
        (["image", "verify", vendor, "--supplier-cert", pub], "--supplier-cert", pub),
        (["image", "build", "--type", "B2", "--version", "1.2.0", "--security-counter", "3",
          "--manufacturer-key", priv, "--supplier-key", keys / "TEST-ONLY-supplier-p256.key.pem",
          "-o", tmp_path / "out"], "--manufacturer-key", priv),
    ]
    for argv, option, path in cases:
        err = refused(capsys, tmp_path, argv, option, output=tmp_path / "out")
        assert str(path) in err and HOLDS[kind] in err, err


# ------------------------------------------------------------------ image info: bounded, streamed, stderr


def test_image_info_reads_within_a_bound(capsys, tmp_path):
    sparse = tmp_path / "big.zigbee"
    with open(sparse, "wb") as f:
        f.truncate(2 << 30)                                    # 2 GiB, sparse: costs nothing on disk
    refused(capsys, tmp_path, ["image", "info", sparse], "more than the 67108864 read at most")
    refused(capsys, tmp_path, ["image", "info", "/dev/zero"], "/dev/zero: more than the 67108864 bytes")
    small = tmp_path / "small.zigbee"
    small.write_bytes((IMAGES / json.loads((IMAGES / "index.json").read_text())["B2/next"]["file"]).read_bytes())
    refused(capsys, tmp_path, ["image", "info", small, "--max-size", "1000"], "more than the 1000 read at most")


def test_image_info_of_a_folder_without_ota_files_says_so(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no firmware here")
    refused(capsys, tmp_path, ["image", "info", tmp_path / "empty"], "no OTA files in this folder")


def test_image_info_errors_go_to_stderr_and_the_good_files_are_still_shown(capsys, tmp_path):
    good = next(IMAGES.glob("B2/*.zigbee"))
    bad = tmp_path / "bad.zigbee"
    bad.write_bytes(b"not an OTA file at all" * 10)
    rc = cli.main(["image", "info", str(good), str(bad), str(tmp_path / "missing.zigbee"), "--json"])
    out, err = capsys.readouterr()
    reports = json.loads(out)
    assert rc == 2 and [("error" in r) for r in reports] == [False, True, True]
    lines = err.splitlines()
    assert len(lines) == 2 and str(bad) in lines[0] and "missing.zigbee: cannot read" in lines[1]
    rc = cli.main(["image", "info", str(good), str(bad)])
    out, err = capsys.readouterr()
    assert rc == 2 and "bridge-emu B2" in out and str(bad) not in out and str(bad) in err


def test_image_info_reads_stdin(capsys, monkeypatch, tmp_path):
    import io
    import sys
    good = next(IMAGES.glob("B2/*.zigbee"))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(good.read_bytes())))
    rc = cli.main(["image", "info", "-", "--json"])
    out, _ = capsys.readouterr()
    (report,) = json.loads(out)
    assert rc == 0 and report["file"] == "-" and report["size"] == good.stat().st_size


# ------------------------------------------------------------------ image build


KEYS = IMAGES / "keys"
BUILD = ["image", "build", "--type", "B2", "--version", "1.2.0", "--security-counter", "3",
         "--manufacturer-key", KEYS / "TEST-ONLY-manufacturer-p256.key.pem",
         "--supplier-key", KEYS / "TEST-ONLY-supplier-p256.key.pem"]


@pytest.mark.parametrize("extra, culprit", [
    (["--hw-min", "5", "--hw-max", "1"], "--hw-min 0x0005 is above --hw-max 0x0001"),
    (["--hw-min", "5"], "--hw-min and --hw-max go together"),
    (["--payload-size", "0"], "--payload-size"),
    (["--payload-size", "10"], "--payload-size 10"),
    (["--payload-size", "2000000"], "does not fit a B2's download slot"),
    (["--security-counter", "2049"], "2049"),
])
def test_image_build_refuses_what_the_bridge_could_not_take(capsys, tmp_path, extra, culprit):
    out = tmp_path / "out"
    refused(capsys, tmp_path, BUILD + extra + ["-o", out], culprit)
    assert not out.exists() or not any(out.iterdir())


def test_image_build_never_replaces_a_different_build_of_the_same_name(capsys, tmp_path):
    out = tmp_path / "out"
    assert cli.main([str(a) for a in BUILD + ["-o", out]]) == 0
    (first,) = out.iterdir()
    kept = first.read_bytes()
    capsys.readouterr()
    assert cli.main([str(a) for a in BUILD + ["-o", out]]) == 0      # the same build again: harmless
    capsys.readouterr()
    refused(capsys, tmp_path, BUILD + ["--hw-min", "1", "--hw-max", "2", "-o", out], "another build")
    assert list(out.iterdir()) == [first] and first.read_bytes() == kept


def test_image_build_into_a_file_is_one_line(capsys, tmp_path):
    (tmp_path / "f").write_text("x")
    refused(capsys, tmp_path, BUILD + ["-o", tmp_path / "f"], str(tmp_path / "f"))
    refused(capsys, tmp_path, BUILD + ["-o", tmp_path / "f" / "sub"], str(tmp_path / "f"))
