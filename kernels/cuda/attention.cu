// kernels/cuda/attention.cu - flash attention forward and backward on [B, T, H, hd].
//
// Tiled with an online softmax: the [T, S] score matrix is never stored. Blocks of 4
// warps own 32 query rows (forward, dq) or 32 keys (dk/dv); key/query tiles of 32 are
// staged in shared memory as f32 (row pitch hd_pad + 1: conflict-free column reads). In
// the score loops lane j owns key (or query) j of the tile; in the value loops lane l
// owns head dims l, l + 32, ... (DPL = ceil(hd / 32) per lane, hd <= 128).
// The backward recomputes the probabilities from lse and runs two deterministic kernels
// (dq over key tiles; dk/dv over query tiles and the query heads of a GQA group), so no
// atomics are used. The math runs on CUDA cores in f32: this is the reference kernel family
// (f32 and bf16, any hd <= 128); bf16 on sm_80+ uses attention_mma.cu's tensor-core
// kernels by default and cuDNN is selectable (attention_cudnn.cu, EMOTUNE_ATTN).
#include "cuda_common.cuh"

#define WARPS 4
#define RPW 8             // rows (or keys) per warp
#define TILE (WARPS * RPW)  // 32
#define KT 32             // tile of keys (forward, dq) or queries (dk/dv)

template <int DPL>
struct Geo {
    static constexpr int P = 32 * DPL + 1;  // shared-memory row pitch in floats
};

template <class T, int DPL>
__device__ __forceinline__ void load_rows(float *sm, const T *src, int64_t r0, int64_t nrows,
                                          int64_t row_stride, int hd, float mul) {
    const int P = Geo<DPL>::P;
    for (int idx = threadIdx.x; idx < 32 * hd; idx += blockDim.x) {
        int r = idx / hd, d = idx % hd;
        int64_t rr = r0 + r;
        sm[r * P + d] = rr < nrows ? to_f(src[rr * row_stride + d]) * mul : 0.f;
    }
}

template <class T, int DPL>
__global__ void __launch_bounds__(WARPS * 32)
    flash_fwd_kernel(const T *q, const T *k, const T *v, const uint8_t *kmask, T *o, float *lse,
                     int T_, int S, int Hq, int Hkv, int hd, bool causal, float scale) {
    extern __shared__ float smem[];
    const int P = Geo<DPL>::P;
    float *sQ = smem, *sK = sQ + TILE * P, *sV = sK + KT * P;
    __shared__ bool sValid[KT];
    int b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv), t0 = blockIdx.x * TILE;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, off = S - T_;
    int64_t qs = (int64_t)Hq * hd, ks = (int64_t)Hkv * hd;
    const T *qb = q + ((int64_t)b * T_ * Hq + h) * hd;
    const T *kb = k + ((int64_t)b * S * Hkv + hk) * hd;
    const T *vb = v + ((int64_t)b * S * Hkv + hk) * hd;
    load_rows<T, DPL>(sQ, qb, t0, T_, qs, hd, scale);
    float acc[RPW][DPL], m[RPW], l[RPW];
