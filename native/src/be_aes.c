/*
 * AES-128 encryption (FIPS-197) and the ZigBee AES-MMO hash.
 *
 * AES is byte-oriented and table-light (the S-box only): the core needs it for
 * the image integrity code of ZigBee OTA files, hashing a file once after its
 * download, not for bulk encryption. No decryption.
 *
 * AES-MMO (ZigBee specification annex B.6, Matyas-Meyer-Oseas):
 *   h0 = 0^128; for each 16-byte block m of the padded message: h = AES_h(m) ^ m.
 * Padding of an l-bit message M: M || 1 || 0* || l, where
 *   l < 2^16:          0* brings the length to 14 mod 16 bytes, l is a big-endian u16;
 *   2^16 <= l < 2^32:  0* brings the length to 10 mod 16 bytes, l is a big-endian u32,
 *                      followed by two zero bytes.
 * Messages of 2^32 bits or more cannot be padded: be_mmo_final says BE_ERR_RANGE.
 */
#include <string.h>

#include "be_bytes_priv.h"
#include "be_priv.h"

#define AES_BLOCK 16u
#define AES_ROUNDS 10u

/* be.h sizes the contexts with literals. */
_Static_assert(sizeof(((be_aes128_t *)0)->rk) == AES_BLOCK * (AES_ROUNDS + 1u),
               "be_aes128_t.rk[176]: 11 round keys");
_Static_assert(sizeof(((be_mmo_t *)0)->h) == AES_BLOCK, "be_mmo_t.h[16]: one block");
_Static_assert(sizeof(((be_mmo_t *)0)->buf) == AES_BLOCK, "be_mmo_t.buf[16]: one block");

/* FIPS-197 figure 7: the S-box (multiplicative inverse in GF(2^8) followed by
 * the affine transform). */
static const uint8_t be_aes_sbox[256] = {
    0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
    0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
    0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
    0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
    0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
    0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
    0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
    0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
    0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
    0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
    0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
    0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
    0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
    0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
    0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
    0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
};

/* FIPS-197 5.2: Rcon[i] = x^(i-1) in GF(2^8), first byte of the round constant word. */
static const uint8_t be_aes_rcon[AES_ROUNDS] = {
    0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36,
};

/* Multiplication by x (i.e. {02}) modulo x^8 + x^4 + x^3 + x + 1 (FIPS-197 4.2.1). */
static inline uint8_t xtime(uint8_t b)
{
    return (uint8_t)((b << 1) ^ ((b & 0x80u) != 0 ? 0x1bu : 0x00u));
}

/* FIPS-197 5.2 KeyExpansion with Nk = 4, Nr = 10: 44 words, kept as bytes. */
void be_aes128_init(be_aes128_t *ctx, const uint8_t key[16])
{
    uint8_t *w = ctx->rk;

    memcpy(w, key, 16);
    for (uint32_t i = 4; i < 4u * (AES_ROUNDS + 1u); i++) {
        const uint8_t *prev = w + 4u * (i - 1u);
        uint8_t t[4] = {prev[0], prev[1], prev[2], prev[3]};
        if (i % 4u == 0) {
            /* SubWord(RotWord(temp)) xor Rcon[i/Nk] */
            uint8_t t0 = t[0];
            t[0] = (uint8_t)(be_aes_sbox[t[1]] ^ be_aes_rcon[i / 4u - 1u]);
            t[1] = be_aes_sbox[t[2]];
            t[2] = be_aes_sbox[t[3]];
            t[3] = be_aes_sbox[t0];
        }
        for (uint32_t j = 0; j < 4; j++) {
            w[4u * i + j] = (uint8_t)(w[4u * (i - 4u) + j] ^ t[j]);
        }
    }
}

static void add_round_key(uint8_t s[16], const uint8_t *rk)
{
    for (uint32_t i = 0; i < 16; i++) {
        s[i] ^= rk[i];
    }
}

/* SubBytes and ShiftRows together. The state is column-major as in FIPS-197
 * 3.4: byte s[r + 4c] is row r, column c; row r rotates left by r. */
static void sub_shift(uint8_t s[16])
{
    uint8_t t[16];
    for (uint32_t c = 0; c < 4; c++) {
        for (uint32_t r = 0; r < 4; r++) {
            t[r + 4u * c] = be_aes_sbox[s[r + 4u * ((c + r) % 4u)]];
        }
    }
    memcpy(s, t, 16);
}

