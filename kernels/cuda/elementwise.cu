// kernels/cuda/elementwise.cu - conversions, fills, elementwise maps (128-bit packed when
// aligned), row/column sums, activations, swiglu, Philox dropout, fused AdamW.
#include "cuda_common.cuh"

extern "C" {
#include "alloc.h"
}

#define THREADS 256

// ---- generic maps -------------------------------------------------------------------

template <class T, class F>
__global__ void map2_vec(const T *__restrict__ a, const T *__restrict__ b, T *__restrict__ y,
                         int64_t nvec, F f) {
    typedef Pack<T> P;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nvec;
         i += (int64_t)gridDim.x * blockDim.x) {
        P pa = reinterpret_cast<const P *>(a)[i], pb;
        if (b) pb = reinterpret_cast<const P *>(b)[i];
        P py;
#pragma unroll
        for (int j = 0; j < P::N; j++)
            py.v[j] = from_f<T>(f(to_f(pa.v[j]), b ? to_f(pb.v[j]) : 0.f));
        reinterpret_cast<P *>(y)[i] = py;
    }
}

template <class T, class F>
__global__ void map2_scalar(const T *__restrict__ a, const T *__restrict__ b, T *__restrict__ y,
                            int64_t start, int64_t n, F f) {
    for (int64_t i = start + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f<T>(f(to_f(a[i]), b ? to_f(b[i]) : 0.f));
}

static bool aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

// y[i] = f(a[i], b[i]) (b may be NULL: f gets 0).
template <class T, class F>
static void map2(const void *a, const void *b, void *y, int64_t n, F f) {
    if (n <= 0) return;
    cudaStream_t s = kc_stream();
    const int N = Pack<T>::N;
    int64_t start = 0;
    if (aligned16(a) && aligned16(y) && (!b || aligned16(b))) {
        int64_t nvec = n / N;
        if (nvec) {
            map2_vec<T><<<kc_blocks(nvec, THREADS), THREADS, 0, s>>>(
                (const T *)a, (const T *)b, (T *)y, nvec, f);
            ET_KERNEL_CHECK();
        }
        start = nvec * N;
    }
    if (start < n) {
        map2_scalar<T><<<kc_blocks(n - start, THREADS), THREADS, 0, s>>>(
            (const T *)a, (const T *)b, (T *)y, start, n, f);
        ET_KERNEL_CHECK();
    }
}

// ---- conversions and fills ----------------------------------------------------------

template <class TY, class TX>
__global__ void convert_kernel(TY *y, const TX *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f<TY>(to_f(x[i]));
}
template <class TY, class TX>
__global__ void convert_int_kernel(TY *y, const TX *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = (TY)x[i];
}

static bool is_float(int dt) { return dt == KC_F32 || dt == KC_BF16 || dt == KC_F16; }

extern "C" void kc_convert(void *y, int ydt, const void *x, int xdt, int64_t n) {
    if (n <= 0) return;
    cudaStream_t s = kc_stream();
    if (ydt == xdt) {
        size_t es = ydt == KC_F32 || ydt == KC_I32 ? 4 : ydt == KC_U8 ? 1 : 2;
        ET_CUDA_CHECK(cudaMemcpyAsync(y, x, (size_t)n * es, cudaMemcpyDeviceToDevice, s));
        return;
    }
    unsigned g = kc_blocks(n, THREADS);
    if (is_float(ydt) && is_float(xdt)) {
        DISPATCH_FLOAT(ydt, {
            typedef T TY;
            DISPATCH_FLOAT(xdt, convert_kernel<TY, T><<<g, THREADS, 0, s>>>((TY *)y, (const T *)x,
                                                                            n));
        });
    } else if (ydt == KC_I32 && xdt == KC_U8) {
        convert_int_kernel<<<g, THREADS, 0, s>>>((int32_t *)y, (const uint8_t *)x, n);
    } else if (ydt == KC_U8 && xdt == KC_I32) {
        convert_int_kernel<<<g, THREADS, 0, s>>>((uint8_t *)y, (const int32_t *)x, n);
    } else if (is_float(ydt) && xdt == KC_I32) {
        DISPATCH_FLOAT(ydt, convert_int_kernel<<<g, THREADS, 0, s>>>((T *)y, (const int32_t *)x, n));
    } else {
        et_cuda_fail("kc_convert", "unsupported dtype pair on CUDA", __FILE__, __LINE__);
    }
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void fill_kernel(T *y, T v, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = v;
}

__global__ void fill_bf16_kernel(bf16 *y, float v, int64_t n) {
    bf16 b = __float2bfloat16_rn(v);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = b;
}
__global__ void fill_f16_kernel(__half *y, float v, int64_t n) {
    __half b = __float2half_rn(v);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = b;
}

extern "C" void kc_fill(void *y, int dt, double value, int64_t n) {
    if (n <= 0) return;
    cudaStream_t s = kc_stream();
    unsigned g = kc_blocks(n, THREADS);
    switch (dt) {
        case KC_F32:
            fill_kernel<<<g, THREADS, 0, s>>>((float *)y, (float)value, n);
            break;
        case KC_BF16:
            fill_bf16_kernel<<<g, THREADS, 0, s>>>((bf16 *)y, (float)value, n);
            break;
        case KC_F16:
            fill_f16_kernel<<<g, THREADS, 0, s>>>((__half *)y, (float)value, n);
            break;
        case KC_I32:
            fill_kernel<<<g, THREADS, 0, s>>>((int32_t *)y, (int32_t)value, n);
            break;
        case KC_U8:
            fill_kernel<<<g, THREADS, 0, s>>>((uint8_t *)y, (uint8_t)value, n);
            break;
        default:
            et_cuda_fail("kc_fill", "unsupported dtype on CUDA", __FILE__, __LINE__);
    }
    ET_KERNEL_CHECK();
}

template <class TY, class TX>
__global__ void add_into_kernel(TY *y, const TX *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f<TY>(to_f(y[i]) + to_f(x[i]));
}

extern "C" void kc_add_into(void *y, int ydt, const void *x, int xdt, int64_t n) {
    if (n <= 0) return;
    if (ydt == xdt) {
        DISPATCH_FLOAT(ydt, map2<T>(y, x, y, n, [] __device__(float a, float b) { return a + b; }));
        return;
    }
    unsigned g = kc_blocks(n, THREADS);
    cudaStream_t s = kc_stream();
    DISPATCH_FLOAT(ydt, {
        typedef T TY;
        DISPATCH_FLOAT(xdt, add_into_kernel<TY, T><<<g, THREADS, 0, s>>>((TY *)y, (const T *)x, n));
    });
    ET_KERNEL_CHECK();
}

// ---- arithmetic ---------------------------------------------------------------------

extern "C" void kc_binary(int op, int dt, const void *a, const void *b, void *y, int64_t n) {
    DISPATCH_FLOAT(dt, {
        if (op == KC_ADD)
            map2<T>(a, b, y, n, [] __device__(float p, float q) { return p + q; });
        else if (op == KC_SUB)
            map2<T>(a, b, y, n, [] __device__(float p, float q) { return p - q; });
        else
            map2<T>(a, b, y, n, [] __device__(float p, float q) { return p * q; });
    });
}

extern "C" void kc_scale(int dt, const void *x, void *y, int64_t n, float s) {
    DISPATCH_FLOAT(dt, map2<T>(x, nullptr, y, n, [s] __device__(float p, float) { return p * s; }));
}

template <class T>
__global__ void add_bcast_kernel(const T *a, const T *b, T *y, int64_t rows, int64_t nb) {
    int64_t n = rows * nb;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f<T>(to_f(a[i]) + to_f(b[i % nb]));
}

extern "C" void kc_add_bcast(int dt, const void *a, const void *b, void *y, int64_t rows,
                             int64_t nb) {
    if (rows * nb <= 0) return;
    DISPATCH_FLOAT(dt, add_bcast_kernel<T><<<kc_blocks(rows * nb, THREADS), THREADS, 0,
                                             kc_stream()>>>((const T *)a, (const T *)b, (T *)y,
                                                            rows, nb));
    ET_KERNEL_CHECK();
}

// Column sums in two deterministic passes: partial sums over chunks of rows, then the sum
// of the partials in chunk order.
#define COLSUM_CHUNK 256
template <class T>
__global__ void colsum_partial(const T *x, float *part, int64_t rows, int64_t nb) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    int64_t r0 = (int64_t)blockIdx.y * COLSUM_CHUNK;
    if (c >= nb) return;
    int64_t r1 = min(rows, r0 + COLSUM_CHUNK);
    float s = 0;
    for (int64_t r = r0; r < r1; r++) s += to_f(x[r * nb + c]);
    part[(int64_t)blockIdx.y * nb + c] = s;
}
template <class T>
__global__ void colsum_final(const float *part, T *y, int64_t chunks, int64_t nb) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= nb) return;
    float s = 0;
    for (int64_t k = 0; k < chunks; k++) s += part[k * nb + c];
    y[c] = from_f<T>(s);
}

