/*
 * The two ways of installing an image, behind one interface (as MCUboot's
 * swap_scratch.c / swap_move.c / swap_offset.c sit behind swap_priv.h):
 *
 *   be_mode_copy_swap.c     one executable slot; the new image is swapped in
 *                           and the old one kept in the secondary (be_swap.c)
 *   be_mode_bank_switch.c   two bootable banks chosen by the state record
 *
 * The boot machine (be_boot.c), the downloads (be_download.c) and the layout
 * check (be_layout.c) ask these ops and never test the mode themselves.
 * Not part of the public API.
 */
#ifndef BE_MODE_PRIV_H
#define BE_MODE_PRIV_H

#include "be_priv.h"

/* What a mode step asks of the boot machine next. All > 0: errors are < 0. */
enum be_step {
    BE_STEP_AGAIN = 1,          /* a record was committed: act on the new state */
    BE_STEP_RUN_TRIAL = 2,      /* the TRIAL record is committed: run the trial image */
    BE_STEP_RUN_CONFIRMED = 3   /* nothing for this mode to do: run the confirmed image */
};

typedef struct be_mode_ops {
    /* The mode's layout rules, after the common ones held: sets d->unit and
     * d->image_off. BE_ERR_GEOMETRY or BE_ERR_PLAN. */
    BE_MUST_CHECK int32_t (*check_layout)(be_device_t *d);

    /* Slots: the confirmed image's, the download's, the trial image's. */
    uint32_t (*home_slot)(const be_device_t *d);
    uint32_t (*download_slot)(const be_device_t *d);
    uint32_t (*trial_slot)(const be_device_t *d);

    /* Bytes an image may take in a slot, from its image offset. */
    uint32_t (*image_room)(const be_device_t *d, uint32_t slot);

    /* PENDING: the candidate passed every check. cur is the installed image,
     * NULL if none validates. A step result, or an error. */
    BE_MUST_CHECK int32_t (*accept)(be_device_t *d, be_boot_result_t *res,
                                    const be_image_info_t *cand, const be_image_info_t *cur);

    /* SWAPPING: finish the install; REVERTING: finish restoring the previous
     * image. A step result, or an error. */
    BE_MUST_CHECK int32_t (*install)(be_device_t *d, be_boot_result_t *res);
    BE_MUST_CHECK int32_t (*revert)(be_device_t *d, be_boot_result_t *res);

    /* A trial image failed or used up its attempts: commit the way back. */
    BE_MUST_CHECK int32_t (*abandon_trial)(be_device_t *d);

    /* Whether a record (checksum valid) is one this mode writes for this
     * layout: its state, its download within the download slot, its plan
     * reference within the plan area. One that is not is corrupt. */
    int (*record_fits)(const be_device_t *d, const be_record_t *r);

    /* A download is held (its record is d->rec): the flash range the install
     * will save a running image of old_size bytes into, which may be erased
     * before it (be_dl_prepare); *len 0 if there is none. */
    BE_MUST_CHECK int32_t (*save_area)(const be_device_t *d, uint32_t old_size, uint32_t *addr,
                                       uint32_t *len);

    /* Slots 0 .. n_bootable - 1 can run an image (as bank r.bank = slot). */
    uint32_t n_bootable;
} be_mode_ops_t;

extern const be_mode_ops_t be_mode_copy_swap;
extern const be_mode_ops_t be_mode_bank_switch;

/* The ops of a be_mode_t, or NULL for an unknown mode. */
static inline const be_mode_ops_t *be_mode_find(uint32_t mode)
{
    switch (mode) {
    case BE_MODE_COPY_SWAP:
        return &be_mode_copy_swap;
    case BE_MODE_BANK_SWITCH:
        return &be_mode_bank_switch;
    default:
        return NULL;
    }
}

/* The device's ops. Total, so that a device whose open failed cannot crash
 * the core: be_device_open refuses unknown modes, any that got this far
 * anyway act as copy-swap. */
static inline const be_mode_ops_t *be_mode_of(const be_device_t *d)
{
    const be_mode_ops_t *ops = be_mode_find(d->layout.mode);
    return ops != NULL ? ops : &be_mode_copy_swap;
}

#endif /* BE_MODE_PRIV_H */