/* FIPS-197 5.1.3: each column times {03}x^3 + {01}x^2 + {01}x + {02}. */
static void mix_columns(uint8_t s[16])
{
    for (uint32_t c = 0; c < 4; c++) {
        uint8_t *col = s + 4u * c;
        uint8_t a0 = col[0], a1 = col[1], a2 = col[2], a3 = col[3];
        uint8_t all = (uint8_t)(a0 ^ a1 ^ a2 ^ a3);
        col[0] = (uint8_t)(a0 ^ all ^ xtime((uint8_t)(a0 ^ a1)));
        col[1] = (uint8_t)(a1 ^ all ^ xtime((uint8_t)(a1 ^ a2)));
        col[2] = (uint8_t)(a2 ^ all ^ xtime((uint8_t)(a2 ^ a3)));
        col[3] = (uint8_t)(a3 ^ all ^ xtime((uint8_t)(a3 ^ a0)));
    }
}

/* FIPS-197 5.1 Cipher. in and out may be the same buffer. */
void be_aes128_encrypt(const be_aes128_t *ctx, const uint8_t in[16], uint8_t out[16])
{
    uint8_t s[16];

    memcpy(s, in, 16);
    add_round_key(s, ctx->rk);
    for (uint32_t round = 1; round < AES_ROUNDS; round++) {
        sub_shift(s);
        mix_columns(s);
        add_round_key(s, ctx->rk + 16u * round);
    }
    sub_shift(s);
    add_round_key(s, ctx->rk + 16u * AES_ROUNDS);
    memcpy(out, s, 16);
}

/* ------------------------------------------------------------------ AES-MMO */

/* h = AES_h(m) xor m */
static void mmo_block(uint8_t h[16], const uint8_t m[16])
{
    be_aes128_t k;
    uint8_t e[16];

    be_aes128_init(&k, h);
    be_aes128_encrypt(&k, m, e);
    for (uint32_t i = 0; i < 16; i++) {
        h[i] = (uint8_t)(e[i] ^ m[i]);
    }
}

void be_mmo_init(be_mmo_t *ctx)
{
    memset(ctx, 0, sizeof *ctx);
}

void be_mmo_update(be_mmo_t *ctx, const uint8_t *data, size_t len)
{
    if (len == 0) {
        return;
    }
    ctx->total += len;
    if (ctx->buf_len != 0) {
        size_t n = AES_BLOCK - ctx->buf_len;
        if (n > len) {
            n = len;
        }
        memcpy(ctx->buf + ctx->buf_len, data, n);
        ctx->buf_len += (uint32_t)n;
        data += n;
        len -= n;
        if (ctx->buf_len < AES_BLOCK) {
            return;
        }
        mmo_block(ctx->h, ctx->buf);
        ctx->buf_len = 0;
    }
    while (len >= AES_BLOCK) {
        mmo_block(ctx->h, data);
        data += AES_BLOCK;
        len -= AES_BLOCK;
    }
    if (len != 0) {
        memcpy(ctx->buf, data, len);
        ctx->buf_len = (uint32_t)len;
    }
}

int32_t be_mmo_final(be_mmo_t *ctx, uint8_t out[16])
{
    uint8_t pad[2 * AES_BLOCK];
    uint32_t n = ctx->buf_len;      /* < 16 */
    uint32_t end;

    if (ctx->total >= ((uint64_t)1 << 29)) {   /* 2^32 bits */
        memset(out, 0, 16);
        memset(ctx, 0, sizeof *ctx);
        return BE_ERR_RANGE;
    }
    const uint64_t bits = ctx->total * 8u;

    memset(pad, 0, sizeof pad);
    memcpy(pad, ctx->buf, n);
    pad[n] = 0x80;
    if (bits < ((uint64_t)1 << 16)) {
        /* zeros to 14 mod 16, then l as u16: one block if n + 1 <= 14 */
        end = (n + 1u <= 14u) ? AES_BLOCK : 2u * AES_BLOCK;
        be_put_be16(pad + end - 2u, (uint16_t)bits);
    } else {
        /* zeros to 10 mod 16, then l as u32 and two zero bytes */
        end = (n + 1u <= 10u) ? AES_BLOCK : 2u * AES_BLOCK;
        be_put_be32(pad + end - 6u, (uint32_t)bits);
    }
    for (uint32_t off = 0; off < end; off += AES_BLOCK) {
        mmo_block(ctx->h, pad + off);
    }
    memcpy(out, ctx->h, 16);
    memset(ctx, 0, sizeof *ctx);
    return BE_OK;
}

int32_t be_mmo(const uint8_t *data, size_t len, uint8_t out[16])
{
    be_mmo_t c;

    be_mmo_init(&c);
    be_mmo_update(&c, data, len);
    return be_mmo_final(&c, out);
}