extern "C" void kc_colsum(int dt, const void *x, void *y, int64_t rows, int64_t nb) {
    if (nb <= 0) return;
    int64_t chunks = (rows + COLSUM_CHUNK - 1) / COLSUM_CHUNK;
    if (chunks < 1) chunks = 1;
    int dev = et_cuda_current();
    et_device d = {ET_CUDA, dev};
    float *part = (float *)et_alloc(d, (size_t)(chunks * nb) * sizeof(float));
    if (!part) et_cuda_fail("kc_colsum", "out of device memory", __FILE__, __LINE__);
    cudaStream_t s = kc_stream();
    if (rows == 0) ET_CUDA_CHECK(cudaMemsetAsync(part, 0, (size_t)nb * sizeof(float), s));
    dim3 g1((unsigned)((nb + 127) / 128), (unsigned)(rows ? chunks : 0));
    DISPATCH_FLOAT(dt, {
        if (rows) colsum_partial<T><<<g1, 128, 0, s>>>((const T *)x, part, rows, nb);
        colsum_final<T><<<(unsigned)((nb + 127) / 128), 128, 0, s>>>(part, (T *)y, chunks, nb);
    });
    ET_KERNEL_CHECK();
    et_free(d, part);
}

template <class T>
__global__ void rowsum_kernel(const T *x, T *y, int64_t rows, int64_t d, float scale) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float s = 0;
        for (int64_t j = threadIdx.x; j < d; j += blockDim.x) s += to_f(x[r * d + j]);
        s = block_sum(s);
        if (threadIdx.x == 0) y[r] = from_f<T>(s * scale);
    }
}

