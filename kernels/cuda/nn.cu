// kernels/cuda/nn.cu - norms (+ fused residual add), rope, softmax, fused cross-entropy,
// row gather/scatter (deterministic scatter-add), pooling, im2col, bilinear sampling.
#include <cub/cub.cuh>

#include "cuda_common.cuh"

extern "C" {
#include "alloc.h"
}

#define THREADS 256

static void *scratch_alloc(size_t bytes) {
    et_device d = {ET_CUDA, et_cuda_current()};
    void *p = et_alloc(d, bytes);
    if (!p) et_cuda_fail("scratch", "out of device memory", __FILE__, __LINE__);
    return p;
}
static void scratch_free(void *p) {
    et_device d = {ET_CUDA, et_cuda_current()};
    et_free(d, p);
}

static unsigned row_grid(int64_t rows) { return (unsigned)(rows < 65535 * 16 ? rows : 65535 * 16); }

// Per-column weight gradients in two deterministic passes: part[chunk, c] = sum over rows
// of the chunk of f(r, c), then the chunk sum. MODE 0: dw = dy x rstd (rmsnorm);
// 1: dw = dy (x - mean) rstd, 2: db = dy (layernorm).
#define WCHUNK 256
template <class T, int MODE>
__global__ void wgrad_partial(const T *dy, const T *x, const float *mean, const float *rstd,
                              float *part, int64_t rows, int64_t D) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= D) return;
    int64_t r0 = (int64_t)blockIdx.y * WCHUNK, r1 = min(rows, r0 + WCHUNK);
    float s = 0;
    for (int64_t r = r0; r < r1; r++) {
        float g = to_f(dy[r * D + c]);
        if (MODE == 0) s += g * to_f(x[r * D + c]) * rstd[r];
        if (MODE == 1) s += g * (to_f(x[r * D + c]) - mean[r]) * rstd[r];
        if (MODE == 2) s += g;
    }
    part[(int64_t)blockIdx.y * D + c] = s;
}
__global__ void wgrad_final(const float *part, float *out, int64_t chunks, int64_t D) {
    int64_t c = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (c >= D) return;
    float s = 0;
    for (int64_t k = 0; k < chunks; k++) s += part[k * D + c];
    out[c] = s;
}
template <class T, int MODE>
static void wgrad(const T *dy, const T *x, const float *mean, const float *rstd, float *out,
                  int64_t rows, int64_t D) {
    cudaStream_t s = kc_stream();
    int64_t chunks = (rows + WCHUNK - 1) / WCHUNK;
    if (chunks == 0) {
        ET_CUDA_CHECK(cudaMemsetAsync(out, 0, (size_t)D * sizeof(float), s));
        return;
    }
    float *part = (float *)scratch_alloc((size_t)(chunks * D) * sizeof(float));
    dim3 g((unsigned)((D + 127) / 128), (unsigned)chunks);
    wgrad_partial<T, MODE><<<g, 128, 0, s>>>(dy, x, mean, rstd, part, rows, D);
    ET_KERNEL_CHECK();
    wgrad_final<<<(unsigned)((D + 127) / 128), 128, 0, s>>>(part, out, chunks, D);
    ET_KERNEL_CHECK();
    scratch_free(part);
}

// ---- rmsnorm --------------------------------------------------------------------------

template <class T>
__global__ void rmsnorm_fwd_kernel(const T *x, const T *res, T *xsum, const float *w, T *y,
                                   float *rstd, int64_t rows, int64_t D, float eps) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * D;
        float ss = 0;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float v = to_f(xr[j]);
            if (res) {
                T t = from_f<T>(v + to_f(res[r * D + j]));
                xsum[r * D + j] = t;
                v = to_f(t);
            }
            ss += v * v;
        }
        ss = block_sum(ss);
        float rs = rsqrtf(ss / (float)D + eps);
        if (threadIdx.x == 0) rstd[r] = rs;
        const T *src = res ? xsum + r * D : xr;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float v = to_f(src[j]) * rs;
            // HF: normalise in f32, cast to the activation dtype, then multiply by w
            v = to_f(from_f<T>(v));
            if (w) v *= w[j];
            y[r * D + j] = from_f<T>(v);
        }
    }
}

extern "C" void kc_rmsnorm_fwd(int dt, const void *x, const void *res, void *xsum, const float *w,
                               void *y, float *rstd, int64_t rows, int64_t D, float eps) {
    if (rows <= 0) return;
    DISPATCH_FLOAT(dt, rmsnorm_fwd_kernel<T><<<row_grid(rows), THREADS, 0, kc_stream()>>>(
                           (const T *)x, (const T *)res, (T *)xsum, w, (T *)y, rstd, rows, D, eps));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void rmsnorm_bwd_kernel(const T *dy, const T *x, const float *w, const float *rstd,
                                   T *dx, int64_t rows, int64_t D) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float rs = rstd[r], dot = 0;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float g = to_f(dy[r * D + j]) * (w ? w[j] : 1.f);
            dot += g * to_f(x[r * D + j]);
        }
        dot = block_sum(dot) / (float)D;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float g = to_f(dy[r * D + j]) * (w ? w[j] : 1.f);
            dx[r * D + j] = from_f<T>(rs * (g - to_f(x[r * D + j]) * rs * rs * dot));
        }
    }
}

