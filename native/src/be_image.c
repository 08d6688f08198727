/*
 * Validation of MCUboot/imgtool-format images, read only through the flash
 * model (small chunks into a stack buffer, never a RAM copy of the image).
 *
 * Layout (all little-endian), offsets from the start of the slot:
 *   [0, hdr_size)                 32-byte header, then padding
 *   [hdr_size, prot_off)          payload (img_size bytes)
 *   [prot_off, tlv_off)           protected TLV area, iff protect_tlv_size != 0:
 *                                 info {u16 0x6908, u16 total = protect_tlv_size}
 *   [tlv_off, end)                TLV area: info {u16 0x6907, u16 total}
 * Each area holds entries {u16 type, u16 len, data[len]}. The SHA-256 covers
 * [0, tlv_off); the ECDSA P-256 signature is over that digest.
 *
 * Check order (the first failure is returned):
 *   1. arguments                  BE_ERR_ARG (NULL, n_keys > 4, key_len 0 or > 128),
 *                                 BE_ERR_RANGE (addr + slot_size beyond the flash)
 *   2. header fits the slot       BE_ERR_IMG_TOO_BIG (slot_size < 32)
 *   3. magic                      BE_ERR_IMG_MAGIC
 *   4. header fields              BE_ERR_IMG_HEADER (hdr_size < 32, protect_tlv_size 1..3)
 *   5. flags                      BE_ERR_IMG_UNSUPPORTED (any flag but PIC)
 *   6. areas fit the slot         BE_ERR_IMG_TOO_BIG (64-bit sums vs slot_size)
 *   7. area infos                 BE_ERR_IMG_TLV_MAGIC, BE_ERR_IMG_TLV_OVERLAP (an area's
 *                                 magic or length contradicts protect_tlv_size),
 *                                 BE_ERR_IMG_TLV_TRUNCATED (area shorter than its info)
 *   8. entries, protected area first, then unprotected:
 *                                 BE_ERR_IMG_TLV_TRUNCATED, BE_ERR_IMG_TLV_UNPROTECTED,
 *                                 BE_ERR_IMG_TLV_BAD
 *   9. hash                       BE_ERR_IMG_NO_HASH, BE_ERR_IMG_HASH
 *  10. signature                  BE_ERR_IMG_NO_SIG; then KEYHASH/ECDSA_SIG pairs in
 *                                 TLV order (a signature uses the KEYHASH before it, as
 *                                 in MCUboot); the first pair that verifies wins. If none
 *                                 does: BE_ERR_IMG_SIG if a provisioned key's signature
 *                                 failed, else BE_ERR_IMG_KEY_UNKNOWN if a KEYHASH named an
 *                                 unknown key, else BE_ERR_IMG_NO_KEYHASH. A missing host
 *                                 verifier, or one reporting anything but BE_OK /
 *                                 BE_ERR_IMG_SIG, gives BE_ERR_CRYPTO at once.
 *  11. security counter           BE_ERR_IMG_ROLLBACK, BE_ERR_IMG_COUNTER (above
 *                                 BE_OTP_COUNTER_MAX), only once the image is authentic
 * Flash read errors are returned as they come.
 */
#include <string.h>

#include "be_bytes_priv.h"
#include "be_range_priv.h"
#include "be_tlv_priv.h"

#define IMG_MAGIC 0x96f3b83dUL
#define IMG_HDR_SIZE 32u
#define TLV_INFO_MAGIC 0x6907u
#define TLV_PROT_INFO_MAGIC 0x6908u
#define TLV_INFO_SIZE 4u
#define TLV_ENTRY_SIZE 4u
#define TLV_LEN_SIZE 2u     /* entries are {u16 type, u16 len} */

#define TLV_KEYHASH 0x01u
#define TLV_SHA256 0x10u
#define TLV_ECDSA_SIG 0x22u
#define TLV_SEC_CNT 0x50u

#define SHA256_LEN 32u
#define SIG_DER_MIN 8u  /* 30 06 02 01 r 02 01 s */
#define SIG_DER_MAX 72u /* 30 46 02 21 r[33] 02 21 s[33] */

