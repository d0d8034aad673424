// kernels/cuda/emu/emu_kernels.c - every kc_* launcher of kernels/cuda/cuda_kernels.h as plain
// host loops, for the CUDA emulator build (-DEMOTUNE_CUDA_EMU=ON; see README.md here).
//
// Written from the header's contract (the .cu files were read only where it is silent):
// a second, independent implementation, so that the op layer (kernels/cuda/ops_cuda.c)
// can be tested against the CPU backend without a GPU. It deliberately calls none of
// kernels/cpu/: element math is f32 (f64 for long reductions), values are stored in the
// launcher's dtype exactly where the kernels store them (core/dtype.h conversions), GEMMs
// go through OpenBLAS sgemm after converting the operands to f32 (fp32 accumulation).
// Pointers are host pointers (emu_runtime.c); every launch completes before it returns.
// Misuse the real kernels abort on (unsupported dtype, head dim) aborts here too.
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_kernels.h"
#include "dtype.h"

// ---- helpers --------------------------------------------------------------------------

#define FAIL(...)                                                      \
    do {                                                               \
        fprintf(stderr, "%s:%d: CUDA emulator: ", __FILE__, __LINE__); \
        fprintf(stderr, __VA_ARGS__);                                  \
        fprintf(stderr, "\n");                                         \
        fflush(stderr);                                                \
        abort();                                                       \
    } while (0)

enum { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, U8 = 4 };

static void check_float(int dt, const char *fn) {
    if (dt != F32 && dt != BF16 && dt != F16) FAIL("%s: dtype %d is not f32, bf16 or f16", fn, dt);
}
#define CHECK_FLOAT(dt) check_float((dt), __func__)

static float ld(const void *p, int dt, int64_t i) {
    switch (dt) {
        case F32:
            return ((const float *)p)[i];
        case BF16:
            return et_bf16_to_f32(((const uint16_t *)p)[i]);
        case F16:
            return et_f16_to_f32(((const uint16_t *)p)[i]);
    }
    FAIL("load: dtype %d", dt);
}

static void st(void *p, int dt, int64_t i, float v) {
    switch (dt) {
        case F32:
            ((float *)p)[i] = v;
            return;
        case BF16:
            ((uint16_t *)p)[i] = et_f32_to_bf16(v);
            return;
        case F16:
            ((uint16_t *)p)[i] = et_f32_to_f16(v);
            return;
    }
    FAIL("store: dtype %d", dt);
}

// v rounded to dtype dt and back (what storing and reloading does).
static float rnd(int dt, float v) {
    switch (dt) {
        case F32:
            return v;
        case BF16:
            return et_bf16_to_f32(et_f32_to_bf16(v));
        case F16:
            return et_f16_to_f32(et_f32_to_f16(v));
    }
    FAIL("round: dtype %d", dt);
}

static size_t dt_size(int dt) {
    switch (dt) {
        case F32:
        case I32:
            return 4;
        case BF16:
        case F16:
            return 2;
        case U8:
            return 1;
    }
    FAIL("dtype %d has no size on CUDA", dt);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) FAIL("out of host memory (%zu bytes)", n);
    return p;
}

static void *xcalloc(size_t n, size_t es) {
    void *p = calloc(n ? n : 1, es);
    if (!p) FAIL("out of host memory (%zu x %zu bytes)", n, es);
    return p;
}

static float sigmoidf(float x) { return 1.f / (1.f + expf(-x)); }

// ---- elementwise --------------------------------------------------------------------

void kc_convert(void *y, int ydt, const void *x, int xdt, int64_t n) {
    if (n <= 0) return;
    bool yf = ydt == F32 || ydt == BF16 || ydt == F16, xf = xdt == F32 || xdt == BF16 || xdt == F16;
    if (ydt == xdt) {
        memmove(y, x, (size_t)n * dt_size(ydt));
    } else if (yf && xf) {
        for (int64_t i = 0; i < n; i++) st(y, ydt, i, ld(x, xdt, i));
    } else if (ydt == I32 && xdt == U8) {
        for (int64_t i = 0; i < n; i++) ((int32_t *)y)[i] = ((const uint8_t *)x)[i];
    } else if (ydt == U8 && xdt == I32) {
        for (int64_t i = 0; i < n; i++) ((uint8_t *)y)[i] = (uint8_t)((const int32_t *)x)[i];
    } else if (yf && xdt == I32) {
        for (int64_t i = 0; i < n; i++) st(y, ydt, i, (float)((const int32_t *)x)[i]);
    } else {
        FAIL("kc_convert: dtype %d -> %d unsupported", xdt, ydt);
    }
}

void kc_fill(void *y, int dt, double value, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (dt == I32)
            ((int32_t *)y)[i] = (int32_t)value;
        else if (dt == U8)
            ((uint8_t *)y)[i] = (uint8_t)value;
        else
            st(y, dt, i, (float)value);
    }
}

void kc_add_into(void *y, int ydt, const void *x, int xdt, int64_t n) {
    CHECK_FLOAT(ydt);
    CHECK_FLOAT(xdt);
    for (int64_t i = 0; i < n; i++) st(y, ydt, i, ld(y, ydt, i) + ld(x, xdt, i));
}

void kc_binary(int op, int dt, const void *a, const void *b, void *y, int64_t n) {
    CHECK_FLOAT(dt);
    if (op != KC_ADD && op != KC_SUB && op != KC_MUL) FAIL("kc_binary: op %d", op);
    for (int64_t i = 0; i < n; i++) {
        float p = ld(a, dt, i), q = ld(b, dt, i);
        st(y, dt, i, op == KC_ADD ? p + q : op == KC_SUB ? p - q : p * q);
    }
}

void kc_scale(int dt, const void *x, void *y, int64_t n, float s) {
    CHECK_FLOAT(dt);
    for (int64_t i = 0; i < n; i++) st(y, dt, i, ld(x, dt, i) * s);
}

void kc_add_bcast(int dt, const void *a, const void *b, void *y, int64_t rows, int64_t nb) {
    CHECK_FLOAT(dt);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < nb; j++)
            st(y, dt, r * nb + j, ld(a, dt, r * nb + j) + ld(b, dt, j));
}

