/* The TLV iterator: one header read per entry, every bound checked first. */
#include "be_bytes_priv.h"
#include "be_tlv_priv.h"

enum { TYPE_SIZE = 2, MAX_HDR = TYPE_SIZE + 4 };

int32_t be_tlv_begin(be_tlv_iter_t *it, be_flash_t *f, uint32_t base, uint64_t start,
                     uint64_t end, uint32_t len_size, int32_t truncated)
{
    if (it == NULL || f == NULL || (len_size != 2 && len_size != 4) || start > end) {
        return BE_ERR_ARG;
    }
    it->f = f;
    it->base = base;
    it->off = start;
    it->end = end;
    it->len_size = len_size;
    it->truncated = truncated;
    return BE_OK;
}

int32_t be_tlv_next(be_tlv_iter_t *it, be_tlv_t *t)
{
    uint8_t hdr[MAX_HDR];
    const uint32_t hdr_size = TYPE_SIZE + it->len_size;

    if (it->off >= it->end) {
        return 0;
    }
    if (it->end - it->off < hdr_size) {
        return it->truncated;
    }
    /* off < end, and the caller bounded end: the sum fits the flash */
    int32_t rc = be_flash_read(it->f, it->base + (uint32_t)it->off, hdr, hdr_size);
    if (rc != BE_OK) {
        return rc;
    }
    t->type = be_get_le16(hdr);
    t->len = it->len_size == 2 ? be_get_le16(hdr + TYPE_SIZE) : be_get_le32(hdr + TYPE_SIZE);
    t->off = it->off;
    t->data = it->off + hdr_size;
    if ((uint64_t)t->len > it->end - t->data) {
        return it->truncated;
    }
    it->off = t->data + t->len;
    return 1;
}
