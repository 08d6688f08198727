/*
 * Flash ranges: erase, find the end of what is programmed, hash. Each is one
 * loop over the flash HAL in BE_RANGE_CHUNK steps through a stack buffer.
 */
#include "be_range_priv.h"

int32_t be_range_erase(be_flash_t *f, uint32_t addr, uint32_t len)
{
    uint32_t end = addr + len;
    while (addr < end) {
        uint32_t start, size;
        int32_t rc = be_flash_sector(f, addr, NULL, &start, &size);
        if (rc != BE_OK) {
            return rc;
        }
        rc = be_flash_is_erased(f, start, size);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            rc = be_flash_erase(f, start);
            if (rc != BE_OK) {
                return rc;
            }
        }
        addr = start + size;
    }
    return BE_OK;
}

int32_t be_range_used(be_flash_t *f, uint32_t addr, uint32_t len, uint32_t *used)
{
    uint8_t buf[BE_RANGE_CHUNK];
    uint32_t end = len;
    while (end > 0) {
        uint32_t n = end < sizeof buf ? end : (uint32_t)sizeof buf;
        int32_t rc = be_flash_read(f, addr + end - n, buf, n);
        if (rc != BE_OK) {
            return rc;
        }
        for (uint32_t i = n; i > 0; i--) {
            if (buf[i - 1] != 0xFF) {
                *used = end - n + i;
                return BE_OK;
            }
        }
        end -= n;
    }
    *used = 0;
    return BE_OK;
}

/* The one chunked read loop behind both hashes. */
typedef void (*hash_update_fn)(void *ctx, const uint8_t *data, size_t len);

static int32_t feed(be_flash_t *f, uint32_t addr, uint32_t len, hash_update_fn update, void *ctx)
{
    uint8_t buf[BE_RANGE_CHUNK];
    while (len > 0) {
        uint32_t n = len < sizeof buf ? len : (uint32_t)sizeof buf;
        int32_t rc = be_flash_read(f, addr, buf, n);
        if (rc != BE_OK) {
            return rc;
        }
        update(ctx, buf, n);
        addr += n;
        len -= n;
    }
    return BE_OK;
}

/* Typed adapters: the update functions take their own context type. */
static void sha256_update(void *ctx, const uint8_t *data, size_t len)
{
    be_sha256_update(ctx, data, len);
}

static void mmo_update(void *ctx, const uint8_t *data, size_t len)
{
    be_mmo_update(ctx, data, len);
}

int32_t be_range_sha256(be_flash_t *f, uint32_t addr, uint32_t len, be_sha256_t *c)
{
    return feed(f, addr, len, sha256_update, c);
}

int32_t be_range_mmo(be_flash_t *f, uint32_t addr, uint32_t len, be_mmo_t *c)
{
    return feed(f, addr, len, mmo_update, c);
}
