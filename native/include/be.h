/*
 * bridge-emu core: the public interface.
 *
 * Written as firmware is: no heap, no global mutable state, fixed-width types,
 * explicit error codes. Every object lives in a context struct owned by the
 * caller, so any number of emulated devices can share one process.
 *
 * This header is also fed to cffi (preprocessor lines stripped), so it holds
 * declarations only: no macros, no inline functions, literal array sizes.
 */
#ifndef BE_H
#define BE_H

#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ errors */

typedef enum be_err {
    BE_OK = 0,
    /* flash model */
    BE_ERR_POWER_CUT = -1,      /* power was cut: the operation did not (fully) happen */
    BE_ERR_ALIGN = -2,          /* write address or length not a multiple of the write alignment */
    BE_ERR_RANGE = -3,          /* address range outside the flash, OTP or slot */
    BE_ERR_GEOMETRY = -4,       /* geometry or layout is inconsistent */
    BE_ERR_ARG = -5,            /* a null pointer or an impossible argument */
    BE_ERR_NOT_SECTOR = -6,     /* erase address is not the start of a sector */
    BE_ERR_ECC = -7,            /* ECC flash: a write unit programmed again before its sector is erased */
    /* device state */
    BE_ERR_STATE = -10,         /* operation not allowed in the device's current state */
    BE_ERR_MISMATCH = -11,      /* download data differs from what is already written there */
    BE_ERR_NO_IMAGE = -12,      /* no bootable image: the device stays in its bootloader */
    BE_ERR_CORRUPT = -13,       /* stored data contradicts the state record (not producible by power cuts) */
    BE_ERR_PLAN = -14,          /* the swap plan does not fit the plan area */
    BE_ERR_OTP_FULL = -15,      /* no free OTP key slot, or counter beyond its capacity */
    BE_ERR_STALE = -16,         /* an originator counter not above the last one accepted (a replay) */
    /* image validation */
    BE_ERR_IMG_MAGIC = -20,         /* header magic is not 0x96f3b83d */
    BE_ERR_IMG_HEADER = -21,        /* header fields impossible (hdr_size too small, ...) */
    BE_ERR_IMG_TOO_BIG = -22,       /* header + payload + TLVs do not fit in the slot */
    BE_ERR_IMG_TLV_MAGIC = -23,     /* a TLV area does not start with its magic */
    BE_ERR_IMG_TLV_TRUNCATED = -24, /* a TLV entry runs past the end of its area or the slot */
    BE_ERR_IMG_TLV_OVERLAP = -25,   /* TLV areas disagree with the header's protect_tlv_size */
    BE_ERR_IMG_TLV_BAD = -26,       /* a TLV has the wrong length, or appears twice */
    BE_ERR_IMG_TLV_UNPROTECTED = -27, /* a TLV that must be protected is in the unprotected area */
    BE_ERR_IMG_NO_HASH = -28,       /* no SHA256 TLV */
    BE_ERR_IMG_HASH = -29,          /* SHA-256 of header+payload+protected TLVs does not match */
    BE_ERR_IMG_NO_SIG = -30,        /* no ECDSA_SIG TLV */
    BE_ERR_IMG_NO_KEYHASH = -31,    /* a signature without the KEYHASH that names its key */
    BE_ERR_IMG_KEY_UNKNOWN = -32,   /* signed by a key that is not provisioned on this device */
    BE_ERR_IMG_SIG = -33,           /* the signature does not verify */
    BE_ERR_IMG_ROLLBACK = -34,      /* security counter below the device's OTP counter */
    BE_ERR_IMG_DOWNGRADE = -35,     /* version lower than the running image's */
    BE_ERR_IMG_UNSUPPORTED = -36,   /* flags ask for a feature this bootloader lacks (encryption, ...) */
    BE_ERR_CRYPTO = -37,            /* the host crypto backend failed or is missing */
    BE_ERR_IMG_COUNTER = -38,       /* security counter beyond what the OTP counter can hold */
    /* ZigBee OTA file verification (-40..-59) */
    BE_ERR_OTA_MAGIC = -40,         /* file does not start with 0x0BEEF11E */
    BE_ERR_OTA_HEADER = -41,        /* header fields impossible (version, header_length, hw range) */
    BE_ERR_OTA_SIZE = -42,          /* shorter than a header, or total_image_size != downloaded length */
    BE_ERR_OTA_MANUFACTURER = -43,  /* manufacturer code is not the device's */
    BE_ERR_OTA_IMAGE_TYPE = -44,    /* image type is not the device's */
    BE_ERR_OTA_HW_VERSION = -45,    /* device hardware version outside the file's [min, max] */
    BE_ERR_OTA_BODY = -46,          /* body malformed: sub-element past the end, bad tag 0x0003, ... */
    BE_ERR_OTA_NO_SIG = -47,        /* GBCS body has no force_replace || 0x40 || signature trailer */
    BE_ERR_OTA_SIG = -48,           /* supplier signature over the manufacturer image does not verify */
    BE_ERR_OTA_INTEGRITY = -49      /* AES-MMO image integrity code (tag 0x0003) does not match */
} be_err_t;