#pragma unroll
    for (int r = 0; r < RPW; r++) {
        m[r] = -INFINITY;
        l[r] = 0;
#pragma unroll
        for (int c = 0; c < DPL; c++) acc[r][c] = 0;
    }
    int tmax = min(t0 + TILE, T_) - 1;
    int kend = causal ? min(S, tmax + off + 1) : S;
    for (int s0 = 0; s0 < kend; s0 += KT) {
        __syncthreads();
        load_rows<T, DPL>(sK, kb, s0, S, ks, hd, 1.f);
        load_rows<T, DPL>(sV, vb, s0, S, ks, hd, 1.f);
        if (threadIdx.x < KT) {
            int s = s0 + threadIdx.x;
            sValid[threadIdx.x] = s < S && (!kmask || kmask[(int64_t)b * S + s]);
        }
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            int r = w * RPW + rr, t = t0 + r;
            if (t >= T_) continue;
            int s = s0 + lane;
            float sc = -INFINITY;
            if (sValid[lane] && (!causal || s <= t + off)) {
                float d0 = 0;
                const float *qr = sQ + r * P, *kr = sK + lane * P;
                for (int d = 0; d < hd; d++) d0 += qr[d] * kr[d];
                sc = d0;
            }
            float mn = fmaxf(m[rr], warp_max(sc));
            if (mn == -INFINITY) continue;
            float p = sc == -INFINITY ? 0.f : __expf(sc - mn);
            float alpha = m[rr] == -INFINITY ? 0.f : __expf(m[rr] - mn);
            l[rr] = l[rr] * alpha + warp_sum(p);
#pragma unroll
            for (int c = 0; c < DPL; c++) acc[rr][c] *= alpha;
            for (int j = 0; j < KT; j++) {
                float pj = __shfl_sync(0xffffffffu, p, j);
                if (pj == 0.f) continue;
                const float *vr = sV + j * P;
#pragma unroll
                for (int c = 0; c < DPL; c++) acc[rr][c] += pj * vr[lane + 32 * c];
            }
            m[rr] = mn;
        }
    }
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        int t = t0 + w * RPW + rr;
        if (t >= T_) continue;
        float inv = l[rr] > 0 ? 1.f / l[rr] : 0.f;
        T *orow = o + (((int64_t)b * T_ + t) * Hq + h) * hd;
#pragma unroll
        for (int c = 0; c < DPL; c++) {
            int d = lane + 32 * c;
            if (d < hd) orow[d] = from_f<T>(acc[rr][c] * inv);
        }
        if (lane == 0)
            lse[((int64_t)b * Hq + h) * T_ + t] = l[rr] > 0 ? m[rr] + logf(l[rr]) : -INFINITY;
    }
}

// delta[b, h, t] = sum_d dout * out
template <class T>
__global__ void flash_delta_kernel(const T *o, const T *dout, float *delta, int64_t B, int T_,
                                   int Hq, int hd) {
    int64_t row = blockIdx.x * (int64_t)(blockDim.x / 32) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= B * T_ * Hq) return;  // row = (b * T + t) * Hq + h
    float s = 0;
    for (int d = lane; d < hd; d += 32) s += to_f(o[row * hd + d]) * to_f(dout[row * hd + d]);
    s = warp_sum(s);
    int64_t h = row % Hq, bt = row / Hq, t = bt % T_, b = bt / T_;
    if (lane == 0) delta[(b * Hq + h) * T_ + t] = s;
}

template <class T, int DPL>
__global__ void __launch_bounds__(WARPS * 32)
    flash_dq_kernel(const T *q, const T *k, const T *v, const uint8_t *kmask, const float *lse,
                    const float *delta, const T *dout, T *dq, int T_, int S, int Hq, int Hkv,
                    int hd, bool causal, float scale) {
    extern __shared__ float smem[];
    const int P = Geo<DPL>::P;
    float *sQ = smem, *sO = sQ + TILE * P, *sK = sO + TILE * P, *sV = sK + KT * P;
    __shared__ bool sValid[KT];
    int b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv), t0 = blockIdx.x * TILE;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, off = S - T_;
    int64_t qs = (int64_t)Hq * hd, ks = (int64_t)Hkv * hd;
    const T *qb = q + ((int64_t)b * T_ * Hq + h) * hd;
    const T *ob = dout + ((int64_t)b * T_ * Hq + h) * hd;
    const T *kb = k + ((int64_t)b * S * Hkv + hk) * hd;
    const T *vb = v + ((int64_t)b * S * Hkv + hk) * hd;
    load_rows<T, DPL>(sQ, qb, t0, T_, qs, hd, scale);
    load_rows<T, DPL>(sO, ob, t0, T_, qs, hd, 1.f);
    float acc[RPW][DPL], L[RPW], Dl[RPW];
