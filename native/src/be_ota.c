/*
 * Verification of a downloaded ZigBee OTA upgrade file, as an emulated bridge
 * does it when the last block has arrived and before it reports "Firmware
 * Verification Successful" (alert 0x8F72, which carries the manufacturer image
 * hash computed here). The file is read only through be_flash_read, in small
 * chunks into stack buffers, and never outside [addr, addr + len).
 *
 * File layout (little-endian), offsets from the start of the file:
 *   0   magic u32 0x0BEEF11E     20  header_string[32]
 *   4   header_version u16       52  total_image_size u32 (header included)
 *   6   header_length u16        56  optional, in this order, as field_control says:
 *   8   field_control u16                bit 0: security credential version u8
 *   10  manufacturer u16                 bit 1: upgrade file destination EUI64
 *   12  image_type u16                   bit 2: min, max hardware version u16 each
 *   14  file_version u32         header_length: body starts here
 *   18  stack_version u16
 * Unknown field_control bits are ignored: header_length skips whatever follows.
 *
 * Bodies:
 *   GBCS (11.2.2-11.2.4): Manufacturer Image || force_replace u8 || 0x40 || r||s (64).
 *     The supplier's ECDSA P-256 signature is over SHA-256(Manufacturer Image),
 *     which is also the "manufacturer image hash". There is no framing: the
 *     trailer is recognised by its 0x40 byte and a force_replace of 0 or 1.
 *   Generic (ZCL 11.4.3): sub-elements {tag u16, length u32, data}, up to the end.
 *     Tag 0x0003 (image integrity code, 16 bytes) holds the AES-MMO hash of every
 *     file byte before that sub-element; some vendors hash its 6-byte tag header
 *     too. Either is accepted and info->integrity says which matched (the
 *     standard form is tried first). Sub-elements after it are allowed and are
 *     not covered. A file without tag 0x0003 passes with BE_OTA_MMO_NONE: the
 *     caller decides whether that is acceptable.
 *
 * Check order (the first failure is returned):
 *   1. arguments          BE_ERR_ARG (NULL f/expect, unknown body kind, GBCS without
 *                         a supplier key); BE_ERR_RANGE (addr + len beyond the flash)
 *   2. magic              BE_ERR_OTA_SIZE (len < 4), BE_ERR_OTA_MAGIC
 *   3. fixed header       BE_ERR_OTA_SIZE (len < 56), BE_ERR_OTA_HEADER (version not
 *                         0x0100), BE_ERR_OTA_SIZE (total_image_size != len),
 *                         BE_ERR_OTA_HEADER (header_length shorter than its fields or
 *                         beyond the file; min hw > max hw)
 *   4. identity           BE_ERR_OTA_MANUFACTURER, BE_ERR_OTA_IMAGE_TYPE,
 *                         BE_ERR_OTA_HW_VERSION (only if the file has the range).
 *                         No wildcards: a file for manufacturer/type 0xFFFF is refused.
 *   5. GBCS body          BE_ERR_OTA_NO_SIG (fewer than 66 bytes, or no 0x40 / force_replace
 *                         0..1 in front of the last 64), BE_ERR_OTA_BODY (empty manufacturer
 *                         image), BE_ERR_CRYPTO (no verifier, or it failed), BE_ERR_OTA_SIG
 *      generic body       BE_ERR_OTA_BODY (a sub-element header or its data runs past the
 *                         end; tag 0x0003 twice or not 16 bytes long), BE_ERR_OTA_INTEGRITY;
 *                         BE_ERR_RANGE if the hashed prefix is 2^32 bits or more
 * Flash read errors are returned as they come.
 */
#include <string.h>

#include "be_bytes_priv.h"
#include "be_range_priv.h"
#include "be_tlv_priv.h"

#define OTA_MAGIC 0x0BEEF11EUL
#define OTA_HEADER_VERSION 0x0100u
#define OTA_HDR_FIXED 56u
#define FC_CREDENTIAL 0x0001u
#define FC_DESTINATION 0x0002u
#define FC_HW_VERSIONS 0x0004u