extern "C" void kc_rmsnorm_bwd(int dt, const void *dy, const void *x, const float *w,
                               const float *rstd, void *dx, float *dw, int64_t rows, int64_t D) {
    DISPATCH_FLOAT(dt, {
        if (dx && rows > 0) {
            rmsnorm_bwd_kernel<T><<<row_grid(rows), THREADS, 0, kc_stream()>>>(
                (const T *)dy, (const T *)x, w, rstd, (T *)dx, rows, D);
            ET_KERNEL_CHECK();
        }
        if (dw) wgrad<T, 0>((const T *)dy, (const T *)x, nullptr, rstd, dw, rows, D);
    });
}

// ---- layernorm ------------------------------------------------------------------------

template <class T>
__global__ void layernorm_fwd_kernel(const T *x, const T *res, T *xsum, const float *w,
                                     const float *b, T *y, float *mean, float *rstd, int64_t rows,
                                     int64_t D, float eps) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * D;
        float s = 0;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float v = to_f(xr[j]);
            if (res) {
                T t = from_f<T>(v + to_f(res[r * D + j]));
                xsum[r * D + j] = t;
                v = to_f(t);
            }
            s += v;
        }
        const T *src = res ? xsum + r * D : xr;
        float mu = block_sum(s) / (float)D, var = 0;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float d = to_f(src[j]) - mu;
            var += d * d;
        }
        float rs = rsqrtf(block_sum(var) / (float)D + eps);
        if (threadIdx.x == 0) {
            mean[r] = mu;
            rstd[r] = rs;
        }
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float v = (to_f(src[j]) - mu) * rs;
            if (w) v *= w[j];
            if (b) v += b[j];
            y[r * D + j] = from_f<T>(v);
        }
    }
}

extern "C" void kc_layernorm_fwd(int dt, const void *x, const void *res, void *xsum,
                                 const float *w, const float *b, void *y, float *mean, float *rstd,
                                 int64_t rows, int64_t D, float eps) {
    if (rows <= 0) return;
    DISPATCH_FLOAT(dt, layernorm_fwd_kernel<T><<<row_grid(rows), THREADS, 0, kc_stream()>>>(
                           (const T *)x, (const T *)res, (T *)xsum, w, b, (T *)y, mean, rstd, rows,
                           D, eps));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void layernorm_bwd_kernel(const T *dy, const T *x, const float *w, const float *mean,
                                     const float *rstd, T *dx, int64_t rows, int64_t D) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float mu = mean[r], rs = rstd[r], sg = 0, sgx = 0;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float g = to_f(dy[r * D + j]) * (w ? w[j] : 1.f);
            float xh = (to_f(x[r * D + j]) - mu) * rs;
            sg += g;
            sgx += g * xh;
        }
        sg = block_sum(sg) / (float)D;
        sgx = block_sum(sgx) / (float)D;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) {
            float g = to_f(dy[r * D + j]) * (w ? w[j] : 1.f);
            float xh = (to_f(x[r * D + j]) - mu) * rs;
            dx[r * D + j] = from_f<T>(rs * (g - sg - xh * sgx));
        }
    }
}

extern "C" void kc_layernorm_bwd(int dt, const void *dy, const void *x, const float *w,
                                 const float *mean, const float *rstd, void *dx, float *dw,
                                 float *db, int64_t rows, int64_t D) {
    DISPATCH_FLOAT(dt, {
        if (dx && rows > 0) {
            layernorm_bwd_kernel<T><<<row_grid(rows), THREADS, 0, kc_stream()>>>(
                (const T *)dy, (const T *)x, w, mean, rstd, (T *)dx, rows, D);
            ET_KERNEL_CHECK();
        }
        if (dw) wgrad<T, 1>((const T *)dy, (const T *)x, mean, rstd, dw, rows, D);
        if (db) wgrad<T, 2>((const T *)dy, (const T *)x, mean, rstd, db, rows, D);
    });
}

// ---- rope -----------------------------------------------------------------------------

template <class T>
__global__ void rope_table_kernel(const int32_t *pos, const float *inv, float *c, float *s,
                                  int64_t BT, int64_t half) {
    int64_t n = BT * half;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        float a = (float)pos[i / half] * inv[i % half];
        c[i] = to_f(from_f<T>(cosf(a)));
        s[i] = to_f(from_f<T>(sinf(a)));
    }
}

