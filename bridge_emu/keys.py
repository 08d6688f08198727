"""Test key pairs: the manufacturer's (signs the bootable image, provisioned
in the device's OTP) and the supplier's (signs the GBCS Upgrade Image; its
certificate is what a device or a tool verifies it with).

Every file written says TEST-ONLY in its name: these keys sign emulator
images, never anything that ships.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import pathlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature, encode_dss_signature
from cryptography.x509.oid import NameOID

from bridge_emu.errors import ImageFormatError

PublicKeyLike = bytes | bytearray | ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey

ROLES = ("manufacturer", "supplier")
KeySource = "str | os.PathLike | bytes | ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey | x509.Certificate"


class KeyFileError(ImageFormatError):
    """A key or certificate is missing, unreadable or not ECDSA P-256."""


@dataclass(frozen=True)
class KeyFiles:
    private: pathlib.Path
    public: pathlib.Path
    certificate: pathlib.Path | None


def key_paths(directory: str | os.PathLike, role: str, prefix: str = "TEST-ONLY") -> KeyFiles:
    d = pathlib.Path(directory)
    stem = f"{prefix}-{role}-p256"
    return KeyFiles(d / f"{stem}.key.pem", d / f"{stem}.pub.pem",
                    d / f"{stem}.cert.pem" if role == "supplier" else None)


def generate_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: ec.EllipticCurvePrivateKey, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, as `imgtool keygen` writes (loadable by `imgtool sign/verify -k`)."""
    enc = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, enc)


def save_key(key: ec.EllipticCurvePrivateKey, path: str | os.PathLike, password: bytes | None = None) -> None:
    pathlib.Path(path).write_bytes(private_key_pem(key, password))


def _read(source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), "key bytes"
    if isinstance(source, str) and source.lstrip().startswith("-----BEGIN"):
        return source.encode(), "key text"
    path = pathlib.Path(source)
    try:
        return path.read_bytes(), str(path)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read key file ({e.strerror})") from None
    except ValueError as e:     # a NUL in the name
        raise KeyFileError(f"{str(path)!r}: not a file name ({e})") from None


def describe_key(key) -> str:
    """What kind of key an object is, in words (for refusals)."""
    if isinstance(key, x509.Certificate):
        return f"a certificate for {describe_key(key.public_key())}"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return f"an EC key on {key.curve.name}"
    size = getattr(key, "key_size", None)
    name = type(key).__name__.replace("PublicKey", "").replace("PrivateKey", "").lstrip("_")
    return f"an {name} key" + (f" of {size} bits" if size else "")


def load_public_key(source) -> ec.EllipticCurvePublicKey:
    """The P-256 public key in `source`: a path, PEM or DER bytes (public key,
    private key or X.509 certificate), or a key or certificate object.
    The one loader of the project: every verifier takes keys through it."""
    key, what = source, "key"
    if not isinstance(source, (ec.EllipticCurvePublicKey, ec.EllipticCurvePrivateKey, x509.Certificate)):
        raw, what = _read(source)
        try:
            if raw.lstrip().startswith(b"-----BEGIN"):
                if b"CERTIFICATE-----" in raw:
                    key = x509.load_pem_x509_certificate(raw)
                elif b"PRIVATE KEY-----" in raw:
                    key = serialization.load_pem_private_key(raw, password=None)
                else:
                    key = serialization.load_pem_public_key(raw)
            else:
                try:
                    key = serialization.load_der_public_key(raw)
                except ValueError:
                    key = x509.load_der_x509_certificate(raw)
        except (ValueError, TypeError) as e:
            raise KeyFileError(f"{what}: not a PEM/DER public key, private key or certificate ({e})") from None
    held = describe_key(key)
    if isinstance(key, x509.Certificate):
        key = key.public_key()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"{what}: not an ECDSA P-256 key (it holds {held})")
    return key


