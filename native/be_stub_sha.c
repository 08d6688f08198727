/* TEMPORARY stubs so the module links while be_sha256.c is written. Delete with it. */
#include "be.h"
uint32_t be_sha256_init(be_sha256_t *ctx, uint32_t impl) { (void)ctx; (void)impl; return 0; }
void be_sha256_update(be_sha256_t *ctx, const uint8_t *data, size_t len) { (void)ctx; (void)data; (void)len; }
void be_sha256_final(be_sha256_t *ctx, uint8_t out[32]) { (void)ctx; (void)out; }
void be_sha256(const uint8_t *data, size_t len, uint8_t out[32]) { (void)data; (void)len; (void)out; }
uint32_t be_sha256_best_impl(void) { return 0; }