extern "C" void kc_rope_table(int dt, const int32_t *pos, const float *inv_freq, float *cos,
                              float *sin, int64_t BT, int64_t half) {
    if (BT * half <= 0) return;
    DISPATCH_FLOAT(dt, rope_table_kernel<T><<<kc_blocks(BT * half, THREADS), THREADS, 0,
                                              kc_stream()>>>(pos, inv_freq, cos, sin, BT, half));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void rope_kernel(const T *x, const float *cs, const float *sn, T *y, int64_t BT,
                            int64_t H, int64_t hd, float sign) {
    int64_t half = hd / 2, n = BT * H * half;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = i % half, bh = i / half, bt = bh / H;
        const T *xr = x + bh * hd;
        float c = cs[bt * half + j], s = sign * sn[bt * half + j];
        float a = to_f(xr[j]), b = to_f(xr[j + half]);
        y[bh * hd + j] = from_f<T>(a * c - b * s);
        y[bh * hd + j + half] = from_f<T>(b * c + a * s);
    }
}

extern "C" void kc_rope(int dt, const void *x, const float *cos, const float *sin, void *y,
                        int64_t BT, int64_t H, int64_t hd, int sign) {
    int64_t n = BT * H * (hd / 2);
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, rope_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)x, cos, sin, (T *)y, BT, H, hd, (float)sign));
    ET_KERNEL_CHECK();
}

// ---- softmax --------------------------------------------------------------------------

template <class T>
__global__ void softmax_fwd_kernel(const T *x, T *y, int64_t rows, int64_t D) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * D;
        float mx = -INFINITY;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x) mx = fmaxf(mx, to_f(xr[j]));
        mx = block_max(mx);
        float s = 0;
        if (mx != -INFINITY)
            for (int64_t j = threadIdx.x; j < D; j += blockDim.x) s += expf(to_f(xr[j]) - mx);
        s = block_sum(s);
        float inv = s > 0 ? 1.f / s : 0.f;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
            y[r * D + j] = from_f<T>(mx == -INFINITY ? 0.f : expf(to_f(xr[j]) - mx) * inv);
    }
}

extern "C" void kc_softmax_fwd(int dt, const void *x, void *y, int64_t rows, int64_t D) {
    if (rows <= 0) return;
    DISPATCH_FLOAT(dt, softmax_fwd_kernel<T><<<row_grid(rows), THREADS, 0, kc_stream()>>>(
                           (const T *)x, (T *)y, rows, D));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void softmax_bwd_kernel(const T *dy, const T *y, T *dx, int64_t rows, int64_t D) {
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        float dot = 0;
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
            dot += to_f(dy[r * D + j]) * to_f(y[r * D + j]);
        dot = block_sum(dot);
        for (int64_t j = threadIdx.x; j < D; j += blockDim.x)
            dx[r * D + j] = from_f<T>(to_f(y[r * D + j]) * (to_f(dy[r * D + j]) - dot));
    }
}

extern "C" void kc_softmax_bwd(int dt, const void *dy, const void *y, void *dx, int64_t rows,
                               int64_t D) {
    if (rows <= 0) return;
    DISPATCH_FLOAT(dt, softmax_bwd_kernel<T><<<row_grid(rows), THREADS, 0, kc_stream()>>>(
                           (const T *)dy, (const T *)y, (T *)dx, rows, D));
    ET_KERNEL_CHECK();
}

// ---- fused cross-entropy (the probabilities are never stored) ---------------------------

__device__ __forceinline__ void lse_merge(float &m, float &s, float m2, float s2) {
    float mm = fmaxf(m, m2);
    if (mm == -INFINITY) return;
    s = s * expf(m - mm) + s2 * expf(m2 - mm);
    m = mm;
}

template <class T>
__global__ void ce_fwd_kernel(const T *logits, const int32_t *tgt, float *lse, float *row_loss,
                              int64_t N, int64_t V, int ignore) {
    __shared__ float sm[32], ss[32];
    for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
        int t = tgt[r];
        bool counted = t != ignore && t >= 0 && t < V;
        if (!counted) {  // uniform per block
            if (threadIdx.x == 0) {
                lse[r] = 0;
                row_loss[r] = 0;
            }
            continue;
        }
        const T *row = logits + r * V;
        float m = -INFINITY, s = 0;
        for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
            float v = to_f(row[j]);
            if (v > m) {
                s = s * expf(m - v) + 1.f;
                m = v;
            } else {
                s += expf(v - m);
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            float m2 = __shfl_xor_sync(0xffffffffu, m, o), s2 = __shfl_xor_sync(0xffffffffu, s, o);
            lse_merge(m, s, m2, s2);
        }
        int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
        __syncthreads();
        if (lane == 0) {
            sm[w] = m;
            ss[w] = s;
        }
        __syncthreads();
        if (w == 0) {
            m = lane < nw ? sm[lane] : -INFINITY;
            s = lane < nw ? ss[lane] : 0.f;
            for (int o = 16; o > 0; o >>= 1) {
                float m2 = __shfl_xor_sync(0xffffffffu, m, o);
                float s2 = __shfl_xor_sync(0xffffffffu, s, o);
                lse_merge(m, s, m2, s2);
            }
            if (lane == 0) {
                float l = m + logf(s);
                lse[r] = l;
                row_loss[r] = l - to_f(row[t]);
            }
        }
    }
}

