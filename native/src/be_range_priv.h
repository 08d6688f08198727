/*
 * Operations on a range of flash built on the flash HAL alone: what several
 * parts of the core need, written once. Not part of the public API.
 */
#ifndef BE_RANGE_PRIV_H
#define BE_RANGE_PRIV_H

#include "be_priv.h"

/* Bytes read per flash call when scanning or hashing a range: small enough
 * for any stack, and one size for all, since the flash model counts reads. */
enum { BE_RANGE_CHUNK = 256 };

/* Erase [addr, addr + len) sector by sector, skipping sectors already blank. */
BE_MUST_CHECK int32_t be_range_erase(be_flash_t *f, uint32_t addr, uint32_t len);

/* *used = offset, from addr, just past the last byte of [addr, addr + len)
 * that is not 0xFF; 0 if the range is blank. Scans backwards. */
BE_MUST_CHECK int32_t be_range_used(be_flash_t *f, uint32_t addr, uint32_t len, uint32_t *used);

/* Feed [addr, addr + len) to a running hash, through a bounded stack buffer
 * (never a RAM copy of the range). */
BE_MUST_CHECK int32_t be_range_sha256(be_flash_t *f, uint32_t addr, uint32_t len, be_sha256_t *c);
BE_MUST_CHECK int32_t be_range_mmo(be_flash_t *f, uint32_t addr, uint32_t len, be_mmo_t *c);

#endif /* BE_RANGE_PRIV_H */