/* Image header flags (imgtool image.py IMAGE_F / MCUboot image.h). */
#define IMAGE_F_PIC 0x00000001u
#define IMAGE_F_ENCRYPTED_AES128 0x00000004u
#define IMAGE_F_ENCRYPTED_AES256 0x00000008u
#define IMAGE_F_NON_BOOTABLE 0x00000010u
#define IMAGE_F_RAM_LOAD 0x00000020u
#define IMAGE_F_ROM_FIXED 0x00000100u
#define IMAGE_F_COMPRESSED_LZMA1 0x00000200u
#define IMAGE_F_COMPRESSED_LZMA2 0x00000400u
#define IMAGE_F_COMPRESSED_ARM_THUMB 0x00000800u
/* Executing in place from a fixed slot, the only flag that asks nothing of
 * us is PIC. Encryption, compression, RAM loading, a fixed ROM address and
 * non-bootable images are features this bootloader lacks; unknown bits are
 * refused too rather than silently ignored. */
#define IMAGE_F_SUPPORTED (IMAGE_F_PIC)

#define MAX_KEYS 4u
#define MAX_KEY_LEN 128u

_Static_assert(TLV_ENTRY_SIZE == 2u + TLV_LEN_SIZE, "TLV entry header: type, then length");
/* The trust arrays of be.h, which bridge_emu/core/host_crypto.py fills too. */
_Static_assert(MAX_KEYS == BE_ARRAY_LEN(be_trust_t, key), "be_trust_t.key[4]");
_Static_assert(MAX_KEYS == BE_ARRAY_LEN(be_trust_t, key_len), "be_trust_t.key_len[4]");
_Static_assert(MAX_KEYS == BE_ARRAY_LEN(be_trust_t, key_hash), "be_trust_t.key_hash[4]");
_Static_assert(MAX_KEY_LEN == sizeof(((be_trust_t *)0)->key[0]), "be_trust_t.key[.][128]");
_Static_assert(SHA256_LEN == sizeof(((be_trust_t *)0)->key_hash[0]), "KEYHASH is a SHA-256");
_Static_assert(SHA256_LEN == sizeof(((be_image_info_t *)0)->hash), "be_image_info_t.hash[32]");

typedef struct img_src {
    be_flash_t *f;
    uint32_t addr;      /* flash address of slot byte 0 */
    uint32_t slot_size;
} img_src_t;

/* What the structural pass found. */
typedef struct tlv_scan {
    uint32_t n_sha;
    uint32_t n_sec;
    uint32_t n_sig;
    uint8_t sha[SHA256_LEN];
    uint32_t sec_cnt;
} tlv_scan_t;

/* Progress of the KEYHASH/ECDSA_SIG pairing. */
typedef struct sig_state {
    int32_t key;            /* -1: no KEYHASH pending, -2: unknown key, >= 0: trust index */
    uint32_t bad_sig;       /* a provisioned key's signature failed */
    uint32_t unknown_key;   /* a signature named a key we do not have */
    uint32_t no_keyhash;    /* a signature came without a KEYHASH */
    int32_t verified;       /* trust index that verified, or -1 */
} sig_state_t;

/* Every read of the image goes through here: bounded by the slot. */
static int32_t img_read(const img_src_t *src, uint64_t off, uint8_t *buf, uint32_t len)
{
    if (off > src->slot_size || (uint64_t)len > (uint64_t)src->slot_size - off) {
        return BE_ERR_RANGE; /* callers check first; never reached for a valid call */
    }
    return be_flash_read(src->f, src->addr + (uint32_t)off, buf, len);
}

static int32_t find_key(const be_trust_t *trust, const uint8_t hash[SHA256_LEN])
{
    for (uint32_t i = 0; i < trust->n_keys; i++) {
        if (memcmp(trust->key_hash[i], hash, SHA256_LEN) == 0) {
            return (int32_t)i;
        }
    }
    return -2;
}

