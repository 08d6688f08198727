"""MCUboot/imgtool-format images: the project's own builder, signer and parser.

Uses `cryptography` only (not imgtool), and produces what
`imgtool sign --key k.pem --header-size 0x200 --pad-header --version 1.2.3+4
--security-counter 7` produces: the same header, header padding, payload and
protected TLV area (so the same SHA-256), then the TLV area SHA256, KEYHASH,
ECDSA_SIG. Signatures are deterministic (RFC 6979), so a build is
byte-reproducible; imgtool's are random, so only the signature bytes differ.

Layout (little-endian):
    header (32 bytes, padded to hdr_size) | payload (img_size bytes)
    | protected TLV area {0x6908, total = protect_tlv_size} (only if non-empty)
    | TLV area {0x6907, total}
with entries {u16 type, u16 len, data}. The SHA-256 covers everything before
the TLV area; the ECDSA P-256 signature (DER) is over that digest.
"""
from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bridge_emu.errors import ImageFormatError

IMAGE_MAGIC = 0x96F3B83D
IMAGE_HEADER_SIZE = 32
DEFAULT_HEADER_SIZE = 0x200
TLV_INFO_MAGIC = 0x6907
TLV_PROT_INFO_MAGIC = 0x6908
TLV_INFO_SIZE = 4
TLV_ENTRY_SIZE = 4

TLV_KEYHASH = 0x01
TLV_PUBKEY = 0x02
TLV_SHA256 = 0x10
TLV_ECDSA_SIG = 0x22
TLV_SEC_CNT = 0x50

# Header flags (imgtool image.py IMAGE_F, MCUboot bootutil image.h).
IMAGE_F_PIC = 0x00000001
IMAGE_F_ENCRYPTED_AES128 = 0x00000004
IMAGE_F_ENCRYPTED_AES256 = 0x00000008
IMAGE_F_NON_BOOTABLE = 0x00000010
IMAGE_F_RAM_LOAD = 0x00000020
IMAGE_F_ROM_FIXED = 0x00000100
IMAGE_F_COMPRESSED_LZMA1 = 0x00000200
IMAGE_F_COMPRESSED_LZMA2 = 0x00000400
IMAGE_F_COMPRESSED_ARM_THUMB = 0x00000800
#: The flags the C validator accepts; any other bit is BE_ERR_IMG_UNSUPPORTED.
IMAGE_F_SUPPORTED = IMAGE_F_PIC

SIG_DER_MIN = 8
SIG_DER_MAX = 72

_HEADER = struct.Struct("<IIHHIIBBHII")
_TLV = struct.Struct("<HH")
assert _HEADER.size == IMAGE_HEADER_SIZE

# ----------------------------------------------------------------- version

_VERSION_RE = re.compile(r"^(\d+)(?:\.(\d+)(?:\.(\d+))?)?(?:\+(\d+))?$")


@dataclass(frozen=True, order=True)
class ImageVersion:
    major: int = 0
    minor: int = 0
    revision: int = 0
    build: int = 0

    def __post_init__(self) -> None:
        for name, value, limit in (("major", self.major, 0xFF), ("minor", self.minor, 0xFF),
                                   ("revision", self.revision, 0xFFFF),
                                   ("build", self.build, 0xFFFFFFFF)):
            if not isinstance(value, int) or not 0 <= value <= limit:
                raise ImageFormatError(f"version {name} {value!r} not in 0..{limit}")

    @classmethod
    def parse(cls, text: str | ImageVersion | Sequence[int]) -> ImageVersion:
        """"major.minor.revision+build" (minor, revision and build optional), as imgtool takes."""
        if isinstance(text, ImageVersion):
            return text
        if not isinstance(text, str):
            return cls(*text)
        m = _VERSION_RE.match(text.strip())
        if not m:
            raise ImageFormatError(f"bad version {text!r}: want major.minor.revision+build")
        return cls(*(int(g) if g is not None else 0 for g in m.groups()))

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.revision}+{self.build}"


VersionLike = str | ImageVersion | Sequence[int]

# ---------------------------------------------------------------- building


def tlv_area(entries: Iterable[tuple[int, bytes]], protected: bool = False) -> bytes:
    """A TLV area: info {magic, total length} then the entries, in order."""
    body = b"".join(_TLV.pack(t, len(d)) + bytes(d) for t, d in entries)
    total = TLV_INFO_SIZE + len(body)
    if total > 0xFFFF:
        raise ImageFormatError(f"TLV area of {total} bytes exceeds 65535")
    return _TLV.pack(TLV_PROT_INFO_MAGIC if protected else TLV_INFO_MAGIC, total) + body


