/*
 * SHA-256 (FIPS 180-4) for the core.
 *
 * Two block functions: plain C, and one using the x86 SHA extensions
 * (SHA256RNDS2 / SHA256MSG1 / SHA256MSG2). The choice is made by cpuid in
 * be_sha256_init and kept in the context: there is no global state, so the
 * file is safe to use from any number of contexts and threads.
 *
 * Both block functions take a run of whole 64-byte blocks, so a long update
 * costs one call, not one per block.
 */
#include <string.h>

#include "be_bytes_priv.h"
#include "be_priv.h"

#if defined(__x86_64__) || defined(__i386__)
#define BE_SHA_HAVE_X86 1
#include <cpuid.h>
#include <immintrin.h>
#else
#define BE_SHA_HAVE_X86 0
#endif

/* FIPS 180-4 section 4.2.2: first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. Aligned so the x86 path can load 4 at once. */
static _Alignas(16) const uint32_t be_sha256_k[64] = {
    0x428a2f98u, 0x71374491u, 0xb5c0fbcfu, 0xe9b5dba5u, 0x3956c25bu, 0x59f111f1u, 0x923f82a4u, 0xab1c5ed5u,
    0xd807aa98u, 0x12835b01u, 0x243185beu, 0x550c7dc3u, 0x72be5d74u, 0x80deb1feu, 0x9bdc06a7u, 0xc19bf174u,
    0xe49b69c1u, 0xefbe4786u, 0x0fc19dc6u, 0x240ca1ccu, 0x2de92c6fu, 0x4a7484aau, 0x5cb0a9dcu, 0x76f988dau,
    0x983e5152u, 0xa831c66du, 0xb00327c8u, 0xbf597fc7u, 0xc6e00bf3u, 0xd5a79147u, 0x06ca6351u, 0x14292967u,
    0x27b70a85u, 0x2e1b2138u, 0x4d2c6dfcu, 0x53380d13u, 0x650a7354u, 0x766a0abbu, 0x81c2c92eu, 0x92722c85u,
    0xa2bfe8a1u, 0xa81a664bu, 0xc24b8b70u, 0xc76c51a3u, 0xd192e819u, 0xd6990624u, 0xf40e3585u, 0x106aa070u,
    0x19a4c116u, 0x1e376c08u, 0x2748774cu, 0x34b0bcb5u, 0x391c0cb3u, 0x4ed8aa4au, 0x5b9cca4fu, 0x682e6ff3u,
    0x748f82eeu, 0x78a5636fu, 0x84c87814u, 0x8cc70208u, 0x90befffau, 0xa4506cebu, 0xbef9a3f7u, 0xc67178f2u,
};

/* be_sha256_t is sized for these in be.h. */
_Static_assert(BE_ARRAY_LEN(be_sha256_t, h) == 8, "be_sha256_t.h[8]: the eight working words");
_Static_assert(sizeof(((be_sha256_t *)0)->buf) == 64, "be_sha256_t.buf[64]: one block");

/* FIPS 180-4 section 5.3.3: initial hash value. */
static const uint32_t be_sha256_h0[8] = {
    0x6a09e667u, 0xbb67ae85u, 0x3c6ef372u, 0xa54ff53au,
    0x510e527fu, 0x9b05688cu, 0x1f83d9abu, 0x5be0cd19u,
};

/* ------------------------------------------------------------ portable C */

static inline uint32_t rotr32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32u - n));
}

/* Functions of section 4.1.2. */
#define CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x) (rotr32((x), 2) ^ rotr32((x), 13) ^ rotr32((x), 22))
#define BSIG1(x) (rotr32((x), 6) ^ rotr32((x), 11) ^ rotr32((x), 25))
#define SSIG0(x) (rotr32((x), 7) ^ rotr32((x), 18) ^ ((x) >> 3))
#define SSIG1(x) (rotr32((x), 17) ^ rotr32((x), 19) ^ ((x) >> 10))

/* Section 6.2.2, over n consecutive 64-byte blocks. The message schedule is
 * kept as a 16-word ring: W[t] lives in w[t mod 16]. */
static void sha256_blocks_portable(uint32_t h[8], const uint8_t *p, size_t n)
{
    while (n-- > 0) {
        uint32_t w[16];
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
        uint32_t e = h[4], f = h[5], g = h[6], hh = h[7];

        for (unsigned t = 0; t < 16; t++) {
            w[t] = be_get_be32(p + 4u * t);
        }
        for (unsigned t = 0; t < 64; t++) {
            uint32_t wt;
            if (t < 16) {
                wt = w[t];
            } else {
                wt = SSIG1(w[(t - 2) & 15]) + w[(t - 7) & 15] + SSIG0(w[(t - 15) & 15]) + w[t & 15];
                w[t & 15] = wt;
            }
            uint32_t t1 = hh + BSIG1(e) + CH(e, f, g) + be_sha256_k[t] + wt;
            uint32_t t2 = BSIG0(a) + MAJ(a, b, c);
            hh = g;
            g = f;
            f = e;
            e = d + t1;
            d = c;
            c = b;
            b = a;
            a = t1 + t2;
        }
        h[0] += a;
        h[1] += b;
        h[2] += c;
        h[3] += d;
        h[4] += e;
        h[5] += f;
        h[6] += g;
        h[7] += hh;
        p += 64;
    }
}