/* Short stable identifier ("BE_ERR_IMG_HASH") and a sentence for a code. */
const char *be_err_name(int32_t err);
const char *be_err_text(int32_t err);

/* ----------------------------------------------------------------- SHA-256 */

typedef enum be_sha_impl {
    BE_SHA_AUTO = 0,        /* pick the fastest the CPU offers */
    BE_SHA_PORTABLE = 1,    /* plain C */
    BE_SHA_X86_SHANI = 2    /* x86 SHA extensions */
} be_sha_impl_t;

typedef struct be_sha256 {
    uint32_t h[8];
    uint64_t total;         /* bytes hashed so far */
    uint8_t buf[64];
    uint32_t buf_len;
    uint32_t impl;          /* be_sha_impl_t actually in use */
} be_sha256_t;

/* Returns the implementation chosen (never BE_SHA_AUTO). Asking for one the
 * CPU lacks falls back to BE_SHA_PORTABLE. */
uint32_t be_sha256_init(be_sha256_t *ctx, uint32_t impl);
void be_sha256_update(be_sha256_t *ctx, const uint8_t *data, size_t len);
void be_sha256_final(be_sha256_t *ctx, uint8_t out[32]);
void be_sha256(const uint8_t *data, size_t len, uint8_t out[32]);
uint32_t be_sha256_best_impl(void);

/* ------------------------------------------------------------- flash model */

typedef enum be_tear {
    BE_TEAR_NONE = 0,   /* the cut operation does not happen at all */
    BE_TEAR_PREFIX = 1, /* a prefix of the write lands / a prefix of the sector is erased */
    BE_TEAR_BITS = 2    /* each bit the operation would change changes or not, at random */
} be_tear_t;

/* One run of equal sectors; a geometry is up to 8 runs laid end to end. */
typedef struct be_region {
    uint32_t count;     /* sectors in this run */
    uint32_t size;      /* bytes per sector */
    uint32_t erase_us;  /* time to erase one such sector */
} be_region_t;

typedef struct be_geometry {
    uint32_t n_regions;
    be_region_t region[8];
    uint32_t write_align;       /* 1, 2, 4, 8 or 16 */
    uint32_t page_size;         /* program page, for timing (e.g. 256) */
    uint32_t page_program_us;   /* time to program one page (or part of one) */
    uint32_t ecc;               /* nonzero: ECC flash, each write unit programmed once per erase */
} be_geometry_t;

/* Counters kept with the device's persistent state. */
typedef struct be_flash_stats {
    uint64_t writes;        /* program operations */
    uint64_t erases;        /* sector erases */
    uint64_t bytes_written;
    uint64_t bytes_erased;
    uint64_t reads;
    uint64_t bytes_read;
    uint64_t busy_us;       /* emulated time the flash was busy programming or erasing */
    uint64_t otp_writes;
} be_flash_stats_t;

