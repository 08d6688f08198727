/*
 * Slots and booting: the state machine that the state log persists.
 *
 *   NONE/CONFIRMED --dl_begin--> DOWNLOADING --mark_pending--> PENDING
 *   PENDING --boot--> (copy-swap) SWAPPING --> TRIAL     (bank-switch) TRIAL
 *   TRIAL --confirm--> CONFIRMED          (permanent: straight to CONFIRMED)
 *   TRIAL --boot, attempts used up--> (copy-swap) REVERTING --> CONFIRMED
 *                                     (bank-switch) CONFIRMED on the old bank
 *
 * Every transition is one record append, written after the work it commits
 * and before the work that depends on it. Each state names an action that is
 * safe to start over, so whatever record a power cut leaves as the newest,
 * the next boot knows what to do. No combination is "cannot decide".
 */
#include <string.h>

#include "be_internal.h"

enum { CONTINUE = 1, WRITE_CHUNK = 256 };

static uint32_t other(uint32_t bank)
{
    return bank ^ 1u;
}

static int bank_switch(const be_device_t *d)
{
    return d->layout.mode == BE_MODE_BANK_SWITCH;
}

/* Slot the device runs from when nothing is pending. */
static uint32_t home_slot(const be_device_t *d)
{
    return bank_switch(d) ? d->rec.bank : 0;
}

/* Slot that receives downloads. */
static uint32_t download_slot(const be_device_t *d)
{
    return bank_switch(d) ? other(d->rec.bank) : 1;
}

static uint32_t image_addr(const be_device_t *d, uint32_t slot)
{
    return d->layout.slot_addr[slot] + d->image_off[slot];
}

/* Room for an image in a slot; copy-swap images must also fit the primary. */
static uint32_t image_room(const be_device_t *d, uint32_t slot)
{
    uint32_t room = d->layout.slot_size[slot] - d->image_off[slot];
    if (!bank_switch(d) && room > d->layout.slot_size[0]) {
        room = d->layout.slot_size[0];
    }
    return room;
}

static int32_t validate(be_device_t *d, uint32_t slot, be_image_info_t *info)
{
    return be_image_validate(d->flash, image_addr(d, slot), image_room(d, slot), &d->trust, info);
}

static int downgrade(const be_device_t *d, const be_image_info_t *cand, const be_image_info_t *cur)
{
    return !(d->layout.options & BE_OPT_ALLOW_DOWNGRADE) && be_image_version_cmp(cand, cur) < 0;
}

static int32_t append(be_device_t *d, uint32_t state, uint32_t bank)
{
    be_record_t r;
    memset(&r, 0, sizeof r);
    r.state = state;
    r.bank = bank;
    return be_log_append(d, &r);
}

/* A record that carries the current record's plan reference forward. */
static int32_t append_with_plan(be_device_t *d, uint32_t state, uint32_t attempts)
{
    be_record_t r = d->rec;
    r.state = state;
    r.attempts = attempts;
    return be_log_append(d, &r);
}

/* ------------------------------------------------------------ layout */

static int sector_boundary(const be_flash_t *f, uint32_t addr)
{
    uint32_t start;
    if (addr == f->size) {
        return 1;
    }
    return be_flash_sector(f, addr, NULL, &start, NULL) == BE_OK && start == addr;
}

static int overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    return (uint64_t)a < (uint64_t)b + blen && (uint64_t)b < (uint64_t)a + alen;
}

