// core/dtype.h - element types and conversions.
// defines: et_dtype, et_dtype_size, et_dtype_name, et_dtype_from_name,
//          et_bf16_to_f32, et_f32_to_bf16, et_f16_to_f32, et_f32_to_f16, et_convert
#ifndef ET_DTYPE_H
#define ET_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum {
    ET_F32 = 0,
    ET_BF16,
    ET_F16,
    ET_I32,
    ET_U8,
    ET_F64,  // CPU only: gradient checks
    ET_NUM_DTYPES
} et_dtype;

size_t et_dtype_size(et_dtype dt);
const char *et_dtype_name(et_dtype dt);  // "f32", "bf16", ...
// Parses emotune names ("f32") and safetensors names ("F32"); returns -1 when unknown.
int et_dtype_from_name(const char *name);
static inline int et_dtype_is_float(et_dtype dt) {
    return dt == ET_F32 || dt == ET_BF16 || dt == ET_F16 || dt == ET_F64;
}

static inline float et_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Round to nearest even; NaN stays NaN (quiet).
static inline uint16_t et_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float et_f16_to_f32(uint16_t h);
uint16_t et_f32_to_f16(float f);  // round to nearest even, overflow -> inf

// Convert n elements between any two dtypes (through double for f64, float otherwise;
// float -> integer truncates toward zero like a C cast).
void et_convert(void *dst, et_dtype dst_dt, const void *src, et_dtype src_dt, size_t n);

#endif
