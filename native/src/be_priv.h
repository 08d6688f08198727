/*
 * What every source file of the core includes: the public interface, and the
 * compiler's help in keeping to its rules. Not part of the public API.
 *
 * be.h cannot carry attributes (cffi parses it), so every public function
 * that returns an int32_t error code is redeclared here with BE_MUST_CHECK:
 * with -Werror a call that drops the code does not compile. A cast to void
 * does not silence it (GCC), which is intended: check, or do not call.
 */
#ifndef BE_PRIV_H
#define BE_PRIV_H

#include "be.h"

#if defined(__GNUC__) || defined(__clang__)
#define BE_MUST_CHECK __attribute__((warn_unused_result))
#else
#define BE_MUST_CHECK
#endif

/* Element count of an array member, for static asserts against the layouts
 * of be.h (sizeof does not evaluate its operand). */
#define BE_ARRAY_LEN(type, member) (sizeof(((type *)0)->member) / sizeof(((type *)0)->member[0]))

/* be_flash.c */
BE_MUST_CHECK int32_t be_flash_init(be_flash_t *f, uint8_t *mem, uint32_t size,
                                    const be_geometry_t *geo, uint32_t *erase_counts,
                                    uint32_t n_counts, be_flash_stats_t *stats, uint8_t *otp,
                                    uint32_t otp_size);
BE_MUST_CHECK int32_t be_flash_sector(const be_flash_t *f, uint32_t addr, uint32_t *index,
                                      uint32_t *start, uint32_t *size);
BE_MUST_CHECK int32_t be_flash_read(be_flash_t *f, uint32_t addr, uint8_t *buf, uint32_t len);
BE_MUST_CHECK int32_t be_flash_write(be_flash_t *f, uint32_t addr, const uint8_t *buf,
                                     uint32_t len);
BE_MUST_CHECK int32_t be_flash_erase(be_flash_t *f, uint32_t sector_addr);
BE_MUST_CHECK int32_t be_flash_is_erased(be_flash_t *f, uint32_t addr, uint32_t len);
BE_MUST_CHECK int32_t be_flash_otp_read(be_flash_t *f, uint32_t off, uint8_t *buf, uint32_t len);
BE_MUST_CHECK int32_t be_flash_otp_write(be_flash_t *f, uint32_t off, const uint8_t *buf,
                                         uint32_t len);
BE_MUST_CHECK int32_t be_flash_get_stats(const be_flash_t *f, be_flash_stats_t *out);
BE_MUST_CHECK int32_t be_flash_fault_status(const be_flash_t *f, be_fault_t *out);

/* be_image.c */
BE_MUST_CHECK int32_t be_image_validate(be_flash_t *f, uint32_t addr, uint32_t slot_size,
                                        const be_trust_t *trust, be_image_info_t *info);
BE_MUST_CHECK int32_t be_image_version_cmp(const be_image_info_t *a, const be_image_info_t *b);

/* be_otp.c */
BE_MUST_CHECK int32_t be_otp_counter(be_flash_t *f, uint32_t *value);
BE_MUST_CHECK int32_t be_otp_raise(be_flash_t *f, uint32_t value);
BE_MUST_CHECK int32_t be_otp_add_key(be_flash_t *f, const uint8_t *der, uint32_t der_len);
BE_MUST_CHECK int32_t be_otp_load_trust(be_flash_t *f, be_trust_t *trust);

/* be_device.c, be_boot.c, be_download.c, be_slot.c */
BE_MUST_CHECK int32_t be_device_open(be_device_t *d, be_flash_t *f, const be_layout_t *layout,
                                     const be_crypto_t *crypto);
BE_MUST_CHECK int32_t be_boot(be_device_t *d, be_boot_result_t *result);
BE_MUST_CHECK int32_t be_confirm(be_device_t *d);
BE_MUST_CHECK int32_t be_dl_begin(be_device_t *d, uint32_t blob_size, uint32_t image_offset);
BE_MUST_CHECK int32_t be_dl_write(be_device_t *d, uint32_t offset, const uint8_t *data,
                                  uint32_t len);
BE_MUST_CHECK int32_t be_dl_read(be_device_t *d, uint32_t offset, uint8_t *data, uint32_t len);
BE_MUST_CHECK int32_t be_dl_resume_offset(be_device_t *d, uint32_t *offset);
BE_MUST_CHECK int32_t be_dl_addr(const be_device_t *d, uint32_t *addr);
BE_MUST_CHECK int32_t be_mark_pending(be_device_t *d, uint32_t permanent, be_image_info_t *info);
BE_MUST_CHECK int32_t be_dl_discard(be_device_t *d);
BE_MUST_CHECK int32_t be_dl_prepare(be_device_t *d, uint32_t max_erases, uint32_t *left);
BE_MUST_CHECK int32_t be_slot_validate(be_device_t *d, uint32_t slot, be_image_info_t *info);
BE_MUST_CHECK int32_t be_device_status(const be_device_t *d, be_device_status_t *out);

/* be_aes.c, be_ota.c */
BE_MUST_CHECK int32_t be_mmo_final(be_mmo_t *ctx, uint8_t out[16]);
BE_MUST_CHECK int32_t be_mmo(const uint8_t *data, size_t len, uint8_t out[16]);
BE_MUST_CHECK int32_t be_ota_verify(be_flash_t *f, uint32_t addr, uint32_t len,
                                    const be_ota_expect_t *expect, const be_crypto_t *crypto,
                                    const uint8_t *supplier_key, uint32_t supplier_key_len,
                                    be_ota_info_t *info);

#endif /* BE_PRIV_H */
