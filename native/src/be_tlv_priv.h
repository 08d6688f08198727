/*
 * Walking type-length-value entries stored in flash, bounds-checked, in the
 * manner of MCUboot's bootutil_tlv_iter_begin/next. Two formats share it:
 *   MCUboot image TLVs      {u16 type, u16 len, data}  (len_size 2)
 *   ZCL OTA sub-elements    {u16 tag,  u32 len, data}  (len_size 4)
 * all little-endian. Not part of the public API.
 */
#ifndef BE_TLV_PRIV_H
#define BE_TLV_PRIV_H

#include "be_priv.h"

typedef struct be_tlv_iter {
    be_flash_t *f;
    uint32_t base;      /* flash address that offsets count from */
    uint64_t off;       /* next entry (64 bits: offset + length never wraps) */
    uint64_t end;       /* end of the area: no entry may run past it */
    uint32_t len_size;  /* bytes of the length field: 2 or 4 */
    int32_t truncated;  /* the caller's error for an entry past the end */
} be_tlv_iter_t;

typedef struct be_tlv {
    uint32_t type;
    uint32_t len;       /* data bytes */
    uint64_t data;      /* offset of the data, from base */
    uint64_t off;       /* offset of the entry's header, from base */
} be_tlv_t;

/* Entries of [start, end), offsets from base. The caller has checked that the
 * area lies inside what it may read; no entry found will leave it. */
BE_MUST_CHECK int32_t be_tlv_begin(be_tlv_iter_t *it, be_flash_t *f, uint32_t base,
                                   uint64_t start, uint64_t end, uint32_t len_size,
                                   int32_t truncated);

/* 1: *t is the next entry; 0: no more entries; < 0: it->truncated or a flash
 * error. One flash read per entry, of its header only. */
BE_MUST_CHECK int32_t be_tlv_next(be_tlv_iter_t *it, be_tlv_t *t);

#endif /* BE_TLV_PRIV_H */
