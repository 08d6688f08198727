/*
 * Downloads: a blob (an image, or a file that carries one at image_offset)
 * written into the mode's download slot, so that its image lands where the
 * slot's bootable image starts. DOWNLOADING while it is written, PENDING once
 * its image validated and the next boot is asked to install it.
 *
 * On ECC flash a write unit is programmed once per erase, so only whole units
 * are programmed: the bytes of a unit not yet complete wait in RAM (d->tail)
 * for the write that completes it, or for the blob's end, where the unit is
 * padded with 0xFF. Such writes must come in order. After a power cut the
 * waiting bytes are gone, and a download resumes at a sector start it erases
 * (be_dl_resume): a unit a cut tore cannot be programmed again.
 *
 * While a download is held, be_dl_prepare erases ahead of the install the
 * area the mode will save the running image into (copy-swap with room past
 * the blob). No record describes that area in these states: the newest record
 * is DOWNLOADING or PENDING, the running image is in the primary, and the
 * rescue boots only the primary. So a cut in it, torn erase included, leaves
 * the state as it was; the boot checks the area reads erased before use.
 */
#include <string.h>

#include "be_log_priv.h"
#include "be_mode_priv.h"
#include "be_range_priv.h"
#include "be_slot_priv.h"

enum {
    WRITE_CHUNK = 256,  /* data bytes per program call at most */
    MAX_ALIGN = 16,     /* the largest write alignment be_flash_init accepts */
    /* a chunk padded out to the alignment on both sides */
    PADDED_CHUNK = WRITE_CHUNK + 2 * MAX_ALIGN
};

static int downloading(const be_device_t *d)
{
    return d->rec.state == BE_ST_DOWNLOADING || d->rec.state == BE_ST_PENDING;
}

static uint32_t download_slot(const be_device_t *d)
{
    return be_mode_of(d)->download_slot(d);
}

int32_t be_dl_addr(const be_device_t *d, uint32_t *addr)
{
    if (d == NULL || addr == NULL) {
        return BE_ERR_ARG;
    }
    if (!downloading(d)) {
        return BE_ERR_STATE;
    }
    *addr = be_slot_image_addr(d, download_slot(d)) - d->rec.offset;
    return BE_OK;
}

int32_t be_dl_begin(be_device_t *d, uint32_t blob_size, uint32_t image_offset)
{
    if (d == NULL || blob_size == 0) {
        return BE_ERR_ARG;
    }
    uint32_t st = d->rec.state;
    if (st != BE_ST_NONE && st != BE_ST_CONFIRMED && !downloading(d)) {
        return BE_ERR_STATE;
    }
    uint32_t slot = download_slot(d);
    if (!be_slot_blob_fits(d, slot, blob_size, image_offset)) {
        return BE_ERR_RANGE;
    }
    int32_t rc;
    if (downloading(d)) {
        /* no record may describe the slot while it is being erased */
        rc = be_log_set_state(d, BE_ST_CONFIRMED, d->rec.bank);
        if (rc != BE_OK) {
            return rc;
        }
    }
    uint32_t start = be_slot_image_addr(d, slot) - image_offset;
    d->tail_fill = 0;
    d->prep_done = 0;
    rc = be_range_erase(d->flash, start, blob_size);
    if (rc != BE_OK) {
        return rc;
    }
    be_record_t r;
    memset(&r, 0, sizeof r);
    r.state = BE_ST_DOWNLOADING;
    r.bank = d->rec.bank;
    r.size = blob_size;
    r.offset = image_offset;
    return be_log_append(d, &r);
}

static int all_ff(const uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (p[i] != 0xFF) {
            return 0;
        }
    }
    return 1;
}

/* ECC flash: program the units gathered in batch[0..n) at addr, if any. */
static int32_t flush_units(be_device_t *d, uint32_t addr, const uint8_t *batch, uint32_t *n)
{
    int32_t rc = *n != 0 ? be_flash_write(d->flash, addr, batch, *n) : BE_OK;
    *n = 0;
    return rc;
}

/* ECC flash: a write of bytes already taken (before the waiting ones end): a
 * repeat, harmless if it matches what flash and the waiting unit hold. */
static int32_t check_repeat(be_device_t *d, uint32_t a, const uint8_t *data, uint32_t len)
{
    uint8_t have[WRITE_CHUNK];
    while (len > 0) {
        uint32_t n = len < sizeof have ? len : (uint32_t)sizeof have;
        if (a >= d->tail_addr) {
            memcpy(have, d->tail + (a - d->tail_addr), n);  /* within the waiting unit */
        } else {
            n = n < d->tail_addr - a ? n : d->tail_addr - a;
            int32_t rc = be_flash_read(d->flash, a, have, n);
            if (rc != BE_OK) {
                return rc;
            }
        }
        if (memcmp(have, data, n) != 0) {
            return BE_ERR_MISMATCH;
        }
        a += n;
        data += n;
        len -= n;
    }
    return BE_OK;
}

