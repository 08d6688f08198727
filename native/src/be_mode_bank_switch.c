/*
 * Bank-switch mode: both slots are bootable banks; the state record names the
 * confirmed one and downloads go to the other. Installing is selecting: no
 * copy, so nothing is ever resumed.
 *
 *   PENDING --> TRIAL on the other bank (or CONFIRMED there)
 *   TRIAL --given up--> CONFIRMED on the old bank
 */
#include <string.h>

#include "be_log_priv.h"
#include "be_mode_priv.h"
#include "be_slot_priv.h"

static uint32_t other(uint32_t bank)
{
    return bank ^ 1u;
}

/* Each bank's first sector takes the bytes a download carries before the
 * image, so a bank is more than that sector. */
static int32_t bs_check_layout(be_device_t *d)
{
    for (uint32_t s = 0; s < 2; s++) {
        uint32_t size;
        int32_t rc = be_flash_sector(d->flash, d->layout.slot_addr[s], NULL, NULL, &size);
        if (rc != BE_OK) {
            return rc; /* not reached: the common rules put the slots in the flash */
        }
        if (size >= d->layout.slot_size[s]) {
            return BE_ERR_GEOMETRY;
        }
        d->image_off[s] = size;
    }
    d->unit = 0;
    return BE_OK;
}

/* Downloads go to the bank the record does not name; nothing is ever
 * swapped, so SWAPPING and REVERTING are never written. */
static int bs_record_fits(const be_device_t *d, const be_record_t *r)
{
    switch (r->state) {
    case BE_ST_DOWNLOADING:
    case BE_ST_PENDING:
        return be_slot_blob_fits(d, other(r->bank), r->size, r->offset);
    case BE_ST_SWAPPING:
    case BE_ST_REVERTING:
        return 0;
    default:
        return 1;
    }
}

static uint32_t bs_home_slot(const be_device_t *d)
{
    return d->rec.bank;
}

static uint32_t bs_other_slot(const be_device_t *d)
{
    return other(d->rec.bank);
}

static uint32_t bs_image_room(const be_device_t *d, uint32_t slot)
{
    return d->layout.slot_size[slot] - d->image_off[slot];
}

/* Select the other bank: confirmed at once if permanent or if there is no
 * valid image to fall back on, else for a trial. */
static int32_t bs_accept(be_device_t *d, be_boot_result_t *res, const be_image_info_t *cand,
                         const be_image_info_t *cur)
{
    (void)cand;
    const uint32_t bank = d->rec.bank;
    int32_t rc;
    res->actions |= BE_ACT_INSTALLED;
    if ((d->rec.flags & BE_F_PERMANENT) != 0 || cur == NULL) {
        rc = be_log_set_state(d, BE_ST_CONFIRMED, other(bank));
        return rc != BE_OK ? rc : BE_STEP_AGAIN;
    }
    be_record_t r;
    memset(&r, 0, sizeof r);
    r.state = BE_ST_TRIAL;
    r.bank = bank;
    r.attempts = 1;
    rc = be_log_append(d, &r);
    return rc != BE_OK ? rc : BE_STEP_RUN_TRIAL;
}

/* SWAPPING and REVERTING are never written in this mode (only a flash last
 * used in copy-swap could hold one): run the confirmed bank. */
static int32_t bs_nothing_to_resume(be_device_t *d, be_boot_result_t *res)
{
    (void)d;
    (void)res;
    return BE_STEP_RUN_CONFIRMED;
}

/* Nothing is saved: the old bank stays where it is. */
static int32_t bs_save_area(const be_device_t *d, uint32_t old_size, uint32_t *addr, uint32_t *len)
{
    (void)d;
    (void)old_size;
    *addr = 0;
    *len = 0;
    return BE_OK;
}

/* The old bank was never touched: confirming it again is the whole revert. */
static int32_t bs_abandon_trial(be_device_t *d)
{
    return be_log_set_state(d, BE_ST_CONFIRMED, d->rec.bank);
}

const be_mode_ops_t be_mode_bank_switch = {
    .check_layout = bs_check_layout,
    .home_slot = bs_home_slot,
    .download_slot = bs_other_slot,
    .trial_slot = bs_other_slot,
    .image_room = bs_image_room,
    .accept = bs_accept,
    .install = bs_nothing_to_resume,
    .revert = bs_nothing_to_resume,
    .abandon_trial = bs_abandon_trial,
    .record_fits = bs_record_fits,
    .save_area = bs_save_area,
    .n_bootable = 2, /* either bank */
};
