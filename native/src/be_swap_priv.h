/*
 * Copy-swap's engine (be_swap.c): swap plans and content-checked unit copies.
 * Used by be_mode_copy_swap.c only. Not part of the public API.
 */
#ifndef BE_SWAP_PRIV_H
#define BE_SWAP_PRIV_H

#include "be_priv.h"

typedef struct be_plan {
    uint32_t addr;      /* flash address of the entry */
    uint32_t old_size;  /* bytes of the previous image saved by the swap */
    uint32_t new_size;  /* bytes of the image being installed */
    uint32_t n_units;
    uint32_t save_base; /* old unit i is saved in secondary unit save_base + i */
} be_plan_t;

/* Bytes a plan for n_units takes in the plan area (the layout check sizes the
 * area with it). */
uint32_t be_plan_len(uint32_t n_units);

/* A record's plan reference (offset, size) lies in the plan area and can hold a plan. */
int be_plan_ref_ok(const be_device_t *d, const be_record_t *r);

/* Where an install saves an old image of old_size bytes, for a pending blob
 * of blob_size bytes with its image at image_offset: the first secondary unit
 * past the blob when the whole old image fits after it, else 0 (the unit the
 * new image vacates, step by step). */
uint32_t be_swap_save_base(const be_device_t *d, uint32_t old_size, uint32_t blob_size,
                           uint32_t image_offset);

/* The same as a flash range: *len 0 when the save base is 0 (nothing can be
 * erased before the install). */
BE_MUST_CHECK int32_t be_swap_save_area(const be_device_t *d, uint32_t old_size,
                                        uint32_t blob_size, uint32_t image_offset,
                                        uint32_t *addr, uint32_t *len);

/* Hash the images and commit a plan entry saving the old image at save_base;
 * fills r->size/offset/check to reference it. */
BE_MUST_CHECK int32_t be_plan_write(be_device_t *d, uint32_t old_size, uint32_t new_size,
                                    uint32_t save_base, be_record_t *r);

/* Find and check the plan a record references. */
BE_MUST_CHECK int32_t be_plan_load(be_device_t *d, const be_record_t *r, be_plan_t *p);

/* Install (resumable): primary <- new image, secondary <- previous image. */
BE_MUST_CHECK int32_t be_swap_install(be_device_t *d, const be_plan_t *p);

/* Revert (resumable): primary <- previous image saved in the secondary. */
BE_MUST_CHECK int32_t be_swap_revert(be_device_t *d, const be_plan_t *p);

#endif /* BE_SWAP_PRIV_H */