/* Power-cut injection: lives in RAM only (it is the test's hand on the plug). */
typedef struct be_fault {
    uint32_t cut_at;    /* 0: never; N: power dies at the N-th write or erase from arming */
    uint32_t tear;      /* be_tear_t applied to the N-th operation */
    uint32_t seed;      /* drives how much of a torn operation lands */
    uint32_t ops;       /* write/erase operations seen since arming */
    uint32_t dead;      /* 1 once the cut happened: every later operation fails */
} be_fault_t;

/* Declared here for its size (the host allocates it); hosts read its counters
 * and injector only through be_flash_get_stats and be_flash_fault_status. */
typedef struct be_flash {
    uint8_t *mem;
    uint32_t size;
    be_geometry_t geo;
    uint32_t n_sectors;
    uint32_t *erase_counts;     /* one per sector, caller-owned (persistent) */
    be_flash_stats_t *stats;    /* caller-owned (persistent) */
    uint8_t *otp;               /* one-time-programmable area: bits clear, never erase */
    uint32_t otp_size;
    be_fault_t fault;
} be_flash_t;

int32_t be_flash_init(be_flash_t *f, uint8_t *mem, uint32_t size, const be_geometry_t *geo,
                      uint32_t *erase_counts, uint32_t n_counts, be_flash_stats_t *stats,
                      uint8_t *otp, uint32_t otp_size);
/* Fills index/start/size of the sector holding addr (any may be NULL). */
int32_t be_flash_sector(const be_flash_t *f, uint32_t addr, uint32_t *index, uint32_t *start,
                        uint32_t *size);
int32_t be_flash_read(be_flash_t *f, uint32_t addr, uint8_t *buf, uint32_t len);
int32_t be_flash_write(be_flash_t *f, uint32_t addr, const uint8_t *buf, uint32_t len);
int32_t be_flash_erase(be_flash_t *f, uint32_t sector_addr);
/* 1 if every byte of the range reads erased, 0 if not, or a negative error. */
int32_t be_flash_is_erased(be_flash_t *f, uint32_t addr, uint32_t len);
int32_t be_flash_otp_read(be_flash_t *f, uint32_t off, uint8_t *buf, uint32_t len);
int32_t be_flash_otp_write(be_flash_t *f, uint32_t off, const uint8_t *buf, uint32_t len);
/* Cut power at the n-th write or erase from now (n >= 1); n = 0 disarms. */
void be_flash_arm_cut(be_flash_t *f, uint32_t n, uint32_t tear, uint32_t seed);
/* Copies of the lifetime counters and of the power-cut injector's state, so a
 * host needs no knowledge of where be_flash_t keeps them. */
int32_t be_flash_get_stats(const be_flash_t *f, be_flash_stats_t *out);
int32_t be_flash_fault_status(const be_flash_t *f, be_fault_t *out);

/* ------------------------------------------------------- host crypto (HAL) */

typedef enum be_sig_format {
    BE_SIG_DER = 0,     /* ASN.1 DER ECDSA-Sig-Value (MCUboot TLV) */
    BE_SIG_RAW = 1      /* r || s, 32 bytes each, big-endian (GBCS) */
} be_sig_format_t;

/* The host verifies ECDSA P-256 over a SHA-256 digest the core computed.
 * key: DER SubjectPublicKeyInfo. Returns BE_OK, BE_ERR_IMG_SIG or BE_ERR_CRYPTO. */
typedef int32_t (*be_ecdsa_verify_fn)(void *user, const uint8_t *key, uint32_t key_len,
                                      const uint8_t *digest, const uint8_t *sig,
                                      uint32_t sig_len, uint32_t sig_format);

typedef struct be_crypto {
    be_ecdsa_verify_fn ecdsa_p256_verify;
    void *user;
} be_crypto_t;

/* ------------------------------------------------------ image validation */

/* The OTP anti-rollback counter holds values 0..BE_OTP_COUNTER_MAX; an image
 * whose security counter is above it could never be confirmed, so it is refused. */