#define GBCS_SIG_LEN 64u
#define GBCS_SIG_MARK 0x40u
#define GBCS_TRAILER (2u + GBCS_SIG_LEN)    /* force_replace, 0x40, r||s */

#define SUB_HDR 6u
#define SUB_LEN_SIZE 4u     /* sub-elements are {u16 tag, u32 length} */
#define TAG_UPGRADE_IMAGE 0x0000u
#define TAG_INTEGRITY 0x0003u
#define MMO_LEN 16u
#define SHA256_LEN 32u

_Static_assert(SUB_HDR == 2u + SUB_LEN_SIZE, "sub-element header: tag, then length");
/* The fields of be_ota_info_t this file fills by size. */
_Static_assert(sizeof(((be_ota_info_t *)0)->header_string) == 32u, "header_string[32]: bytes 20..51");
_Static_assert(sizeof(((be_ota_info_t *)0)->destination) == 8u, "destination[8]: an EUI64");
_Static_assert(sizeof(((be_ota_info_t *)0)->image_hash) == SHA256_LEN, "image_hash[32]");
_Static_assert(sizeof(((be_ota_info_t *)0)->mmo) == MMO_LEN, "mmo[16]: one AES block");

typedef struct ota_src {
    be_flash_t *f;
    uint32_t addr;      /* flash address of file byte 0 */
    uint32_t len;       /* the file's bytes: nothing past this is read */
} ota_src_t;

/* Every read of the file goes through here: bounded by the file. */
static int32_t ota_read(const ota_src_t *src, uint64_t off, uint8_t *buf, uint32_t n)
{
    if (off > src->len || (uint64_t)n > (uint64_t)src->len - off) {
        return BE_ERR_RANGE; /* callers check first; never reached for a valid call */
    }
    return be_flash_read(src->f, src->addr + (uint32_t)off, buf, n);
}

/* Hashes of file bytes [off, off + n): bounded by the file like ota_read. */
static int in_file(const ota_src_t *src, uint64_t off, uint64_t n)
{
    return off <= src->len && n <= (uint64_t)src->len - off;
}

static int32_t sha256_range(const ota_src_t *src, uint64_t off, uint64_t n,
                            uint8_t out[SHA256_LEN])
{
    be_sha256_t c;
    if (!in_file(src, off, n)) {
        return BE_ERR_RANGE; /* callers check first; never reached for a valid call */
    }
    (void)be_sha256_init(&c, BE_SHA_AUTO); /* returns the implementation, not an error */
    int32_t rc = be_range_sha256(src->f, src->addr + (uint32_t)off, (uint32_t)n, &c);
    if (rc < 0) {
        return rc;
    }
    be_sha256_final(&c, out);
    return BE_OK;
}

static int32_t mmo_range(const ota_src_t *src, be_mmo_t *c, uint64_t off, uint64_t n)
{
    if (!in_file(src, off, n)) {
        return BE_ERR_RANGE; /* callers check first; never reached for a valid call */
    }
    return be_range_mmo(src->f, src->addr + (uint32_t)off, (uint32_t)n, c);
}

static uint32_t same16(const uint8_t *a, const uint8_t *b)
{
    uint8_t diff = 0;
    for (uint32_t i = 0; i < MMO_LEN; i++) {
        diff |= (uint8_t)(a[i] ^ b[i]);
    }
    return diff == 0;
}

