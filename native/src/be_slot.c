/* Slots: image addresses and the bootloader's judgement of a slot's image. */
#include "be_mode_priv.h"
#include "be_slot_priv.h"

uint32_t be_slot_image_addr(const be_device_t *d, uint32_t slot)
{
    return d->layout.slot_addr[slot] + d->image_off[slot];
}

int be_slot_blob_fits(const be_device_t *d, uint32_t slot, uint32_t size, uint32_t image_offset)
{
    return size > 0 && image_offset <= size && image_offset <= d->image_off[slot] &&
           (uint64_t)size - image_offset <= (uint64_t)d->layout.slot_size[slot] - d->image_off[slot];
}

int32_t be_slot_check(be_device_t *d, uint32_t slot, be_image_info_t *info)
{
    return be_image_validate(d->flash, be_slot_image_addr(d, slot),
                             be_mode_of(d)->image_room(d, slot), &d->trust, info);
}

int be_slot_is_downgrade(const be_device_t *d, const be_image_info_t *cand,
                         const be_image_info_t *cur)
{
    return (d->layout.options & BE_OPT_ALLOW_DOWNGRADE) == 0 &&
           be_image_version_cmp(cand, cur) < 0;
}

int32_t be_slot_validate(be_device_t *d, uint32_t slot, be_image_info_t *info)
{
    if (d == NULL || slot > 1) {
        return BE_ERR_ARG;
    }
    return be_slot_check(d, slot, info);
}