void kc_colsum(int dt, const void *x, void *y, int64_t rows, int64_t nb) {
    CHECK_FLOAT(dt);
    for (int64_t j = 0; j < nb; j++) {
        double s = 0;
        for (int64_t r = 0; r < rows; r++) s += ld(x, dt, r * nb + j);
        st(y, dt, j, (float)s);
    }
}

void kc_rowsum(int dt, const void *x, void *y, int64_t rows, int64_t d, float scale) {
    CHECK_FLOAT(dt);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < d; j++) s += ld(x, dt, r * d + j);
        st(y, dt, r, (float)s * scale);
    }
}

void kc_rowsum_bwd(int dt, const void *gy, void *gx, int64_t rows, int64_t d, float scale) {
    CHECK_FLOAT(dt);
    for (int64_t r = 0; r < rows; r++) {
        float g = ld(gy, dt, r) * scale;
        for (int64_t j = 0; j < d; j++) st(gx, dt, r * d + j, g);
    }
}

static float act(int kind, float v) {
    switch (kind) {
        case KC_SILU:
            return v * sigmoidf(v);
        case KC_GELU:  // exact (erf) GELU
            return 0.5f * v * (1.f + erff(v / sqrtf(2.f)));
        case KC_QUICK_GELU:
            return v * sigmoidf(1.702f * v);
        case KC_RELU:
            return v > 0.f ? v : 0.f;
    }
    FAIL("activation kind %d", kind);
}

static float act_grad(int kind, float v) {
    switch (kind) {
        case KC_SILU: {
            float s = sigmoidf(v);
            return s + v * s * (1.f - s);
        }
        case KC_GELU: {
            float cdf = 0.5f * (1.f + erff(v / sqrtf(2.f)));
            float pdf = expf(-0.5f * v * v) / sqrtf(2.f * (float)M_PI);
            return cdf + v * pdf;
        }
        case KC_QUICK_GELU: {
            float s = sigmoidf(1.702f * v);
            return s + 1.702f * v * s * (1.f - s);
        }
        case KC_RELU:
            return v > 0.f ? 1.f : 0.f;
    }
    FAIL("activation kind %d", kind);
}

void kc_act_fwd(int kind, int dt, const void *x, void *y, int64_t n) {
    CHECK_FLOAT(dt);
    for (int64_t i = 0; i < n; i++) st(y, dt, i, act(kind, ld(x, dt, i)));
}

void kc_act_bwd(int kind, int dt, const void *gy, const void *x, void *gx, int64_t n) {
    CHECK_FLOAT(dt);
    for (int64_t i = 0; i < n; i++) st(gx, dt, i, ld(gy, dt, i) * act_grad(kind, ld(x, dt, i)));
}

void kc_swiglu_fwd(int dt, const void *g, const void *u, void *y, int64_t n) {
    CHECK_FLOAT(dt);
    for (int64_t i = 0; i < n; i++) {
        float a = ld(g, dt, i);
        st(y, dt, i, a * sigmoidf(a) * ld(u, dt, i));
    }
}

void kc_swiglu_bwd(int dt, const void *dy, const void *g, const void *u, void *dg, void *du,
                   int64_t n) {
    CHECK_FLOAT(dt);
    for (int64_t i = 0; i < n; i++) {
        float a = ld(g, dt, i), b = ld(u, dt, i), d = ld(dy, dt, i), s = sigmoidf(a);
        if (dg) st(dg, dt, i, d * b * (s + a * s * (1.f - s)));
        if (du) st(du, dt, i, d * a * s);
    }
}

// Philox4x32-10 (Random123), the stream core/rng.h documents: position p is word p % 4 of
// the block at counter p / 4 (128-bit little endian) under key = seed.
static uint32_t philox_word(uint64_t seed, uint64_t pos) {
    uint64_t ctr = pos / 4;
    uint32_t c[4] = {(uint32_t)ctr, (uint32_t)(ctr >> 32), 0, 0};
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0, n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1, n3 = (uint32_t)p0;
        c[0] = n0, c[1] = n1, c[2] = n2, c[3] = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c[pos % 4];
}

void kc_dropout(int dt, const void *x, void *y, uint8_t *keep, int64_t n, float p, float scale,
                uint64_t seed, uint64_t offset) {
    CHECK_FLOAT(dt);
    for (int64_t i = 0; i < n; i++) {
        float u = (float)(philox_word(seed, offset + (uint64_t)i) >> 8) / 16777216.0f;
        keep[i] = u >= p;
        st(y, dt, i, keep[i] ? ld(x, dt, i) * scale : 0.f);
    }
}

void kc_masked_scale(int dt, const void *x, const uint8_t *keep, void *y, int64_t n, float scale) {
    CHECK_FLOAT(dt);
    for (int64_t i = 0; i < n; i++) st(y, dt, i, keep[i] ? ld(x, dt, i) * scale : 0.f);
}

// ---- AdamW (core/optim.c's update: torch's lerp for m, addcmul for v, single roundings) ----

static void adamw_one(float *w, const float *g, float *m, float *v, void *half, int hdt, int64_t n,
                      float decay, float w1, float b2, float c2, float neg_step, float bc2,
                      float eps) {
    if (half && hdt != BF16 && hdt != F16) FAIL("adamw: half dtype %d", hdt);
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i], mi = m[i];
        // torch.lerp(m, g, w1): m + w1 (g - m) for |w1| < 0.5, else g - (g - m)(1 - w1)
        mi = fabsf(w1) < 0.5f ? fmaf(w1, gi - mi, mi) : fmaf(-(gi - mi), 1.0f - w1, gi);
        float vi = fmaf(c2 * gi, gi, v[i] * b2);  // v b2 + (1 - b2) g g
        float wi = w[i] * decay + (neg_step * mi) / (sqrtf(vi) / bc2 + eps);
        m[i] = mi;
        v[i] = vi;
        w[i] = wi;
        if (half) st(half, hdt, i, wi);
    }
}

void kc_adamw(float *w, const float *g, float *m, float *v, void *half, int hdt, int64_t n,
              const double c[7]) {
    adamw_one(w, g, m, v, half, hdt, n, (float)c[0], (float)c[1], (float)c[2], (float)c[3],
              (float)c[4], (float)c[5], (float)c[6]);
}