/* ------------------------------------------------------ x86 SHA extensions */

#if BE_SHA_HAVE_X86

/*
 * SHA256RNDS2 keeps the eight working variables in two registers, named by
 * their 32-bit lanes from high to low: ABEF = {A, B, E, F} and
 * CDGH = {C, D, G, H}. _mm_sha256rnds2_epu32(cdgh, abef, wk) runs two rounds
 * with W+K for them in the low two lanes of wk (round t in lane 0) and
 * returns the new ABEF; the new CDGH is the old ABEF. So the two registers
 * swap roles every two rounds, and after four rounds are back in place.
 *
 * Message schedule, four words at a time: with m0..m3 holding
 * W[t-16..t-13], W[t-12..t-9], W[t-8..t-5], W[t-4..t-1],
 *   SHA256MSG1(m0, m1)        = W[t-16+i] + sigma0(W[t-15+i])   (i = 0..3)
 *   + alignr(m3, m2, 4 bytes) = W[t-7..t-4]
 *   SHA256MSG2(that, m3)      adds sigma1(W[t-2+i]), using the two words it
 *                             has just made for lanes 2 and 3.
 */
__attribute__((target("sha,sse4.1,ssse3")))
static void sha256_blocks_shani(uint32_t h[8], const uint8_t *p, size_t n)
{
    /* Byte-reverse each 32-bit lane: message words are big-endian. */
    const __m128i bswap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);

    /* h[0..3] loads as lanes (low to high) A B C D, h[4..7] as E F G H. */
    __m128i abcd = _mm_loadu_si128((const __m128i *)(const void *)&h[0]);
    __m128i efgh = _mm_loadu_si128((const __m128i *)(const void *)&h[4]);
    __m128i badc = _mm_shuffle_epi32(abcd, 0xB1);  /* low to high: B A D C */
    __m128i hgfe = _mm_shuffle_epi32(efgh, 0x1B);  /* low to high: H G F E */
    __m128i abef = _mm_alignr_epi8(badc, hgfe, 8); /* low to high: F E B A */
    __m128i cdgh = _mm_blend_epi16(hgfe, badc, 0xF0); /* low to high: H G D C */

    while (n-- > 0) {
        const __m128i save_abef = abef;
        const __m128i save_cdgh = cdgh;
        __m128i m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 0)), bswap);
        __m128i m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 16)), bswap);
        __m128i m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 32)), bswap);
        __m128i m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(const void *)(p + 48)), bswap);

        /* 16 groups of four rounds; group i consumes W[4i..4i+3] from m0. */
        for (unsigned i = 0; i < 16; i++) {
            __m128i wk = _mm_add_epi32(m0, _mm_load_si128((const __m128i *)(const void *)&be_sha256_k[4u * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);  /* now holds ABEF */
            wk = _mm_shuffle_epi32(wk, 0x0E);               /* lanes 2,3 down to 0,1 */
            abef = _mm_sha256rnds2_epu32(abef, cdgh, wk);  /* back in place */
            if (i < 12) {
                __m128i next = _mm_sha256msg1_epu32(m0, m1);
                next = _mm_add_epi32(next, _mm_alignr_epi8(m3, m2, 4));
                next = _mm_sha256msg2_epu32(next, m3);
                m0 = m1;
                m1 = m2;
                m2 = m3;
                m3 = next;
            } else {
                m0 = m1;
                m1 = m2;
                m2 = m3;
            }
        }
        abef = _mm_add_epi32(abef, save_abef);
        cdgh = _mm_add_epi32(cdgh, save_cdgh);
        p += 64;
    }

    /* Back to h[] order. */
    __m128i abef_r = _mm_shuffle_epi32(abef, 0x1B); /* low to high: A B E F */
    __m128i cdgh_r = _mm_shuffle_epi32(cdgh, 0xB1); /* low to high: G H C D */
    abcd = _mm_blend_epi16(abef_r, cdgh_r, 0xF0);    /* A B C D */
    efgh = _mm_alignr_epi8(cdgh_r, abef_r, 8);       /* E F G H */
    _mm_storeu_si128((__m128i *)(void *)&h[0], abcd);
    _mm_storeu_si128((__m128i *)(void *)&h[4], efgh);
}

