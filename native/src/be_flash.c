/*
 * NOR flash model over caller-owned memory.
 *
 * Program is a bitwise AND (bits only clear), erase sets a whole sector to
 * 0xFF. On ECC flash (geo.ecc) each write unit carries an error-correcting
 * code computed when it is programmed, so a unit can be programmed once per
 * erase: a program touching a unit that is not erased (not all 0xFF) is
 * refused with BE_ERR_ECC and changes nothing. Every write and erase is an "operation" that the fault injector can
 * cut: not at all (the op never starts), or torn (part of it lands). After a
 * cut the model is dead, as a powered-off chip is, until it is re-initialised.
 */
#include <string.h>

#include "be_priv.h"

enum { MAX_REGIONS = 8 };

_Static_assert(MAX_REGIONS == BE_ARRAY_LEN(be_geometry_t, region), "be_geometry_t.region[8]");
/* bridge_emu/core/flash.py keeps the counters at a fixed place in the device
 * file and reserves STATS_SIZE = 64 bytes for them: 8 x u64 */
_Static_assert(sizeof(be_flash_stats_t) == 64, "be_flash_stats_t is 8 x u64");

static int valid_align(uint32_t a)
{
    return a == 1 || a == 2 || a == 4 || a == 8 || a == 16;
}

int32_t be_flash_init(be_flash_t *f, uint8_t *mem, uint32_t size, const be_geometry_t *geo,
                      uint32_t *erase_counts, uint32_t n_counts, be_flash_stats_t *stats,
                      uint8_t *otp, uint32_t otp_size)
{
    if (f == NULL || mem == NULL || geo == NULL || erase_counts == NULL || stats == NULL ||
        (otp_size != 0 && otp == NULL)) {
        return BE_ERR_ARG;
    }
    if (geo->n_regions == 0 || geo->n_regions > MAX_REGIONS || !valid_align(geo->write_align) ||
        geo->page_size == 0 || otp_size % geo->write_align != 0) {
        return BE_ERR_GEOMETRY;
    }
    uint64_t total = 0;
    uint32_t sectors = 0;
    for (uint32_t i = 0; i < geo->n_regions; i++) {
        const be_region_t *r = &geo->region[i];
        if (r->count == 0 || r->size == 0 || r->size % geo->write_align != 0) {
            return BE_ERR_GEOMETRY;
        }
        total += (uint64_t)r->count * r->size;
        sectors += r->count;
    }
    if (total != size) {
        return BE_ERR_GEOMETRY;
    }
    if (n_counts < sectors) {
        return BE_ERR_ARG;
    }
    memset(f, 0, sizeof *f);
    f->mem = mem;
    f->size = size;
    f->geo = *geo;
    f->n_sectors = sectors;
    f->erase_counts = erase_counts;
    f->stats = stats;
    f->otp = otp;
    f->otp_size = otp_size;
    return BE_OK;
}

int32_t be_flash_sector(const be_flash_t *f, uint32_t addr, uint32_t *index, uint32_t *start,
                        uint32_t *size)
{
    if (f == NULL) {
        return BE_ERR_ARG;
    }
    uint32_t base = 0, idx = 0;
    for (uint32_t i = 0; i < f->geo.n_regions; i++) {
        const be_region_t *r = &f->geo.region[i];
        uint64_t span = (uint64_t)r->count * r->size;
        if (addr < base + span) {
            uint32_t k = (addr - base) / r->size;
            if (index != NULL) {
                *index = idx + k;
            }
            if (start != NULL) {
                *start = base + k * r->size;
            }
            if (size != NULL) {
                *size = r->size;
            }
            return BE_OK;
        }
        base += (uint32_t)span;
        idx += r->count;
    }
    return BE_ERR_RANGE;
}

static int in_range(uint32_t addr, uint32_t len, uint32_t size)
{
    return (uint64_t)addr + len <= size;
}