#pragma unroll
    for (int r = 0; r < RPW; r++) {
        int t = t0 + w * RPW + r;
        L[r] = t < T_ ? lse[((int64_t)b * Hq + h) * T_ + t] : -INFINITY;
        Dl[r] = t < T_ ? delta[((int64_t)b * Hq + h) * T_ + t] : 0.f;
#pragma unroll
        for (int c = 0; c < DPL; c++) acc[r][c] = 0;
    }
    int tmax = min(t0 + TILE, T_) - 1;
    int kend = causal ? min(S, tmax + off + 1) : S;
    for (int s0 = 0; s0 < kend; s0 += KT) {
        __syncthreads();
        load_rows<T, DPL>(sK, kb, s0, S, ks, hd, 1.f);
        load_rows<T, DPL>(sV, vb, s0, S, ks, hd, 1.f);
        if (threadIdx.x < KT) {
            int s = s0 + threadIdx.x;
            sValid[threadIdx.x] = s < S && (!kmask || kmask[(int64_t)b * S + s]);
        }
        __syncthreads();
#pragma unroll
        for (int rr = 0; rr < RPW; rr++) {
            int r = w * RPW + rr, t = t0 + r;
            if (t >= T_ || L[rr] == -INFINITY) continue;
            int s = s0 + lane;
            float ds = 0;
            if (sValid[lane] && (!causal || s <= t + off)) {
                float sc = 0, dp = 0;
                const float *qr = sQ + r * P, *orow = sO + r * P;
                const float *kr = sK + lane * P, *vr = sV + lane * P;
                for (int d = 0; d < hd; d++) {
                    sc += qr[d] * kr[d];
                    dp += orow[d] * vr[d];
                }
                float p = __expf(sc - L[rr]);
                ds = p * (dp - Dl[rr]);
            }
            for (int j = 0; j < KT; j++) {
                float dj = __shfl_sync(0xffffffffu, ds, j);
                if (dj == 0.f) continue;
                const float *kr = sK + j * P;
#pragma unroll
                for (int c = 0; c < DPL; c++) acc[rr][c] += dj * kr[lane + 32 * c];
            }
        }
    }
#pragma unroll
    for (int rr = 0; rr < RPW; rr++) {
        int t = t0 + w * RPW + rr;
        if (t >= T_) continue;
        T *row = dq + (((int64_t)b * T_ + t) * Hq + h) * hd;
#pragma unroll
        for (int c = 0; c < DPL; c++) {
            int d = lane + 32 * c;
            if (d < hd) row[d] = from_f<T>(acc[rr][c] * scale);
        }
    }
}