enum { BE_OTP_COUNTER_MAX = 2048 };

typedef struct be_trust {
    be_crypto_t crypto;
    uint32_t n_keys;
    uint8_t key[4][128];        /* provisioned public keys, DER SubjectPublicKeyInfo */
    uint32_t key_len[4];
    uint8_t key_hash[4][32];    /* SHA-256 of each key, as in the KEYHASH TLV */
    uint32_t min_security_counter;
} be_trust_t;

typedef struct be_image_info {
    uint32_t load_addr;
    uint32_t hdr_size;
    uint32_t img_size;
    uint32_t protect_tlv_size;
    uint32_t tlv_size;          /* unprotected TLV area including its 4-byte info */
    uint32_t total_size;        /* header + payload + both TLV areas */
    uint32_t flags;
    uint8_t ver_major;
    uint8_t ver_minor;
    uint16_t ver_revision;
    uint32_t ver_build;
    uint32_t security_counter;  /* 0 when the image carries none */
    uint32_t has_security_counter;
    uint32_t key_index;         /* which provisioned key verified it */
    uint8_t hash[32];
} be_image_info_t;

/* Validate the MCUboot-format image at addr (slot_size bytes available there),
 * reading it only through the flash model. info may be NULL; on a failure
 * after the header was read it still holds the header fields. */
int32_t be_image_validate(be_flash_t *f, uint32_t addr, uint32_t slot_size,
                          const be_trust_t *trust, be_image_info_t *info);
/* <0, 0, >0 like memcmp, over major, minor, revision, build. */
int32_t be_image_version_cmp(const be_image_info_t *a, const be_image_info_t *b);

/* -------------------------------------------------------------- OTP fuses */

/* The security counter: count of leading cleared bits in a 256-byte bitmap. */
int32_t be_otp_counter(be_flash_t *f, uint32_t *value);
/* Raise to at least value (never lowers). One OTP write. */
int32_t be_otp_raise(be_flash_t *f, uint32_t value);
/* Provision a public key (DER) into the next free key slot. */
int32_t be_otp_add_key(be_flash_t *f, const uint8_t *der, uint32_t der_len);
/* Fill trust keys and counter from OTP (crypto left as given). */
int32_t be_otp_load_trust(be_flash_t *f, be_trust_t *trust);

/* ----------------------------------------------------- slots and booting */

typedef enum be_mode {
    BE_MODE_COPY_SWAP = 1,  /* one executable slot; the new image is swapped in, the old kept */
    BE_MODE_BANK_SWITCH = 2 /* two bootable banks chosen by the state record: no copy */
} be_mode_t;

typedef enum be_state {
    BE_ST_NONE = 0,         /* no valid record: factory-fresh */
    BE_ST_CONFIRMED = 1,    /* running image is confirmed; nothing pending */
    BE_ST_DOWNLOADING = 2,  /* download slot erased and being written */
    BE_ST_PENDING = 3,      /* downloaded image waits for the next boot */
    BE_ST_SWAPPING = 4,     /* copy-swap: installing (resumable) */
    BE_ST_TRIAL = 5,        /* new image boots unconfirmed */
    BE_ST_REVERTING = 6     /* copy-swap: restoring the previous image (resumable) */
} be_state_t;

typedef enum be_flags {
    BE_F_PERMANENT = 1      /* pending image is installed without a trial */
} be_flags_t;

typedef enum be_options {
    BE_OPT_ALLOW_DOWNGRADE = 1  /* accept a lower version (security counter still applies) */
} be_options_t;

typedef struct be_layout {
    uint32_t mode;              /* be_mode_t */
    uint32_t log_addr[2];       /* two sectors holding the state log */
    uint32_t plan_addr;         /* copy-swap: whole sectors for swap plans */
    uint32_t plan_size;
    uint32_t slot_addr[2];      /* copy-swap: primary, secondary; bank-switch: bank A, B */
    uint32_t slot_size[2];
    uint32_t max_attempts;      /* unconfirmed boots before revert (0 means 1) */
    uint32_t options;           /* be_options_t */
} be_layout_t;