def image_header(*, img_size: int, hdr_size: int = DEFAULT_HEADER_SIZE,
                 protect_tlv_size: int = 0, version: VersionLike = "0.0.0",
                 load_addr: int = 0, flags: int = 0, magic: int = IMAGE_MAGIC) -> bytes:
    """The 32-byte header (no padding)."""
    v = ImageVersion.parse(version)
    try:
        return _HEADER.pack(magic, load_addr, hdr_size, protect_tlv_size, img_size, flags,
                            v.major, v.minor, v.revision, v.build, 0)
    except struct.error as e:
        raise ImageFormatError(f"header field out of range: {e}") from None


def signed_region(payload: bytes, *, version: VersionLike = "0.0.0",
                  header_size: int = DEFAULT_HEADER_SIZE, security_counter: int | None = None,
                  load_addr: int = 0, flags: int = 0, header_pad: int = 0xFF,
                  protected_tlvs: Iterable[tuple[int, bytes]] = ()) -> bytes:
    """Header (padded to header_size with header_pad) + payload + protected TLV area:
    everything the SHA-256 covers. SEC_CNT, if given, is the first protected TLV."""
    if header_size < IMAGE_HEADER_SIZE or header_size > 0xFFFF:
        raise ImageFormatError(f"header size {header_size:#x} not in 32..0xffff")
    prot = []
    if security_counter is not None:
        if not 0 <= security_counter <= 0xFFFFFFFF:
            raise ImageFormatError("security counter must fit in 32 bits")
        prot.append((TLV_SEC_CNT, struct.pack("<I", security_counter)))
    prot.extend(protected_tlvs)
    prot_area = tlv_area(prot, protected=True) if prot else b""
    hdr = image_header(img_size=len(payload), hdr_size=header_size,
                       protect_tlv_size=len(prot_area), version=version,
                       load_addr=load_addr, flags=flags)
    return hdr + bytes([header_pad]) * (header_size - IMAGE_HEADER_SIZE) + bytes(payload) + prot_area


# ----------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Tlv:
    type: int
    data: bytes
    protected: bool
    offset: int     # of the entry's {type, len} in the image


@dataclass(frozen=True)
class ParsedImage:
    load_addr: int
    hdr_size: int
    protect_tlv_size: int
    img_size: int
    flags: int
    version: ImageVersion
    pad: int
    tlv_size: int           # unprotected area including its info
    total_size: int         # header + payload + both TLV areas
    tlvs: tuple[Tlv, ...] = field(repr=False)
    payload: bytes = field(repr=False)
    signed: bytes = field(repr=False)   # header + payload + protected TLVs (what the hash covers)

    @property
    def signed_size(self) -> int:
        return len(self.signed)

    def find(self, tlv_type: int) -> list[Tlv]:
        return [t for t in self.tlvs if t.type == tlv_type]

    def first(self, tlv_type: int) -> bytes | None:
        found = self.find(tlv_type)
        return found[0].data if found else None

    @property
    def security_counter(self) -> int | None:
        data = self.first(TLV_SEC_CNT)
        return None if data is None else struct.unpack("<I", data)[0]

    @property
    def sha256(self) -> bytes | None:
        return self.first(TLV_SHA256)

    @property
    def signatures(self) -> list[tuple[bytes | None, bytes]]:
        """(KEYHASH naming the key or None, DER signature) pairs, in TLV order (MCUboot pairing)."""
        out, pending = [], None
        for t in self.tlvs:
            if t.type == TLV_KEYHASH:
                pending = t.data
            elif t.type == TLV_ECDSA_SIG:
                out.append((pending, t.data))
                pending = None
        return out

    def digest(self) -> bytes:
        return hashlib.sha256(self.signed).digest()


def image_format_error(reason: str, message: str) -> ImageFormatError:
    return ImageFormatError(message, reason=f"BE_ERR_IMG_{reason}")