static int32_t check_layout(be_device_t *d)
{
    const be_layout_t *l = &d->layout;
    const be_flash_t *f = d->flash;
    uint32_t addr[5], len[5], n = 0;

    if (l->mode != BE_MODE_COPY_SWAP && l->mode != BE_MODE_BANK_SWITCH) {
        return BE_ERR_GEOMETRY;
    }
    if (f->geo.page_size % f->geo.write_align) {
        return BE_ERR_GEOMETRY;
    }
    for (uint32_t s = 0; s < 2; s++) {
        uint32_t size;
        if (!sector_boundary(f, l->log_addr[s]) ||
            be_flash_sector(f, l->log_addr[s], NULL, NULL, &size) != BE_OK || size < 2 * BE_REC_SIZE) {
            return BE_ERR_GEOMETRY;
        }
        addr[n] = l->log_addr[s];
        len[n++] = size;
        if (l->slot_size[s] == 0 || (uint64_t)l->slot_addr[s] + l->slot_size[s] > f->size ||
            !sector_boundary(f, l->slot_addr[s]) || !sector_boundary(f, l->slot_addr[s] + l->slot_size[s])) {
            return BE_ERR_GEOMETRY;
        }
        addr[n] = l->slot_addr[s];
        len[n++] = l->slot_size[s];
    }
    if (!bank_switch(d)) {
        if (l->plan_size == 0 || (uint64_t)l->plan_addr + l->plan_size > f->size ||
            !sector_boundary(f, l->plan_addr) || !sector_boundary(f, l->plan_addr + l->plan_size)) {
            return BE_ERR_GEOMETRY;
        }
        addr[n] = l->plan_addr;
        len[n++] = l->plan_size;
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = i + 1; j < n; j++) {
            if (overlap(addr[i], len[i], addr[j], len[j])) {
                return BE_ERR_GEOMETRY;
            }
        }
    }
    if (bank_switch(d)) {
        /* each bank's first sector takes the bytes a download carries before the image */
        for (uint32_t s = 0; s < 2; s++) {
            uint32_t size;
            be_flash_sector(f, l->slot_addr[s], NULL, NULL, &size);
            if (size >= l->slot_size[s]) {
                return BE_ERR_GEOMETRY;
            }
            d->image_off[s] = size;
        }
        d->unit = 0;
        return BE_OK;
    }
    /* copy-swap: the swap unit is the largest sector of either slot, and every
     * unit boundary must be a sector boundary in both slots */
    uint32_t unit = 0;
    for (uint32_t s = 0; s < 2; s++) {
        for (uint32_t a = l->slot_addr[s]; a < l->slot_addr[s] + l->slot_size[s];) {
            uint32_t size;
            be_flash_sector(f, a, NULL, NULL, &size);
            unit = size > unit ? size : unit;
            a += size;
        }
    }
    for (uint32_t s = 0; s < 2; s++) {
        if (l->slot_size[s] % unit) {
            return BE_ERR_GEOMETRY;
        }
        for (uint32_t a = 0; a < l->slot_size[s]; a += unit) {
            if (!sector_boundary(f, l->slot_addr[s] + a)) {
                return BE_ERR_GEOMETRY;
            }
        }
    }
    if (l->slot_size[1] < l->slot_size[0] + unit) {
        return BE_ERR_GEOMETRY;
    }
    uint32_t max_units = l->slot_size[0] / unit;
    if (32 + (max_units * 16 + 31) / 32 * 32 > l->plan_size) {
        return BE_ERR_PLAN;
    }
    d->unit = unit;
    d->image_off[0] = 0;
    d->image_off[1] = unit;
    return BE_OK;
}

int32_t be_device_open(be_device_t *d, be_flash_t *f, const be_layout_t *layout,
                       const be_crypto_t *crypto)
{
    if (!d || !f || !layout) {
        return BE_ERR_ARG;
    }
    memset(d, 0, sizeof *d);
    d->flash = f;
    d->layout = *layout;
    if (d->layout.max_attempts == 0) {
        d->layout.max_attempts = 1;
    }
    int32_t rc = check_layout(d);
    if (rc) {
        return rc;
    }
    rc = be_otp_load_trust(f, &d->trust);
    if (rc) {
        return rc;
    }
    if (crypto) {
        d->trust.crypto = *crypto;
    }
    return be_log_load(d);
}

/* ------------------------------------------------------------ booting */

static void set_running(be_device_t *d, be_boot_result_t *res, uint32_t slot,
                        const be_image_info_t *info, uint32_t confirmed)
{
    d->running = slot + 1;
    d->run_info = *info;
    res->slot = slot;
    res->confirmed = confirmed;
    res->image = *info;
}

/* Raise the OTP counter to a confirmed image's security counter (also
 * finishes a raise that a power cut interrupted). */
static int32_t settle_counter(be_device_t *d, be_boot_result_t *res, uint32_t value)
{
    if (value <= d->trust.min_security_counter) {
        return BE_OK;
    }
    int32_t rc = be_otp_raise(d->flash, value);
    if (rc == BE_OK) {
        rc = be_otp_counter(d->flash, &d->trust.min_security_counter);
    }
    if (rc == BE_OK && res) {
        res->actions |= BE_ACT_COUNTER;
    }
    return rc;
}

static int32_t run_confirmed(be_device_t *d, be_boot_result_t *res)
{
    be_image_info_t info;
    uint32_t slot = home_slot(d);
    int32_t rc = validate(d, slot, &info);
    if (rc == BE_ERR_POWER_CUT) {
        return rc;
    }
    if (rc) {
        res->refused_err = rc;
        return BE_ERR_NO_IMAGE;
    }
    rc = settle_counter(d, res, info.security_counter);
    if (rc) {
        return rc;
    }
    set_running(d, res, slot, &info, 1);
    return BE_OK;
}

