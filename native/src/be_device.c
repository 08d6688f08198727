/*
 * The device as the host sees it: opening one, the boot entry point, and a
 * status copy so that hosts need not read be_device_t.
 *
 * be_boot is the API boundary of the boot machine (be_boot.c). The flash-busy
 * time it reports is the emulator's measure of the downtime a boot adds: no
 * firmware could know it, so the boot logic does not either. It is taken
 * here, from the flash model's counters, around the machine.
 */
#include <string.h>

#include "be_boot_priv.h"
#include "be_layout_priv.h"
#include "be_log_priv.h"
#include "be_slot_priv.h"

int32_t be_device_open(be_device_t *d, be_flash_t *f, const be_layout_t *layout,
                       const be_crypto_t *crypto)
{
    if (d == NULL || f == NULL || layout == NULL) {
        return BE_ERR_ARG;
    }
    memset(d, 0, sizeof *d);
    d->flash = f;
    d->layout = *layout;
    if (d->layout.max_attempts == 0) {
        d->layout.max_attempts = 1;
    }
    int32_t rc = be_layout_check(d);
    if (rc != BE_OK) {
        return rc;
    }
    rc = be_otp_load_trust(f, &d->trust);
    if (rc != BE_OK) {
        return rc;
    }
    if (crypto != NULL) {
        d->trust.crypto = *crypto;
    }
    return be_log_load(d);
}

int32_t be_boot(be_device_t *d, be_boot_result_t *result)
{
    be_boot_result_t local;
    be_boot_result_t *res = result != NULL ? result : &local;
    be_flash_stats_t before, after;
    if (d == NULL) {
        return BE_ERR_ARG;
    }
    memset(res, 0, sizeof *res);
    int32_t rc = be_flash_get_stats(d->flash, &before);
    if (rc != BE_OK) {
        return rc;
    }
    rc = be_boot_run(d, res);
    /* cannot fail: the same call on the same flash succeeded above */
    if (be_flash_get_stats(d->flash, &after) == BE_OK) {
        res->busy_us = after.busy_us - before.busy_us;
    }
    return rc;
}

int32_t be_device_status(const be_device_t *d, be_device_status_t *out)
{
    if (d == NULL || out == NULL) {
        return BE_ERR_ARG;
    }
    memset(out, 0, sizeof *out);
    out->rec = d->rec;
    if (d->running != 0) {
        out->running = 1;
        out->running_slot = d->running - 1;
        out->run_info = d->run_info;
    }
    for (uint32_t s = 0; s < 2; s++) {
        out->slot_addr[s] = d->layout.slot_addr[s];
        out->slot_size[s] = d->layout.slot_size[s];
        out->image_addr[s] = be_slot_image_addr(d, s);
        out->log_addr[s] = d->layout.log_addr[s];
    }
    out->n_keys = d->trust.n_keys;
    out->min_security_counter = d->trust.min_security_counter;
    out->origin_counter = d->origin;
    return BE_OK;
}