/* SHA extensions (CPUID.(EAX=7,ECX=0):EBX[29]) plus the SSE4.1 and SSSE3
 * instructions the fast path also uses (CPUID.1:ECX[19], ECX[9]). */
static int cpu_has_shani(void)
{
    unsigned int a = 0, b = 0, c = 0, d = 0;

    if (__get_cpuid(1, &a, &b, &c, &d) == 0) {
        return 0;
    }
    if ((c & (1u << 19)) == 0 || (c & (1u << 9)) == 0) {
        return 0;
    }
    /* __get_cpuid_count checks the maximum leaf first. */
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) {
        return 0;
    }
    return (b & (1u << 29)) != 0;
}

#endif /* BE_SHA_HAVE_X86 */

/* ------------------------------------------------------------- dispatch */

static void sha256_blocks(const be_sha256_t *ctx, uint32_t h[8], const uint8_t *p, size_t n)
{
#if BE_SHA_HAVE_X86
    if (ctx->impl == BE_SHA_X86_SHANI) {
        sha256_blocks_shani(h, p, n);
        return;
    }
#else
    (void)ctx;
#endif
    sha256_blocks_portable(h, p, n);
}

uint32_t be_sha256_best_impl(void)
{
#if BE_SHA_HAVE_X86
    if (cpu_has_shani()) {
        return BE_SHA_X86_SHANI;
    }
#endif
    return BE_SHA_PORTABLE;
}

uint32_t be_sha256_init(be_sha256_t *ctx, uint32_t impl)
{
    uint32_t chosen;

    if (impl == BE_SHA_AUTO) {
        chosen = be_sha256_best_impl();
    } else if (impl == BE_SHA_X86_SHANI) {
        chosen = be_sha256_best_impl() == BE_SHA_X86_SHANI ? BE_SHA_X86_SHANI : BE_SHA_PORTABLE;
    } else {
        /* BE_SHA_PORTABLE, and any unknown value. */
        chosen = BE_SHA_PORTABLE;
    }
    if (ctx == NULL) {
        return chosen;
    }
    memcpy(ctx->h, be_sha256_h0, sizeof ctx->h);
    ctx->total = 0;
    memset(ctx->buf, 0, sizeof ctx->buf);
    ctx->buf_len = 0;
    ctx->impl = chosen;
    return chosen;
}

void be_sha256_update(be_sha256_t *ctx, const uint8_t *data, size_t len)
{
    if (ctx == NULL || data == NULL || len == 0) {
        return;
    }
    ctx->total += (uint64_t)len;

    /* Top up a partly filled block first. */
    if (ctx->buf_len > 0) {
        size_t take = 64u - ctx->buf_len;
        if (take > len) {
            take = len;
        }
        memcpy(ctx->buf + ctx->buf_len, data, take);
        ctx->buf_len += (uint32_t)take;
        data += take;
        len -= take;
        if (ctx->buf_len < 64u) {
            return;
        }
        sha256_blocks(ctx, ctx->h, ctx->buf, 1);
        ctx->buf_len = 0;
    }

    /* Every whole block straight from the caller's buffer, in one call. */
    size_t nblocks = len / 64u;
    if (nblocks > 0) {
        sha256_blocks(ctx, ctx->h, data, nblocks);
        data += nblocks * 64u;
        len -= nblocks * 64u;
    }

    if (len > 0) {
        memcpy(ctx->buf, data, len);
        ctx->buf_len = (uint32_t)len;
    }
}

void be_sha256_final(be_sha256_t *ctx, uint8_t out[32])
{
    if (ctx == NULL || out == NULL) {
        return;
    }
    /* Section 5.1.1: a 1 bit, zeros, then the message length in bits as a
     * 64-bit big-endian number, ending on a block boundary. */
    uint64_t bits = ctx->total * 8u;
    uint32_t n = ctx->buf_len;

    ctx->buf[n++] = 0x80u;
    if (n > 56u) {
        memset(ctx->buf + n, 0, 64u - n);
        sha256_blocks(ctx, ctx->h, ctx->buf, 1);
        n = 0;
    }
    memset(ctx->buf + n, 0, 56u - n);
    be_put_be32(ctx->buf + 56, (uint32_t)(bits >> 32));
    be_put_be32(ctx->buf + 60, (uint32_t)bits);
    sha256_blocks(ctx, ctx->h, ctx->buf, 1);

    for (unsigned i = 0; i < 8; i++) {
        be_put_be32(out + 4u * i, ctx->h[i]);
    }
    /* Leave no message bytes behind in the context. */
    memset(ctx->buf, 0, sizeof ctx->buf);
    ctx->buf_len = 0;
}

void be_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    be_sha256_t ctx;

    (void)be_sha256_init(&ctx, BE_SHA_AUTO); /* returns the implementation, not an error */
    be_sha256_update(&ctx, data, len);
    be_sha256_final(&ctx, out);
}
