/*
 * Copy-swap: install a new image into the executable (primary) slot while
 * keeping the previous one in the secondary slot for revert.
 *
 * Layout (the "offset" scheme): the secondary slot has one more unit than the
 * primary and receives the new image from unit 1, so unit 0 is free. Step i
 * saves old unit i into secondary unit i (whose content, new unit i-1, was
 * placed in step i-1), then places new unit i (secondary i+1) into primary i.
 * Each slot unit is erased at most once per install.
 *
 * Progress is not recorded step by step. Before the install, a plan entry
 * stores an 8-byte hash of every old and new unit; each step checks its own
 * postcondition by content ("does secondary i already hold old unit i?") and
 * is skipped if it holds. A step only overwrites its destination after
 * checking that its source holds the expected content, so a resumed install
 * can neither redo work wrongly nor destroy the only copy of anything.
 *
 * Where the old units are saved: secondary unit save_base + i. save_base 0 is
 * the scheme above. When the secondary has room past the downloaded blob for
 * the whole running image (be_swap_save_base), the old units go there instead:
 * that area lies outside the blob, so it can be erased while the download
 * runs (be_dl_prepare), and the boot then erases only the primary's units.
 * The boot never trusts that: every destination is checked to read erased, and
 * erased if it does not, before anything is programmed into it. With a save
 * base past the blob no step's source is ever a destination: step i saves
 * primary i, then fills it from secondary i+1, which nothing overwrites.
 *
 * Plan entry, appended in the plan area (erased only when full):
 *   0 magic "BEPL"  4 old_size  8 new_size  12 unit  16 n_units
 *   20 save_base (0xFFFFFFFF: 0, as plans before it had, so those still load)
 *   24 check: 8-byte SHA-256 prefix of bytes 0..23 and the body
 *   32 body: per unit, old hash (8) then new hash (8); 0xFF where not used
 * The body is written first and the header last, so a torn entry never has a
 * valid header; the record that references the entry is written after it.
 */
#include <string.h>

#include "be_bytes_priv.h"
#include "be_range_priv.h"
#include "be_swap_priv.h"

enum {
    PLAN_MAGIC = 0x4C504542u, /* "BEPL" */
    PLAN_HDR = 32,
    PLAN_CHECKED = 24,      /* header bytes the check covers */
    PLAN_ALIGN = 32,        /* entries start on this boundary */
    UNIT_HASH = 8,
    COPY_BUF = 1024         /* bytes per program call while copying */
};

/* bridge_emu's Layout.simple sizes plan areas as 32 + align(16 * units, 32). */
_Static_assert(PLAN_HDR == 32 && 2 * UNIT_HASH == 16 && PLAN_ALIGN == 32,
               "plan entry size is shared with the Python layout helper");
_Static_assert(COPY_BUF % 16 == 0, "copy chunks stay multiples of any write alignment");

static uint32_t round_up(uint32_t v, uint32_t m)
{
    return (v + m - 1) / m * m;
}

static uint32_t units_of(uint32_t size, uint32_t unit)
{
    return (size + unit - 1) / unit;
}

/* Bytes of an image of `size` that fall in unit i. */
static uint32_t unit_len(uint32_t size, uint32_t unit, uint32_t i)
{
    uint32_t start = i * unit;
    return size <= start ? 0 : (size - start < unit ? size - start : unit);
}

uint32_t be_plan_len(uint32_t n_units)
{
    return PLAN_HDR + round_up(n_units * 2 * UNIT_HASH, PLAN_ALIGN);
}

static uint32_t primary_unit(const be_device_t *d, uint32_t i)
{
    return d->layout.slot_addr[0] + i * d->unit;
}

static uint32_t secondary_unit(const be_device_t *d, uint32_t i)
{
    return d->layout.slot_addr[1] + i * d->unit;
}

/* The unit hash: an 8-byte SHA-256 prefix of the unit's bytes in flash. */
static int32_t hash_range(be_flash_t *f, uint32_t addr, uint32_t len, uint8_t out[UNIT_HASH])
{
    uint8_t digest[32];
    be_sha256_t c;
    (void)be_sha256_init(&c, BE_SHA_AUTO); /* returns the implementation, not an error */
    int32_t rc = be_range_sha256(f, addr, len, &c);
    if (rc != BE_OK) {
        return rc;
    }
    be_sha256_final(&c, digest);
    memcpy(out, digest, UNIT_HASH);
    return BE_OK;
}

/* Offset in the plan area where the next entry goes: past the last used byte. */
static int32_t plan_free_offset(be_device_t *d, uint32_t *off)
{
    uint32_t used;
    int32_t rc = be_range_used(d->flash, d->layout.plan_addr, d->layout.plan_size, &used);
    if (rc != BE_OK) {
        return rc;
    }
    *off = round_up(used, PLAN_ALIGN);
    return BE_OK;
}