/* ECC flash: see the top of the file. A write starts on a unit boundary, at
 * the blob's start (the bytes of its unit before the blob are 0xFF), or where
 * the waiting bytes end; a unit already holding exactly its data is skipped. */
static int32_t write_ecc(be_device_t *d, uint32_t start, uint32_t offset, const uint8_t *data, uint32_t len)
{
    const uint32_t align = d->flash->geo.write_align, page = d->flash->geo.page_size;
    const uint32_t end = start + d->rec.size;
    uint8_t unit[MAX_ALIGN], have[MAX_ALIGN], batch[WRITE_CHUNK];
    uint32_t a = start + offset, ua, fill, n = 0, batch_at = 0;
    if (d->tail_fill != 0 && a != d->tail_addr + d->tail_fill && a + len <= d->tail_addr + d->tail_fill) {
        return check_repeat(d, a, data, len);   /* the waiting bytes stay */
    }
    if (d->tail_fill != 0 && a == d->tail_addr + d->tail_fill) {
        ua = d->tail_addr;
        fill = d->tail_fill;
        memcpy(unit, d->tail, fill);
    } else if (a % align == 0 || offset == 0) {
        ua = a - a % align;
        fill = a % align;
        memset(unit, 0xFF, fill);
    } else {
        return BE_ERR_ALIGN;    /* the start of this unit is neither in flash nor waiting */
    }
    d->tail_fill = 0;
    while (len > 0) {
        uint32_t take = align - fill < len ? align - fill : len;
        memcpy(unit + fill, data, take);
        fill += take;
        data += take;
        len -= take;
        if (fill < align && ua + fill < end) {
            break;              /* incomplete: waits for the next write */
        }
        memset(unit + fill, 0xFF, align - fill); /* the blob's last unit */
        int32_t rc = be_flash_read(d->flash, ua, have, align);
        if (rc != BE_OK) {
            return rc;
        }
        if (memcmp(have, unit, align) == 0) {
            rc = flush_units(d, batch_at, batch, &n); /* already there: nothing to program */
        } else if (!all_ff(have, align)) {
            rc = flush_units(d, batch_at, batch, &n);
            return rc != BE_OK ? rc : BE_ERR_MISMATCH;
        } else {
            if (n != 0 && (n + align > sizeof batch || ua % page == 0)) {
                rc = flush_units(d, batch_at, batch, &n); /* one program call never crosses a page */
            }
            if (n == 0) {
                batch_at = ua;
            }
            memcpy(batch + n, unit, align);
            n += align;
        }
        if (rc != BE_OK) {
            return rc;
        }
        ua += align;
        fill = 0;
    }
    int32_t rc = flush_units(d, batch_at, batch, &n);
    if (rc == BE_OK && fill != 0) {
        memcpy(d->tail, unit, fill);
        d->tail_addr = ua;
        d->tail_fill = fill;
    }
    return rc;
}

int32_t be_dl_write(be_device_t *d, uint32_t offset, const uint8_t *data, uint32_t len)
{
    uint8_t want[PADDED_CHUNK], have[PADDED_CHUNK];
    if (d == NULL || (data == NULL && len != 0)) {
        return BE_ERR_ARG;
    }
    if (d->rec.state != BE_ST_DOWNLOADING) {
        return BE_ERR_STATE;
    }
    if ((uint64_t)offset + len > d->rec.size) {
        return BE_ERR_RANGE;
    }
    uint32_t addr;
    int32_t rc = be_dl_addr(d, &addr);
    if (rc != BE_OK) {
        return rc;
    }
    if (d->flash->geo.ecc != 0) {
        return len == 0 ? BE_OK : write_ecc(d, addr, offset, data, len);
    }
    addr += offset;
    const uint32_t align = d->flash->geo.write_align, page = d->flash->geo.page_size;
    while (len > 0) {
        /* one program call never crosses a page, as on real NOR; the edges are
         * padded to the write alignment with 0xFF, which programs nothing */
        uint32_t page_left = page - addr % page;
        uint32_t n = len < WRITE_CHUNK ? len : WRITE_CHUNK;
        n = n < page_left ? n : page_left;
        uint32_t a0 = addr - addr % align;
        uint32_t a1 = (addr + n + align - 1) / align * align;
        uint32_t lead = addr - a0, span = a1 - a0;
        rc = be_flash_read(d->flash, a0, have, span);
        if (rc != BE_OK) {
            return rc;
        }
        memset(want, 0xFF, span);
        memcpy(want + lead, data, n);
        int changes = 0;
        for (uint32_t i = 0; i < span; i++) {
            uint8_t after = have[i] & want[i];
            if (i >= lead && i < lead + n && after != want[i]) {
                return BE_ERR_MISMATCH; /* a bit is already 0 where the data has a 1 */
            }
            changes |= after != have[i];
        }
        if (changes != 0) {
            rc = be_flash_write(d->flash, a0, want, span);
            if (rc != BE_OK) {
                return rc;
            }
        }
        addr += n;
        data += n;
        len -= n;
    }
    return BE_OK;
}