/* The entries of one area [start, end) (start is its info). */
static int32_t area_begin(be_tlv_iter_t *it, const img_src_t *src, uint64_t start, uint64_t end)
{
    return be_tlv_begin(it, src->f, src->addr, start + TLV_INFO_SIZE, end, TLV_LEN_SIZE,
                        BE_ERR_IMG_TLV_TRUNCATED);
}

/* Pass 1 over one area: every entry lies within the area, known TLVs have
 * their lengths, SHA256 and SEC_CNT appear once, SEC_CNT only where
 * protected. */
static int32_t scan_area(const img_src_t *src, uint64_t start, uint64_t end, uint32_t prot,
                         tlv_scan_t *scan)
{
    be_tlv_iter_t it;
    be_tlv_t t;
    int32_t rc = area_begin(&it, src, start, end);
    if (rc != BE_OK) {
        return rc;
    }
    while ((rc = be_tlv_next(&it, &t)) > 0) {
        switch (t.type) {
        case TLV_SHA256:
            if (t.len != SHA256_LEN || scan->n_sha != 0) {
                return BE_ERR_IMG_TLV_BAD;
            }
            rc = img_read(src, t.data, scan->sha, SHA256_LEN);
            if (rc < 0) {
                return rc;
            }
            scan->n_sha++;
            break;
        case TLV_SEC_CNT: {
            uint8_t v[4];
            if (prot == 0) {
                return BE_ERR_IMG_TLV_UNPROTECTED;
            }
            if (t.len != 4u || scan->n_sec != 0) {
                return BE_ERR_IMG_TLV_BAD;
            }
            rc = img_read(src, t.data, v, 4u);
            if (rc < 0) {
                return rc;
            }
            scan->sec_cnt = be_get_le32(v);
            scan->n_sec++;
            break;
        }
        case TLV_KEYHASH:
            if (t.len != SHA256_LEN) {
                return BE_ERR_IMG_TLV_BAD;
            }
            break;
        case TLV_ECDSA_SIG:
            if (t.len < SIG_DER_MIN || t.len > SIG_DER_MAX) {
                return BE_ERR_IMG_TLV_BAD;
            }
            scan->n_sig++;
            break;
        default:
            break; /* other TLVs are not ours to judge (MCUboot skips them too) */
        }
    }
    return rc;
}

/* Pass 2 over one area whose structure pass 1 accepted. Returns BE_OK (also
 * when nothing verified yet), or BE_ERR_CRYPTO / a flash error to stop. */
static int32_t sig_area(const img_src_t *src, uint64_t start, uint64_t end,
                        const be_trust_t *trust, const uint8_t digest[SHA256_LEN],
                        sig_state_t *st)
{
    be_tlv_iter_t it;
    be_tlv_t t;
    int32_t rc = area_begin(&it, src, start, end);
    if (rc != BE_OK) {
        return rc;
    }
    while (st->verified < 0) {
        rc = be_tlv_next(&it, &t);
        if (rc <= 0) {
            return rc; /* the end of the area, or an error */
        }
        if (t.type == TLV_KEYHASH) {
            uint8_t kh[SHA256_LEN];
            rc = img_read(src, t.data, kh, SHA256_LEN);
            if (rc < 0) {
                return rc;
            }
            st->key = find_key(trust, kh);
        } else if (t.type == TLV_ECDSA_SIG) {
            if (st->key == -1) {
                st->no_keyhash = 1;
            } else if (st->key < 0) {
                st->unknown_key = 1;
            } else {
                uint8_t sig[SIG_DER_MAX];
                uint32_t k = (uint32_t)st->key;
                if (trust->crypto.ecdsa_p256_verify == NULL) {
                    return BE_ERR_CRYPTO;
                }
                rc = img_read(src, t.data, sig, t.len);
                if (rc < 0) {
                    return rc;
                }
                rc = trust->crypto.ecdsa_p256_verify(trust->crypto.user, trust->key[k],
                                                     trust->key_len[k], digest, sig, t.len,
                                                     BE_SIG_DER);
                if (rc == BE_OK) {
                    st->verified = st->key;
                } else if (rc == BE_ERR_IMG_SIG) {
                    st->bad_sig = 1;
                } else {
                    return BE_ERR_CRYPTO;
                }
            }
            st->key = -1; /* a KEYHASH names the one signature after it */
        }
    }
    return BE_OK;
}