static int32_t verify_gbcs(const ota_src_t *src, const be_crypto_t *crypto, const uint8_t *key,
                           uint32_t key_len, be_ota_info_t *info)
{
    const uint64_t body_off = info->header_length;
    const uint64_t body_len = (uint64_t)src->len - body_off;   /* header_length <= len */
    uint8_t tr[2];
    uint8_t sig[GBCS_SIG_LEN];
    int32_t rc;

    if (body_len < GBCS_TRAILER) {
        return BE_ERR_OTA_NO_SIG;
    }
    const uint64_t tr_off = (uint64_t)src->len - GBCS_TRAILER;
    rc = ota_read(src, tr_off, tr, 2u);
    if (rc < 0) {
        return rc;
    }
    if (tr[1] != GBCS_SIG_MARK || tr[0] > 1u) {
        return BE_ERR_OTA_NO_SIG;
    }
    const uint64_t mi_len = body_len - GBCS_TRAILER;
    if (mi_len == 0) {
        return BE_ERR_OTA_BODY;
    }
    info->image_off = (uint32_t)body_off;
    info->image_len = (uint32_t)mi_len;
    info->force_replace = tr[0];

    rc = sha256_range(src, body_off, mi_len, info->image_hash);
    if (rc < 0) {
        return rc;
    }
    rc = ota_read(src, tr_off + 2u, sig, GBCS_SIG_LEN);
    if (rc < 0) {
        return rc;
    }
    if (crypto == NULL || crypto->ecdsa_p256_verify == NULL) {
        return BE_ERR_CRYPTO;
    }
    rc = crypto->ecdsa_p256_verify(crypto->user, key, key_len, info->image_hash, sig,
                                   GBCS_SIG_LEN, BE_SIG_RAW);
    if (rc == BE_ERR_IMG_SIG) {
        return BE_ERR_OTA_SIG;
    }
    if (rc != BE_OK) {
        return BE_ERR_CRYPTO;
    }
    info->sig_checked = 1;
    return BE_OK;
}

static int32_t verify_generic(const ota_src_t *src, be_ota_info_t *info)
{
    uint64_t mic_off = 0;
    uint32_t have_mic = 0, have_image = 0;
    uint8_t mic[MMO_LEN];
    be_tlv_iter_t it;
    be_tlv_t t;

    /* Structure: every sub-element lies within the file. */
    int32_t rc = be_tlv_begin(&it, src->f, src->addr, info->header_length, src->len, SUB_LEN_SIZE,
                              BE_ERR_OTA_BODY);
    if (rc != BE_OK) {
        return rc;
    }
    while ((rc = be_tlv_next(&it, &t)) > 0) {
        info->n_elements++;
        if (t.type == TAG_UPGRADE_IMAGE && have_image == 0) {
            info->image_off = (uint32_t)t.data;
            info->image_len = t.len;
            have_image = 1;
        } else if (t.type == TAG_INTEGRITY) {
            if (have_mic != 0 || t.len != MMO_LEN) {
                return BE_ERR_OTA_BODY;
            }
            rc = ota_read(src, t.data, mic, MMO_LEN);
            if (rc < 0) {
                return rc;
            }
            mic_off = t.off;
            info->integrity_off = (uint32_t)t.off;
            have_mic = 1;
        }
    }
    if (rc < 0) {
        return rc;
    }
    if (have_mic == 0) {
        info->integrity = BE_OTA_MMO_NONE;
        return BE_OK;
    }

    /* One pass serves both variants: finish a copy at the sub-element, then
     * the original after its 6-byte header. */
    be_mmo_t std_c, tag_c;
    uint8_t h_std[MMO_LEN], h_tag[MMO_LEN];
    be_mmo_init(&std_c);
    rc = mmo_range(src, &std_c, 0, mic_off);
    if (rc < 0) {
        return rc;
    }
    tag_c = std_c;
    rc = mmo_range(src, &tag_c, mic_off, SUB_HDR);
    if (rc < 0) {
        return rc;
    }
    rc = be_mmo_final(&std_c, h_std);
    if (rc < 0) {
        return rc;
    }
    rc = be_mmo_final(&tag_c, h_tag);
    if (rc < 0) {
        return rc;
    }
    if (same16(h_std, mic)) {
        memcpy(info->mmo, h_std, MMO_LEN);
        info->integrity = BE_OTA_MMO_STANDARD;
        return BE_OK;
    }
    if (same16(h_tag, mic)) {
        memcpy(info->mmo, h_tag, MMO_LEN);
        info->integrity = BE_OTA_MMO_WITH_TAG;
        return BE_OK;
    }
    memcpy(info->mmo, h_std, MMO_LEN);
    return BE_ERR_OTA_INTEGRITY;
}