extern "C" void kc_rowsum(int dt, const void *x, void *y, int64_t rows, int64_t d, float scale) {
    if (rows <= 0) return;
    unsigned g = (unsigned)(rows < 65535 ? rows : 65535);
    DISPATCH_FLOAT(dt, rowsum_kernel<T><<<g, THREADS, 0, kc_stream()>>>((const T *)x, (T *)y, rows,
                                                                        d, scale));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void rowsum_bwd_kernel(const T *gy, T *gx, int64_t rows, int64_t d, float scale) {
    int64_t n = rows * d;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        gx[i] = from_f<T>(to_f(gy[i / d]) * scale);
}

extern "C" void kc_rowsum_bwd(int dt, const void *gy, void *gx, int64_t rows, int64_t d,
                              float scale) {
    if (rows * d <= 0) return;
    DISPATCH_FLOAT(dt, rowsum_bwd_kernel<T><<<kc_blocks(rows * d, THREADS), THREADS, 0,
                                              kc_stream()>>>((const T *)gy, (T *)gx, rows, d,
                                                             scale));
    ET_KERNEL_CHECK();
}

// ---- activations --------------------------------------------------------------------

__device__ __forceinline__ float sigm(float x) { return 1.f / (1.f + expf(-x)); }

extern "C" void kc_act_fwd(int kind, int dt, const void *x, void *y, int64_t n) {
    DISPATCH_FLOAT(dt, {
        if (kind == KC_SILU)
            map2<T>(x, nullptr, y, n, [] __device__(float v, float) { return v * sigm(v); });
        else if (kind == KC_GELU)
            map2<T>(x, nullptr, y, n, [] __device__(float v, float) {
                return 0.5f * v * (1.f + erff(v * 0.70710678118654752440f));
            });
        else if (kind == KC_RELU)
            map2<T>(x, nullptr, y, n, [] __device__(float v, float) { return v > 0.f ? v : 0.f; });
        else
            map2<T>(x, nullptr, y, n,
                    [] __device__(float v, float) { return v * sigm(1.702f * v); });
    });
}

extern "C" void kc_act_bwd(int kind, int dt, const void *gy, const void *x, void *gx, int64_t n) {
    DISPATCH_FLOAT(dt, {
        if (kind == KC_SILU)
            map2<T>(gy, x, gx, n, [] __device__(float g, float v) {
                float s = sigm(v);
                return g * s * (1.f + v * (1.f - s));
            });
        else if (kind == KC_GELU)
            map2<T>(gy, x, gx, n, [] __device__(float g, float v) {
                float cdf = 0.5f * (1.f + erff(v * 0.70710678118654752440f));
                float pdf = 0.39894228040143267794f * expf(-0.5f * v * v);
                return g * (cdf + v * pdf);
            });
        else if (kind == KC_RELU)
            map2<T>(gy, x, gx, n, [] __device__(float g, float v) { return v > 0.f ? g : 0.f; });
        else
            map2<T>(gy, x, gx, n, [] __device__(float g, float v) {
                float s = sigm(1.702f * v);
                return g * (s + 1.702f * v * s * (1.f - s));
            });
    });
}

extern "C" void kc_swiglu_fwd(int dt, const void *g, const void *u, void *y, int64_t n) {
    DISPATCH_FLOAT(dt, map2<T>(g, u, y, n, [] __device__(float a, float b) {
                       return a * sigm(a) * b;
                   }));
}

template <class T>
__global__ void swiglu_bwd_kernel(const T *dy, const T *g, const T *u, T *dg, T *du, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float a = to_f(g[i]), b = to_f(u[i]), d = to_f(dy[i]);
        float s = sigm(a), si = a * s;
        if (dg) dg[i] = from_f<T>(d * b * s * (1.f + a * (1.f - s)));
        if (du) du[i] = from_f<T>(d * si);
    }
}

