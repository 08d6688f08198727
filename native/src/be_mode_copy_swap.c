/*
 * Copy-swap mode: images execute from slot 0 (primary) only. A pending image
 * in slot 1 (secondary, from unit 1) is swapped in by a resumable install
 * that keeps the previous image in the secondary for a revert (be_swap.c).
 *
 *   PENDING --plan written--> SWAPPING --install--> TRIAL (or CONFIRMED)
 *   TRIAL --given up--> REVERTING --revert--> CONFIRMED
 */
#include <string.h>

#include "be_layout_priv.h"
#include "be_log_priv.h"
#include "be_mode_priv.h"
#include "be_slot_priv.h"
#include "be_swap_priv.h"

enum { PRIMARY = 0, SECONDARY = 1 };

/* The swap unit is the largest sector of either slot, and every unit boundary
 * must be a sector boundary in both slots. The secondary holds one unit more
 * than the primary; the plan area holds a plan for a full primary. */
static int32_t cs_check_layout(be_device_t *d)
{
    const be_layout_t *l = &d->layout;
    const be_flash_t *f = d->flash;

    if (!be_layout_area_ok(f, l->plan_addr, l->plan_size) ||
        !be_layout_disjoint(d, l->plan_addr, l->plan_size)) {
        return BE_ERR_GEOMETRY;
    }
    uint32_t unit = 0;
    for (uint32_t s = 0; s < 2; s++) {
        for (uint32_t a = l->slot_addr[s]; a < l->slot_addr[s] + l->slot_size[s];) {
            uint32_t size;
            int32_t rc = be_flash_sector(f, a, NULL, NULL, &size);
            if (rc != BE_OK) {
                return rc; /* not reached: the common rules put the slots in the flash */
            }
            unit = size > unit ? size : unit;
            a += size;
        }
    }
    for (uint32_t s = 0; s < 2; s++) {
        if (l->slot_size[s] % unit != 0) {
            return BE_ERR_GEOMETRY;
        }
        for (uint32_t a = 0; a < l->slot_size[s]; a += unit) {
            if (!be_layout_boundary(f, l->slot_addr[s] + a)) {
                return BE_ERR_GEOMETRY;
            }
        }
    }
    if (l->slot_size[SECONDARY] < l->slot_size[PRIMARY] + unit) {
        return BE_ERR_GEOMETRY;
    }
    if (be_plan_len(l->slot_size[PRIMARY] / unit) > l->plan_size) {
        return BE_ERR_PLAN;
    }
    d->unit = unit;
    d->image_off[PRIMARY] = 0;
    d->image_off[SECONDARY] = unit;
    return BE_OK;
}

static uint32_t cs_home_slot(const be_device_t *d)
{
    (void)d;
    return PRIMARY;
}

static uint32_t cs_download_slot(const be_device_t *d)
{
    (void)d;
    return SECONDARY;
}

/* Room in a slot; an image in the secondary must also fit the primary. */
static uint32_t cs_image_room(const be_device_t *d, uint32_t slot)
{
    uint32_t room = d->layout.slot_size[slot] - d->image_off[slot];
    return room > d->layout.slot_size[PRIMARY] ? d->layout.slot_size[PRIMARY] : room;
}

/* Downloads go to the secondary; SWAPPING and REVERTING name their plan,
 * and a TRIAL carries the plan of its install forward. */
static int cs_record_fits(const be_device_t *d, const be_record_t *r)
{
    switch (r->state) {
    case BE_ST_DOWNLOADING:
    case BE_ST_PENDING:
        return be_slot_blob_fits(d, SECONDARY, r->size, r->offset);
    case BE_ST_SWAPPING:
    case BE_ST_REVERTING:
        return be_plan_ref_ok(d, r);
    case BE_ST_TRIAL:
        return (r->size == 0 && r->offset == 0) || be_plan_ref_ok(d, r);
    default:
        return 1;
    }
}

/* Write the plan, then the SWAPPING record that references it. */
static int32_t cs_accept(be_device_t *d, be_boot_result_t *res, const be_image_info_t *cand,
                         const be_image_info_t *cur)
{
    (void)res;
    be_record_t r;
    memset(&r, 0, sizeof r);
    r.state = BE_ST_SWAPPING;
    /* with no valid image to fall back on, a trial could only end in a brick */
    r.flags = cur != NULL ? (d->rec.flags & BE_F_PERMANENT) : BE_F_PERMANENT;
    uint32_t old_size = cur != NULL ? cur->total_size : 0;
    uint32_t base = be_swap_save_base(d, old_size, d->rec.size, d->rec.offset);
    int32_t rc = be_plan_write(d, old_size, cand->total_size, base, &r);
    if (rc == BE_OK) {
        rc = be_log_append(d, &r);
    }
    return rc != BE_OK ? rc : BE_STEP_AGAIN;
}

static int32_t cs_install(be_device_t *d, be_boot_result_t *res)
{
    be_plan_t p;
    int32_t rc = be_plan_load(d, &d->rec, &p);
    if (rc == BE_OK) {
        rc = be_swap_install(d, &p);
    }
    if (rc != BE_OK) {
        return rc;
    }
    res->actions |= BE_ACT_INSTALLED;
    if ((d->rec.flags & BE_F_PERMANENT) != 0) {
        rc = be_log_set_state(d, BE_ST_CONFIRMED, 0);
        return rc != BE_OK ? rc : BE_STEP_AGAIN;
    }
    rc = be_log_carry(d, BE_ST_TRIAL, 1);
    return rc != BE_OK ? rc : BE_STEP_RUN_TRIAL;
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
        rc = be_log_set_state(d, BE_ST_CONFIRMED, 0);
    }
    return rc != BE_OK ? rc : BE_STEP_AGAIN;
}

/* Where the install will save the running image, erasable ahead of it. */
static int32_t cs_save_area(const be_device_t *d, uint32_t old_size, uint32_t *addr, uint32_t *len)
{
    return be_swap_save_area(d, old_size, d->rec.size, d->rec.offset, addr, len);
}

/* The plan that installed the trial image also restores the previous one. */
static int32_t cs_abandon_trial(be_device_t *d)
{
    return be_log_carry(d, BE_ST_REVERTING, 0);
}

const be_mode_ops_t be_mode_copy_swap = {
    .check_layout = cs_check_layout,
    .home_slot = cs_home_slot,
    .download_slot = cs_download_slot,
    .trial_slot = cs_home_slot, /* the trial image runs where every image runs */
    .image_room = cs_image_room,
    .accept = cs_accept,
    .install = cs_install,
    .revert = cs_revert,
    .abandon_trial = cs_abandon_trial,
    .record_fits = cs_record_fits,
    .save_area = cs_save_area,
    .n_bootable = 1, /* images execute from the primary only */
};