/* Run the trial image, or start reverting if it no longer validates. */
static int32_t run_trial(be_device_t *d, be_boot_result_t *res)
{
    be_image_info_t info;
    uint32_t slot = bank_switch(d) ? other(d->rec.bank) : 0;
    int32_t rc = validate(d, slot, &info);
    if (rc == BE_ERR_POWER_CUT) {
        return rc;
    }
    if (rc) {
        res->refused_err = rc;
        res->actions |= BE_ACT_REVERTED;
        rc = bank_switch(d) ? append(d, BE_ST_CONFIRMED, d->rec.bank)
                            : append_with_plan(d, BE_ST_REVERTING, 0);
        return rc ? rc : CONTINUE;
    }
    set_running(d, res, slot, &info, 0);
    return BE_OK;
}

/* Count a trial boot, or give up on the trial image. */
static int32_t trial_boot(be_device_t *d, be_boot_result_t *res)
{
    int32_t rc;
    if (d->rec.attempts >= d->layout.max_attempts) {
        res->actions |= BE_ACT_REVERTED;
        rc = bank_switch(d) ? append(d, BE_ST_CONFIRMED, d->rec.bank)
                            : append_with_plan(d, BE_ST_REVERTING, 0);
        return rc ? rc : CONTINUE;
    }
    rc = append_with_plan(d, BE_ST_TRIAL, d->rec.attempts + 1);
    return rc ? rc : run_trial(d, res);
}

/* Validate the pending image against the device and the running image.
 * Returns BE_OK, an image error, or BE_ERR_POWER_CUT. cur_valid tells
 * whether the installed image itself validates. */
static int32_t check_candidate(be_device_t *d, uint32_t slot, be_image_info_t *cand,
                               be_image_info_t *cur, int *cur_valid)
{
    *cur_valid = 0;
    int32_t rc = validate(d, slot, cand);
    if (rc) {
        return rc;
    }
    rc = validate(d, home_slot(d), cur);
    if (rc == BE_ERR_POWER_CUT) {
        return rc;
    }
    *cur_valid = rc == BE_OK;
    return *cur_valid && downgrade(d, cand, cur) ? BE_ERR_IMG_DOWNGRADE : BE_OK;
}

static int32_t refuse(be_device_t *d, be_boot_result_t *res, int32_t why)
{
    res->actions |= BE_ACT_REFUSED;
    res->refused_err = why;
    int32_t rc = append(d, BE_ST_CONFIRMED, d->rec.bank);
    return rc ? rc : CONTINUE;
}

static int32_t cs_pending(be_device_t *d, be_boot_result_t *res)
{
    be_image_info_t cand, cur;
    int cur_valid;
    int32_t rc = check_candidate(d, 1, &cand, &cur, &cur_valid);
    if (rc == BE_ERR_POWER_CUT) {
        return rc;
    }
    if (rc) {
        return refuse(d, res, rc);
    }
    be_record_t r;
    memset(&r, 0, sizeof r);
    r.state = BE_ST_SWAPPING;
    /* with no valid image to fall back on, a trial could only end in a brick */
    r.flags = cur_valid ? (d->rec.flags & BE_F_PERMANENT) : BE_F_PERMANENT;
    rc = be_plan_write(d, cur_valid ? cur.total_size : 0, cand.total_size, &r);
    if (rc == BE_OK) {
        rc = be_log_append(d, &r);
    }
    return rc ? rc : CONTINUE;
}

static int32_t cs_install(be_device_t *d, be_boot_result_t *res)
{
    be_plan_t p;
    int32_t rc = be_plan_load(d, &d->rec, &p);
    if (rc == BE_OK) {
        rc = be_swap_install(d, &p);
    }
    if (rc) {
        return rc;
    }
    res->actions |= BE_ACT_INSTALLED;
    if (d->rec.flags & BE_F_PERMANENT) {
        rc = append(d, BE_ST_CONFIRMED, 0);
        return rc ? rc : CONTINUE;
    }
    rc = append_with_plan(d, BE_ST_TRIAL, 1);
    return rc ? rc : run_trial(d, res);
}