uint32_t be_swap_save_base(const be_device_t *d, uint32_t old_size, uint32_t blob_size,
                           uint32_t image_offset)
{
    uint32_t n_old = units_of(old_size, d->unit);
    uint32_t sec_units = d->layout.slot_size[1] / d->unit;
    /* the blob starts image_offset before the secondary's image start (unit 1) */
    uint64_t blob_end = (uint64_t)d->image_off[1] - image_offset + blob_size;
    uint64_t base = (blob_end + d->unit - 1) / d->unit;
    if (n_old == 0 || image_offset > d->image_off[1] || base + n_old > sec_units) {
        return 0;
    }
    return (uint32_t)base;
}

int32_t be_swap_save_area(const be_device_t *d, uint32_t old_size, uint32_t blob_size,
                          uint32_t image_offset, uint32_t *addr, uint32_t *len)
{
    uint32_t base = be_swap_save_base(d, old_size, blob_size, image_offset);
    *addr = secondary_unit(d, base);
    *len = base == 0 ? 0 : units_of(old_size, d->unit) * d->unit;
    return BE_OK;
}

int32_t be_plan_write(be_device_t *d, uint32_t old_size, uint32_t new_size, uint32_t save_base,
                      be_record_t *r)
{
    uint8_t hdr[PLAN_HDR], body[COPY_BUF], digest[32];
    uint32_t n_old = units_of(old_size, d->unit), n_new = units_of(new_size, d->unit);
    uint32_t n = n_old > n_new ? n_old : n_new;
    uint32_t len = be_plan_len(n), off;
    if (len > d->layout.plan_size) {
        return BE_ERR_PLAN;
    }
    int32_t rc = plan_free_offset(d, &off);
    if (rc != BE_OK) {
        return rc;
    }
    if (off + len > d->layout.plan_size) {
        rc = be_range_erase(d->flash, d->layout.plan_addr, d->layout.plan_size);
        if (rc != BE_OK) {
            return rc;
        }
        off = 0;
    }
    uint32_t base = d->layout.plan_addr + off;
    memset(hdr, 0xFF, sizeof hdr);
    be_put_le32(hdr + 0, PLAN_MAGIC);
    be_put_le32(hdr + 4, old_size);
    be_put_le32(hdr + 8, new_size);
    be_put_le32(hdr + 12, d->unit);
    be_put_le32(hdr + 16, n);
    be_put_le32(hdr + 20, save_base == 0 ? 0xFFFFFFFFu : save_base);
    be_sha256_t c;
    (void)be_sha256_init(&c, BE_SHA_AUTO); /* returns the implementation, not an error */
    be_sha256_update(&c, hdr, PLAN_CHECKED);

    /* body: hash every unit, flushing whole buffers as they fill */
    uint32_t body_len = len - PLAN_HDR, pos = 0, fill = 0;
    memset(body, 0xFF, sizeof body);
    for (uint32_t i = 0; i < n; i++) {
        if (i < n_old) {
            rc = hash_range(d->flash, primary_unit(d, i), unit_len(old_size, d->unit, i), body + fill);
            if (rc != BE_OK) {
                return rc;
            }
        }
        if (i < n_new) {
            rc = hash_range(d->flash, secondary_unit(d, i + 1), unit_len(new_size, d->unit, i),
                            body + fill + UNIT_HASH);
            if (rc != BE_OK) {
                return rc;
            }
        }
        fill += 2 * UNIT_HASH;
        if (fill == sizeof body || i + 1 == n) {
            uint32_t chunk = i + 1 == n ? body_len - pos : fill;
            be_sha256_update(&c, body, chunk);
            rc = be_flash_write(d->flash, base + PLAN_HDR + pos, body, chunk);
            if (rc != BE_OK) {
                return rc;
            }
            pos += chunk;
            fill = 0;
            memset(body, 0xFF, sizeof body);
        }
    }
    be_sha256_final(&c, digest);
    memcpy(hdr + PLAN_CHECKED, digest, PLAN_HDR - PLAN_CHECKED);
    rc = be_flash_write(d->flash, base, hdr, sizeof hdr);
    if (rc != BE_OK) {
        return rc;
    }
    r->offset = off;
    r->size = len;
    r->check = be_get_le32(digest);
    return BE_OK;
}

int be_plan_ref_ok(const be_device_t *d, const be_record_t *r)
{
    return (uint64_t)r->offset + r->size <= d->layout.plan_size && r->size >= PLAN_HDR;
}

