/*
 * The boot state machine (be_boot.c), entered through be_boot (be_device.c).
 * Not part of the public API.
 */
#ifndef BE_BOOT_PRIV_H
#define BE_BOOT_PRIV_H

#include "be_priv.h"

/* be_boot without its measurement: res is zeroed by the caller, d is open. */
BE_MUST_CHECK int32_t be_boot_run(be_device_t *d, be_boot_result_t *res);

#endif /* BE_BOOT_PRIV_H */