/* xorshift32: the tear pattern is a pure function of the seed. */
static uint32_t next_rand(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

/* Count one write/erase; returns the tear to apply (BE_TEAR_* + 1) if this op
 * is the one the cut falls on, 0 if it proceeds normally. */
static uint32_t fault_step(be_flash_t *f)
{
    be_fault_t *ft = &f->fault;
    ft->ops++;
    if (ft->cut_at != 0 && ft->ops == ft->cut_at) {
        ft->dead = 1;
        return ft->tear + 1;
    }
    return 0;
}

/* Program buf into dst (AND); torn: only part of the change lands. */
static void program(uint8_t *dst, const uint8_t *buf, uint32_t len, uint32_t tear, uint32_t seed)
{
    if (tear == BE_TEAR_PREFIX + 1) {
        len = len != 0 ? seed % len : 0;
    }
    if (tear == BE_TEAR_BITS + 1) {
        uint32_t s = seed | 1u;
        for (uint32_t i = 0; i < len; i++) {
            uint8_t lands = (uint8_t)next_rand(&s);
            dst[i] &= (uint8_t)(buf[i] | (uint8_t)~lands);
        }
        return;
    }
    for (uint32_t i = 0; i < len; i++) {
        dst[i] &= buf[i];
    }
}

static uint32_t pages_touched(const be_flash_t *f, uint32_t addr, uint32_t len)
{
    uint32_t p = f->geo.page_size;
    return (uint32_t)(((uint64_t)addr + len + p - 1) / p - addr / p);
}

int32_t be_flash_read(be_flash_t *f, uint32_t addr, uint8_t *buf, uint32_t len)
{
    if (f == NULL || (buf == NULL && len != 0)) {
        return BE_ERR_ARG;
    }
    if (f->fault.dead != 0) {
        return BE_ERR_POWER_CUT;
    }
    if (!in_range(addr, len, f->size)) {
        return BE_ERR_RANGE;
    }
    if (len != 0) {
        memcpy(buf, f->mem + addr, len);
    }
    f->stats->reads++;
    f->stats->bytes_read += len;
    return BE_OK;
}

/* The program path of the array and of the OTP area alike: checks, the fault
 * injector, AND-programming, counters and timing. A torn write is counted: it
 * did reach the chip. */
static int32_t program_area(be_flash_t *f, uint8_t *area, uint32_t area_size, uint32_t off,
                            const uint8_t *buf, uint32_t len, uint64_t *ops, uint64_t *bytes)
{
    if (buf == NULL && len != 0) {
        return BE_ERR_ARG;
    }
    if (f->fault.dead != 0) {
        return BE_ERR_POWER_CUT;
    }
    if (!in_range(off, len, area_size)) {
        return BE_ERR_RANGE;
    }
    if (off % f->geo.write_align != 0 || len % f->geo.write_align != 0) {
        return BE_ERR_ALIGN;
    }
    if (len == 0) {
        return BE_OK;
    }
    if (f->geo.ecc != 0 && area == f->mem) {
        for (uint32_t i = 0; i < len; i++) {
            if (area[off + i] != 0xFF) {
                return BE_ERR_ECC;
            }
        }
    }
    uint32_t tear = fault_step(f);
    if (tear == BE_TEAR_NONE + 1) {
        return BE_ERR_POWER_CUT;
    }
    program(area + off, buf, len, tear, f->fault.seed);
    (*ops)++;
    if (bytes != NULL) {
        *bytes += len;
    }
    f->stats->busy_us += (uint64_t)pages_touched(f, off, len) * f->geo.page_program_us;
    return tear != 0 ? BE_ERR_POWER_CUT : BE_OK;
}

int32_t be_flash_write(be_flash_t *f, uint32_t addr, const uint8_t *buf, uint32_t len)
{
    if (f == NULL) {
        return BE_ERR_ARG;
    }
    return program_area(f, f->mem, f->size, addr, buf, len, &f->stats->writes, &f->stats->bytes_written);
}

int32_t be_flash_erase(be_flash_t *f, uint32_t sector_addr)
{
    uint32_t idx, start, size;
    if (f == NULL) {
        return BE_ERR_ARG;
    }
    if (f->fault.dead != 0) {
        return BE_ERR_POWER_CUT;
    }
    int32_t rc = be_flash_sector(f, sector_addr, &idx, &start, &size);
    if (rc != BE_OK) {
        return rc;
    }
    if (start != sector_addr) {
        return BE_ERR_NOT_SECTOR;
    }
    uint32_t tear = fault_step(f);
    if (tear == BE_TEAR_NONE + 1) {
        return BE_ERR_POWER_CUT;
    }
    uint8_t *p = f->mem + start;
    if (tear == BE_TEAR_PREFIX + 1) {
        memset(p, 0xFF, f->fault.seed % size);
    } else if (tear == BE_TEAR_BITS + 1) {
        uint32_t s = f->fault.seed | 1u;
        for (uint32_t i = 0; i < size; i++) {
            p[i] |= (uint8_t)next_rand(&s);
        }
    } else {
        memset(p, 0xFF, size);
    }
    f->erase_counts[idx]++;
    f->stats->erases++;
    f->stats->bytes_erased += size;
    /* erase time of the region this sector belongs to */
    uint32_t base = 0;
    for (uint32_t i = 0; i < f->geo.n_regions; i++) {
        base += f->geo.region[i].count * f->geo.region[i].size;
        if (start < base) {
            f->stats->busy_us += f->geo.region[i].erase_us;
            break;
        }
    }
    return tear != 0 ? BE_ERR_POWER_CUT : BE_OK;
}

int32_t be_flash_is_erased(be_flash_t *f, uint32_t addr, uint32_t len)
{
    if (f == NULL) {
        return BE_ERR_ARG;
    }
    if (f->fault.dead != 0) {
        return BE_ERR_POWER_CUT;
    }
    if (!in_range(addr, len, f->size)) {
        return BE_ERR_RANGE;
    }
    f->stats->reads++;
    f->stats->bytes_read += len;
    const uint8_t *p = f->mem + addr;
    for (uint32_t i = 0; i < len; i++) {
        if (p[i] != 0xFF) {
            return 0;
        }
    }
    return 1;
}

int32_t be_flash_otp_read(be_flash_t *f, uint32_t off, uint8_t *buf, uint32_t len)
{
    if (f == NULL || (buf == NULL && len != 0)) {
        return BE_ERR_ARG;
    }
    if (f->fault.dead != 0) {
        return BE_ERR_POWER_CUT;
    }
    if (!in_range(off, len, f->otp_size)) {
        return BE_ERR_RANGE;
    }
    if (len != 0) {
        memcpy(buf, f->otp + off, len);
    }
    return BE_OK;
}

/* OTP programs like flash (AND) but has no erase: bits once cleared stay so. */
int32_t be_flash_otp_write(be_flash_t *f, uint32_t off, const uint8_t *buf, uint32_t len)
{
    if (f == NULL) {
        return BE_ERR_ARG;
    }
    return program_area(f, f->otp, f->otp_size, off, buf, len, &f->stats->otp_writes, NULL);
}

void be_flash_arm_cut(be_flash_t *f, uint32_t n, uint32_t tear, uint32_t seed)
{
    if (f == NULL) {
        return;
    }
    f->fault.cut_at = n;
    f->fault.tear = tear <= BE_TEAR_BITS ? tear : BE_TEAR_NONE;
    f->fault.seed = seed;
    f->fault.ops = 0;
    f->fault.dead = 0;
}

int32_t be_flash_get_stats(const be_flash_t *f, be_flash_stats_t *out)
{
    if (f == NULL || f->stats == NULL || out == NULL) {
        return BE_ERR_ARG;
    }
    *out = *f->stats;
    return BE_OK;
}

int32_t be_flash_fault_status(const be_flash_t *f, be_fault_t *out)
{
    if (f == NULL || out == NULL) {
        return BE_ERR_ARG;
    }
    *out = f->fault;
    return BE_OK;
}