void kc_adamw_multi(int n, const kc_adamw_tensor *ts, double w1, double beta2, double c2,
                    double eps) {
    for (int i = 0; i < n; i++)
        adamw_one(ts[i].w, ts[i].g, ts[i].m, ts[i].v, ts[i].half, ts[i].hdt, ts[i].n,
                  (float)ts[i].decay, (float)w1, (float)beta2, (float)c2, (float)ts[i].neg_step,
                  (float)ts[i].bc2_sqrt, (float)eps);
}

// One partial per non-empty tensor (the real kernels use one per block of 4096).
int64_t kc_sumsq_partials(int n, const int64_t *numel) {
    int64_t k = 0;
    for (int i = 0; i < n; i++) k += numel[i] > 0;
    return k;
}

void kc_sumsq_multi(int n, const float *const *x, const int64_t *numel, double *partials,
                    double *out) {
    int64_t k = 0;
    for (int i = 0; i < n; i++) {
        if (numel[i] <= 0) continue;
        double s = 0;
        for (int64_t j = 0; j < numel[i]; j++) s += (double)x[i][j] * (double)x[i][j];
        partials[k++] = s;
    }
    double s = 0;
    for (int64_t j = 0; j < k; j++) s += partials[j];
    out[0] = s;
}

void kc_scale_multi(int n, float *const *x, const int64_t *numel, float s) {
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < numel[i]; j++) x[i][j] *= s;
}

// ---- norms ----------------------------------------------------------------------------

// x + res rounded to dt, written to xsum; else x. Row r, column j.
static float norm_in(int dt, const void *x, const void *res, void *xsum, int64_t i) {
    float v = ld(x, dt, i);
    if (!res) return v;
    v = rnd(dt, v + ld(res, dt, i));
    st(xsum, dt, i, v);
    return v;
}

void kc_rmsnorm_fwd(int dt, const void *x, const void *res, void *xsum, const float *w, void *y,
                    float *rstd, int64_t rows, int64_t D, float eps) {
    CHECK_FLOAT(dt);
    float *row = xmalloc(sizeof(float) * (size_t)D);
    for (int64_t r = 0; r < rows; r++) {
        double ss = 0;
        for (int64_t j = 0; j < D; j++) {
            row[j] = norm_in(dt, x, res, xsum, r * D + j);
            ss += (double)row[j] * row[j];
        }
        float rs = 1.f / sqrtf((float)(ss / (double)D) + eps);
        rstd[r] = rs;
        for (int64_t j = 0; j < D; j++) {
            float v = rnd(dt, row[j] * rs);  // HF: normalise, cast to the dtype, then * w
            st(y, dt, r * D + j, w ? v * w[j] : v);
        }
    }
    free(row);
}

void kc_rmsnorm_bwd(int dt, const void *dy, const void *x, const float *w, const float *rstd,
                    void *dx, float *dw, int64_t rows, int64_t D) {
    CHECK_FLOAT(dt);
    // y = x rs (w), rs = (mean x^2 + eps)^-1/2: dx = rs (g - x rs^2 mean(g x)), g = dy w
    if (dx)
        for (int64_t r = 0; r < rows; r++) {
            float rs = rstd[r];
            double dot = 0;
            for (int64_t j = 0; j < D; j++)
                dot += (double)ld(dy, dt, r * D + j) * (w ? w[j] : 1.f) * ld(x, dt, r * D + j);
            float m = (float)(dot / (double)D);
            for (int64_t j = 0; j < D; j++) {
                float g = ld(dy, dt, r * D + j) * (w ? w[j] : 1.f);
                st(dx, dt, r * D + j, rs * (g - ld(x, dt, r * D + j) * rs * rs * m));
            }
        }
    if (dw)
        for (int64_t j = 0; j < D; j++) {
            double s = 0;
            for (int64_t r = 0; r < rows; r++)
                s += (double)ld(dy, dt, r * D + j) * ld(x, dt, r * D + j) * rstd[r];
            dw[j] = (float)s;
        }
}

void kc_layernorm_fwd(int dt, const void *x, const void *res, void *xsum, const float *w,
                      const float *b, void *y, float *mean, float *rstd, int64_t rows, int64_t D,
                      float eps) {
    CHECK_FLOAT(dt);
    float *row = xmalloc(sizeof(float) * (size_t)D);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t j = 0; j < D; j++) {
            row[j] = norm_in(dt, x, res, xsum, r * D + j);
            s += row[j];
        }
        double mu = s / (double)D, var = 0;
        for (int64_t j = 0; j < D; j++) var += (row[j] - mu) * (row[j] - mu);
        float rs = 1.f / sqrtf((float)(var / (double)D) + eps);
        mean[r] = (float)mu;
        rstd[r] = rs;
        for (int64_t j = 0; j < D; j++) {
            float v = (row[j] - (float)mu) * rs;
            if (w) v *= w[j];
            if (b) v += b[j];
            st(y, dt, r * D + j, v);
        }
    }
    free(row);
}

void kc_layernorm_bwd(int dt, const void *dy, const void *x, const float *w, const float *mean,
                      const float *rstd, void *dx, float *dw, float *db, int64_t rows, int64_t D) {
    CHECK_FLOAT(dt);
    // xh = (x - mu) rs, y = xh w + b: dx = rs (g - mean(g) - xh mean(g xh)), g = dy w
    if (dx)
        for (int64_t r = 0; r < rows; r++) {
            double sg = 0, sgx = 0;
            for (int64_t j = 0; j < D; j++) {
                float g = ld(dy, dt, r * D + j) * (w ? w[j] : 1.f);
                float xh = (ld(x, dt, r * D + j) - mean[r]) * rstd[r];
                sg += g;
                sgx += (double)g * xh;
            }
            float mg = (float)(sg / (double)D), mgx = (float)(sgx / (double)D);
            for (int64_t j = 0; j < D; j++) {
                float g = ld(dy, dt, r * D + j) * (w ? w[j] : 1.f);
                float xh = (ld(x, dt, r * D + j) - mean[r]) * rstd[r];
                st(dx, dt, r * D + j, rstd[r] * (g - mg - xh * mgx));
            }
        }
    for (int64_t j = 0; j < D && (dw || db); j++) {
        double sw = 0, sb = 0;
        for (int64_t r = 0; r < rows; r++) {
            float g = ld(dy, dt, r * D + j);
            sw += (double)g * (ld(x, dt, r * D + j) - mean[r]) * rstd[r];
            sb += g;
        }
        if (dw) dw[j] = (float)sw;
        if (db) db[j] = (float)sb;
    }
}

