/*
 * The originator counter: a command that changes firmware state is accepted
 * once, in rising counter order, so a replayed or old command is refused.
 * The counter is committed to the state log before the command is acted on:
 * a power cut after the commit loses the action, not the protection, and the
 * sender asks again with a new counter.
 */
#include "be_log_priv.h"

int32_t be_origin_counter(const be_device_t *d, uint64_t *value)
{
    if (d == NULL || value == NULL) {
        return BE_ERR_ARG;
    }
    *value = d->origin;
    return BE_OK;
}

int32_t be_origin_accept(be_device_t *d, uint64_t value)
{
    if (d == NULL) {
        return BE_ERR_ARG;
    }
    if (value <= d->origin) {
        return BE_ERR_STALE;
    }
    return be_log_set_origin(d, value);
}