/* The latest committed state record, decoded. */
typedef struct be_record {
    uint32_t seq;
    uint32_t state;     /* be_state_t */
    uint32_t flags;     /* be_flags_t */
    uint32_t bank;      /* bank-switch: bank of the confirmed image */
    uint32_t attempts;  /* trial boots started */
    uint32_t size;      /* download: blob size; plan: entry length */
    uint32_t offset;    /* download: offset of the image in the blob; plan: entry offset */
    uint32_t check;     /* plan: first word of the plan entry's checksum */
} be_record_t;

typedef enum be_action {
    BE_ACT_INSTALLED = 1,   /* a pending image was installed (swapped in or selected) */
    BE_ACT_RESUMED = 2,     /* interrupted work was finished */
    BE_ACT_REVERTED = 4,    /* an unconfirmed image was rolled back */
    BE_ACT_REFUSED = 8,     /* a pending image failed validation and was dropped */
    BE_ACT_COUNTER = 16,    /* the OTP security counter was raised */
    BE_ACT_RESCUED = 32     /* the state could not be acted on (corrupt or contradictory):
                             * the best valid image was booted and committed as confirmed */
} be_action_t;

typedef struct be_boot_result {
    uint32_t actions;       /* be_action_t bits */
    int32_t refused_err;    /* why a pending image was refused */
    uint32_t slot;          /* slot index the running image executes from */
    uint32_t confirmed;     /* 1 if the running image is confirmed */
    uint64_t busy_us;       /* flash-busy time spent in this boot */
    be_image_info_t image;  /* the running image */
} be_boot_result_t;

/* Declared here for its size (the host allocates it); its fields are the
 * core's own, and hosts read them only through be_device_status. */
typedef struct be_device {
    be_flash_t *flash;
    be_layout_t layout;
    be_trust_t trust;
    uint32_t unit;              /* copy-swap: swap unit (largest sector of the slots) */
    uint32_t image_off[2];      /* where the bootable image starts in each slot */
    be_record_t rec;            /* latest committed state record (seq 0: none) */
    uint32_t rec_sector;        /* 0 or 1: sector holding rec */
    uint64_t origin;            /* originator counter last accepted (0: none) */
    uint32_t origin_seq;        /* seq of its log record (0: none) */
    uint32_t origin_sector;     /* 0 or 1: sector holding that record */
    uint32_t log_sector;        /* 0 or 1: sector holding the newest record: appends go there */
    uint32_t log_next;          /* offset of the next free record slot in it */
    uint32_t log_full;          /* 1 if that sector has no free slot */
    uint32_t running;           /* 1 + slot index of the booted image, 0 before boot */
    be_image_info_t run_info;
    /* ECC flash: the download's unit not yet complete (RAM only: lost with power) */
    uint8_t tail[16];
    uint32_t tail_addr;         /* flash address of that unit */
    uint32_t tail_fill;         /* bytes of it known, from its start (0: none waiting) */
    /* be_dl_prepare: bytes from the save area's start known to read erased
     * (RAM only: lost with power, and then checked again) */
    uint32_t prep_done;
} be_device_t;

/* Reads the state log; no flash writes. crypto may be NULL for a device that
 * will never boot an image (inspection). */
int32_t be_device_open(be_device_t *d, be_flash_t *f, const be_layout_t *layout,
                       const be_crypto_t *crypto);
/* The bootloader: resume, install, revert or refuse as the state says, then
 * select the image to run. BE_ERR_NO_IMAGE if none can run. */
int32_t be_boot(be_device_t *d, be_boot_result_t *result);
/* The running firmware declares itself good. Idempotent. */
int32_t be_confirm(be_device_t *d);
/* Start a download of blob_size bytes whose bootable image begins at
 * image_offset within the blob (0 for a bare image). Erases the target. */