// ---- rope / softmax -------------------------------------------------------------------

void kc_rope_table(int dt, const int32_t *pos, const float *inv_freq, float *cos, float *sin,
                   int64_t BT, int64_t half) {
    CHECK_FLOAT(dt);
    for (int64_t i = 0; i < BT; i++)
        for (int64_t j = 0; j < half; j++) {
            float a = (float)pos[i] * inv_freq[j];  // f32 angle, as HF
            cos[i * half + j] = rnd(dt, cosf(a));
            sin[i * half + j] = rnd(dt, sinf(a));
        }
}

// x (BT, H, hd): rotate-half, y1 = x1 cos - x2 sin, y2 = x2 cos + x1 sin (sin negated for
// sign -1: the backward).
void kc_rope(int dt, const void *x, const float *cos, const float *sin, void *y, int64_t BT,
             int64_t H, int64_t hd, int sign) {
    CHECK_FLOAT(dt);
    int64_t half = hd / 2;
    for (int64_t t = 0; t < BT; t++)
        for (int64_t h = 0; h < H; h++) {
            int64_t base = (t * H + h) * hd;
            for (int64_t j = 0; j < half; j++) {
                float c = cos[t * half + j], s = sin[t * half + j] * (float)sign;
                float a = ld(x, dt, base + j), b = ld(x, dt, base + j + half);
                st(y, dt, base + j, a * c - b * s);
                st(y, dt, base + j + half, b * c + a * s);
            }
        }
}

void kc_softmax_fwd(int dt, const void *x, void *y, int64_t rows, int64_t D) {
    CHECK_FLOAT(dt);
    for (int64_t r = 0; r < rows; r++) {
        float mx = -INFINITY;
        for (int64_t j = 0; j < D; j++) mx = fmaxf(mx, ld(x, dt, r * D + j));
        double s = 0;
        if (mx != -INFINITY)
            for (int64_t j = 0; j < D; j++) s += exp((double)ld(x, dt, r * D + j) - mx);
        for (int64_t j = 0; j < D; j++)  // an all -inf row gives zeros
            st(y, dt, r * D + j,
               mx == -INFINITY ? 0.f : (float)(exp((double)ld(x, dt, r * D + j) - mx) / s));
    }
}

void kc_softmax_bwd(int dt, const void *dy, const void *y, void *dx, int64_t rows, int64_t D) {
    CHECK_FLOAT(dt);
    for (int64_t r = 0; r < rows; r++) {
        double dot = 0;
        for (int64_t j = 0; j < D; j++) dot += (double)ld(dy, dt, r * D + j) * ld(y, dt, r * D + j);
        for (int64_t j = 0; j < D; j++)
            st(dx, dt, r * D + j, ld(y, dt, r * D + j) * (ld(dy, dt, r * D + j) - (float)dot));
    }
}

// ---- cross-entropy --------------------------------------------------------------------

static bool ce_counted(int32_t t, int64_t V, int ignore) { return t != ignore && t >= 0 && t < V; }

void kc_cross_entropy_fwd(int dt, const void *logits, const int32_t *tgt, float *lse,
                          float *row_loss, float *out, int32_t *count, int64_t N, int64_t V,
                          int ignore_index) {
    CHECK_FLOAT(dt);
    double total = 0;
    int32_t cnt = 0;
    for (int64_t r = 0; r < N; r++) {
        if (!ce_counted(tgt[r], V, ignore_index)) {
            lse[r] = 0;  // unused (the kernels write 0)
            row_loss[r] = 0;
            continue;
        }
        float mx = -INFINITY;
        for (int64_t j = 0; j < V; j++) mx = fmaxf(mx, ld(logits, dt, r * V + j));
        double s = 0;
        for (int64_t j = 0; j < V; j++) s += exp((double)ld(logits, dt, r * V + j) - mx);
        float l = (float)(mx + log(s));
        lse[r] = l;
        row_loss[r] = l - ld(logits, dt, r * V + tgt[r]);
        total += row_loss[r];
        cnt++;
    }
    out[0] = cnt ? (float)(total / cnt) : 0.f;
    count[0] = cnt;
}

void kc_cross_entropy_bwd(int dt, const void *logits, const int32_t *tgt, const float *lse,
                          const float *gy, const int32_t *count, void *dlogits, int64_t N,
                          int64_t V, int ignore_index) {
    CHECK_FLOAT(dt);
    for (int64_t r = 0; r < N; r++) {
        int32_t t = tgt[r];
        bool on = ce_counted(t, V, ignore_index) && count[0] > 0;
        float g = on ? gy[0] / (float)count[0] : 0.f;
        for (int64_t j = 0; j < V; j++) {
            float v = 0;
            if (on) v = g * (expf(ld(logits, dt, r * V + j) - lse[r]) - (j == t ? 1.f : 0.f));
            st(dlogits, dt, r * V + j, v);
        }
    }
}

// ---- rows -----------------------------------------------------------------------------

static void check_elem(size_t elem) {
    if (elem != 1 && elem != 2 && elem != 4) FAIL("rows: element size %zu", elem);
}

void kc_gather_rows(size_t elem, const void *x, const int32_t *idx, void *y, int64_t m, int64_t n,
                    int64_t D) {
    check_elem(elem);
    size_t row = (size_t)D * elem;
    for (int64_t i = 0; i < m; i++) {
        char *dst = (char *)y + (size_t)i * row;
        if (idx[i] >= 0 && idx[i] < n)
            memcpy(dst, (const char *)x + (size_t)idx[i] * row, row);
        else
            memset(dst, 0, row);  // all-zero bits are 0 in every dtype
    }
}

