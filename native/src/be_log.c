/*
 * The state log: the device's boot state as an append-only sequence of
 * 32-byte records in two sectors.
 *
 *   state record:    0 magic "BERC"  4 seq  8 state, flags, bank, attempts
 *                    12 size  16 offset  20 check
 *   counter record:  0 magic "BECT"  4 seq  8 originator counter u64  16 zero
 *   both:            24 8-byte SHA-256 prefix of 0..23
 *
 * Records of both kinds share one sequence. The newest valid record of each
 * kind (highest seq) is the state and the originator counter. Writing a
 * record is the commit point of every transition: a record torn by a power
 * cut fails its checksum and is skipped, so the previous state stands and its
 * action is simply redone. New records go after the last non-blank slot of
 * the sector holding the newest record; when it is full the other sector is
 * erased and the record starts it. The sector appended to is never erased,
 * and every append first copies the newest record of the other kind into it
 * if it is not there yet, so that sector always holds (or, after a cut during
 * that copy, the other sector still holds) the newest record of each kind.
 */
#include <string.h>

#include "be_bytes_priv.h"
#include "be_log_priv.h"
#include "be_mode_priv.h"

enum { REC_MAGIC = 0x43524542u /* "BERC" */, CTR_MAGIC = 0x54434542u /* "BECT" */,
       REC_CHECKED = 24, REC_CHECK = 8 };

/* The format persists in device files: a change would orphan existing ones. */
_Static_assert(BE_REC_SIZE == 32, "state record: 32 bytes on flash");
_Static_assert(REC_CHECKED + REC_CHECK == BE_REC_SIZE, "state record: fields then check");

static void seal(uint8_t out[BE_REC_SIZE])
{
    uint8_t digest[32];
    be_sha256(out, REC_CHECKED, digest);
    memcpy(out + REC_CHECKED, digest, REC_CHECK);
}

static int sealed(const uint8_t in[BE_REC_SIZE], uint32_t magic)
{
    uint8_t digest[32];
    if (be_get_le32(in) != magic) {
        return 0;
    }
    be_sha256(in, REC_CHECKED, digest);
    return memcmp(digest, in + REC_CHECKED, REC_CHECK) == 0;
}

/* Appends number records 1, 2, ...: 0 is never written, and after 0xFFFFFFFF
 * the next would wrap to 0 and lose to it on reload (the state would silently
 * go back). Either is bit rot or a bug: corrupt. */
static int seq_valid(uint32_t seq)
{
    return seq != 0 && seq != UINT32_MAX;
}

static void encode(const be_record_t *r, uint8_t out[BE_REC_SIZE])
{
    be_put_le32(out + 0, REC_MAGIC);
    be_put_le32(out + 4, r->seq);
    out[8] = (uint8_t)r->state;
    out[9] = (uint8_t)r->flags;
    out[10] = (uint8_t)r->bank;
    out[11] = (uint8_t)r->attempts;
    be_put_le32(out + 12, r->size);
    be_put_le32(out + 16, r->offset);
    be_put_le32(out + 20, r->check);
    seal(out);
}