int32_t be_ota_verify(be_flash_t *f, uint32_t addr, uint32_t len, const be_ota_expect_t *expect,
                      const be_crypto_t *crypto, const uint8_t *supplier_key,
                      uint32_t supplier_key_len, be_ota_info_t *info)
{
    be_ota_info_t scratch;
    uint8_t hdr[OTA_HDR_FIXED];
    uint8_t opt[13];    /* credential 1 + destination 8 + hw range 4 */
    int32_t rc;

    if (info == NULL) {
        info = &scratch;
    }
    memset(info, 0, sizeof *info);
    if (f == NULL || expect == NULL) {
        return BE_ERR_ARG;
    }
    if (expect->body != BE_OTA_BODY_GBCS && expect->body != BE_OTA_BODY_GENERIC) {
        return BE_ERR_ARG;
    }
    if (expect->body == BE_OTA_BODY_GBCS && (supplier_key == NULL || supplier_key_len == 0)) {
        return BE_ERR_ARG;
    }
    if ((uint64_t)addr + len > f->size) {
        return BE_ERR_RANGE;
    }
    const ota_src_t src = {f, addr, len};
    info->body = expect->body;

    /* Magic, then the fixed header. */
    if (len < 4u) {
        return BE_ERR_OTA_SIZE;
    }
    rc = ota_read(&src, 0, hdr, 4u);
    if (rc < 0) {
        return rc;
    }
    if (be_get_le32(hdr) != OTA_MAGIC) {
        return BE_ERR_OTA_MAGIC;
    }
    if (len < OTA_HDR_FIXED) {
        return BE_ERR_OTA_SIZE;
    }
    rc = ota_read(&src, 0, hdr, OTA_HDR_FIXED);
    if (rc < 0) {
        return rc;
    }
    info->header_version = be_get_le16(hdr + 4);
    info->header_length = be_get_le16(hdr + 6);
    info->field_control = be_get_le16(hdr + 8);
    info->manufacturer = be_get_le16(hdr + 10);
    info->image_type = be_get_le16(hdr + 12);
    info->file_version = be_get_le32(hdr + 14);
    info->stack_version = be_get_le16(hdr + 18);
    memcpy(info->header_string, hdr + 20, sizeof info->header_string);
    info->total_image_size = be_get_le32(hdr + 52);

    if (info->header_version != OTA_HEADER_VERSION) {
        return BE_ERR_OTA_HEADER;
    }
    if (info->total_image_size != len) {
        return BE_ERR_OTA_SIZE;
    }
    const uint32_t fc = info->field_control;
    const uint32_t n_opt = ((fc & FC_CREDENTIAL) != 0 ? 1u : 0u) +
                           ((fc & FC_DESTINATION) != 0 ? 8u : 0u) +
                           ((fc & FC_HW_VERSIONS) != 0 ? 4u : 0u);
    if (info->header_length < OTA_HDR_FIXED + n_opt || info->header_length > len) {
        return BE_ERR_OTA_HEADER;
    }
    if (n_opt != 0) {
        rc = ota_read(&src, OTA_HDR_FIXED, opt, n_opt);
        if (rc < 0) {
            return rc;
        }
        const uint8_t *p = opt;
        if ((fc & FC_CREDENTIAL) != 0) {
            info->security_credential_version = *p++;
        }
        if ((fc & FC_DESTINATION) != 0) {
            memcpy(info->destination, p, sizeof info->destination);
            p += sizeof info->destination;
        }
        if ((fc & FC_HW_VERSIONS) != 0) {
            info->hw_min = be_get_le16(p);
            info->hw_max = be_get_le16(p + 2);
            if (info->hw_min > info->hw_max) {
                return BE_ERR_OTA_HEADER;
            }
        }
    }

    /* Is it for this device? */
    if (info->manufacturer != expect->manufacturer) {
        return BE_ERR_OTA_MANUFACTURER;
    }
    if (info->image_type != expect->image_type) {
        return BE_ERR_OTA_IMAGE_TYPE;
    }
    if ((fc & FC_HW_VERSIONS) != 0 &&
        (expect->hw_version < info->hw_min || expect->hw_version > info->hw_max)) {
        return BE_ERR_OTA_HW_VERSION;
    }

    if (expect->body == BE_OTA_BODY_GBCS) {
        return verify_gbcs(&src, crypto, supplier_key, supplier_key_len, info);
    }
    return verify_generic(&src, info);
}
