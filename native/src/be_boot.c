/*
 * Booting: the state machine that the state log persists.
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
 *
 * What differs between the modes is asked of their ops (be_mode_priv.h).
 */
#include "be_boot_priv.h"
#include "be_log_priv.h"
#include "be_mode_priv.h"
#include "be_slot_priv.h"

/* Each pass commits one record or ends the boot; a handful always suffice. */
enum { MAX_PASSES = 8 };

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
    if (rc == BE_OK && res != NULL) {
        res->actions |= BE_ACT_COUNTER;
    }
    return rc;
}

static int32_t run_confirmed(be_device_t *d, be_boot_result_t *res)
{
    be_image_info_t info;
    uint32_t slot = be_mode_of(d)->home_slot(d);
    int32_t rc = be_slot_check(d, slot, &info);
    if (rc == BE_ERR_POWER_CUT) {
        return rc;
    }
    if (rc != BE_OK) {
        res->refused_err = rc;
        return BE_ERR_NO_IMAGE;
    }
    rc = settle_counter(d, res, info.security_counter);
    if (rc != BE_OK) {
        return rc;
    }
    set_running(d, res, slot, &info, 1);
    return BE_OK;
}

static int32_t abandon_trial(be_device_t *d, be_boot_result_t *res)
{
    res->actions |= BE_ACT_REVERTED;
    int32_t rc = be_mode_of(d)->abandon_trial(d);
    return rc != BE_OK ? rc : BE_STEP_AGAIN;
}

/* Run the trial image, or give it up if it no longer validates. */
static int32_t run_trial(be_device_t *d, be_boot_result_t *res)
{
    be_image_info_t info;
    uint32_t slot = be_mode_of(d)->trial_slot(d);
    int32_t rc = be_slot_check(d, slot, &info);
    if (rc == BE_ERR_POWER_CUT) {
        return rc;
    }
    if (rc != BE_OK) {
        res->refused_err = rc;
        return abandon_trial(d, res);
    }
    set_running(d, res, slot, &info, 0);
    return BE_OK;
}

/* Count a trial boot, or give up on the trial image. */
static int32_t trial_boot(be_device_t *d, be_boot_result_t *res)
{
    if (d->rec.attempts >= d->layout.max_attempts) {
        return abandon_trial(d, res);
    }
    int32_t rc = be_log_carry(d, BE_ST_TRIAL, d->rec.attempts + 1);
    return rc != BE_OK ? rc : BE_STEP_RUN_TRIAL;
}

/* Validate the pending image against the device and the running image.
 * Returns BE_OK, an image error, or BE_ERR_POWER_CUT. cur_valid tells
 * whether the installed image itself validates. */
static int32_t check_candidate(be_device_t *d, be_image_info_t *cand, be_image_info_t *cur,
                               int *cur_valid)
{
    const be_mode_ops_t *ops = be_mode_of(d);
    *cur_valid = 0;
    int32_t rc = be_slot_check(d, ops->download_slot(d), cand);
    if (rc != BE_OK) {
        return rc;
    }
    rc = be_slot_check(d, ops->home_slot(d), cur);
    if (rc == BE_ERR_POWER_CUT) {
        return rc;
    }
    *cur_valid = rc == BE_OK;
    return *cur_valid && be_slot_is_downgrade(d, cand, cur) ? BE_ERR_IMG_DOWNGRADE : BE_OK;
}

static int32_t boot_pending(be_device_t *d, be_boot_result_t *res)
{
    be_image_info_t cand, cur;
    int cur_valid;
    int32_t rc = check_candidate(d, &cand, &cur, &cur_valid);
    if (rc == BE_ERR_POWER_CUT) {
        return rc;
    }
    if (rc != BE_OK) {
        res->actions |= BE_ACT_REFUSED;
        res->refused_err = rc;
        rc = be_log_set_state(d, BE_ST_CONFIRMED, d->rec.bank);
        return rc != BE_OK ? rc : BE_STEP_AGAIN;
    }
    return be_mode_of(d)->accept(d, res, &cand, cur_valid ? &cur : NULL);
}