void kc_permute(size_t elem, const void *x, void *y, int ndim, const int64_t *shape,
                const int64_t *stride, int64_t numel) {
    if (elem != 1 && elem != 2 && elem != 4 && elem != 8) FAIL("permute: element size %zu", elem);
    if (ndim < 1 || ndim > 8) FAIL("permute: ndim %d", ndim);
    for (int64_t i = 0; i < numel; i++) {  // each output element decodes its own index
        int64_t r = i, off = 0;
        for (int k = ndim - 1; k >= 0; k--) {
            off += (r % shape[k]) * stride[k];
            r /= shape[k];
        }
        memcpy((char *)y + (size_t)i * elem, (const char *)x + (size_t)off * elem, elem);
    }
}

void kc_scatter_rows(size_t elem, const void *src, const int32_t *idx, void *y, int64_t m,
                     int64_t D) {
    check_elem(elem);
    size_t row = (size_t)D * elem;
    for (int64_t i = 0; i < m; i++)
        memcpy((char *)y + (size_t)idx[i] * row, (const char *)src + (size_t)i * row, row);
}

void kc_zero_rows(size_t elem, void *y, const int32_t *idx, int64_t m, int64_t D) {
    check_elem(elem);
    size_t row = (size_t)D * elem;
    for (int64_t i = 0; i < m; i++) memset((char *)y + (size_t)idx[i] * row, 0, row);
}

void kc_scatter_add_rows(int dt, const void *gy, const int32_t *idx, void *gw, int64_t m, int64_t n,
                         int64_t D) {
    CHECK_FLOAT(dt);
    // f32 sums per target row, rows of gy added in index order, one rounding at the end
    float *acc = xcalloc((size_t)D, sizeof(float));
    bool *done = xcalloc((size_t)(m > 0 ? m : 1), sizeof(bool));
    for (int64_t i = 0; i < n * D; i++) st(gw, dt, i, 0.f);
    for (int64_t i = 0; i < m; i++) {
        int32_t k = idx[i];
        if (done[i] || k < 0 || k >= n) continue;
        memset(acc, 0, sizeof(float) * (size_t)D);
        for (int64_t j = i; j < m; j++) {
            if (idx[j] != k) continue;
            done[j] = true;
            for (int64_t c = 0; c < D; c++) acc[c] += ld(gy, dt, j * D + c);
        }
        for (int64_t c = 0; c < D; c++) st(gw, dt, (int64_t)k * D + c, acc[c]);
    }
    free(done);
    free(acc);
}

// ---- pooling / vision -----------------------------------------------------------------

void kc_mean_pool_fwd(int dt, const void *x, const int32_t *mask, void *y, int64_t B, int64_t T,
                      int64_t D) {
    CHECK_FLOAT(dt);
    for (int64_t b = 0; b < B; b++) {
        int64_t cnt = 0;
        for (int64_t t = 0; t < T; t++) cnt += !mask || mask[b * T + t];
        for (int64_t j = 0; j < D; j++) {
            double s = 0;
            for (int64_t t = 0; t < T; t++)
                if (!mask || mask[b * T + t]) s += ld(x, dt, (b * T + t) * D + j);
            st(y, dt, b * D + j, cnt ? (float)(s / (double)cnt) : 0.f);
        }
    }
}

void kc_mean_pool_bwd(int dt, const void *gy, const int32_t *mask, void *gx, int64_t B, int64_t T,
                      int64_t D) {
    CHECK_FLOAT(dt);
    for (int64_t b = 0; b < B; b++) {
        int64_t cnt = 0;
        for (int64_t t = 0; t < T; t++) cnt += !mask || mask[b * T + t];
        for (int64_t t = 0; t < T; t++) {
            bool on = (!mask || mask[b * T + t]) && cnt;
            for (int64_t j = 0; j < D; j++)
                st(gx, dt, (b * T + t) * D + j, on ? ld(gy, dt, b * D + j) / (float)cnt : 0.f);
        }
    }
}

// torch interpolate's source taps (bilinear, align_corners false), in float.
static void emu_taps(int64_t o, int64_t in, int64_t out, int64_t i[2], float l[2]) {
    const float scale = (float)in / (float)out;
    float src = scale * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    i[0] = (int64_t)src;
    i[1] = i[0] < in - 1 ? i[0] + 1 : i[0];
    l[1] = src - (float)i[0];
    l[0] = 1.0f - l[1];
}

void kc_resize_bilinear_fwd(int dt, const void *x, void *y, int64_t B, int64_t H, int64_t W,
                            int64_t C, int64_t Ho, int64_t Wo) {
    CHECK_FLOAT(dt);
    for (int64_t b = 0; b < B; b++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                int64_t ys[2], xs[2];
                float wy[2], wx[2];
                emu_taps(oy, H, Ho, ys, wy);
                emu_taps(ox, W, Wo, xs, wx);
                for (int64_t c = 0; c < C; c++) {
                    double s = 0;
                    for (int a = 0; a < 2; a++)
                        for (int e = 0; e < 2; e++)
                            s += (double)wy[a] * wx[e] *
                                 ld(x, dt, ((b * H + ys[a]) * W + xs[e]) * C + c);
                    st(y, dt, ((b * Ho + oy) * Wo + ox) * C + c, (float)s);
                }
            }
}

void kc_resize_bilinear_bwd(int dt, const void *gy, void *gx, int64_t B, int64_t H, int64_t W,
                            int64_t C, int64_t Ho, int64_t Wo) {
    CHECK_FLOAT(dt);
    const int64_t n = B * H * W * C;
    double *acc = xcalloc((size_t)n, sizeof(double));  // scatter form
    for (int64_t b = 0; b < B; b++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++) {
                int64_t ys[2], xs[2];
                float wy[2], wx[2];
                emu_taps(oy, H, Ho, ys, wy);
                emu_taps(ox, W, Wo, xs, wx);
                for (int64_t c = 0; c < C; c++) {
                    const double g = ld(gy, dt, ((b * Ho + oy) * Wo + ox) * C + c);
                    for (int a = 0; a < 2; a++)
                        for (int e = 0; e < 2; e++)
                            acc[((b * H + ys[a]) * W + xs[e]) * C + c] += (double)wy[a] * wx[e] * g;
                }
            }
    for (int64_t i = 0; i < n; i++) st(gx, dt, i, (float)acc[i]);
    free(acc);
}