__global__ void ce_finish_kernel(const float *row_loss, const int32_t *tgt, float *out,
                                 int32_t *count, int64_t N, int64_t V, int ignore) {
    float s = 0, c = 0;
    for (int64_t r = threadIdx.x; r < N; r += blockDim.x) {
        int t = tgt[r];
        if (t != ignore && t >= 0 && t < V) {
            s += row_loss[r];
            c += 1.f;
        }
    }
    s = block_sum(s);
    c = block_sum(c);
    if (threadIdx.x == 0) {
        out[0] = c > 0 ? s / c : 0.f;
        count[0] = (int32_t)c;
    }
}

extern "C" void kc_cross_entropy_fwd(int dt, const void *logits, const int32_t *tgt, float *lse,
                                     float *row_loss, float *out, int32_t *count, int64_t N,
                                     int64_t V, int ignore_index) {
    cudaStream_t s = kc_stream();
    if (N > 0) {
        DISPATCH_FLOAT(dt, ce_fwd_kernel<T><<<row_grid(N), 512, 0, s>>>(
                               (const T *)logits, tgt, lse, row_loss, N, V, ignore_index));
        ET_KERNEL_CHECK();
    }
    ce_finish_kernel<<<1, 1024, 0, s>>>(row_loss, tgt, out, count, N, V, ignore_index);
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void ce_bwd_kernel(const T *logits, const int32_t *tgt, const float *lse,
                              const float *gy, const int32_t *count, T *dl, int64_t N, int64_t V,
                              int ignore) {
    for (int64_t r = blockIdx.x; r < N; r += gridDim.x) {
        int t = tgt[r];
        bool counted = t != ignore && t >= 0 && t < V && count[0] > 0;
        float g = counted ? gy[0] / (float)count[0] : 0.f, l = lse[r];
        for (int64_t j = threadIdx.x; j < V; j += blockDim.x) {
            float v = 0;
            if (counted) v = g * (expf(to_f(logits[r * V + j]) - l) - (j == t ? 1.f : 0.f));
            dl[r * V + j] = from_f<T>(v);
        }
    }
}

extern "C" void kc_cross_entropy_bwd(int dt, const void *logits, const int32_t *tgt,
                                     const float *lse, const float *gy, const int32_t *count,
                                     void *dlogits, int64_t N, int64_t V, int ignore_index) {
    if (N <= 0) return;
    DISPATCH_FLOAT(dt, ce_bwd_kernel<T><<<row_grid(N), 512, 0, kc_stream()>>>(
                           (const T *)logits, tgt, lse, gy, count, (T *)dlogits, N, V,
                           ignore_index));
    ET_KERNEL_CHECK();
}

// ---- rows -----------------------------------------------------------------------------

template <class E>
__global__ void gather_rows_kernel(const E *x, const int32_t *idx, E *y, int64_t m, int64_t n,
                                   int64_t D) {
    int64_t tot = m * D;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < tot;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / D, c = i % D;
        int32_t k = idx[r];
        y[i] = k >= 0 && k < n ? x[(int64_t)k * D + c] : E(0);
    }
}
template <class E>
__global__ void scatter_rows_kernel(const E *src, const int32_t *idx, E *y, int64_t m,
                                    int64_t D) {
    int64_t tot = m * D;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < tot;
         i += (int64_t)gridDim.x * blockDim.x)
        y[(int64_t)idx[i / D] * D + i % D] = src[i];
}
template <class E>
__global__ void zero_rows_kernel(E *y, const int32_t *idx, int64_t m, int64_t D) {
    int64_t tot = m * D;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < tot;
         i += (int64_t)gridDim.x * blockDim.x)
        y[(int64_t)idx[i / D] * D + i % D] = E(0);
}

#define DISPATCH_ELEM(elem, ...)                                                   \
    do {                                                                           \
        if ((elem) == 4) {                                                         \
            typedef uint32_t E;                                                    \
            __VA_ARGS__;                                                           \
        } else if ((elem) == 2) {                                                  \
            typedef uint16_t E;                                                    \
            __VA_ARGS__;                                                           \
        } else if ((elem) == 1) {                                                  \
            typedef uint8_t E;                                                     \
            __VA_ARGS__;                                                           \
        } else {                                                                   \
            et_cuda_fail("rows", "unsupported element size", __FILE__, __LINE__); \
        }                                                                          \
    } while (0)

extern "C" void kc_gather_rows(size_t elem, const void *x, const int32_t *idx, void *y, int64_t m,
                               int64_t n, int64_t D) {
    if (m * D <= 0) return;
    DISPATCH_ELEM(elem, gather_rows_kernel<E><<<kc_blocks(m * D, THREADS), THREADS, 0,
                                                kc_stream()>>>((const E *)x, idx, (E *)y, m, n, D));
    ET_KERNEL_CHECK();
}

struct permute_desc {
    int ndim;
    int64_t shape[8], stride[8];
};
template <class E>
__global__ void permute_kernel(const E *x, E *y, permute_desc d, int64_t numel) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < numel;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i, off = 0;
        for (int k = d.ndim - 1; k >= 0; k--) {
            off += (r % d.shape[k]) * d.stride[k];
            r /= d.shape[k];
        }
        y[i] = x[off];
    }
}

