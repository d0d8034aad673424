// core/dtype.c - see dtype.h
#include "dtype.h"

#include <math.h>

static const size_t k_sizes[ET_NUM_DTYPES] = {4, 2, 2, 4, 1, 8};
static const char *k_names[ET_NUM_DTYPES] = {"f32", "bf16", "f16", "i32", "u8", "f64"};
static const char *k_st_names[ET_NUM_DTYPES] = {"F32", "BF16", "F16", "I32", "U8", "F64"};

size_t et_dtype_size(et_dtype dt) { return (unsigned)dt < ET_NUM_DTYPES ? k_sizes[dt] : 0; }
const char *et_dtype_name(et_dtype dt) { return (unsigned)dt < ET_NUM_DTYPES ? k_names[dt] : "?"; }

int et_dtype_from_name(const char *name) {
    for (int i = 0; i < ET_NUM_DTYPES; i++)
        if (!strcmp(name, k_names[i]) || !strcmp(name, k_st_names[i])) return i;
    return -1;
}

float et_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 0x400u));
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t et_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);   // NaN
    if (absu >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to inf
    if (absu < 0x38800000u) {                                    // subnormal or zero in f16
        // value = absu as float; f16 subnormal unit = 2^-24
        float a;
        memcpy(&a, &absu, 4);
        float scaled = a * 16777216.0f;             // exact: a / 2^-24
        uint32_t m = (uint32_t)nearbyintf(scaled);  // ties to even (default rounding mode)
        return (uint16_t)(sign | m);
    }
    uint32_t exp = (absu >> 23) - 127 + 15;
    uint32_t man = absu & 0x7fffffu;
    uint32_t h = (exp << 10) | (man >> 13);
    uint32_t rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

static double load_one(const void *src, et_dtype dt, size_t i) {
    switch (dt) {
        case ET_F32:
            return ((const float *)src)[i];
        case ET_BF16:
            return et_bf16_to_f32(((const uint16_t *)src)[i]);
        case ET_F16:
            return et_f16_to_f32(((const uint16_t *)src)[i]);
        case ET_I32:
            return ((const int32_t *)src)[i];
        case ET_U8:
            return ((const uint8_t *)src)[i];
        case ET_F64:
            return ((const double *)src)[i];
        default:
            return 0;
    }
}

void et_convert(void *dst, et_dtype dst_dt, const void *src, et_dtype src_dt, size_t n) {
    if (dst_dt == src_dt) {
        memmove(dst, src, n * et_dtype_size(dst_dt));
        return;
    }
    // Fast paths for the common float casts.
    if (src_dt == ET_F32 && dst_dt == ET_BF16) {
        const float *s = src;
        uint16_t *d = dst;
#pragma omp parallel for if (n > 65536)
        for (size_t i = 0; i < n; i++) d[i] = et_f32_to_bf16(s[i]);
        return;
    }
    if (src_dt == ET_BF16 && dst_dt == ET_F32) {
        const uint16_t *s = src;
        float *d = dst;
#pragma omp parallel for if (n > 65536)
        for (size_t i = 0; i < n; i++) d[i] = et_bf16_to_f32(s[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double v = load_one(src, src_dt, i);
        switch (dst_dt) {
            case ET_F32:
                ((float *)dst)[i] = (float)v;
                break;
            case ET_BF16:
                ((uint16_t *)dst)[i] = et_f32_to_bf16((float)v);
                break;
            case ET_F16:
                ((uint16_t *)dst)[i] = et_f32_to_f16((float)v);
                break;
            case ET_I32:
                ((int32_t *)dst)[i] = (int32_t)v;
                break;
            case ET_U8:
                ((uint8_t *)dst)[i] = (uint8_t)v;
                break;
            case ET_F64:
                ((double *)dst)[i] = v;
                break;
            default:
                break;
        }
    }
}