int32_t be_dl_begin(be_device_t *d, uint32_t blob_size, uint32_t image_offset);
/* Write blob bytes at any offset; rewriting identical bytes is harmless. */
int32_t be_dl_write(be_device_t *d, uint32_t offset, const uint8_t *data, uint32_t len);
/* Read back blob bytes from the download slot. */
int32_t be_dl_read(be_device_t *d, uint32_t offset, uint8_t *data, uint32_t len);
/* Where an in-order download may safely continue after a power cut (a query:
 * no flash writes). ECC flash: the start of the sector of the last programmed
 * byte, since a unit a cut tore cannot be programmed again before an erase. */
int32_t be_dl_resume_offset(be_device_t *d, uint32_t *offset);
/* Continue a download after a power cut: *offset as be_dl_resume_offset, and
 * on ECC flash that sector erased (from there on) so its units can be programmed. */
int32_t be_dl_resume(be_device_t *d, uint32_t *offset);
/* Flash address of blob byte 0 in the download slot. */
int32_t be_dl_addr(const be_device_t *d, uint32_t *addr);
/* Validate the downloaded image and ask the next boot to install it. */
int32_t be_mark_pending(be_device_t *d, uint32_t permanent, be_image_info_t *info);
/* While a download is held (downloading or pending) and an image runs: erase
 * up to max_erases sectors (0: only look) of the area the boot that installs
 * the download will save the running image into, so that this boot has fewer
 * erases to do. Copy-swap only, and only when the download slot has room for
 * the whole running image past the blob; for bank-switch there is no such
 * area. *left = 1 while part of the area does not read erased. It only ever
 * saves work: the boot checks every sector reads erased before it uses it,
 * and erases it if not. */
int32_t be_dl_prepare(be_device_t *d, uint32_t max_erases, uint32_t *left);
/* Drop a download or pending image. */
int32_t be_dl_discard(be_device_t *d);
/* Validate the image in a slot as the bootloader would (inspection only). */
int32_t be_slot_validate(be_device_t *d, uint32_t slot, be_image_info_t *info);

/* What a host may know of a device: a copy, so be_device_t stays private. */
typedef struct be_device_status {
    be_record_t rec;            /* latest committed state record */
    uint32_t running;           /* 1 if be_boot selected an image that now runs */
    uint32_t running_slot;      /* its slot index (0 when not running) */
    be_image_info_t run_info;   /* the running image (all zero when not running) */
    uint32_t slot_addr[2];      /* flash address of each slot */
    uint32_t slot_size[2];
    uint32_t image_addr[2];     /* where the bootable image starts in each slot */
    uint32_t log_addr[2];       /* the two state-log sectors */
    uint32_t n_keys;            /* public keys provisioned in OTP, as read at open */
    uint32_t min_security_counter;  /* the OTP anti-rollback counter, as last read */
    uint64_t origin_counter;    /* the originator counter last accepted (0: none) */
} be_device_status_t;

int32_t be_device_status(const be_device_t *d, be_device_status_t *out);

/* ------------------------------------------------------ originator counter */

/* Commands that change firmware state (GBCS CS06) carry the authorising
 * party's originator counter; the device accepts each only once, in rising
 * order, across power cuts. The counter lives in the state log. */

/* The counter of the last command accepted (0 when none has been). */
int32_t be_origin_counter(const be_device_t *d, uint64_t *value);
/* Accept a command's counter: BE_ERR_STALE unless it is above the last one.
 * Committed to flash before BE_OK; a power cut inside: not accepted, and the
 * command is not acted on. */
int32_t be_origin_accept(be_device_t *d, uint64_t value);

/* ------------------------------------------------------ AES-128, AES-MMO */

/* AES-128 (FIPS-197), encryption only: the expanded key, 11 round keys. */
typedef struct be_aes128 {
    uint8_t rk[176];
} be_aes128_t;

void be_aes128_init(be_aes128_t *ctx, const uint8_t key[16]);
void be_aes128_encrypt(const be_aes128_t *ctx, const uint8_t in[16], uint8_t out[16]);

