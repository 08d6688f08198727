/*
 * The state log: the device's boot state as an append-only sequence of
 * 32-byte records in two sectors.
 *
 *   0  magic "BERC"   4  seq     8  state, flags, bank, attempts
 *   12 size           16 offset  20 check   24 8-byte SHA-256 prefix of 0..23
 *
 * The newest valid record (highest seq) is the state. Writing a record is the
 * commit point of every transition: a record torn by a power cut fails its
 * checksum and is skipped, so the previous state stands and its action is
 * simply redone. New records go after the last non-blank slot of the active
 * sector; when it is full the other sector is erased and the record starts it.
 * The active sector is never erased, so the newest record always survives.
 */
#include <string.h>

#include "be_bytes_priv.h"
#include "be_log_priv.h"
#include "be_mode_priv.h"

enum { REC_MAGIC = 0x43524542u /* "BERC" */, REC_CHECKED = 24, REC_CHECK = 8 };

/* The format persists in device files: a change would orphan existing ones. */
_Static_assert(BE_REC_SIZE == 32, "state record: 32 bytes on flash");
_Static_assert(REC_CHECKED + REC_CHECK == BE_REC_SIZE, "state record: fields then check");

static void encode(const be_record_t *r, uint8_t out[BE_REC_SIZE])
{
    uint8_t digest[32];
    be_put_le32(out + 0, REC_MAGIC);
    be_put_le32(out + 4, r->seq);
    out[8] = (uint8_t)r->state;
    out[9] = (uint8_t)r->flags;
    out[10] = (uint8_t)r->bank;
    out[11] = (uint8_t)r->attempts;
    be_put_le32(out + 12, r->size);
    be_put_le32(out + 16, r->offset);
    be_put_le32(out + 20, r->check);
    be_sha256(out, REC_CHECKED, digest);
    memcpy(out + REC_CHECKED, digest, REC_CHECK);
}

static int decode(const uint8_t in[BE_REC_SIZE], be_record_t *r)
{
    uint8_t digest[32];
    if (be_get_le32(in) != REC_MAGIC) {
        return 0;
    }
    be_sha256(in, REC_CHECKED, digest);
    if (memcmp(digest, in + REC_CHECKED, REC_CHECK) != 0) {
        return 0;
    }
    if (in[8] < BE_ST_CONFIRMED || in[8] > BE_ST_REVERTING || in[10] > 1 || (in[9] & ~BE_F_PERMANENT) != 0) {
        return 0;
    }
    /* Appends number records 1, 2, ...: 0 is never written, and after
     * 0xFFFFFFFF the next would wrap to 0 and lose to it on reload (the state
     * would silently go back). Either is bit rot or a bug: corrupt. */
    uint32_t seq = be_get_le32(in + 4);
    if (seq == 0 || seq == UINT32_MAX) {
        return 0;
    }
    r->seq = seq;
    r->state = in[8];
    r->flags = in[9];
    r->bank = in[10];
    r->attempts = in[11];
    r->size = be_get_le32(in + 12);
    r->offset = be_get_le32(in + 16);
    r->check = be_get_le32(in + 20);
    return 1;
}

static int blank(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (p[i] != 0xFF) {
            return 0;
        }
    }
    return 1;
}

static int32_t sector_size(const be_device_t *d, uint32_t s, uint32_t *size)
{
    return be_flash_sector(d->flash, d->layout.log_addr[s], NULL, NULL, size);
}

int32_t be_log_load(be_device_t *d)
{
    uint8_t raw[BE_REC_SIZE];
    uint32_t next[2] = {0, 0};
    int found = 0;
    memset(&d->rec, 0, sizeof d->rec);
    d->rec.state = BE_ST_NONE;
    d->log_sector = 0;
    for (uint32_t s = 0; s < 2; s++) {
        uint32_t size;
        int32_t rc = sector_size(d, s, &size);
        if (rc != BE_OK) {
            return rc;
        }
        for (uint32_t off = 0; off + BE_REC_SIZE <= size; off += BE_REC_SIZE) {
            be_record_t r;
            rc = be_flash_read(d->flash, d->layout.log_addr[s] + off, raw, sizeof raw);
            if (rc != BE_OK) {
                return rc;
            }
            if (blank(raw, sizeof raw)) {
                continue;
            }
            next[s] = off + BE_REC_SIZE;
            /* checksum right but fields the layout cannot have (bit rot, a
             * firmware bug): as corrupt as a torn record */
            if (decode(raw, &r) && be_mode_of(d)->record_fits(d, &r) && (found == 0 || r.seq > d->rec.seq)) {
                d->rec = r;
                d->log_sector = s;
                found = 1;
            }
        }
    }
    uint32_t size;
    int32_t rc = sector_size(d, d->log_sector, &size);
    if (rc != BE_OK) {
        return rc;
    }
    d->log_next = next[d->log_sector];
    d->log_full = d->log_next + BE_REC_SIZE > size;
    return BE_OK;
}

int32_t be_log_append(be_device_t *d, const be_record_t *r)
{
    uint8_t raw[BE_REC_SIZE];
    be_record_t rec = *r;
    rec.seq = d->rec.seq + 1;
    encode(&rec, raw);
    uint32_t s = d->log_sector, off = d->log_next, size;
    if (d->log_full != 0) {
        s ^= 1u;
        off = 0;
    }
    /* before any flash work: a failure here must leave nothing half done */
    int32_t rc = sector_size(d, s, &size);
    if (rc != BE_OK) {
        return rc;
    }
    if (d->log_full != 0) {
        rc = be_flash_erase(d->flash, d->layout.log_addr[s]);
        if (rc != BE_OK) {
            return rc;
        }
    }
    rc = be_flash_write(d->flash, d->layout.log_addr[s] + off, raw, sizeof raw);
    if (rc != BE_OK) {
        return rc;
    }
    d->rec = rec;
    d->log_sector = s;
    d->log_next = off + BE_REC_SIZE;
    d->log_full = d->log_next + BE_REC_SIZE > size;
    return BE_OK;
}

int32_t be_log_set_state(be_device_t *d, uint32_t state, uint32_t bank)
{
    be_record_t r;
    memset(&r, 0, sizeof r);
    r.state = state;
    r.bank = bank;
    return be_log_append(d, &r);
}

int32_t be_log_carry(be_device_t *d, uint32_t state, uint32_t attempts)
{
    be_record_t r = d->rec;
    r.state = state;
    r.attempts = attempts;
    return be_log_append(d, &r);
}
