/*
 * The state log (be_log.c): the device's boot state as append-only records.
 * Not part of the public API.
 */
#ifndef BE_LOG_PRIV_H
#define BE_LOG_PRIV_H

#include "be_priv.h"

enum { BE_REC_SIZE = 32 };

/* Scan both log sectors; set d->rec to the newest valid state record (state
 * NONE if none) and d->origin to the newest counter record (0 if none). */
BE_MUST_CHECK int32_t be_log_load(be_device_t *d);

/* Commit r (seq assigned here) as the new state. Power cut inside = not committed. */
BE_MUST_CHECK int32_t be_log_append(be_device_t *d, const be_record_t *r);

/* Commit value as the originator counter last accepted. Power cut inside = not committed. */
BE_MUST_CHECK int32_t be_log_set_origin(be_device_t *d, uint64_t value);

/* Commit a fresh record: only state and bank set. */
BE_MUST_CHECK int32_t be_log_set_state(be_device_t *d, uint32_t state, uint32_t bank);

/* Commit the current record with a new state and attempt count: it carries
 * the plan reference (copy-swap) and the bank forward. */
BE_MUST_CHECK int32_t be_log_carry(be_device_t *d, uint32_t state, uint32_t attempts);

#endif /* BE_LOG_PRIV_H */