template <class T, int DPL>
__global__ void __launch_bounds__(WARPS * 32)
    flash_dkdv_kernel(const T *q, const T *k, const T *v, const uint8_t *kmask, const float *lse,
                      const float *delta, const T *dout, T *dk, T *dv, int T_, int S, int Hq,
                      int Hkv, int hd, bool causal, float scale) {
    extern __shared__ float smem[];
    const int P = Geo<DPL>::P;
    float *sK = smem, *sV = sK + TILE * P, *sQ = sV + TILE * P, *sO = sQ + KT * P;
    __shared__ float sL[KT], sD[KT];
    int b = blockIdx.z, hk = blockIdx.y, s0 = blockIdx.x * TILE, G = Hq / Hkv;
    int w = threadIdx.x >> 5, lane = threadIdx.x & 31, off = S - T_;
    int64_t qs = (int64_t)Hq * hd, ks = (int64_t)Hkv * hd;
    load_rows<T, DPL>(sK, k + ((int64_t)b * S * Hkv + hk) * hd, s0, S, ks, hd, 1.f);
    load_rows<T, DPL>(sV, v + ((int64_t)b * S * Hkv + hk) * hd, s0, S, ks, hd, 1.f);
    float gk[RPW][DPL], gv[RPW][DPL];
#pragma unroll
    for (int r = 0; r < RPW; r++)
#pragma unroll
        for (int c = 0; c < DPL; c++) gk[r][c] = gv[r][c] = 0;
    // The first query that can see key s0 is t = s0 - off.
    int tstart = causal ? max(0, (s0 - off) / KT * KT) : 0;
    for (int g = 0; g < G; g++) {
        int h = hk * G + g;
        const T *qb = q + ((int64_t)b * T_ * Hq + h) * hd;
        const T *ob = dout + ((int64_t)b * T_ * Hq + h) * hd;
        for (int t0 = tstart; t0 < T_; t0 += KT) {
            __syncthreads();
            load_rows<T, DPL>(sQ, qb, t0, T_, qs, hd, scale);
            load_rows<T, DPL>(sO, ob, t0, T_, qs, hd, 1.f);
            if (threadIdx.x < KT) {
                int t = t0 + threadIdx.x;
                sL[threadIdx.x] = t < T_ ? lse[((int64_t)b * Hq + h) * T_ + t] : -INFINITY;
                sD[threadIdx.x] = t < T_ ? delta[((int64_t)b * Hq + h) * T_ + t] : 0.f;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < RPW; kk++) {
                int j = w * RPW + kk, s = s0 + j;
                if (s >= S || (kmask && !kmask[(int64_t)b * S + s])) continue;
                int t = t0 + lane;
                float p = 0, ds = 0;
                if (t < T_ && sL[lane] != -INFINITY && (!causal || s <= t + off)) {
                    float sc = 0, dp = 0;
                    const float *qr = sQ + lane * P, *orow = sO + lane * P;
                    const float *kr = sK + j * P, *vr = sV + j * P;
                    for (int d = 0; d < hd; d++) {
                        sc += qr[d] * kr[d];
                        dp += orow[d] * vr[d];
                    }
                    p = __expf(sc - sL[lane]);
                    ds = p * (dp - sD[lane]);
                }
                for (int i = 0; i < KT; i++) {
                    float pi = __shfl_sync(0xffffffffu, p, i);
                    float di = __shfl_sync(0xffffffffu, ds, i);
                    if (pi == 0.f && di == 0.f) continue;
                    const float *orow = sO + i * P, *qr = sQ + i * P;
#pragma unroll
                    for (int c = 0; c < DPL; c++) {
                        gv[kk][c] += pi * orow[lane + 32 * c];
                        gk[kk][c] += di * qr[lane + 32 * c];
                    }
                }
            }
        }
    }
#pragma unroll
    for (int kk = 0; kk < RPW; kk++) {
        int s = s0 + w * RPW + kk;
        if (s >= S) continue;
        int64_t base = (((int64_t)b * S + s) * Hkv + hk) * hd;
#pragma unroll
        for (int c = 0; c < DPL; c++) {
            int d = lane + 32 * c;
            if (d >= hd) continue;
            if (dk) dk[base + d] = from_f<T>(gk[kk][c]);
            if (dv) dv[base + d] = from_f<T>(gv[kk][c]);
        }
    }
}

// ---- launchers --------------------------------------------------------------------------

static void check_dims(int64_t hd, int64_t Hq, int64_t Hkv) {
    if (hd < 1 || hd > 128 || Hkv < 1 || Hq % Hkv)
        et_cuda_fail("flash attention", "head dim must be 1..128 and Hq % Hkv == 0", __FILE__,
                     __LINE__);
}

template <class K>
static void set_smem(K kernel, size_t bytes) {
    ET_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       (int)bytes));
}