extern "C" void kc_permute(size_t elem, const void *x, void *y, int ndim, const int64_t *shape,
                           const int64_t *stride, int64_t numel) {
    if (numel <= 0) return;
    if (ndim < 1 || ndim > 8) et_cuda_fail("permute", "ndim outside 1..8", __FILE__, __LINE__);
    permute_desc d;
    d.ndim = ndim;
    for (int k = 0; k < 8; k++) {
        d.shape[k] = k < ndim ? shape[k] : 1;
        d.stride[k] = k < ndim ? stride[k] : 0;
    }
    if (elem == 8) {
        permute_kernel<uint64_t><<<kc_blocks(numel, THREADS), THREADS, 0, kc_stream()>>>(
            (const uint64_t *)x, (uint64_t *)y, d, numel);
    } else {
        DISPATCH_ELEM(elem, permute_kernel<E><<<kc_blocks(numel, THREADS), THREADS, 0,
                                                kc_stream()>>>((const E *)x, (E *)y, d, numel));
    }
    ET_KERNEL_CHECK();
}

extern "C" void kc_scatter_rows(size_t elem, const void *src, const int32_t *idx, void *y,
                                int64_t m, int64_t D) {
    if (m * D <= 0) return;
    DISPATCH_ELEM(elem, scatter_rows_kernel<E><<<kc_blocks(m * D, THREADS), THREADS, 0,
                                                 kc_stream()>>>((const E *)src, idx, (E *)y, m, D));
    ET_KERNEL_CHECK();
}

extern "C" void kc_zero_rows(size_t elem, void *y, const int32_t *idx, int64_t m, int64_t D) {
    if (m * D <= 0) return;
    DISPATCH_ELEM(elem, zero_rows_kernel<E><<<kc_blocks(m * D, THREADS), THREADS, 0,
                                              kc_stream()>>>((E *)y, idx, m, D));
    ET_KERNEL_CHECK();
}

__global__ void iota_kernel(int32_t *p, int64_t m) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < m;
         i += (int64_t)gridDim.x * blockDim.x)
        p[i] = (int32_t)i;
}

// Sort keys: an index outside [0, n) becomes n, so the radix sort over the low bits of
// [0, n] keeps it apart from every valid row (its run is skipped: "ignored" rows).
__global__ void clamp_keys_kernel(const int32_t *idx, int32_t *keys, int64_t m, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < m;
         i += (int64_t)gridDim.x * blockDim.x) {
        int32_t k = idx[i];
        keys[i] = k < 0 || k >= n ? (int32_t)n : k;
    }
}

// One owner per run of equal sorted keys sums its rows in original index order (the
// radix sort is stable), so the result does not depend on scheduling.
template <class T>
__global__ void run_sum_kernel(const int32_t *keys, const int32_t *vals, const T *gy, T *gw,
                               int64_t m, int64_t n, int64_t D) {
    int64_t i = blockIdx.x;
    int64_t c = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= D) return;
    int32_t k = keys[i];
    if ((i > 0 && keys[i - 1] == k) || k < 0 || k >= n) return;
    float s = 0;
    for (int64_t j = i; j < m && keys[j] == k; j++) s += to_f(gy[(int64_t)vals[j] * D + c]);
    gw[(int64_t)k * D + c] = from_f<T>(s);
}

extern "C" void kc_scatter_add_rows(int dt, const void *gy, const int32_t *idx, void *gw,
                                    int64_t m, int64_t n, int64_t D) {
    cudaStream_t s = kc_stream();
    size_t es = dt == KC_F32 ? 4 : 2;
    ET_CUDA_CHECK(cudaMemsetAsync(gw, 0, (size_t)(n * D) * es, s));
    if (m <= 0 || D <= 0) return;
    int32_t *buf = (int32_t *)scratch_alloc((size_t)m * 4 * sizeof(int32_t));
    int32_t *vals_in = buf, *keys_out = buf + m, *vals_out = buf + 2 * m, *keys_in = buf + 3 * m;
    iota_kernel<<<kc_blocks(m, THREADS), THREADS, 0, s>>>(vals_in, m);
    ET_KERNEL_CHECK();
    clamp_keys_kernel<<<kc_blocks(m, THREADS), THREADS, 0, s>>>(idx, keys_in, m, n);
    ET_KERNEL_CHECK();
    int bits = 1;  // keys in [0, n]: (1 << bits) > n
    while (bits < 31 && ((int64_t)1 << bits) <= n) bits++;
    size_t tmp_bytes = 0;
    ET_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, tmp_bytes, keys_in, keys_out, vals_in,
                                                  vals_out, (int)m, 0, bits, s));
    void *tmp = scratch_alloc(tmp_bytes ? tmp_bytes : 1);
    // Clamped keys are in [0, n], so a radix sort over the low bits is exact.
    ET_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(tmp, tmp_bytes, keys_in, keys_out, vals_in,
                                                  vals_out, (int)m, 0, bits, s));
    dim3 g((unsigned)m, (unsigned)((D + THREADS - 1) / THREADS));
    DISPATCH_FLOAT(dt, run_sum_kernel<T><<<g, THREADS, 0, s>>>(keys_out, vals_out, (const T *)gy,
                                                               (T *)gw, m, n, D));
    ET_KERNEL_CHECK();
    scratch_free(tmp);
    scratch_free(buf);
}