int32_t be_plan_load(be_device_t *d, const be_record_t *r, be_plan_t *p)
{
    uint8_t hdr[PLAN_HDR], digest[32];
    if (!be_plan_ref_ok(d, r)) {
        return BE_ERR_CORRUPT;
    }
    uint32_t base = d->layout.plan_addr + r->offset;
    int32_t rc = be_flash_read(d->flash, base, hdr, sizeof hdr);
    if (rc != BE_OK) {
        return rc;
    }
    uint32_t old_size = be_get_le32(hdr + 4), new_size = be_get_le32(hdr + 8);
    uint32_t n = be_get_le32(hdr + 16), save = be_get_le32(hdr + 20);
    save = save == 0xFFFFFFFFu ? 0 : save;
    /* a save area past the blob: after the new image, within the secondary */
    if (save != 0 && (save <= units_of(new_size, d->unit) ||
                      (uint64_t)save + units_of(old_size, d->unit) >
                          d->layout.slot_size[1] / d->unit)) {
        return BE_ERR_CORRUPT;
    }
    if (be_get_le32(hdr) != PLAN_MAGIC || be_get_le32(hdr + 12) != d->unit || n > 0xFFFFu ||
        be_plan_len(n) != r->size || units_of(old_size, d->unit) > n ||
        units_of(new_size, d->unit) > n || (uint64_t)n * d->unit > d->layout.slot_size[0]) {
        /* a plan never spans more than the primary: more units would reach past a slot */
        return BE_ERR_CORRUPT;
    }
    be_sha256_t c;
    (void)be_sha256_init(&c, BE_SHA_AUTO); /* returns the implementation, not an error */
    be_sha256_update(&c, hdr, PLAN_CHECKED);
    rc = be_range_sha256(d->flash, base + PLAN_HDR, r->size - PLAN_HDR, &c);
    if (rc != BE_OK) {
        return rc;
    }
    be_sha256_final(&c, digest);
    if (memcmp(digest, hdr + PLAN_CHECKED, PLAN_HDR - PLAN_CHECKED) != 0 ||
        be_get_le32(digest) != r->check) {
        return BE_ERR_CORRUPT;
    }
    p->addr = base;
    p->old_size = old_size;
    p->new_size = new_size;
    p->n_units = n;
    p->save_base = save;
    return BE_OK;
}

/* Make dst hold the unit whose hash is `expect`, copying it from src.
 * Already there: nothing is written. Source not as expected: refuse. */
static int32_t ensure_unit(be_device_t *d, uint32_t dst, uint32_t src, uint32_t len,
                           const uint8_t expect[UNIT_HASH])
{
    uint8_t h[UNIT_HASH], buf[COPY_BUF];
    int32_t rc = hash_range(d->flash, dst, len, h);
    if (rc != BE_OK || memcmp(h, expect, UNIT_HASH) == 0) {
        return rc;
    }
    rc = hash_range(d->flash, src, len, h);
    if (rc != BE_OK) {
        return rc;
    }
    if (memcmp(h, expect, UNIT_HASH) != 0) {
        return BE_ERR_CORRUPT;
    }
    rc = be_range_erase(d->flash, dst, d->unit);
    if (rc != BE_OK) {
        return rc;
    }
    uint32_t total = round_up(len, d->flash->geo.write_align);
    for (uint32_t pos = 0; pos < total;) {
        uint32_t n = total - pos < COPY_BUF ? total - pos : (uint32_t)COPY_BUF;
        rc = be_flash_read(d->flash, src + pos, buf, n);
        if (rc == BE_OK) {
            rc = be_flash_write(d->flash, dst + pos, buf, n);
        }
        if (rc != BE_OK) {
            return rc;
        }
        pos += n;
    }
    return BE_OK;
}

static int32_t unit_hash(be_device_t *d, const be_plan_t *p, uint32_t i, uint32_t which,
                         uint8_t out[UNIT_HASH])
{
    return be_flash_read(d->flash, p->addr + PLAN_HDR + i * 2 * UNIT_HASH + which * UNIT_HASH, out,
                         UNIT_HASH);
}

int32_t be_swap_install(be_device_t *d, const be_plan_t *p)
{
    uint8_t h[UNIT_HASH];
    for (uint32_t i = 0; i < p->n_units; i++) {
        uint32_t old_len = unit_len(p->old_size, d->unit, i);
        uint32_t new_len = unit_len(p->new_size, d->unit, i);
        int32_t rc;
        if (old_len != 0) {
            rc = unit_hash(d, p, i, 0, h);
            if (rc == BE_OK) {
                rc = ensure_unit(d, secondary_unit(d, p->save_base + i), primary_unit(d, i),
                                 old_len, h);
            }
            if (rc != BE_OK) {
                return rc;
            }
        }
        if (new_len != 0) {
            rc = unit_hash(d, p, i, 1, h);
            if (rc == BE_OK) {
                rc = ensure_unit(d, primary_unit(d, i), secondary_unit(d, i + 1), new_len, h);
            }
            if (rc != BE_OK) {
                return rc;
            }
        }
    }
    return BE_OK;
}

int32_t be_swap_revert(be_device_t *d, const be_plan_t *p)
{
    uint8_t h[UNIT_HASH];
    for (uint32_t i = 0; i < p->n_units; i++) {
        uint32_t old_len = unit_len(p->old_size, d->unit, i);
        if (old_len == 0) {
            continue;
        }
        int32_t rc = unit_hash(d, p, i, 0, h);
        if (rc == BE_OK) {
            rc = ensure_unit(d, primary_unit(d, i), secondary_unit(d, p->save_base + i), old_len,
                             h);
        }
        if (rc != BE_OK) {
            return rc;
        }
    }
    return BE_OK;
}
