/*
 * Layout validation (be_layout.c): the rules every layout obeys, and helpers
 * for the rules each mode adds. Not part of the public API.
 */
#ifndef BE_LAYOUT_PRIV_H
#define BE_LAYOUT_PRIV_H

#include "be_priv.h"

/* Check d->layout against d->flash, then the mode's own rules (which set
 * d->unit and d->image_off). BE_ERR_GEOMETRY or BE_ERR_PLAN. */
BE_MUST_CHECK int32_t be_layout_check(be_device_t *d);

/* 1 if addr starts a sector or is the end of the flash. */
int be_layout_boundary(const be_flash_t *f, uint32_t addr);

/* 1 if [addr, addr + size) is non-empty, inside the flash and whole sectors. */
int be_layout_area_ok(const be_flash_t *f, uint32_t addr, uint32_t size);

/* 1 if [addr, addr + size) overlaps neither log sector nor either slot. */
int be_layout_disjoint(const be_device_t *d, uint32_t addr, uint32_t size);

#endif /* BE_LAYOUT_PRIV_H */