static int32_t cs_revert(be_device_t *d, be_boot_result_t *res)
{
    be_plan_t p;
    int32_t rc = be_plan_load(d, &d->rec, &p);
    if (rc == BE_OK) {
        rc = be_swap_revert(d, &p);
    }
    if (rc == BE_OK) {
        res->actions |= BE_ACT_REVERTED;
        rc = append(d, BE_ST_CONFIRMED, 0);
    }
    return rc ? rc : CONTINUE;
}

static int32_t bs_pending(be_device_t *d, be_boot_result_t *res)
{
    be_image_info_t cand, cur;
    int cur_valid;
    uint32_t bank = d->rec.bank;
    int32_t rc = check_candidate(d, other(bank), &cand, &cur, &cur_valid);
    if (rc == BE_ERR_POWER_CUT) {
        return rc;
    }
    if (rc) {
        return refuse(d, res, rc);
    }
    res->actions |= BE_ACT_INSTALLED;
    if ((d->rec.flags & BE_F_PERMANENT) || !cur_valid) {
        rc = append(d, BE_ST_CONFIRMED, other(bank));
        return rc ? rc : CONTINUE;
    }
    be_record_t r;
    memset(&r, 0, sizeof r);
    r.state = BE_ST_TRIAL;
    r.bank = bank;
    r.attempts = 1;
    rc = be_log_append(d, &r);
    return rc ? rc : run_trial(d, res);
}

int32_t be_boot(be_device_t *d, be_boot_result_t *result)
{
    be_boot_result_t local;
    be_boot_result_t *res = result ? result : &local;
    if (!d) {
        return BE_ERR_ARG;
    }
    memset(res, 0, sizeof *res);
    d->running = 0;
    uint64_t busy0 = d->flash->stats->busy_us;
    int32_t rc = BE_ERR_CORRUPT;
    /* Each pass commits one record or ends the boot; a handful always suffice. */
    for (int pass = 0; pass < 8; pass++) {
        uint32_t state = d->rec.state;
        if ((state == BE_ST_SWAPPING || state == BE_ST_REVERTING) && pass == 0) {
            res->actions |= BE_ACT_RESUMED;
        }
        if (bank_switch(d)) {
            switch (state) {
            case BE_ST_PENDING:
                rc = bs_pending(d, res);
                break;
            case BE_ST_TRIAL:
                rc = trial_boot(d, res);
                break;
            default: /* SWAPPING/REVERTING never occur in this mode: treat as confirmed */
                rc = run_confirmed(d, res);
                break;
            }
        } else {
            switch (state) {
            case BE_ST_PENDING:
                rc = cs_pending(d, res);
                break;
            case BE_ST_SWAPPING:
                rc = cs_install(d, res);
                break;
            case BE_ST_TRIAL:
                rc = trial_boot(d, res);
                break;
            case BE_ST_REVERTING:
                rc = cs_revert(d, res);
                break;
            default:
                rc = run_confirmed(d, res);
                break;
            }
        }
        if (rc != CONTINUE) {
            break;
        }
        rc = BE_ERR_CORRUPT;
    }
    res->busy_us = d->flash->stats->busy_us - busy0;
    return rc;
}

int32_t be_confirm(be_device_t *d)
{
    if (!d) {
        return BE_ERR_ARG;
    }
    if (!d->running) {
        return BE_ERR_STATE;
    }
    if (d->rec.state == BE_ST_TRIAL) {
        /* the record first: if the counter were raised first, a cut before the
         * record would leave a trial that reverts to an image the counter refuses */
        int32_t rc = append(d, BE_ST_CONFIRMED, d->running - 1);
        if (rc) {
            return rc;
        }
    } else if (d->rec.state == BE_ST_SWAPPING || d->rec.state == BE_ST_REVERTING) {
        return BE_ERR_STATE;
    }
    return settle_counter(d, NULL, d->run_info.security_counter);
}

/* ------------------------------------------------------------ downloads */

static int downloading(const be_device_t *d)
{
    return d->rec.state == BE_ST_DOWNLOADING || d->rec.state == BE_ST_PENDING;
}

int32_t be_dl_addr(const be_device_t *d, uint32_t *addr)
{
    if (!d || !addr) {
        return BE_ERR_ARG;
    }
    if (!downloading(d)) {
        return BE_ERR_STATE;
    }
    *addr = image_addr(d, download_slot(d)) - d->rec.offset;
    return BE_OK;
}