/* One pass: act on the current state. BE_OK (an image runs), BE_STEP_AGAIN,
 * or an error. */
static int32_t pass(be_device_t *d, be_boot_result_t *res)
{
    const be_mode_ops_t *ops = be_mode_of(d);
    int32_t rc;
    switch (d->rec.state) {
    case BE_ST_PENDING:
        rc = boot_pending(d, res);
        break;
    case BE_ST_SWAPPING:
        rc = ops->install(d, res);
        break;
    case BE_ST_TRIAL:
        rc = trial_boot(d, res);
        break;
    case BE_ST_REVERTING:
        rc = ops->revert(d, res);
        break;
    default:
        rc = BE_STEP_RUN_CONFIRMED;
        break;
    }
    if (rc == BE_STEP_RUN_TRIAL) {
        return run_trial(d, res);
    }
    if (rc == BE_STEP_RUN_CONFIRMED) {
        return run_confirmed(d, res);
    }
    return rc;
}

/* The state cannot be acted on (a plan that does not check out, a confirmed
 * bank with no image, passes that never settle), yet a valid image may be in
 * flash: boot the best one the mode can run (the highest version; the OTP
 * counter is part of validation) and commit it as confirmed, so that the
 * device never stops with a valid image in flash. */
static int32_t rescue(be_device_t *d, be_boot_result_t *res, int32_t why)
{
    const be_mode_ops_t *ops = be_mode_of(d);
    be_image_info_t best, info;
    uint32_t best_slot = 0;
    int found = 0;
    for (uint32_t slot = 0; slot < ops->n_bootable; slot++) {
        int32_t rc = be_slot_check(d, slot, &info);
        if (rc == BE_ERR_POWER_CUT) {
            return rc;
        }
        if (rc == BE_OK && (!found || be_image_version_cmp(&info, &best) > 0)) {
            best = info;
            best_slot = slot;
            found = 1;
        }
    }
    if (!found) {
        return why;
    }
    int32_t rc = be_log_set_state(d, BE_ST_CONFIRMED, best_slot);
    if (rc != BE_OK) {
        return rc;
    }
    res->actions |= BE_ACT_RESCUED;
    if (res->refused_err == 0) {
        res->refused_err = why;
    }
    return run_confirmed(d, res);
}

int32_t be_boot_run(be_device_t *d, be_boot_result_t *res)
{
    d->running = 0;
    if (d->rec.state == BE_ST_SWAPPING || d->rec.state == BE_ST_REVERTING) {
        res->actions |= BE_ACT_RESUMED;
    }
    int32_t rc = BE_ERR_CORRUPT;
    for (int i = 0; i < MAX_PASSES; i++) {
        rc = pass(d, res);
        if (rc != BE_STEP_AGAIN) {
            break;
        }
    }
    if (rc == BE_STEP_AGAIN) {
        rc = BE_ERR_CORRUPT;
    }
    return rc == BE_ERR_CORRUPT || rc == BE_ERR_NO_IMAGE ? rescue(d, res, rc) : rc;
}

int32_t be_confirm(be_device_t *d)
{
    if (d == NULL) {
        return BE_ERR_ARG;
    }
    if (d->running == 0) {
        return BE_ERR_STATE;
    }
    if (d->rec.state == BE_ST_TRIAL) {
        /* the record first: if the counter were raised first, a cut before the
         * record would leave a trial that reverts to an image the counter refuses */
        int32_t rc = be_log_set_state(d, BE_ST_CONFIRMED, d->running - 1);
        if (rc != BE_OK) {
            return rc;
        }
    } else if (d->rec.state == BE_ST_SWAPPING || d->rec.state == BE_ST_REVERTING) {
        return BE_ERR_STATE;
    }
    return settle_counter(d, NULL, d->run_info.security_counter);
}