void kc_avg_pool2d_fwd(int dt, const void *x, void *y, int64_t B, int64_t H, int64_t W, int64_t C,
                       int k, int stride) {
    CHECK_FLOAT(dt);
    int64_t Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++)
                for (int64_t c = 0; c < C; c++) {
                    double s = 0;
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++)
                            s += ld(x, dt,
                                    ((b * H + oy * stride + dy) * W + ox * stride + dx) * C + c);
                    st(y, dt, ((b * Ho + oy) * Wo + ox) * C + c, (float)(s / (double)(k * k)));
                }
}

void kc_avg_pool2d_bwd(int dt, const void *gy, void *gx, int64_t B, int64_t H, int64_t W, int64_t C,
                       int k, int stride) {
    CHECK_FLOAT(dt);
    int64_t Ho = (H - k) / stride + 1, Wo = (W - k) / stride + 1, n = B * H * W * C;
    float *acc = xcalloc((size_t)n, sizeof(float));  // scatter form: each window adds its share
    for (int64_t b = 0; b < B; b++)
        for (int64_t oy = 0; oy < Ho; oy++)
            for (int64_t ox = 0; ox < Wo; ox++)
                for (int64_t c = 0; c < C; c++) {
                    float g = ld(gy, dt, ((b * Ho + oy) * Wo + ox) * C + c) / (float)(k * k);
                    for (int dy = 0; dy < k; dy++)
                        for (int dx = 0; dx < k; dx++)
                            acc[((b * H + oy * stride + dy) * W + ox * stride + dx) * C + c] += g;
                }
    for (int64_t i = 0; i < n; i++) st(gx, dt, i, acc[i]);
    free(acc);
}

// Copies between an image (B, C, H, W) and its patch columns (B, (H/p)(W/p), C p p): patch
// (py, px), feature (c, ky, kx). to_cols: img -> cols, else cols -> img (pixels outside
// every patch are left as they are).
static void patch_copy(int dt, const void *img, void *cols, bool to_cols, int64_t B, int64_t C,
                       int64_t H, int64_t W, int p) {
    size_t es = dt_size(dt);
    int64_t ph = H / p, pw = W / p, K = C * p * p;
    for (int64_t b = 0; b < B; b++)
        for (int64_t py = 0; py < ph; py++)
            for (int64_t px = 0; px < pw; px++)
                for (int64_t c = 0; c < C; c++)
                    for (int ky = 0; ky < p; ky++)
                        for (int kx = 0; kx < p; kx++) {
                            int64_t pix = ((b * C + c) * H + py * p + ky) * W + px * p + kx;
                            int64_t col = ((b * ph + py) * pw + px) * K + (c * p + ky) * p + kx;
                            char *ip = (char *)img + (size_t)pix * es;
                            char *cp = (char *)cols + (size_t)col * es;
                            if (to_cols)
                                memcpy(cp, ip, es);
                            else
                                memcpy(ip, cp, es);
                        }
}

void kc_im2col(int dt, const void *img, void *cols, int64_t B, int64_t C, int64_t H, int64_t W,
               int p) {
    CHECK_FLOAT(dt);
    patch_copy(dt, img, cols, true, B, C, H, W, p);
}

// The adjoint of kc_im2col: pixels outside every patch get 0.
void kc_col2im(int dt, const void *cols, void *img, int64_t B, int64_t C, int64_t H, int64_t W,
               int p) {
    CHECK_FLOAT(dt);
    for (int64_t i = 0; i < B * C * H * W; i++) st(img, dt, i, 0.f);
    patch_copy(dt, img, (void *)cols, false, B, C, H, W, p);
}

// torch grid_sample (bilinear, zeros padding, align_corners=False) at pts (x, y) in [-1, 1].
typedef struct {
    int64_t x[2], y[2];
    float wx[2], wy[2];
} corners4;

static corners4 corners_of(float gx, float gy, int64_t H, int64_t W) {
    corners4 c;
    float fx = ((gx + 1.f) * (float)W - 1.f) * 0.5f, fy = ((gy + 1.f) * (float)H - 1.f) * 0.5f;
    float x0 = floorf(fx), y0 = floorf(fy);
    c.x[0] = (int64_t)x0, c.x[1] = c.x[0] + 1;
    c.y[0] = (int64_t)y0, c.y[1] = c.y[0] + 1;
    c.wx[1] = fx - x0, c.wx[0] = 1.f - c.wx[1];
    c.wy[1] = fy - y0, c.wy[0] = 1.f - c.wy[1];
    return c;
}

void kc_bilinear_fwd(int dt, const void *feat, const float *pts, void *y, int64_t B, int64_t H,
                     int64_t W, int64_t C, int64_t P) {
    CHECK_FLOAT(dt);
    for (int64_t b = 0; b < B; b++)
        for (int64_t q = 0; q < P; q++) {
            corners4 k = corners_of(pts[(b * P + q) * 2], pts[(b * P + q) * 2 + 1], H, W);
            for (int64_t c = 0; c < C; c++) {
                float s = 0;
                for (int a = 0; a < 2; a++)
                    for (int e = 0; e < 2; e++)
                        if (k.y[a] >= 0 && k.y[a] < H && k.x[e] >= 0 && k.x[e] < W)
                            s += k.wy[a] * k.wx[e] *
                                 ld(feat, dt, ((b * H + k.y[a]) * W + k.x[e]) * C + c);
                st(y, dt, (b * P + q) * C + c, s);
            }
        }
}

void kc_bilinear_bwd(int dt, const void *gy, const float *pts, float *gfeat, int64_t B, int64_t H,
                     int64_t W, int64_t C, int64_t P) {
    CHECK_FLOAT(dt);
    memset(gfeat, 0, sizeof(float) * (size_t)(B * H * W * C));
    for (int64_t b = 0; b < B; b++)
        for (int64_t q = 0; q < P; q++) {
            corners4 k = corners_of(pts[(b * P + q) * 2], pts[(b * P + q) * 2 + 1], H, W);
            for (int64_t c = 0; c < C; c++) {
                float g = ld(gy, dt, (b * P + q) * C + c);
                for (int a = 0; a < 2; a++)
                    for (int e = 0; e < 2; e++)
                        if (k.y[a] >= 0 && k.y[a] < H && k.x[e] >= 0 && k.x[e] < W)
                            gfeat[((b * H + k.y[a]) * W + k.x[e]) * C + c] += k.wy[a] * k.wx[e] * g;
            }
        }
}

