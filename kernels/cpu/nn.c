// kernels/cpu/nn.c - instantiates kernels/cpu/nn_impl.inc for f32 and f64 (see
// ktemplate.h) and holds the f32-only rotary table kernel.
#include "nn.h"

#include <omp.h>

#include "ktemplate.h"

static inline int k_nn_thread(void) { return omp_get_thread_num(); }

int64_t k_attention_slots(int64_t units) {
    int64_t n = omp_get_max_threads();
    if (units < n) n = units;
    return n < 1 ? 1 : n;
}

#define real float
#define KFN(n) n##_f32
#define REAL_IS_F64 0
#include "nn_impl.inc"
#undef real
#undef KFN
#undef REAL_IS_F64

#define real double
#define KFN(n) n##_f64
#define REAL_IS_F64 1
#include "nn_impl.inc"
#undef real
#undef KFN
#undef REAL_IS_F64

void k_rope_table_f32(const int32_t *pos, const float *inv_freq, float *cos, float *sin, int64_t BT,
                      int64_t half) {
#pragma omp parallel for if (BT * half > 32768)
    for (int64_t bt = 0; bt < BT; bt++) {
        float p = (float)pos[bt];
        for (int64_t i = 0; i < half; i++) {
            float a = p * inv_freq[i];
            cos[bt * half + i] = cosf(a);
            sin[bt * half + i] = sinf(a);
        }
    }
}
