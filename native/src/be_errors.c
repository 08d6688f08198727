/* Names and sentences for the core's error codes (read-only tables). */
#include "be_priv.h"

typedef struct {
    int32_t code;
    const char *name;
    const char *text;
} be_err_entry_t;

static const be_err_entry_t ERRORS[] = {
    {BE_OK, "BE_OK", "success"},
    {BE_ERR_POWER_CUT, "BE_ERR_POWER_CUT", "power was cut during a flash operation"},
    {BE_ERR_ALIGN, "BE_ERR_ALIGN", "write address or length is not a multiple of the write alignment"},
    {BE_ERR_RANGE, "BE_ERR_RANGE", "address range lies outside the flash, OTP area or slot"},
    {BE_ERR_GEOMETRY, "BE_ERR_GEOMETRY", "flash geometry or slot layout is inconsistent"},
    {BE_ERR_ARG, "BE_ERR_ARG", "invalid argument"},
    {BE_ERR_NOT_SECTOR, "BE_ERR_NOT_SECTOR", "erase address is not the start of a sector"},
    {BE_ERR_ECC, "BE_ERR_ECC", "ECC flash: a write unit is programmed again before its sector is erased"},
    {BE_ERR_STATE, "BE_ERR_STATE", "operation not allowed in the device's current state"},
    {BE_ERR_MISMATCH, "BE_ERR_MISMATCH", "download data differs from what is already written at that offset"},
    {BE_ERR_NO_IMAGE, "BE_ERR_NO_IMAGE", "no bootable image: the device stays in its bootloader"},
    {BE_ERR_CORRUPT, "BE_ERR_CORRUPT", "stored data contradicts the committed state record"},
    {BE_ERR_PLAN, "BE_ERR_PLAN", "the swap plan does not fit in the plan area"},
    {BE_ERR_OTP_FULL, "BE_ERR_OTP_FULL", "OTP area exhausted (no free key slot or counter at its maximum)"},
    {BE_ERR_STALE, "BE_ERR_STALE", "originator counter not above the last one accepted (a replayed or old command)"},
    {BE_ERR_IMG_MAGIC, "BE_ERR_IMG_MAGIC", "image header magic is not 0x96f3b83d"},
    {BE_ERR_IMG_HEADER, "BE_ERR_IMG_HEADER", "image header fields are impossible"},
    {BE_ERR_IMG_TOO_BIG, "BE_ERR_IMG_TOO_BIG", "image (header, payload and TLVs) is larger than its slot"},
    {BE_ERR_IMG_TLV_MAGIC, "BE_ERR_IMG_TLV_MAGIC", "TLV area does not start with its magic"},
    {BE_ERR_IMG_TLV_TRUNCATED, "BE_ERR_IMG_TLV_TRUNCATED", "TLV entry runs past the end of its area or the slot"},
    {BE_ERR_IMG_TLV_OVERLAP, "BE_ERR_IMG_TLV_OVERLAP", "TLV areas disagree with the header's protected TLV size"},
    {BE_ERR_IMG_TLV_BAD, "BE_ERR_IMG_TLV_BAD", "TLV has the wrong length or appears more than once"},
    {BE_ERR_IMG_TLV_UNPROTECTED, "BE_ERR_IMG_TLV_UNPROTECTED", "a TLV that must be protected is in the unprotected area"},
    {BE_ERR_IMG_NO_HASH, "BE_ERR_IMG_NO_HASH", "image has no SHA256 TLV"},
    {BE_ERR_IMG_HASH, "BE_ERR_IMG_HASH", "image SHA-256 does not match its SHA256 TLV"},
    {BE_ERR_IMG_NO_SIG, "BE_ERR_IMG_NO_SIG", "image carries no ECDSA signature"},
    {BE_ERR_IMG_NO_KEYHASH, "BE_ERR_IMG_NO_KEYHASH", "signature without a KEYHASH TLV naming its key"},
    {BE_ERR_IMG_KEY_UNKNOWN, "BE_ERR_IMG_KEY_UNKNOWN", "image is signed by a key not provisioned on this device"},
    {BE_ERR_IMG_SIG, "BE_ERR_IMG_SIG", "image signature does not verify"},
    {BE_ERR_IMG_ROLLBACK, "BE_ERR_IMG_ROLLBACK", "image security counter is below the device's OTP counter"},
    {BE_ERR_IMG_DOWNGRADE, "BE_ERR_IMG_DOWNGRADE", "image version is lower than the running image's"},
    {BE_ERR_IMG_UNSUPPORTED, "BE_ERR_IMG_UNSUPPORTED", "image flags ask for a feature this bootloader does not have"},
    {BE_ERR_CRYPTO, "BE_ERR_CRYPTO", "the host crypto backend failed or is missing"},
    {BE_ERR_IMG_COUNTER, "BE_ERR_IMG_COUNTER", "image security counter is beyond what the device's OTP counter can hold"},
    {BE_ERR_OTA_MAGIC, "BE_ERR_OTA_MAGIC", "OTA file does not start with the magic 0x0BEEF11E"},
    {BE_ERR_OTA_HEADER, "BE_ERR_OTA_HEADER", "OTA header fields are impossible (version, header length or hardware version range)"},
    {BE_ERR_OTA_SIZE, "BE_ERR_OTA_SIZE", "OTA file is shorter than its header, or its total image size differs from the downloaded length"},
    {BE_ERR_OTA_MANUFACTURER, "BE_ERR_OTA_MANUFACTURER", "OTA file is for another manufacturer"},
    {BE_ERR_OTA_IMAGE_TYPE, "BE_ERR_OTA_IMAGE_TYPE", "OTA file is for another image type"},
    {BE_ERR_OTA_HW_VERSION, "BE_ERR_OTA_HW_VERSION", "device hardware version is outside the OTA file's range"},
    {BE_ERR_OTA_BODY, "BE_ERR_OTA_BODY", "OTA file body is malformed (sub-element past the end, bad integrity code element, empty image)"},
    {BE_ERR_OTA_NO_SIG, "BE_ERR_OTA_NO_SIG", "OTA file carries no GBCS supplier signature"},
    {BE_ERR_OTA_SIG, "BE_ERR_OTA_SIG", "supplier signature over the manufacturer image does not verify"},
    {BE_ERR_OTA_INTEGRITY, "BE_ERR_OTA_INTEGRITY", "OTA image integrity code (AES-MMO) does not match"},
};

static const be_err_entry_t *find(int32_t err)
{
    for (size_t i = 0; i < sizeof ERRORS / sizeof ERRORS[0]; i++) {
        if (ERRORS[i].code == err) {
            return &ERRORS[i];
        }
    }
    return NULL;
}

const char *be_err_name(int32_t err)
{
    const be_err_entry_t *e = find(err);
    return e != NULL ? e->name : "BE_ERR_UNKNOWN";
}

const char *be_err_text(int32_t err)
{
    const be_err_entry_t *e = find(err);
    return e != NULL ? e->text : "unknown error code";
}