def _parse_area(data: bytes, start: int, end: int, protected: bool, out: list[Tlv]) -> None:
    off = start + TLV_INFO_SIZE
    while off < end:
        if end - off < TLV_ENTRY_SIZE:
            raise image_format_error("TLV_TRUNCATED", f"partial TLV entry at {off:#x}")
        t, n = _TLV.unpack_from(data, off)
        if off + TLV_ENTRY_SIZE + n > end:
            raise image_format_error("TLV_TRUNCATED", f"TLV {t:#x} at {off:#x} ({n} bytes) runs past its area")
        value = bytes(data[off + TLV_ENTRY_SIZE:off + TLV_ENTRY_SIZE + n])
        if t in (TLV_SHA256, TLV_KEYHASH) and n != 32:
            raise image_format_error("TLV_BAD", f"TLV {t:#x} at {off:#x} has length {n}, want 32")
        if t == TLV_SEC_CNT:
            if not protected:
                raise image_format_error("TLV_UNPROTECTED", f"SEC_CNT at {off:#x} outside the protected area")
            if n != 4:
                raise image_format_error("TLV_BAD", f"SEC_CNT at {off:#x} has length {n}, want 4")
        if t == TLV_ECDSA_SIG and not SIG_DER_MIN <= n <= SIG_DER_MAX:
            raise image_format_error("TLV_BAD", f"ECDSA_SIG at {off:#x} has length {n}")
        if t in (TLV_SHA256, TLV_SEC_CNT) and any(x.type == t for x in out):
            raise image_format_error("TLV_BAD", f"TLV {t:#x} at {off:#x} appears twice")
        out.append(Tlv(t, value, protected, off))
        off += TLV_ENTRY_SIZE + n


def parse_image(data: bytes, slot_size: int | None = None, *,
                check_flags: bool = False) -> ParsedImage:
    """Parse and structurally check an image (bytes after it, e.g. a slot trailer, are ignored).

    Applies the C validator's structural checks in the same order and raises
    ImageFormatError whose `reason` names the be_err_t the C core would return
    (hash, signature, keys and, unless check_flags, flags are not judged here:
    see verify_image).
    """
    data = bytes(data)
    limit = len(data) if slot_size is None else min(slot_size, len(data))
    if limit < IMAGE_HEADER_SIZE:
        raise image_format_error("TOO_BIG", f"{limit} bytes cannot hold a {IMAGE_HEADER_SIZE}-byte header")
    (magic, load_addr, hdr_size, prot_size, img_size, flags,
     major, minor, revision, build, pad) = _HEADER.unpack_from(data, 0)
    if magic != IMAGE_MAGIC:
        raise image_format_error("MAGIC", f"header magic {magic:#010x}, want {IMAGE_MAGIC:#010x}")
    if hdr_size < IMAGE_HEADER_SIZE:
        raise image_format_error("HEADER", f"header size {hdr_size} below {IMAGE_HEADER_SIZE}")
    if 0 < prot_size < TLV_INFO_SIZE:
        raise image_format_error("HEADER", f"protected TLV size {prot_size} cannot hold its info")
    if check_flags and flags & ~IMAGE_F_SUPPORTED:
        raise image_format_error("UNSUPPORTED", f"image flags {flags:#x} ask for unsupported features")
    prot_off = hdr_size + img_size
    tlv_off = prot_off + prot_size
    if tlv_off + TLV_INFO_SIZE > limit:
        raise image_format_error("TOO_BIG", f"TLV area at {tlv_off:#x} lies beyond {limit:#x} bytes")
    if prot_size:
        m, n = _TLV.unpack_from(data, prot_off)
        if m == TLV_INFO_MAGIC:
            raise image_format_error("TLV_OVERLAP", f"header declares {prot_size} protected TLV bytes, "
                                       "found the unprotected area")
        if m != TLV_PROT_INFO_MAGIC:
            raise image_format_error("TLV_MAGIC", f"protected TLV magic {m:#06x} at {prot_off:#x}")
        if n != prot_size:
            raise image_format_error("TLV_OVERLAP", f"protected TLV area says {n} bytes, header {prot_size}")
    m, tlv_tot = _TLV.unpack_from(data, tlv_off)
    if m == TLV_PROT_INFO_MAGIC:
        raise image_format_error("TLV_OVERLAP", f"protected TLV area at {tlv_off:#x} not in protect_tlv_size")
    if m != TLV_INFO_MAGIC:
        raise image_format_error("TLV_MAGIC", f"TLV magic {m:#06x} at {tlv_off:#x}")
    if tlv_tot < TLV_INFO_SIZE:
        raise image_format_error("TLV_TRUNCATED", f"TLV area length {tlv_tot} cannot hold its info")
    end = tlv_off + tlv_tot
    if end > limit:
        raise image_format_error("TOO_BIG", f"image of {end} bytes exceeds {limit}")
    tlvs: list[Tlv] = []
    if prot_size:
        _parse_area(data, prot_off, tlv_off, True, tlvs)
    _parse_area(data, tlv_off, end, False, tlvs)
    return ParsedImage(load_addr=load_addr, hdr_size=hdr_size, protect_tlv_size=prot_size,
                       img_size=img_size, flags=flags,
                       version=ImageVersion(major, minor, revision, build), pad=pad,
                       tlv_size=tlv_tot, total_size=end, tlvs=tuple(tlvs),
                       payload=data[hdr_size:prot_off], signed=data[:tlv_off])