// ---- pooling --------------------------------------------------------------------------

template <class T>
__global__ void mean_pool_fwd_kernel(const T *x, const int32_t *mask, T *y, int64_t B, int64_t T_,
                                     int64_t D) {
    int64_t n = B * D;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t b = i / D, j = i % D, cnt = 0;
        float s = 0;
        for (int64_t t = 0; t < T_; t++)
            if (!mask || mask[b * T_ + t]) {
                s += to_f(x[(b * T_ + t) * D + j]);
                cnt++;
            }
        y[i] = from_f<T>(cnt ? s * (1.f / (float)cnt) : 0.f);
    }
}

extern "C" void kc_mean_pool_fwd(int dt, const void *x, const int32_t *mask, void *y, int64_t B,
                                 int64_t Tn, int64_t D) {
    if (B * D <= 0) return;
    DISPATCH_FLOAT(dt, mean_pool_fwd_kernel<T><<<kc_blocks(B * D, THREADS), THREADS, 0,
                                                 kc_stream()>>>((const T *)x, mask, (T *)y, B, Tn,
                                                                D));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void mean_pool_bwd_kernel(const T *gy, const int32_t *mask, T *gx, int64_t B,
                                     int64_t T_, int64_t D) {
    int64_t n = B * T_ * D;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t j = i % D, bt = i / D, b = bt / T_, cnt = 0;
        if (mask)
            for (int64_t t = 0; t < T_; t++) cnt += mask[b * T_ + t] != 0;
        else
            cnt = T_;
        bool on = !mask || mask[bt];
        gx[i] = from_f<T>(on && cnt ? to_f(gy[b * D + j]) * (1.f / (float)cnt) : 0.f);
    }
}

extern "C" void kc_mean_pool_bwd(int dt, const void *gy, const int32_t *mask, void *gx, int64_t B,
                                 int64_t Tn, int64_t D) {
    if (B * Tn * D <= 0) return;
    DISPATCH_FLOAT(dt, mean_pool_bwd_kernel<T><<<kc_blocks(B * Tn * D, THREADS), THREADS, 0,
                                                 kc_stream()>>>((const T *)gy, mask, (T *)gx, B, Tn,
                                                                D));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void avg_pool_fwd_kernel(const T *x, T *y, int64_t B, int64_t H, int64_t W, int64_t C,
                                    int k, int st) {
    int64_t Ho = (H - k) / st + 1, Wo = (W - k) / st + 1, n = B * Ho * Wo * C;
    float inv = 1.f / (float)(k * k);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, ox = (i / C) % Wo, oy = (i / C / Wo) % Ho, b = i / C / Wo / Ho;
        float s = 0;
        for (int dy = 0; dy < k; dy++)
            for (int dx = 0; dx < k; dx++)
                s += to_f(x[((b * H + oy * st + dy) * W + ox * st + dx) * C + c]);
        y[i] = from_f<T>(s * inv);
    }
}

extern "C" void kc_avg_pool2d_fwd(int dt, const void *x, void *y, int64_t B, int64_t H, int64_t W,
                                  int64_t C, int k, int stride) {
    int64_t n = B * ((H - k) / stride + 1) * ((W - k) / stride + 1) * C;
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, avg_pool_fwd_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)x, (T *)y, B, H, W, C, k, stride));
    ET_KERNEL_CHECK();
}

// Gather form (one thread per input pixel): deterministic with overlapping windows.
template <class T>
__global__ void avg_pool_bwd_kernel(const T *gy, T *gx, int64_t B, int64_t H, int64_t W,
                                    int64_t C, int k, int st) {
    int64_t Ho = (H - k) / st + 1, Wo = (W - k) / st + 1, n = B * H * W * C;
    float inv = 1.f / (float)(k * k);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, xx = (i / C) % W, yy = (i / C / W) % H, b = i / C / W / H;
        float s = 0;
        int64_t oy0 = yy >= k ? (yy - k) / st + 1 : 0, ox0 = xx >= k ? (xx - k) / st + 1 : 0;
        for (int64_t oy = oy0; oy < Ho && oy * st <= yy; oy++)
            for (int64_t ox = ox0; ox < Wo && ox * st <= xx; ox++)
                if (yy < oy * st + k && xx < ox * st + k)
                    s += to_f(gy[((b * Ho + oy) * Wo + ox) * C + c]);
        gx[i] = from_f<T>(s * inv);
    }
}

