/*
 * Slots (be_slot.c): where a slot's image starts and how the bootloader
 * judges one. Shared by the boot machine and the downloads. Not part of the
 * public API.
 */
#ifndef BE_SLOT_PRIV_H
#define BE_SLOT_PRIV_H

#include "be_priv.h"

/* Flash address of the bootable image in a slot (0 or 1). */
uint32_t be_slot_image_addr(const be_device_t *d, uint32_t slot);

/* A download blob of `size` bytes whose image starts `image_offset` bytes in
 * fits the slot, placed so that its image starts where the slot's does. */
int be_slot_blob_fits(const be_device_t *d, uint32_t slot, uint32_t size, uint32_t image_offset);

/* Validate the image in a slot against the device's trust, within the room
 * the mode gives it. */
BE_MUST_CHECK int32_t be_slot_check(be_device_t *d, uint32_t slot, be_image_info_t *info);

/* 1 if installing cand over cur would be a refused downgrade. */
int be_slot_is_downgrade(const be_device_t *d, const be_image_info_t *cand,
                         const be_image_info_t *cur);

#endif /* BE_SLOT_PRIV_H */