static int decode(const uint8_t in[BE_REC_SIZE], be_record_t *r)
{
    if (!sealed(in, REC_MAGIC)) {
        return 0;
    }
    if (in[8] < BE_ST_CONFIRMED || in[8] > BE_ST_REVERTING || in[10] > 1 || (in[9] & ~BE_F_PERMANENT) != 0) {
        return 0;
    }
    uint32_t seq = be_get_le32(in + 4);
    if (!seq_valid(seq)) {
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

static void encode_origin(uint32_t seq, uint64_t value, uint8_t out[BE_REC_SIZE])
{
    memset(out, 0, BE_REC_SIZE);
    be_put_le32(out + 0, CTR_MAGIC);
    be_put_le32(out + 4, seq);
    be_put_le32(out + 8, (uint32_t)value);
    be_put_le32(out + 12, (uint32_t)(value >> 32));
    seal(out);
}

static int decode_origin(const uint8_t in[BE_REC_SIZE], uint32_t *seq, uint64_t *value)
{
    if (!sealed(in, CTR_MAGIC) || !seq_valid(be_get_le32(in + 4))) {
        return 0;
    }
    /* the unused bytes are written zero: anything else is not a record we wrote */
    for (uint32_t i = 16; i < REC_CHECKED; i++) {
        if (in[i] != 0) {
            return 0;
        }
    }
    *seq = be_get_le32(in + 4);
    *value = (uint64_t)be_get_le32(in + 8) | (uint64_t)be_get_le32(in + 12) << 32;
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
    memset(&d->rec, 0, sizeof d->rec);
    d->rec.state = BE_ST_NONE;
    d->rec_sector = 0;
    d->origin = 0;
    d->origin_seq = 0;
    d->origin_sector = 0;
    for (uint32_t s = 0; s < 2; s++) {
        uint32_t size;
        int32_t rc = sector_size(d, s, &size);
        if (rc != BE_OK) {
            return rc;
        }
        for (uint32_t off = 0; off + BE_REC_SIZE <= size; off += BE_REC_SIZE) {
            be_record_t r;
            uint32_t seq;
            uint64_t value;
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
            if (decode(raw, &r) && be_mode_of(d)->record_fits(d, &r) && r.seq > d->rec.seq) {
                d->rec = r;
                d->rec_sector = s;
            } else if (decode_origin(raw, &seq, &value) && seq > d->origin_seq) {
                d->origin = value;
                d->origin_seq = seq;
                d->origin_sector = s;
            }
        }
    }
    d->log_sector = d->origin_seq > d->rec.seq ? d->origin_sector : d->rec_sector;
    uint32_t size;
    int32_t rc = sector_size(d, d->log_sector, &size);
    if (rc != BE_OK) {
        return rc;
    }
    d->log_next = next[d->log_sector];
    d->log_full = d->log_next + BE_REC_SIZE > size;
    return BE_OK;
}

/* The newest record of the kind not being written must be in sector s too. */
static int needs_carry(const be_device_t *d, uint32_t s, int writing_state)
{
    if (writing_state) {
        return d->origin_seq != 0 && d->origin_sector != s;
    }
    return d->rec.seq != 0 && d->rec_sector != s;
}

/* Write one record in sector s (of size bytes) at off and take it as the
 * newest of its kind: a state record (st), or else a counter record (origin). */
static int32_t put(be_device_t *d, uint32_t s, uint32_t off, uint32_t size, uint32_t seq,
                   const be_record_t *st, uint64_t origin)
{
    uint8_t raw[BE_REC_SIZE];
    be_record_t rec;
    if (st != NULL) {
        rec = *st;
        rec.seq = seq;
        encode(&rec, raw);
    } else {
        encode_origin(seq, origin, raw);
    }
    int32_t rc = be_flash_write(d->flash, d->layout.log_addr[s] + off, raw, sizeof raw);
    if (rc != BE_OK) {
        return rc;
    }
    if (st != NULL) {
        d->rec = rec;
        d->rec_sector = s;
    } else {
        d->origin = origin;
        d->origin_seq = seq;
        d->origin_sector = s;
    }
    d->log_sector = s;
    d->log_next = off + BE_REC_SIZE;
    d->log_full = d->log_next + BE_REC_SIZE > size;
    return BE_OK;
}

/* Commit one record: a state record (st), or else a counter record (origin). */
static int32_t commit(be_device_t *d, const be_record_t *st, uint64_t origin)
{
    uint32_t s = d->log_sector, off = d->log_next, size;
    uint32_t seq = (d->rec.seq > d->origin_seq ? d->rec.seq : d->origin_seq) + 1;
    /* before any flash work: a failure here must leave nothing half done */
    int32_t rc = sector_size(d, s, &size);
    if (rc != BE_OK) {
        return rc;
    }
    int carry = needs_carry(d, s, st != NULL);
    if (d->log_full != 0 || off + (1u + (uint32_t)carry) * BE_REC_SIZE > size) {
        s ^= 1u;
        off = 0;
        /* s is erased next: whatever of the other kind it held goes with it */
        carry = st != NULL ? d->origin_seq != 0 : d->rec.seq != 0;
        rc = sector_size(d, s, &size);
        if (rc != BE_OK) {
            return rc;
        }
        if ((1u + (uint32_t)carry) * BE_REC_SIZE > size) {
            return BE_ERR_GEOMETRY;
        }
        rc = be_flash_erase(d->flash, d->layout.log_addr[s]);
        if (rc != BE_OK) {
            return rc;
        }
    }
    if (carry) {
        /* the other kind's newest record again, under a new seq */
        be_record_t again = d->rec;
        rc = put(d, s, off, size, seq, st != NULL ? NULL : &again, d->origin);
        if (rc != BE_OK) {
            return rc;
        }
        off += BE_REC_SIZE;
        seq++;
    }
    return put(d, s, off, size, seq, st, origin);
}

int32_t be_log_append(be_device_t *d, const be_record_t *r)
{
    return commit(d, r, 0);
}

int32_t be_log_set_origin(be_device_t *d, uint64_t value)
{
    return commit(d, NULL, value);
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