extern "C" void kc_swiglu_bwd(int dt, const void *dy, const void *g, const void *u, void *dg,
                              void *du, int64_t n) {
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, swiglu_bwd_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)dy, (const T *)g, (const T *)u, (T *)dg, (T *)du, n));
    ET_KERNEL_CHECK();
}

// ---- dropout: the Philox4x32-10 stream of core/rng.c ---------------------------------

__device__ __forceinline__ uint32_t philox_word(uint64_t seed, uint64_t pos) {
    uint64_t ctr = pos / 4;
    uint32_t c0 = (uint32_t)ctr, c1 = (uint32_t)(ctr >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma unroll
    for (int r = 0; r < 10; r++) {
        if (r) {
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    uint32_t w[4] = {c0, c1, c2, c3};
    return w[pos % 4];
}

template <class T>
__global__ void dropout_kernel(const T *x, T *y, uint8_t *keep, int64_t n, float p, float scale,
                               uint64_t seed, uint64_t offset) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float u = (float)(philox_word(seed, offset + (uint64_t)i) >> 8) * (1.0f / 16777216.0f);
        uint8_t k = u >= p;
        keep[i] = k;
        y[i] = from_f<T>(k ? to_f(x[i]) * scale : 0.f);
    }
}

extern "C" void kc_dropout(int dt, const void *x, void *y, uint8_t *keep, int64_t n, float p,
                           float scale, uint64_t seed, uint64_t offset) {
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, dropout_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)x, (T *)y, keep, n, p, scale, seed, offset));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void masked_scale_kernel(const T *x, const uint8_t *keep, T *y, int64_t n,
                                    float scale) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        y[i] = from_f<T>(keep[i] ? to_f(x[i]) * scale : 0.f);
}

extern "C" void kc_masked_scale(int dt, const void *x, const uint8_t *keep, void *y, int64_t n,
                                float scale) {
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, masked_scale_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)x, keep, (T *)y, n, scale));
    ET_KERNEL_CHECK();
}

// ---- AdamW (core/optim.c arithmetic: fmaf = its single-rounding fma_f) ----------------

struct AdamConsts {
    float decay, w1, one_m_w1, b2, c2, neg_step, bc2, eps;
    bool small;
};

template <class H>
__global__ void adamw_kernel(float *w, const float *g, float *m, float *v, H *half, int64_t n,
                             AdamConsts c) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float wi = w[i] * c.decay;
        float gi = g[i], mi = m[i];
        mi = c.small ? __fmaf_rn(c.w1, gi - mi, mi) : __fmaf_rn(-(gi - mi), c.one_m_w1, gi);
        float vi = __fmaf_rn(c.c2 * gi, gi, v[i] * c.b2);
        float denom = __fdiv_rn(__fsqrt_rn(vi), c.bc2) + c.eps;
        wi = wi + __fdiv_rn(c.neg_step * mi, denom);
        m[i] = mi;
        v[i] = vi;
        w[i] = wi;
        if (half) half[i] = from_f<H>(wi);
    }
}

extern "C" void kc_adamw(float *w, const float *g, float *m, float *v, void *half, int hdt,
                         int64_t n, const double cd[7]) {
    if (n <= 0) return;
    AdamConsts c;
    c.decay = (float)cd[0];
    c.w1 = (float)cd[1];
    c.one_m_w1 = 1.0f - c.w1;
    c.small = fabsf(c.w1) < 0.5f;
    c.b2 = (float)cd[2];
    c.c2 = (float)cd[3];
    c.neg_step = (float)cd[4];
    c.bc2 = (float)cd[5];
    c.eps = (float)cd[6];
    unsigned gr = kc_blocks(n, THREADS);
    cudaStream_t s = kc_stream();
    if (!half)
        adamw_kernel<float><<<gr, THREADS, 0, s>>>(w, g, m, v, (float *)nullptr, n, c);
    else if (hdt == KC_BF16)
        adamw_kernel<bf16><<<gr, THREADS, 0, s>>>(w, g, m, v, (bf16 *)half, n, c);
    else
        adamw_kernel<__half><<<gr, THREADS, 0, s>>>(w, g, m, v, (__half *)half, n, c);
    ET_KERNEL_CHECK();
}