def load_private_key(source, password: bytes | None = None) -> ec.EllipticCurvePrivateKey:
    """A P-256 private key from a PEM path or PEM bytes."""
    raw, what = _read(source)
    try:
        key = serialization.load_pem_private_key(raw, password=password)
    except (ValueError, TypeError) as e:
        raise KeyFileError(f"{what}: not a PEM private key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise KeyFileError(f"{what}: not an ECDSA P-256 private key (it holds {describe_key(key)})")
    return key


def self_signed_certificate(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bridge-emu TEST ONLY")])
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + datetime.timedelta(days=3650))
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))


def generate(directory: str | os.PathLike, prefix: str = "TEST-ONLY", *, force: bool = False) -> dict[str, KeyFiles]:
    """Write a manufacturer and a supplier P-256 key pair (and the supplier's
    self-signed certificate) into directory. Existing files are kept unless force."""
    out = {}
    for role in ROLES:
        paths = key_paths(directory, role, prefix)
        existing = [p for p in (paths.private, paths.public, paths.certificate) if p and p.exists()]
        if existing and not force:
            raise KeyFileError(f"{existing[0]}: exists; refusing to overwrite a key (use --force)")
        paths.private.parent.mkdir(parents=True, exist_ok=True)
        key = generate_key()
        paths.private.write_bytes(private_key_pem(key))
        os.chmod(paths.private, 0o600)
        paths.public.write_bytes(key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        if paths.certificate:
            cert = self_signed_certificate(key, f"bridge-emu TEST-ONLY {role}")
            paths.certificate.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        out[role] = paths
    return out


# ------------------------------------------- ECDSA P-256 over SHA-256 digests
# One home for the signature primitives: MCUboot images carry DER signatures
# (KEYHASH names the key), GBCS files raw r || s over the manufacturer image.

RAW_SIG_LEN = 64


def require_p256(key, what: str):
    if not isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)) \
            or not isinstance(key.curve, ec.SECP256R1):
        raise ImageFormatError(f"{what} is not an ECDSA P-256 key")
    return key


def public_key_der(key: PublicKeyLike) -> bytes:
    """DER SubjectPublicKeyInfo (what KEYHASH hashes and be_trust_t.key holds)."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        key = key.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(serialization.Encoding.DER,
                                serialization.PublicFormat.SubjectPublicKeyInfo)
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    raise TypeError(f"not a public key: {type(key).__name__}")


def key_hash(key: PublicKeyLike) -> bytes:
    """SHA-256 of the DER public key: the KEYHASH TLV."""
    return hashlib.sha256(public_key_der(key)).digest()


def strip_der_padding(sig: bytes) -> bytes:
    """Drop the zero bytes `imgtool --pad-sig` appends after a DER signature (zeros only)."""
    if len(sig) >= 2 and sig[0] == 0x30 and sig[1] < 0x80:
        n = sig[1] + 2
        if n < len(sig) and not any(sig[n:]):
            return bytes(sig[:n])
    return bytes(sig)


def sign_digest(key: ec.EllipticCurvePrivateKey, digest: bytes) -> bytes:
    """Deterministic (RFC 6979) DER ECDSA P-256 signature over a SHA-256 digest."""
    if len(digest) != 32:
        raise ValueError("digest must be 32 bytes")
    return key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256()), deterministic_signing=True))


def raw_to_der(sig: bytes) -> bytes:
    """r || s (32 bytes each, big-endian) as an ASN.1 DER ECDSA-Sig-Value."""
    return encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))


def sign_raw(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """Deterministic (RFC 6979) raw r || s signature over SHA-256(message)."""
    der = key.sign(bytes(message), ec.ECDSA(hashes.SHA256(), deterministic_signing=True))
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify_raw(key: ec.EllipticCurvePublicKey, message: bytes, sig: bytes) -> bool:
    """Whether a raw r || s signature verifies over SHA-256(message)."""
    if len(sig) != RAW_SIG_LEN:
        return False
    try:
        key.verify(raw_to_der(sig), bytes(message), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def verify_digest_der(key: ec.EllipticCurvePublicKey, digest: bytes, der: bytes) -> bool:
    """Whether a DER signature verifies over a SHA-256 digest computed elsewhere."""
    try:
        key.verify(bytes(der), bytes(digest), ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True
