/*
 * One-time-programmable fuses: the anti-rollback counter and provisioned keys.
 *
 * Layout of the OTP area:
 *   [0, 256)            security counter: value = number of leading cleared
 *                       bits (LSB of byte 0 first). Raising clears more bits.
 *                       A torn raise leaves a value between old and target,
 *                       never above it, and the next raise completes it.
 *   [256 + 128*i, +128) key slot i (i < 4): u16 length, DER public key,
 *                       and at byte 124 a 4-byte check (SHA-256 of length
 *                       and key). A slot that is not all 0xFF and fails its
 *                       check (torn provisioning) is simply not a key.
 */
#include <string.h>

#include "be_bytes_priv.h"
#include "be_priv.h"

enum {
    OTP_COUNTER_OFF = 0,
    OTP_COUNTER_BYTES = 256,
    OTP_KEYS_OFF = 256,
    OTP_KEY_SLOT = 128,
    OTP_KEY_SLOTS = 4,
    OTP_KEY_MAX = OTP_KEY_SLOT - 2 - 4,
    OTP_NEEDED = OTP_KEYS_OFF + OTP_KEY_SLOT * OTP_KEY_SLOTS
};

_Static_assert(OTP_COUNTER_BYTES * 8 == BE_OTP_COUNTER_MAX, "be.h names the counter's capacity");
/* Every provisioned key fits be_trust_t (4 keys of up to 128 bytes). */
_Static_assert(OTP_KEY_SLOTS == BE_ARRAY_LEN(be_trust_t, key), "one trust key per OTP slot");
_Static_assert(OTP_KEY_MAX <= sizeof(((be_trust_t *)0)->key[0]), "an OTP key fits be_trust_t.key[.]");
/* bridge_emu/core/flash.py gives every device OTP_SIZE = 1024 bytes of OTP. */
_Static_assert(OTP_NEEDED <= 1024, "the OTP layout fits the device file's OTP area");

int32_t be_otp_counter(be_flash_t *f, uint32_t *value)
{
    uint8_t bits[OTP_COUNTER_BYTES];
    if (f == NULL || value == NULL) {
        return BE_ERR_ARG;
    }
    if (f->otp_size < OTP_NEEDED) {
        return BE_ERR_GEOMETRY;
    }
    int32_t rc = be_flash_otp_read(f, OTP_COUNTER_OFF, bits, sizeof bits);
    if (rc != BE_OK) {
        return rc;
    }
    uint32_t v = 0;
    for (uint32_t i = 0; i < sizeof bits * 8; i++) {
        if ((bits[i / 8] & (1u << (i % 8))) != 0) {
            break;
        }
        v++;
    }
    *value = v;
    return BE_OK;
}

int32_t be_otp_raise(be_flash_t *f, uint32_t value)
{
    uint32_t cur;
    int32_t rc = be_otp_counter(f, &cur);
    if (rc != BE_OK) {
        return rc;
    }
    if (value <= cur) {
        return BE_OK;
    }
    if (value > BE_OTP_COUNTER_MAX) {
        return BE_ERR_OTP_FULL;
    }
    /* One aligned write covering bits [cur, value); 0xFF elsewhere leaves bits as they are. */
    uint32_t a = f->geo.write_align;
    uint32_t first = (cur / 8) / a * a;
    uint32_t end = ((value - 1) / 8 + 1 + a - 1) / a * a;
    uint8_t buf[OTP_COUNTER_BYTES];
    memset(buf, 0xFF, sizeof buf);
    for (uint32_t i = cur; i < value; i++) {
        buf[i / 8 - first] &= (uint8_t)~(1u << (i % 8));
    }
    return be_flash_otp_write(f, OTP_COUNTER_OFF + first, buf, end - first);
}

static void key_check(const uint8_t *slot, uint32_t len, uint8_t out[4])
{
    uint8_t digest[32];
    be_sha256(slot, 2 + (size_t)len, digest);
    memcpy(out, digest, 4);
}

/* 1 if the slot holds a key (fills *len), 0 if erased, -1 if garbage. */
static int slot_key(const uint8_t *slot, uint32_t *len)
{
    int blank = 1;
    for (uint32_t i = 0; i < OTP_KEY_SLOT; i++) {
        if (slot[i] != 0xFF) {
            blank = 0;
            break;
        }
    }
    if (blank != 0) {
        return 0;
    }
    uint32_t n = be_get_le16(slot);
    uint8_t check[4];
    if (n == 0 || n > OTP_KEY_MAX) {
        return -1;
    }
    key_check(slot, n, check);
    if (memcmp(check, slot + OTP_KEY_SLOT - 4, 4) != 0) {
        return -1;
    }
    *len = n;
    return 1;
}

int32_t be_otp_add_key(be_flash_t *f, const uint8_t *der, uint32_t der_len)
{
    uint8_t slot[OTP_KEY_SLOT];
    if (f == NULL || der == NULL || der_len == 0) {
        return BE_ERR_ARG;
    }
    if (der_len > OTP_KEY_MAX) {
        return BE_ERR_RANGE;
    }
    if (f->otp_size < OTP_NEEDED) {
        return BE_ERR_GEOMETRY;
    }
    for (uint32_t i = 0; i < OTP_KEY_SLOTS; i++) {
        uint32_t off = OTP_KEYS_OFF + i * OTP_KEY_SLOT, len;
        int32_t rc = be_flash_otp_read(f, off, slot, sizeof slot);
        if (rc != BE_OK) {
            return rc;
        }
        if (slot_key(slot, &len) != 0) {
            continue;
        }
        memset(slot, 0xFF, sizeof slot);
        be_put_le16(slot, (uint16_t)der_len);
        memcpy(slot + 2, der, der_len);
        key_check(slot, der_len, slot + OTP_KEY_SLOT - 4);
        return be_flash_otp_write(f, off, slot, sizeof slot);
    }
    return BE_ERR_OTP_FULL;
}

int32_t be_otp_load_trust(be_flash_t *f, be_trust_t *trust)
{
    uint8_t slot[OTP_KEY_SLOT];
    if (f == NULL || trust == NULL) {
        return BE_ERR_ARG;
    }
    int32_t rc = be_otp_counter(f, &trust->min_security_counter);
    if (rc != BE_OK) {
        return rc;
    }
    trust->n_keys = 0;
    for (uint32_t i = 0; i < OTP_KEY_SLOTS; i++) {
        uint32_t len;
        rc = be_flash_otp_read(f, OTP_KEYS_OFF + i * OTP_KEY_SLOT, slot, sizeof slot);
        if (rc != BE_OK) {
            return rc;
        }
        if (slot_key(slot, &len) != 1) {
            continue;
        }
        uint32_t k = trust->n_keys++;
        memcpy(trust->key[k], slot + 2, len);
        trust->key_len[k] = len;
        be_sha256(trust->key[k], len, trust->key_hash[k]);
    }
    return BE_OK;
}
