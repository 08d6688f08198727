/* TEMPORARY stubs so the module links while flash/otp/boot are written. */
#include "be.h"
int32_t be_flash_init(be_flash_t *f, uint8_t *mem, uint32_t size, const be_geometry_t *geo, uint32_t *erase_counts, uint32_t n_counts, be_flash_stats_t *stats, uint8_t *otp, uint32_t otp_size)
{ (void)f; (void)mem; (void)size; (void)geo; (void)erase_counts; (void)n_counts; (void)stats; (void)otp; (void)otp_size; return BE_ERR_ARG; }
int32_t be_flash_sector(const be_flash_t *f, uint32_t addr, uint32_t *index, uint32_t *start, uint32_t *size) { (void)f; (void)addr; (void)index; (void)start; (void)size; return BE_ERR_ARG; }
int32_t be_flash_read(be_flash_t *f, uint32_t addr, uint8_t *buf, uint32_t len) { (void)f; (void)addr; (void)buf; (void)len; return BE_ERR_ARG; }
int32_t be_flash_write(be_flash_t *f, uint32_t addr, const uint8_t *buf, uint32_t len) { (void)f; (void)addr; (void)buf; (void)len; return BE_ERR_ARG; }
int32_t be_flash_erase(be_flash_t *f, uint32_t sector_addr) { (void)f; (void)sector_addr; return BE_ERR_ARG; }
int32_t be_flash_is_erased(be_flash_t *f, uint32_t addr, uint32_t len) { (void)f; (void)addr; (void)len; return BE_ERR_ARG; }
int32_t be_flash_otp_read(be_flash_t *f, uint32_t off, uint8_t *buf, uint32_t len) { (void)f; (void)off; (void)buf; (void)len; return BE_ERR_ARG; }
int32_t be_flash_otp_write(be_flash_t *f, uint32_t off, const uint8_t *buf, uint32_t len) { (void)f; (void)off; (void)buf; (void)len; return BE_ERR_ARG; }
void be_flash_arm_cut(be_flash_t *f, uint32_t n, uint32_t tear, uint32_t seed) { (void)f; (void)n; (void)tear; (void)seed; }
int32_t be_otp_counter(be_flash_t *f, uint32_t *value) { (void)f; (void)value; return BE_ERR_ARG; }
int32_t be_otp_raise(be_flash_t *f, uint32_t value) { (void)f; (void)value; return BE_ERR_ARG; }
int32_t be_otp_add_key(be_flash_t *f, const uint8_t *der, uint32_t der_len) { (void)f; (void)der; (void)der_len; return BE_ERR_ARG; }
int32_t be_otp_load_trust(be_flash_t *f, be_trust_t *trust) { (void)f; (void)trust; return BE_ERR_ARG; }
int32_t be_device_open(be_device_t *d, be_flash_t *f, const be_layout_t *layout, const be_crypto_t *crypto) { (void)d; (void)f; (void)layout; (void)crypto; return BE_ERR_ARG; }
int32_t be_boot(be_device_t *d, be_boot_result_t *result) { (void)d; (void)result; return BE_ERR_ARG; }
int32_t be_confirm(be_device_t *d) { (void)d; return BE_ERR_ARG; }
int32_t be_dl_begin(be_device_t *d, uint32_t blob_size, uint32_t image_offset) { (void)d; (void)blob_size; (void)image_offset; return BE_ERR_ARG; }
int32_t be_dl_write(be_device_t *d, uint32_t offset, const uint8_t *data, uint32_t len) { (void)d; (void)offset; (void)data; (void)len; return BE_ERR_ARG; }
int32_t be_dl_read(be_device_t *d, uint32_t offset, uint8_t *data, uint32_t len) { (void)d; (void)offset; (void)data; (void)len; return BE_ERR_ARG; }
int32_t be_dl_resume_offset(be_device_t *d, uint32_t *offset) { (void)d; (void)offset; return BE_ERR_ARG; }
int32_t be_dl_addr(const be_device_t *d, uint32_t *addr) { (void)d; (void)addr; return BE_ERR_ARG; }
int32_t be_mark_pending(be_device_t *d, uint32_t permanent, be_image_info_t *info) { (void)d; (void)permanent; (void)info; return BE_ERR_ARG; }
int32_t be_dl_discard(be_device_t *d) { (void)d; return BE_ERR_ARG; }
