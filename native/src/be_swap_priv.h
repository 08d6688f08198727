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
} be_plan_t;

/* Bytes a plan for n_units takes in the plan area (the layout check sizes the
 * area with it). */
uint32_t be_plan_len(uint32_t n_units);

/* A record's plan reference (offset, size) lies in the plan area and can hold a plan. */
int be_plan_ref_ok(const be_device_t *d, const be_record_t *r);

/* Hash the images and commit a plan entry; fills r->size/offset/check to reference it. */
BE_MUST_CHECK int32_t be_plan_write(be_device_t *d, uint32_t old_size, uint32_t new_size,
                                    be_record_t *r);

/* Find and check the plan a record references. */
BE_MUST_CHECK int32_t be_plan_load(be_device_t *d, const be_record_t *r, be_plan_t *p);

/* Install (resumable): primary <- new image, secondary <- previous image. */
BE_MUST_CHECK int32_t be_swap_install(be_device_t *d, const be_plan_t *p);

/* Revert (resumable): primary <- previous image saved in the secondary. */
BE_MUST_CHECK int32_t be_swap_revert(be_device_t *d, const be_plan_t *p);

#endif /* BE_SWAP_PRIV_H */