#define DISPATCH_DPL(hd, ...)              \
    do {                                   \
        if ((hd) <= 32) {                  \
            constexpr int DPL = 1;         \
            __VA_ARGS__;                   \
        } else if ((hd) <= 64) {           \
            constexpr int DPL = 2;         \
            __VA_ARGS__;                   \
        } else if ((hd) <= 96) {           \
            constexpr int DPL = 3;         \
            __VA_ARGS__;                   \
        } else {                           \
            constexpr int DPL = 4;         \
            __VA_ARGS__;                   \
        }                                  \
    } while (0)

extern "C" void kc_flash_fwd(int dt, const void *q, const void *k, const void *v,
                             const uint8_t *kmask, void *o, float *lse, int64_t B, int64_t Tq,
                             int64_t S, int64_t Hq, int64_t Hkv, int64_t hd, bool causal,
                             float scale) {
    check_dims(hd, Hq, Hkv);
    if (B * Tq * Hq == 0) return;
    dim3 grid((unsigned)((Tq + TILE - 1) / TILE), (unsigned)Hq, (unsigned)B);
    cudaStream_t s = kc_stream();
    DISPATCH_FLOAT(dt, DISPATCH_DPL(hd, {
                       size_t sm = (size_t)(TILE + 2 * KT) * Geo<DPL>::P * sizeof(float);
                       set_smem(flash_fwd_kernel<T, DPL>, sm);
                       flash_fwd_kernel<T, DPL><<<grid, WARPS * 32, sm, s>>>(
                           (const T *)q, (const T *)k, (const T *)v, kmask, (T *)o, lse, (int)Tq,
                           (int)S, (int)Hq, (int)Hkv, (int)hd, causal, scale);
                   }));
    ET_KERNEL_CHECK();
}

extern "C" void kc_flash_bwd(int dt, const void *q, const void *k, const void *v,
                             const uint8_t *kmask, const void *o, const float *lse,
                             const void *dout, void *dq, void *dk, void *dv, float *delta,
                             int64_t B, int64_t Tq, int64_t S, int64_t Hq, int64_t Hkv, int64_t hd,
                             bool causal, float scale) {
    check_dims(hd, Hq, Hkv);
    cudaStream_t s = kc_stream();
    int64_t rows = B * Tq * Hq;
    DISPATCH_FLOAT(dt, {
        if (rows > 0) {
            flash_delta_kernel<T><<<(unsigned)((rows + 7) / 8), 256, 0, s>>>(
                (const T *)o, (const T *)dout, delta, B, (int)Tq, (int)Hq, (int)hd);
            ET_KERNEL_CHECK();
        }
        DISPATCH_DPL(hd, {
            size_t sm = (size_t)(2 * TILE + 2 * KT) * Geo<DPL>::P * sizeof(float);
            if (dq && rows > 0) {
                dim3 grid((unsigned)((Tq + TILE - 1) / TILE), (unsigned)Hq, (unsigned)B);
                set_smem(flash_dq_kernel<T, DPL>, sm);
                flash_dq_kernel<T, DPL><<<grid, WARPS * 32, sm, s>>>(
                    (const T *)q, (const T *)k, (const T *)v, kmask, lse, delta, (const T *)dout,
                    (T *)dq, (int)Tq, (int)S, (int)Hq, (int)Hkv, (int)hd, causal, scale);
                ET_KERNEL_CHECK();
            }
            if ((dk || dv) && B * S * Hkv > 0) {
                dim3 grid((unsigned)((S + TILE - 1) / TILE), (unsigned)Hkv, (unsigned)B);
                set_smem(flash_dkdv_kernel<T, DPL>, sm);
                flash_dkdv_kernel<T, DPL><<<grid, WARPS * 32, sm, s>>>(
                    (const T *)q, (const T *)k, (const T *)v, kmask, lse, delta, (const T *)dout,
                    (T *)dk, (T *)dv, (int)Tq, (int)S, (int)Hq, (int)Hkv, (int)hd, causal, scale);
                ET_KERNEL_CHECK();
            }
        });
    });
}
