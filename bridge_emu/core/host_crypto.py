"""The host crypto backend the C core calls through be_crypto_t.

The core hashes images itself (SHA-256, from flash) and asks the host only to
verify an ECDSA P-256 signature over that digest. This module supplies that
callback (`be_py_ecdsa_verify`, declared `extern "Python"` in
native/build_ffi.py), a HostCrypto object that fills a be_crypto_t with it, and
helpers that build a be_trust_t from public keys.

The callback never lets a Python exception escape into C: anything unexpected
becomes BE_ERR_CRYPTO.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import weakref
from collections.abc import Iterable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bridge_emu.core._ffi import ffi, lib
from bridge_emu.keys import (
    RAW_SIG_LEN,
    PublicKeyLike,
    key_hash,
    public_key_der,
    raw_to_der,
    strip_der_padding,
    verify_digest_der,
)

__all__ = ["HostCrypto", "default_crypto", "make_trust", "verify_digest", "key_hash",
           "public_key_der", "be_py_ecdsa_verify"]

MAX_KEYS = 4            # be_trust_t.key[4]
MAX_KEY_DER = 128       # be_trust_t.key[.][128]
DIGEST_LEN = 32

# HostCrypto instances alive, by the address of their handle. The callback finds
# its owner here (for statistics only) instead of ffi.from_handle(), so a
# be_crypto_t that outlives its HostCrypto can never make C or Python touch
# freed memory: the callback then simply works without an owner.
_live: weakref.WeakValueDictionary[int, HostCrypto] = weakref.WeakValueDictionary()


@functools.lru_cache(maxsize=64)
def _load_p256(der: bytes) -> ec.EllipticCurvePublicKey:
    key = serialization.load_der_public_key(der)
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("provisioned key is not an ECDSA P-256 public key")
    return key


def verify_digest(key_der: bytes, digest: bytes, sig: bytes, sig_format: int = 0) -> int:
    """The backend's decision as a be_err_t: BE_OK, BE_ERR_IMG_SIG or BE_ERR_CRYPTO.

    Raises only for a key that cannot be loaded as P-256 (the callback maps
    that, like any other exception, to BE_ERR_CRYPTO).
    """
    key = _load_p256(bytes(key_der))
    if len(digest) != DIGEST_LEN:
        return lib.BE_ERR_CRYPTO
    if sig_format == lib.BE_SIG_DER:
        der = strip_der_padding(bytes(sig))
    elif sig_format == lib.BE_SIG_RAW:
        if len(sig) != RAW_SIG_LEN:
            return lib.BE_ERR_IMG_SIG
        der = raw_to_der(bytes(sig))
    else:
        return lib.BE_ERR_CRYPTO
    if not verify_digest_der(key, digest, der):
        return lib.BE_ERR_IMG_SIG
    return lib.BE_OK


_log = logging.getLogger(__name__)


def _on_callback_error(exc_type, exc_value, tb) -> int:
    _log.debug("ECDSA verify callback failed: %r", exc_value)
    return lib.BE_ERR_CRYPTO


@ffi.def_extern(error=lib.BE_ERR_CRYPTO, onerror=_on_callback_error)
def be_py_ecdsa_verify(user, key, key_len, digest, sig, sig_len, sig_format):
    owner = None
    if user != ffi.NULL:
        owner = _live.get(int(ffi.cast("uintptr_t", user)))
    if key == ffi.NULL or digest == ffi.NULL or sig == ffi.NULL:
        rc = lib.BE_ERR_CRYPTO
    else:
        try:
            rc = verify_digest(ffi.buffer(key, key_len)[:], ffi.buffer(digest, DIGEST_LEN)[:],
                               ffi.buffer(sig, sig_len)[:], sig_format)
        except Exception as e:  # a key that does not load, ...: never into C
            _log.debug("ECDSA verify failed: %r", e)
            rc = lib.BE_ERR_CRYPTO
    if owner is not None:
        owner._count(rc)
    return rc


class HostCrypto:
    """Owns an ffi handle and a be_crypto_t wired to the Python verifier.

    `crypto` is the cdata `be_crypto_t *` to hand to the core (or to copy into
    a be_trust_t / be_device_open). `calls`, `ok`, `bad` and `failed` count the
    verifications the core asked for through this instance.
    """

    def __init__(self) -> None:
        self._handle = ffi.new_handle(self)
        self._crypto = ffi.new("be_crypto_t *")
        self._crypto.ecdsa_p256_verify = lib.be_py_ecdsa_verify
        self._crypto.user = self._handle
        _live[int(ffi.cast("uintptr_t", self._handle))] = self
        self.calls = 0
        self.ok = 0
        self.bad = 0
        self.failed = 0

    @property
    def crypto(self):
        """The cdata `be_crypto_t *` (valid as long as this object lives)."""
        return self._crypto

    def _count(self, rc: int) -> None:
        self.calls += 1
        if rc == lib.BE_OK:
            self.ok += 1
        elif rc == lib.BE_ERR_IMG_SIG:
            self.bad += 1
        else:
            self.failed += 1

    def trust(self, public_keys: Iterable[PublicKeyLike] = (), min_security_counter: int = 0):
        """A new `be_trust_t *` with this backend and the given keys."""
        return make_trust(public_keys, min_security_counter, crypto=self)


_default: HostCrypto | None = None


def default_crypto() -> HostCrypto:
    """A process-wide HostCrypto that is never freed."""
    global _default
    if _default is None:
        _default = HostCrypto()
    return _default


def make_trust(public_keys: Iterable[PublicKeyLike] = (), min_security_counter: int = 0,
               crypto: HostCrypto | None = None):
    """A new cdata `be_trust_t *`: up to 4 keys, their hashes, the counter and a backend.

    crypto defaults to default_crypto(); the given HostCrypto must outlive the
    trust structure's use by the core.
    """
    ders = [public_key_der(k) for k in public_keys]
    if len(ders) > MAX_KEYS:
        raise ValueError(f"at most {MAX_KEYS} provisioned keys, got {len(ders)}")
    if not 0 <= min_security_counter <= 0xFFFFFFFF:
        raise ValueError("min_security_counter must fit in 32 bits")
    crypto = crypto if crypto is not None else default_crypto()
    trust = ffi.new("be_trust_t *")
    trust.crypto = crypto.crypto[0]
    trust.n_keys = len(ders)
    for i, der in enumerate(ders):
        if not 0 < len(der) <= MAX_KEY_DER:
            raise ValueError(f"key {i}: DER length {len(der)} not in 1..{MAX_KEY_DER}")
        ffi.memmove(trust.key[i], der, len(der))
        trust.key_len[i] = len(der)
        ffi.memmove(trust.key_hash[i], hashlib.sha256(der).digest(), DIGEST_LEN)
    trust.min_security_counter = min_security_counter
    return trust