int32_t be_dl_begin(be_device_t *d, uint32_t blob_size, uint32_t image_offset)
{
    if (!d || blob_size == 0) {
        return BE_ERR_ARG;
    }
    uint32_t st = d->rec.state;
    if (st != BE_ST_NONE && st != BE_ST_CONFIRMED && !downloading(d)) {
        return BE_ERR_STATE;
    }
    uint32_t slot = download_slot(d);
    if (image_offset > d->image_off[slot] ||
        (uint64_t)blob_size - image_offset > (uint64_t)d->layout.slot_size[slot] - d->image_off[slot]) {
        return BE_ERR_RANGE;
    }
    int32_t rc;
    if (downloading(d)) {
        /* no record may describe the slot while it is being erased */
        rc = append(d, BE_ST_CONFIRMED, d->rec.bank);
        if (rc) {
            return rc;
        }
    }
    uint32_t start = image_addr(d, slot) - image_offset;
    rc = be_erase_range(d->flash, start, blob_size);
    if (rc) {
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

int32_t be_dl_write(be_device_t *d, uint32_t offset, const uint8_t *data, uint32_t len)
{
    uint8_t want[WRITE_CHUNK + 32], have[WRITE_CHUNK + 32];
    if (!d || (!data && len)) {
        return BE_ERR_ARG;
    }
    if (d->rec.state != BE_ST_DOWNLOADING) {
        return BE_ERR_STATE;
    }
    if ((uint64_t)offset + len > d->rec.size) {
        return BE_ERR_RANGE;
    }
    uint32_t addr;
    be_dl_addr(d, &addr);
    addr += offset;
    const uint32_t align = d->flash->geo.write_align, page = d->flash->geo.page_size;
    while (len) {
        /* one program call never crosses a page, as on real NOR; the edges are
         * padded to the write alignment with 0xFF, which programs nothing */
        uint32_t page_left = page - addr % page;
        uint32_t n = len < WRITE_CHUNK ? len : WRITE_CHUNK;
        n = n < page_left ? n : page_left;
        uint32_t a0 = addr - addr % align;
        uint32_t a1 = (addr + n + align - 1) / align * align;
        uint32_t lead = addr - a0, span = a1 - a0;
        int32_t rc = be_flash_read(d->flash, a0, have, span);
        if (rc) {
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
        if (changes) {
            rc = be_flash_write(d->flash, a0, want, span);
            if (rc) {
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
    if (!d || (!data && len)) {
        return BE_ERR_ARG;
    }
    int32_t rc = be_dl_addr(d, &addr);
    if (rc) {
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
    uint8_t buf[WRITE_CHUNK];
    uint32_t start;
    if (!d || !offset) {
        return BE_ERR_ARG;
    }
    int32_t rc = be_dl_addr(d, &start);
    if (rc) {
        return rc;
    }
    if (d->rec.state == BE_ST_PENDING) {
        *offset = d->rec.size;
        return BE_OK;
    }
    uint32_t end = d->rec.size;
    while (end) {
        uint32_t n = end < sizeof buf ? end : (uint32_t)sizeof buf;
        rc = be_flash_read(d->flash, start + end - n, buf, n);
        if (rc) {
            return rc;
        }
        for (uint32_t i = n; i > 0; i--) {
            if (buf[i - 1] != 0xFF) {
                uint32_t last = start + end - n + i - 1;
                uint32_t page_start = last - last % d->flash->geo.page_size;
                *offset = page_start > start ? page_start - start : 0;
                return BE_OK;
            }
        }
        end -= n;
    }
    *offset = 0;
    return BE_OK;
}

int32_t be_mark_pending(be_device_t *d, uint32_t permanent, be_image_info_t *info)
{
    be_image_info_t local;
    be_image_info_t *cand = info ? info : &local;
    if (!d) {
        return BE_ERR_ARG;
    }
    if (!downloading(d)) {
        return BE_ERR_STATE;
    }
    int32_t rc = validate(d, download_slot(d), cand);
    if (rc) {
        return rc;
    }
    if (d->running && downgrade(d, cand, &d->run_info)) {
        return BE_ERR_IMG_DOWNGRADE;
    }
    be_record_t r = d->rec;
    r.state = BE_ST_PENDING;
    r.flags = permanent ? BE_F_PERMANENT : 0;
    return be_log_append(d, &r);
}

int32_t be_dl_discard(be_device_t *d)
{
    if (!d) {
        return BE_ERR_ARG;
    }
    if (!downloading(d)) {
        return BE_OK;
    }
    return append(d, BE_ST_CONFIRMED, d->rec.bank);
}

int32_t be_slot_validate(be_device_t *d, uint32_t slot, be_image_info_t *info)
{
    if (!d || slot > 1) {
        return BE_ERR_ARG;
    }
    return validate(d, slot, info);
}
