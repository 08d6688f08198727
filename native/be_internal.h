/* Helpers shared by the core's source files; not part of the public API. */
#ifndef BE_INTERNAL_H
#define BE_INTERNAL_H

#include "be.h"

static inline uint16_t be_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t be_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void be_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void be_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

#endif

/* ---- state log (be_log.c) ---- */
enum { BE_REC_SIZE = 32 };
/* Scan both log sectors; set d->rec to the newest valid record (state NONE if none). */
int32_t be_log_load(be_device_t *d);
/* Commit r (seq assigned here) as the new state. Power cut inside = not committed. */
int32_t be_log_append(be_device_t *d, const be_record_t *r);

/* ---- swap plans and unit copies (be_swap.c) ---- */
typedef struct be_plan {
    uint32_t addr;      /* flash address of the entry */
    uint32_t old_size;  /* bytes of the previous image saved by the swap */
    uint32_t new_size;  /* bytes of the image being installed */
    uint32_t n_units;
} be_plan_t;
/* Hash the images and commit a plan entry; fills r->size/offset/check to reference it. */
int32_t be_plan_write(be_device_t *d, uint32_t old_size, uint32_t new_size, be_record_t *r);
/* Find and check the plan a record references. */
int32_t be_plan_load(be_device_t *d, const be_record_t *r, be_plan_t *p);
/* Install (resumable): primary <- new image, secondary <- previous image. */
int32_t be_swap_install(be_device_t *d, const be_plan_t *p);
/* Revert (resumable): primary <- previous image saved in the secondary. */
int32_t be_swap_revert(be_device_t *d, const be_plan_t *p);
/* Erase [addr, addr+len) sector by sector, skipping sectors already blank. */
int32_t be_erase_range(be_flash_t *f, uint32_t addr, uint32_t len);