// ---- GEMM -----------------------------------------------------------------------------

static float *to_f32(int dt, const void *p, int64_t n) {
    float *f = xmalloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) f[i] = ld(p, dt, i);
    return f;
}

void kc_gemm_ab(int dt, int cdt, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                float alpha, const void *A, int64_t sa, const void *B, int64_t sb, float beta,
                void *C, int64_t sc, const void *bias) {
    CHECK_FLOAT(dt);
    CHECK_FLOAT(cdt);
    if (cdt != dt && cdt != F32) FAIL("kc_gemm: C dtype %d with inputs %d", cdt, dt);
    if (batch <= 0 || M <= 0 || N <= 0) return;
    if (K < 0 || M > INT32_MAX || N > INT32_MAX || K > INT32_MAX) FAIL("kc_gemm: dims");
    float *c32 = xmalloc(sizeof(float) * (size_t)(M * N));
    for (int64_t b = 0; b < batch; b++) {
        const void *Ab = (const char *)A + (size_t)(b * sa) * dt_size(dt);
        const void *Bb = (const char *)B + (size_t)(b * sb) * dt_size(dt);
        void *Cb = (char *)C + (size_t)(b * sc) * dt_size(cdt);
        // beta == 0: C is not read (it may hold anything, NaN included), as in cuBLAS
        for (int64_t i = 0; i < M * N; i++) c32[i] = beta == 0 ? 0.f : beta * ld(Cb, cdt, i);
        if (K > 0) {
            float *a32 = to_f32(dt, Ab, M * K), *b32 = to_f32(dt, Bb, K * N);
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                        tb ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, a32,
                        ta ? (int)M : (int)K, b32, tb ? (int)K : (int)N, 1.0f, c32, (int)N);
            free(a32);
            free(b32);
        }
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                float v = c32[i * N + j];
                if (bias) v += ld(bias, cdt, j);
                st(Cb, cdt, i * N + j, v);
            }
    }
    free(c32);
}

void kc_gemm(int dt, int cdt, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
             const void *A, int64_t sa, const void *B, int64_t sb, float beta, void *C, int64_t sc,
             const void *bias) {
    kc_gemm_ab(dt, cdt, ta, tb, batch, M, N, K, 1.f, A, sa, B, sb, beta, C, sc, bias);
}

// ---- attention ------------------------------------------------------------------------
// Direct softmax(scale q k^T) v per (b, h, t) in f64, f32 lse; visible keys: kmask[b, s]
// and, when causal, s <= t + S - T. Query head h reads key head h / (Hq / Hkv).

typedef struct {
    int dt;
    const void *q, *k, *v;
    const uint8_t *kmask;
    int64_t B, T, S, Hq, Hkv, hd;
    bool causal;
    float scale;
} attn;

static void attn_check(const attn *a) {
    CHECK_FLOAT(a->dt);
    if (a->hd < 1 || a->hd > 128 || a->Hkv < 1 || a->Hq % a->Hkv)
        FAIL(
            "flash attention: head dim must be 1..128 and Hq %% Hkv == 0 (hd %lld Hq %lld Hkv "
            "%lld)",
            (long long)a->hd, (long long)a->Hq, (long long)a->Hkv);
}

static bool visible(const attn *a, int64_t b, int64_t t, int64_t s) {
    if (a->kmask && !a->kmask[b * a->S + s]) return false;
    return !a->causal || s <= t + a->S - a->T;
}

static int64_t q_at(const attn *a, int64_t b, int64_t t, int64_t h) {
    return ((b * a->T + t) * a->Hq + h) * a->hd;
}
static int64_t k_at(const attn *a, int64_t b, int64_t s, int64_t h) {
    int64_t hk = h / (a->Hq / a->Hkv);
    return ((b * a->S + s) * a->Hkv + hk) * a->hd;
}

// Scores of row (b, h, t) into sc[S] (-inf where not visible); returns the max.
static double attn_scores(const attn *a, int64_t b, int64_t h, int64_t t, double *sc) {
    double mx = -INFINITY;
    for (int64_t s = 0; s < a->S; s++) {
        sc[s] = -INFINITY;
        if (!visible(a, b, t, s)) continue;
        double d = 0;
        for (int64_t j = 0; j < a->hd; j++)
            d += (double)ld(a->q, a->dt, q_at(a, b, t, h) + j) *
                 ld(a->k, a->dt, k_at(a, b, s, h) + j);
        sc[s] = d * a->scale;
        if (sc[s] > mx) mx = sc[s];
    }
    return mx;
}

static void attn_fwd(const attn *a, void *o, float *lse) {
    attn_check(a);
    double *sc = xmalloc(sizeof(double) * (size_t)(a->S > 0 ? a->S : 1));
    double *acc = xmalloc(sizeof(double) * (size_t)a->hd);
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < a->Hq; h++)
            for (int64_t t = 0; t < a->T; t++) {
                double mx = attn_scores(a, b, h, t, sc), l = 0;
                memset(acc, 0, sizeof(double) * (size_t)a->hd);
                if (mx != -INFINITY)
                    for (int64_t s = 0; s < a->S; s++) {
                        if (sc[s] == -INFINITY) continue;
                        double p = exp(sc[s] - mx);
                        l += p;
                        for (int64_t j = 0; j < a->hd; j++)
                            acc[j] += p * ld(a->v, a->dt, k_at(a, b, s, h) + j);
                    }
                for (int64_t j = 0; j < a->hd; j++)
                    st(o, a->dt, q_at(a, b, t, h) + j, l > 0 ? (float)(acc[j] / l) : 0.f);
                lse[(b * a->Hq + h) * a->T + t] = l > 0 ? (float)(mx + log(l)) : -INFINITY;
            }
    free(acc);
    free(sc);
}