/* SHA-256 of slot bytes [0, len), from flash. */
static int32_t hash_region(const img_src_t *src, uint64_t len, uint8_t out[SHA256_LEN])
{
    be_sha256_t c;
    if (len > src->slot_size) {
        return BE_ERR_RANGE; /* callers check first; never reached for a valid call */
    }
    (void)be_sha256_init(&c, BE_SHA_AUTO); /* returns the implementation, not an error */
    int32_t rc = be_range_sha256(src->f, src->addr, (uint32_t)len, &c);
    if (rc < 0) {
        return rc;
    }
    be_sha256_final(&c, out);
    return BE_OK;
}

int32_t be_image_validate(be_flash_t *f, uint32_t addr, uint32_t slot_size,
                          const be_trust_t *trust, be_image_info_t *info)
{
    be_image_info_t scratch;
    uint8_t hdr[IMG_HDR_SIZE];
    uint8_t ti[TLV_INFO_SIZE];
    tlv_scan_t scan;
    sig_state_t st;
    int32_t rc;

    if (info == NULL) {
        info = &scratch;
    }
    memset(info, 0, sizeof *info);
    if (f == NULL || trust == NULL || trust->n_keys > MAX_KEYS) {
        return BE_ERR_ARG;
    }
    for (uint32_t i = 0; i < trust->n_keys; i++) {
        if (trust->key_len[i] == 0 || trust->key_len[i] > MAX_KEY_LEN) {
            return BE_ERR_ARG;
        }
    }
    if ((uint64_t)addr + slot_size > f->size) {
        return BE_ERR_RANGE;
    }
    const img_src_t src = {f, addr, slot_size};

    /* Header. */
    if (slot_size < IMG_HDR_SIZE) {
        return BE_ERR_IMG_TOO_BIG;
    }
    rc = img_read(&src, 0, hdr, IMG_HDR_SIZE);
    if (rc < 0) {
        return rc;
    }
    if (be_get_le32(hdr) != IMG_MAGIC) {
        return BE_ERR_IMG_MAGIC;
    }
    info->load_addr = be_get_le32(hdr + 4);
    info->hdr_size = be_get_le16(hdr + 8);
    info->protect_tlv_size = be_get_le16(hdr + 10);
    info->img_size = be_get_le32(hdr + 12);
    info->flags = be_get_le32(hdr + 16);
    info->ver_major = hdr[20];
    info->ver_minor = hdr[21];
    info->ver_revision = be_get_le16(hdr + 22);
    info->ver_build = be_get_le32(hdr + 24);

    if (info->hdr_size < IMG_HDR_SIZE ||
        (info->protect_tlv_size != 0 && info->protect_tlv_size < TLV_INFO_SIZE)) {
        return BE_ERR_IMG_HEADER;
    }
    if ((info->flags & ~(uint32_t)IMAGE_F_SUPPORTED) != 0) {
        return BE_ERR_IMG_UNSUPPORTED;
    }

    /* Areas: all sums in 64 bits, each compared with the slot before use. */
    const uint64_t prot_off = (uint64_t)info->hdr_size + info->img_size;
    const uint64_t tlv_off = prot_off + info->protect_tlv_size;
    if (tlv_off + TLV_INFO_SIZE > slot_size) {
        return BE_ERR_IMG_TOO_BIG;
    }
    if (info->protect_tlv_size != 0) {
        rc = img_read(&src, prot_off, ti, TLV_INFO_SIZE);
        if (rc < 0) {
            return rc;
        }
        if (be_get_le16(ti) == TLV_INFO_MAGIC) {
            return BE_ERR_IMG_TLV_OVERLAP; /* header claims a protected area that is not there */
        }
        if (be_get_le16(ti) != TLV_PROT_INFO_MAGIC) {
            return BE_ERR_IMG_TLV_MAGIC;
        }
        if (be_get_le16(ti + 2) != info->protect_tlv_size) {
            return BE_ERR_IMG_TLV_OVERLAP;
        }
    }
    rc = img_read(&src, tlv_off, ti, TLV_INFO_SIZE);
    if (rc < 0) {
        return rc;
    }
    if (be_get_le16(ti) == TLV_PROT_INFO_MAGIC) {
        return BE_ERR_IMG_TLV_OVERLAP; /* a protected area the header does not account for */
    }
    if (be_get_le16(ti) != TLV_INFO_MAGIC) {
        return BE_ERR_IMG_TLV_MAGIC;
    }
    const uint32_t tlv_tot = be_get_le16(ti + 2);
    if (tlv_tot < TLV_INFO_SIZE) {
        return BE_ERR_IMG_TLV_TRUNCATED;
    }
    const uint64_t end = tlv_off + tlv_tot;
    if (end > slot_size) {
        return BE_ERR_IMG_TOO_BIG;
    }
    info->tlv_size = tlv_tot;
    info->total_size = (uint32_t)end; /* <= slot_size */

    /* Entries. */
    memset(&scan, 0, sizeof scan);
    if (info->protect_tlv_size != 0) {
        rc = scan_area(&src, prot_off, tlv_off, 1, &scan);
        if (rc < 0) {
            return rc;
        }
    }
    rc = scan_area(&src, tlv_off, end, 0, &scan);
    if (rc < 0) {
        return rc;
    }
    info->has_security_counter = scan.n_sec;
    info->security_counter = scan.n_sec != 0 ? scan.sec_cnt : 0;

    /* Hash of header + payload + protected TLVs, from flash. */
    if (scan.n_sha == 0) {
        return BE_ERR_IMG_NO_HASH;
    }
    rc = hash_region(&src, tlv_off, info->hash);
    if (rc < 0) {
        return rc;
    }
    uint8_t diff = 0;
    for (uint32_t i = 0; i < SHA256_LEN; i++) {
        diff |= (uint8_t)(info->hash[i] ^ scan.sha[i]);
    }
    if (diff != 0) {
        return BE_ERR_IMG_HASH;
    }

    /* Signature. */
    if (scan.n_sig == 0) {
        return BE_ERR_IMG_NO_SIG;
    }
    memset(&st, 0, sizeof st);
    st.key = -1;
    st.verified = -1;
    if (info->protect_tlv_size != 0) {
        rc = sig_area(&src, prot_off, tlv_off, trust, info->hash, &st);
        if (rc < 0) {
            return rc;
        }
    }
    rc = sig_area(&src, tlv_off, end, trust, info->hash, &st);
    if (rc < 0) {
        return rc;
    }
    if (st.verified < 0) {
        if (st.bad_sig != 0) {
            return BE_ERR_IMG_SIG;
        }
        return st.unknown_key != 0 ? BE_ERR_IMG_KEY_UNKNOWN : BE_ERR_IMG_NO_KEYHASH;
    }
    info->key_index = (uint32_t)st.verified;

    /* Anti-rollback, on authentic data only. A counter the OTP cannot hold
     * would commit a confirmed record the raise then fails to follow. */
    if (info->security_counter < trust->min_security_counter) {
        return BE_ERR_IMG_ROLLBACK;
    }
    if (info->security_counter > BE_OTP_COUNTER_MAX) {
        return BE_ERR_IMG_COUNTER;
    }
    return BE_OK;
}

int32_t be_image_version_cmp(const be_image_info_t *a, const be_image_info_t *b)
{
    if (a == NULL || b == NULL) {
        return (a != NULL) - (b != NULL); /* NULL sorts first */
    }
    if (a->ver_major != b->ver_major) {
        return a->ver_major < b->ver_major ? -1 : 1;
    }
    if (a->ver_minor != b->ver_minor) {
        return a->ver_minor < b->ver_minor ? -1 : 1;
    }
    if (a->ver_revision != b->ver_revision) {
        return a->ver_revision < b->ver_revision ? -1 : 1;
    }
    if (a->ver_build != b->ver_build) {
        return a->ver_build < b->ver_build ? -1 : 1;
    }
    return 0;
}