extern "C" void kc_avg_pool2d_bwd(int dt, const void *gy, void *gx, int64_t B, int64_t H,
                                  int64_t W, int64_t C, int k, int stride) {
    int64_t n = B * H * W * C;
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, avg_pool_bwd_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)gy, (T *)gx, B, H, W, C, k, stride));
    ET_KERNEL_CHECK();
}

// ---- im2col / col2im ------------------------------------------------------------------

template <class T>
__global__ void im2col_kernel(const T *img, T *cols, int64_t B, int64_t C, int64_t H, int64_t W,
                              int p) {
    int64_t ph = H / p, pw = W / p, K = C * p * p, n = B * ph * pw * K;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t kk = i % K, patch = i / K, px = patch % pw, py = (patch / pw) % ph,
                b = patch / (pw * ph);
        int64_t kx = kk % p, ky = (kk / p) % p, c = kk / (p * p);
        cols[i] = img[((b * C + c) * H + py * p + ky) * W + px * p + kx];
    }
}

extern "C" void kc_im2col(int dt, const void *img, void *cols, int64_t B, int64_t C, int64_t H,
                          int64_t W, int p) {
    int64_t n = B * (H / p) * (W / p) * C * p * p;
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, im2col_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)img, (T *)cols, B, C, H, W, p));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void col2im_kernel(const T *cols, T *img, int64_t B, int64_t C, int64_t H, int64_t W,
                              int p) {
    int64_t ph = H / p, pw = W / p, K = C * p * p, n = B * C * H * W;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t xx = i % W, yy = (i / W) % H, c = (i / W / H) % C, b = i / W / H / C;
        int64_t py = yy / p, px = xx / p;
        if (py >= ph || px >= pw) {
            img[i] = from_f<T>(0.f);
            continue;
        }
        int64_t kk = (c * p + yy % p) * p + xx % p;
        img[i] = cols[((b * ph + py) * pw + px) * K + kk];
    }
}

extern "C" void kc_col2im(int dt, const void *cols, void *img, int64_t B, int64_t C, int64_t H,
                          int64_t W, int p) {
    int64_t n = B * C * H * W;
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, col2im_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)cols, (T *)img, B, C, H, W, p));
    ET_KERNEL_CHECK();
}

// ---- bilinear resize (torch interpolate, align_corners false) ---------------------------

__device__ __forceinline__ void resize_taps(int64_t o, int64_t in, int64_t out, int64_t i[2],
                                            float l[2]) {
    const float scale = (float)in / (float)out;
    float src = scale * ((float)o + 0.5f) - 0.5f;
    if (src < 0) src = 0;
    i[0] = (int64_t)src;
    i[1] = i[0] + (i[0] < in - 1);
    l[1] = src - (float)i[0];
    l[0] = 1.0f - l[1];
}

// Weight with which output o (of `out`) reads input i (of `in`) along one axis.
__device__ __forceinline__ float resize_weight(int64_t o, int64_t i, int64_t in, int64_t out) {
    int64_t t[2];
    float l[2];
    resize_taps(o, in, out, t, l);
    return (t[0] == i ? l[0] : 0.0f) + (t[1] == i ? l[1] : 0.0f);
}

template <class T>
__global__ void resize_fwd_kernel(const T *x, T *y, int64_t B, int64_t H, int64_t W, int64_t C,
                                  int64_t Ho, int64_t Wo) {
    int64_t n = B * Ho * Wo * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, ox = (i / C) % Wo, oy = (i / (C * Wo)) % Ho, b = i / (C * Wo * Ho);
        int64_t ys[2], xs[2];
        float wy[2], wx[2];
        resize_taps(oy, H, Ho, ys, wy);
        resize_taps(ox, W, Wo, xs, wx);
        const T *p = x + b * H * W * C + c;
        float v = wy[0] * (wx[0] * to_f(p[(ys[0] * W + xs[0]) * C]) +
                           wx[1] * to_f(p[(ys[0] * W + xs[1]) * C])) +
                  wy[1] * (wx[0] * to_f(p[(ys[1] * W + xs[0]) * C]) +
                           wx[1] * to_f(p[(ys[1] * W + xs[1]) * C]));
        y[i] = from_f<T>(v);
    }
}

// Outputs o whose taps may reach input i: [lo, hi), a superset checked tap by tap.
__device__ __forceinline__ void resize_range(int64_t i, int64_t in, int64_t out, int64_t *lo,
                                             int64_t *hi) {
    const float inv = (float)out / (float)in;
    int64_t a = (int64_t)floorf(((float)i - 1.0f) * inv) - 2;
    int64_t b = (int64_t)ceilf(((float)i + 2.0f) * inv) + 2;
    *lo = a < 0 ? 0 : a;
    *hi = b > out ? out : b;
}

