/*
 * Layout validation: the state log's two sectors and the two slots are whole
 * sectors, inside the flash and apart. Rules of a mode (copy-swap's plan area
 * and swap unit, bank-switch's header sector) are its check_layout op.
 */
#include "be_layout_priv.h"
#include "be_log_priv.h"
#include "be_mode_priv.h"

int be_layout_boundary(const be_flash_t *f, uint32_t addr)
{
    uint32_t start;
    if (addr == f->size) {
        return 1;
    }
    return be_flash_sector(f, addr, NULL, &start, NULL) == BE_OK && start == addr;
}

int be_layout_area_ok(const be_flash_t *f, uint32_t addr, uint32_t size)
{
    return size != 0 && (uint64_t)addr + size <= f->size && be_layout_boundary(f, addr) &&
           be_layout_boundary(f, addr + size);
}

static int overlap(uint32_t a, uint32_t alen, uint32_t b, uint32_t blen)
{
    return (uint64_t)a < (uint64_t)b + blen && (uint64_t)b < (uint64_t)a + alen;
}

/* The log sector at log_addr[s], as an area; 0 if it is not one. */
static int log_area(const be_device_t *d, uint32_t s, uint32_t *size)
{
    const uint32_t addr = d->layout.log_addr[s];
    return be_layout_boundary(d->flash, addr) &&
           be_flash_sector(d->flash, addr, NULL, NULL, size) == BE_OK;
}

int be_layout_disjoint(const be_device_t *d, uint32_t addr, uint32_t size)
{
    const be_layout_t *l = &d->layout;
    for (uint32_t s = 0; s < 2; s++) {
        uint32_t log_size;
        if (!log_area(d, s, &log_size) || overlap(addr, size, l->log_addr[s], log_size) ||
            overlap(addr, size, l->slot_addr[s], l->slot_size[s])) {
            return 0;
        }
    }
    return 1;
}

int32_t be_layout_check(be_device_t *d)
{
    const be_layout_t *l = &d->layout;
    const be_flash_t *f = d->flash;
    const be_mode_ops_t *ops = be_mode_find(l->mode);
    uint32_t log_size[2];

    if (ops == NULL) {
        return BE_ERR_GEOMETRY;
    }
    if (f->geo.page_size % f->geo.write_align != 0) {
        return BE_ERR_GEOMETRY;
    }
    for (uint32_t s = 0; s < 2; s++) {
        if (!log_area(d, s, &log_size[s]) || log_size[s] < 2 * BE_REC_SIZE ||
            !be_layout_area_ok(f, l->slot_addr[s], l->slot_size[s])) {
            return BE_ERR_GEOMETRY;
        }
    }
    const uint32_t addr[4] = {l->log_addr[0], l->log_addr[1], l->slot_addr[0], l->slot_addr[1]};
    const uint32_t len[4] = {log_size[0], log_size[1], l->slot_size[0], l->slot_size[1]};
    for (uint32_t i = 0; i < 4; i++) {
        for (uint32_t j = i + 1; j < 4; j++) {
            if (overlap(addr[i], len[i], addr[j], len[j])) {
                return BE_ERR_GEOMETRY;
            }
        }
    }
    return ops->check_layout(d);
}