// p = exp(s - lse), dp = dout . v, ds = p (dp - delta) with delta = dout . o:
// dq = scale sum_s ds k, dk = scale sum_{t, heads of the group} ds q, dv = sum p dout.
static void attn_bwd(const attn *a, const void *o, const float *lse, const void *dout, void *dq,
                     void *dk, void *dv, float *delta) {
    attn_check(a);
    int64_t nq = a->B * a->T * a->Hq * a->hd, nk = a->B * a->S * a->Hkv * a->hd;
    double *gq = xcalloc((size_t)nq, sizeof(double)), *gk = xcalloc((size_t)nk, sizeof(double));
    double *gv = xcalloc((size_t)nk, sizeof(double));
    double *sc = xmalloc(sizeof(double) * (size_t)(a->S > 0 ? a->S : 1));
    for (int64_t b = 0; b < a->B; b++)
        for (int64_t h = 0; h < a->Hq; h++)
            for (int64_t t = 0; t < a->T; t++) {
                int64_t qi = q_at(a, b, t, h), row = (b * a->Hq + h) * a->T + t;
                double dl = 0;
                for (int64_t j = 0; j < a->hd; j++)
                    dl += (double)ld(dout, a->dt, qi + j) * ld(o, a->dt, qi + j);
                delta[row] = (float)dl;
                float L = lse[row];
                if (L == -INFINITY) continue;  // no visible key: zero gradients
                attn_scores(a, b, h, t, sc);
                for (int64_t s = 0; s < a->S; s++) {
                    if (sc[s] == -INFINITY) continue;
                    int64_t ki = k_at(a, b, s, h);
                    double p = exp(sc[s] - (double)L), dp = 0;
                    for (int64_t j = 0; j < a->hd; j++)
                        dp += (double)ld(dout, a->dt, qi + j) * ld(a->v, a->dt, ki + j);
                    double ds = p * (dp - (double)delta[row]);
                    for (int64_t j = 0; j < a->hd; j++) {
                        gq[qi + j] += ds * ld(a->k, a->dt, ki + j) * a->scale;
                        gk[ki + j] += ds * ld(a->q, a->dt, qi + j) * a->scale;
                        gv[ki + j] += p * ld(dout, a->dt, qi + j);
                    }
                }
            }
    for (int64_t i = 0; i < nq && dq; i++) st(dq, a->dt, i, (float)gq[i]);
    for (int64_t i = 0; i < nk; i++) {
        if (dk) st(dk, a->dt, i, (float)gk[i]);
        if (dv) st(dv, a->dt, i, (float)gv[i]);
    }
    free(sc);
    free(gv);
    free(gk);
    free(gq);
}

void kc_flash_fwd(int dt, const void *q, const void *k, const void *v, const uint8_t *kmask,
                  void *o, float *lse, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                  int64_t hd, bool causal, float scale) {
    attn a = {dt, q, k, v, kmask, B, T, S, Hq, Hkv, hd, causal, scale};
    attn_fwd(&a, o, lse);
}

void kc_flash_bwd(int dt, const void *q, const void *k, const void *v, const uint8_t *kmask,
                  const void *o, const float *lse, const void *dout, void *dq, void *dk, void *dv,
                  float *delta, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                  int64_t hd, bool causal, float scale) {
    attn a = {dt, q, k, v, kmask, B, T, S, Hq, Hkv, hd, causal, scale};
    attn_bwd(&a, o, lse, dout, dq, dk, dv, delta);
}

// The tensor-core family has the same contract (bf16, hd 64 / 80 / 128): the same math.
bool kc_flash_mma_supported(int dt, int64_t hd) {
    return dt == BF16 && (hd == 64 || hd == 80 || hd == 128);
}

static void mma_check(int64_t hd) {
    if (!kc_flash_mma_supported(BF16, hd))
        FAIL("flash attention (mma): head dim %lld", (long long)hd);
}

void kc_flash_mma_fwd(const void *q, const void *k, const void *v, const uint8_t *kmask, void *o,
                      float *lse, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                      int64_t hd, bool causal, float scale) {
    mma_check(hd);
    kc_flash_fwd(BF16, q, k, v, kmask, o, lse, B, T, S, Hq, Hkv, hd, causal, scale);
}

void kc_flash_mma_bwd(const void *q, const void *k, const void *v, const uint8_t *kmask,
                      const void *o, const float *lse, const void *dout, void *dq, void *dk,
                      void *dv, float *delta, int64_t B, int64_t T, int64_t S, int64_t Hq,
                      int64_t Hkv, int64_t hd, bool causal, float scale) {
    mma_check(hd);
    kc_flash_bwd(BF16, q, k, v, kmask, o, lse, dout, dq, dk, dv, delta, B, T, S, Hq, Hkv, hd,
                 causal, scale);
}

// ---- cuDNN: never available in the emulator ---------------------------------------------

bool kc_cudnn_attention_available(void) { return false; }

int64_t kc_cudnn_attn_prepare(bool fwd, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                              int64_t hd, bool causal, bool padded) {
    (void)fwd, (void)B, (void)T, (void)S, (void)Hq, (void)Hkv, (void)hd, (void)causal, (void)padded;
    return -1;
}

const char *kc_cudnn_attn_why(void) { return "cuDNN is not available in the CUDA emulator"; }

void kc_cudnn_attn_fwd(const void *q, const void *k, const void *v, void *o, float *lse,
                       const int32_t *seqlens, void *ws, int64_t B, int64_t T, int64_t S,
                       int64_t Hq, int64_t Hkv, int64_t hd, bool causal, float scale) {
    (void)q, (void)k, (void)v, (void)o, (void)lse, (void)seqlens, (void)ws, (void)B, (void)T;
    (void)S, (void)Hq, (void)Hkv, (void)hd, (void)causal, (void)scale;
    FAIL("kc_cudnn_attn_fwd called, but kc_cudnn_attn_prepare never accepts a shape here");
}

void kc_cudnn_attn_bwd(const void *q, const void *k, const void *v, const void *o, const float *lse,
                       const void *dout, void *dq, void *dk, void *dv, const int32_t *seqlens,
                       void *ws, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                       int64_t hd, bool causal, float scale) {
    (void)q, (void)k, (void)v, (void)o, (void)lse, (void)dout, (void)dq, (void)dk, (void)dv;
    (void)seqlens, (void)ws, (void)B, (void)T, (void)S, (void)Hq, (void)Hkv, (void)hd;
    (void)causal, (void)scale;
    FAIL("kc_cudnn_attn_bwd called, but kc_cudnn_attn_prepare never accepts a shape here");
}