int32_t be_dl_read(be_device_t *d, uint32_t offset, uint8_t *data, uint32_t len)
{
    uint32_t addr;
    if (d == NULL || (data == NULL && len != 0)) {
        return BE_ERR_ARG;
    }
    int32_t rc = be_dl_addr(d, &addr);
    if (rc != BE_OK) {
        return rc;
    }
    if ((uint64_t)offset + len > d->rec.size) {
        return BE_ERR_RANGE;
    }
    return be_flash_read(d->flash, addr + offset, data, len);
}

/* Writes arrive in order and never cross a page, so a torn write lies in the
 * page of the last programmed byte, and everything before that page is
 * complete: continue from that page's start (rewriting the same bytes
 * completes a torn write, since it only ever cleared some of their 0 bits). */
int32_t be_dl_resume_offset(be_device_t *d, uint32_t *offset)
{
    uint32_t start, used;
    if (d == NULL || offset == NULL) {
        return BE_ERR_ARG;
    }
    int32_t rc = be_dl_addr(d, &start);
    if (rc != BE_OK) {
        return rc;
    }
    if (d->rec.state == BE_ST_PENDING) {
        *offset = d->rec.size;
        return BE_OK;
    }
    rc = be_range_used(d->flash, start, d->rec.size, &used);
    if (rc != BE_OK) {
        return rc;
    }
    if (used == 0) {
        *offset = 0;
        return BE_OK;
    }
    uint32_t last = start + used - 1;
    uint32_t from = last - last % d->flash->geo.page_size;
    if (d->flash->geo.ecc != 0) {
        rc = be_flash_sector(d->flash, last, NULL, &from, NULL);
        if (rc != BE_OK) {
            return rc;
        }
    }
    *offset = from > start ? from - start : 0;
    return BE_OK;
}

int32_t be_dl_resume(be_device_t *d, uint32_t *offset)
{
    int32_t rc = be_dl_resume_offset(d, offset);
    if (rc != BE_OK || d->flash->geo.ecc == 0 || d->rec.state != BE_ST_DOWNLOADING) {
        return rc;
    }
    uint32_t start;
    rc = be_dl_addr(d, &start);
    if (rc != BE_OK) {
        return rc;
    }
    d->tail_fill = 0;
    /* the sector the resume point is in (nothing after it was programmed) */
    uint32_t from = start + *offset, sector, size, used;
    rc = be_flash_sector(d->flash, from, NULL, &sector, &size);
    if (rc == BE_OK) {
        rc = be_range_used(d->flash, sector, size, &used);
    }
    if (rc != BE_OK || used == 0) {
        return rc;
    }
    return be_flash_erase(d->flash, sector);
}

int32_t be_mark_pending(be_device_t *d, uint32_t permanent, be_image_info_t *info)
{
    be_image_info_t local;
    be_image_info_t *cand = info != NULL ? info : &local;
    if (d == NULL) {
        return BE_ERR_ARG;
    }
    if (!downloading(d)) {
        return BE_ERR_STATE;
    }
    int32_t rc = be_slot_check(d, download_slot(d), cand);
    if (rc != BE_OK) {
        return rc;
    }
    if (d->running != 0 && be_slot_is_downgrade(d, cand, &d->run_info)) {
        return BE_ERR_IMG_DOWNGRADE;
    }
    be_record_t r = d->rec;
    r.state = BE_ST_PENDING;
    r.flags = permanent != 0 ? BE_F_PERMANENT : 0;
    return be_log_append(d, &r);
}

int32_t be_dl_prepare(be_device_t *d, uint32_t max_erases, uint32_t *left)
{
    uint32_t addr, len, erased = 0;
    if (d == NULL || left == NULL) {
        return BE_ERR_ARG;
    }
    *left = 0;
    if (!downloading(d) || d->running == 0) {
        return BE_ERR_STATE;
    }
    int32_t rc = be_mode_of(d)->save_area(d, d->run_info.total_size, &addr, &len);
    if (rc != BE_OK) {
        return rc;
    }
    uint32_t pos = d->prep_done < len ? d->prep_done : len;
    while (pos < len) {
        uint32_t start, size;
        rc = be_flash_sector(d->flash, addr + pos, NULL, &start, &size);
        if (rc == BE_OK) {
            rc = be_flash_is_erased(d->flash, start, size);
        }
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            if (erased == max_erases) {
                *left = 1;
                break;
            }
            rc = be_flash_erase(d->flash, start);
            if (rc != BE_OK) {
                return rc;
            }
            erased++;
        }
        pos = start + size - addr;
    }
    d->prep_done = pos;
    return BE_OK;
}

int32_t be_dl_discard(be_device_t *d)
{
    if (d == NULL) {
        return BE_ERR_ARG;
    }
    if (!downloading(d)) {
        return BE_OK;
    }
    return be_log_set_state(d, BE_ST_CONFIRMED, d->rec.bank);
}