/* ZigBee AES-MMO hash (Matyas-Meyer-Oseas over AES-128, ZigBee spec B.6),
 * streaming. Messages of 2^32 bits (512 MiB) or more have no padding:
 * be_mmo_final then returns BE_ERR_RANGE (out is zeroed). */
typedef struct be_mmo {
    uint8_t h[16];
    uint8_t buf[16];
    uint32_t buf_len;
    uint64_t total;     /* bytes hashed so far */
} be_mmo_t;

void be_mmo_init(be_mmo_t *ctx);
void be_mmo_update(be_mmo_t *ctx, const uint8_t *data, size_t len);
int32_t be_mmo_final(be_mmo_t *ctx, uint8_t out[16]);
int32_t be_mmo(const uint8_t *data, size_t len, uint8_t out[16]);

/* ------------------------------------------------ ZigBee OTA file checks */

typedef enum be_ota_body {
    BE_OTA_BODY_GBCS = 1,       /* Manufacturer Image || force_replace || 0x40 || r||s (GBCS 11.2) */
    BE_OTA_BODY_GENERIC = 2     /* ZCL sub-elements: tag u16, length u32, data */
} be_ota_body_t;

typedef enum be_ota_integrity {
    BE_OTA_MMO_NONE = 0,        /* no tag 0x0003 in the file */
    BE_OTA_MMO_STANDARD = 1,    /* AES-MMO of every byte before the sub-element */
    BE_OTA_MMO_WITH_TAG = 2     /* vendor variant: ... and its 6-byte tag header too */
} be_ota_integrity_t;

/* What the device is: a file for anything else is refused. */
typedef struct be_ota_expect {
    uint16_t manufacturer;
    uint16_t image_type;
    uint16_t hw_version;        /* checked against the file's range, if it has one */
    uint16_t reserved;
    uint32_t body;              /* be_ota_body_t */
} be_ota_expect_t;

/* What the file holds. Offsets are from the start of the file. */
typedef struct be_ota_info {
    uint16_t header_version;
    uint16_t header_length;
    uint16_t field_control;     /* 1: credential version, 2: destination, 4: hw range */
    uint16_t manufacturer;
    uint16_t image_type;
    uint16_t stack_version;
    uint32_t file_version;
    uint32_t total_image_size;
    uint8_t header_string[32];
    uint8_t security_credential_version;    /* if field_control & 1 */
    uint8_t destination[8];     /* upgrade file destination EUI64 as stored, if field_control & 2 */
    uint16_t hw_min;            /* if field_control & 4 */
    uint16_t hw_max;
    uint32_t body;              /* be_ota_body_t checked */
    uint32_t image_off;         /* GBCS: manufacturer image; generic: first tag 0x0000's data */
    uint32_t image_len;
    uint32_t force_replace;     /* GBCS */
    uint32_t n_elements;        /* generic: sub-elements walked */
    uint32_t sig_checked;       /* 1: the supplier signature verified */
    uint32_t integrity;         /* be_ota_integrity_t that matched */
    uint32_t integrity_off;     /* offset of the tag 0x0003 sub-element header */
    uint8_t image_hash[32];     /* GBCS: SHA-256 of the manufacturer image (alert 0x8F72) */
    uint8_t mmo[16];            /* AES-MMO computed (the variant that matched, else standard) */
} be_ota_info_t;

/* Verify the downloaded OTA file at [addr, addr + len) of the flash, reading
 * it only through be_flash_read and never outside that range. GBCS bodies
 * need crypto and the supplier's public key (DER SubjectPublicKeyInfo);
 * generic bodies use neither (both may be NULL). info may be NULL; on a
 * failure it holds what was read before it. */
int32_t be_ota_verify(be_flash_t *f, uint32_t addr, uint32_t len, const be_ota_expect_t *expect,
                      const be_crypto_t *crypto, const uint8_t *supplier_key,
                      uint32_t supplier_key_len, be_ota_info_t *info);

#endif