template <class T>
__global__ void resize_bwd_kernel(const T *gy, T *gx, int64_t B, int64_t H, int64_t W, int64_t C,
                                  int64_t Ho, int64_t Wo) {
    int64_t n = B * H * W * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, ix = (i / C) % W, iy = (i / (C * W)) % H, b = i / (C * W * H);
        int64_t y0, y1, x0, x1;
        resize_range(iy, H, Ho, &y0, &y1);
        resize_range(ix, W, Wo, &x0, &x1);
        float s = 0;
        for (int64_t oy = y0; oy < y1; oy++) {
            const float wy = resize_weight(oy, iy, H, Ho);
            if (wy == 0.0f) continue;
            for (int64_t ox = x0; ox < x1; ox++) {
                const float wx = resize_weight(ox, ix, W, Wo);
                if (wx != 0.0f) s += wy * wx * to_f(gy[((b * Ho + oy) * Wo + ox) * C + c]);
            }
        }
        gx[i] = from_f<T>(s);
    }
}

extern "C" void kc_resize_bilinear_fwd(int dt, const void *x, void *y, int64_t B, int64_t H,
                                       int64_t W, int64_t C, int64_t Ho, int64_t Wo) {
    int64_t n = B * Ho * Wo * C;
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, resize_fwd_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)x, (T *)y, B, H, W, C, Ho, Wo));
    ET_KERNEL_CHECK();
}

extern "C" void kc_resize_bilinear_bwd(int dt, const void *gy, void *gx, int64_t B, int64_t H,
                                       int64_t W, int64_t C, int64_t Ho, int64_t Wo) {
    int64_t n = B * H * W * C;
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, resize_bwd_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)gy, (T *)gx, B, H, W, C, Ho, Wo));
    ET_KERNEL_CHECK();
}

// ---- bilinear sampling (grid_sample, bilinear, zeros padding, align_corners false) ------

__device__ __forceinline__ void corners(float gx, float gy, int64_t H, int64_t W, int64_t xs[2],
                                        int64_t ys[2], float wx[2], float wy[2]) {
    float fx = ((gx + 1) * (float)W - 1) / 2, fy = ((gy + 1) * (float)H - 1) / 2;
    float x0 = floorf(fx), y0 = floorf(fy);
    xs[0] = (int64_t)x0;
    xs[1] = xs[0] + 1;
    ys[0] = (int64_t)y0;
    ys[1] = ys[0] + 1;
    wx[1] = fx - x0;
    wx[0] = 1 - wx[1];
    wy[1] = fy - y0;
    wy[0] = 1 - wy[1];
}

template <class T>
__global__ void bilinear_fwd_kernel(const T *feat, const float *pts, T *y, int64_t B, int64_t H,
                                    int64_t W, int64_t C, int64_t P) {
    int64_t n = B * P * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, bp = i / C, b = bp / P;
        int64_t xs[2], ys[2];
        float wx[2], wy[2];
        corners(pts[bp * 2], pts[bp * 2 + 1], H, W, xs, ys, wx, wy);
        float s = 0;
        for (int a = 0; a < 2; a++)
            for (int e = 0; e < 2; e++) {
                if (ys[a] < 0 || ys[a] >= H || xs[e] < 0 || xs[e] >= W) continue;
                s += wy[a] * wx[e] * to_f(feat[((b * H + ys[a]) * W + xs[e]) * C + c]);
            }
        y[i] = from_f<T>(s);
    }
}

extern "C" void kc_bilinear_fwd(int dt, const void *feat, const float *pts, void *y, int64_t B,
                                int64_t H, int64_t W, int64_t C, int64_t P) {
    int64_t n = B * P * C;
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, bilinear_fwd_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, kc_stream()>>>(
                           (const T *)feat, pts, (T *)y, B, H, W, C, P));
    ET_KERNEL_CHECK();
}

template <class T>
__global__ void bilinear_bwd_kernel(const T *gy, const float *pts, float *gf, int64_t B, int64_t H,
                                    int64_t W, int64_t C, int64_t P) {
    int64_t n = B * P * C;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % C, bp = i / C, b = bp / P;
        int64_t xs[2], ys[2];
        float wx[2], wy[2];
        corners(pts[bp * 2], pts[bp * 2 + 1], H, W, xs, ys, wx, wy);
        float g = to_f(gy[i]);
        for (int a = 0; a < 2; a++)
            for (int e = 0; e < 2; e++) {
                if (ys[a] < 0 || ys[a] >= H || xs[e] < 0 || xs[e] >= W) continue;
                atomicAdd(&gf[((b * H + ys[a]) * W + xs[e]) * C + c], wy[a] * wx[e] * g);
            }
    }
}

extern "C" void kc_bilinear_bwd(int dt, const void *gy, const float *pts, float *gfeat, int64_t B,
                                int64_t H, int64_t W, int64_t C, int64_t P) {
    cudaStream_t s = kc_stream();
    ET_CUDA_CHECK(cudaMemsetAsync(gfeat, 0, (size_t)(B * H * W * C) * sizeof(float), s));
    int64_t n = B * P * C;
    if (n <= 0) return;
    DISPATCH_FLOAT(dt, bilinear_bwd_kernel<T><<<kc_blocks(n, THREADS), THREADS, 0, s>>>(
                           (const T *)gy, pts, gfeat, B, H, W, C, P));
    ET_KERNEL_CHECK();
}
