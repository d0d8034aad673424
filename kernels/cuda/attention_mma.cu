// kernels/cuda/attention_mma.cu - bf16 tensor-core flash attention (forward and backward) on
// [B, T, H, hd] for head dims 64, 80 and 128 on sm_80+.
//
// FlashAttention-2 structure with f32 accumulation: 4 warps per block, each warp owns 16
// rows of a 64-row tile; the scores S = Q K^T, P V, dP = dO V^T, dQ = dS K, dV = P^T dO and
// dK = dS^T Q run on mma.sync.m16n8k16 (bf16 in, f32 out) with fragments loaded from
// shared memory by ldmatrix (.trans for the operands stored [k][n]). Tiles are staged by
// cp.async (16-byte, zero-filled past the sequence end) into a double buffer: the next
// key (or query) tile loads while the current one is multiplied. Shared rows are padded
// by 8 bf16 so that ldmatrix's 8 row addresses hit distinct banks.
// The softmax is online in base 2 (scale log2(e) folded into one multiply); P stays in
// registers (the C fragment of S is the A fragment of P V). Causal tiles past the diagonal
// are skipped, tiles crossing it are masked element-wise; masked keys add -inf.
// Backward: delta = rowsum(dO o O), then two deterministic kernels (no atomics):
// dK/dV per 64-key tile over the query tiles of every query head of its GQA group, and dQ
// per 64-query tile over the key tiles. lse is the natural-log f32 (B, Hq, T) of the
// reference kernels (attention.cu), so either family's forward feeds either backward.
#include "cuda_common.cuh"

namespace {

constexpr int NW = 4, NT = NW * 32;  // warps, threads per block
constexpr int BM = 64, BN = 64;      // rows per block tile, rows per streamed tile
constexpr float LOG2E = 1.4426950408889634f;

__device__ __forceinline__ uint32_t smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

// 16 bytes global -> shared; zero-filled when !pred (src must still be a valid address).
__device__ __forceinline__ void cp_async16(void *dst, const void *src, bool pred) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_u32(dst)), "l"(src),
                 "r"(pred ? 16 : 0));
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldsm4(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}
__device__ __forceinline__ void ldsm4t(uint32_t r[4], const bf16 *p) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_u32(p)));
}

// c += a b (m16n8k16, A row-major, B col-major, bf16 in, f32 accumulate)
__device__ __forceinline__ void mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low half) = lo
    return *reinterpret_cast<uint32_t *>(&v);
}
__device__ __forceinline__ float2 unpack2(uint32_t u) {
    __nv_bfloat162 v = *reinterpret_cast<__nv_bfloat162 *>(&u);
    return __bfloat1622float2(v);
}

// Stage rows r0 .. r0 + 63 of a [rows, stride] bf16 matrix (D used columns) into sm (pitch
// D + 8); rows >= nrows are zero-filled.
template <int D>
__device__ __forceinline__ void load_tile(bf16 *sm, const bf16 *g, int64_t r0, int64_t nrows,
                                          int64_t stride) {
    constexpr int CH = D / 8, P = D + 8;
    for (int i = threadIdx.x; i < 64 * CH; i += NT) {
        int r = i / CH, c = i - r * CH;
        int64_t rr = r0 + r;
        bool ok = rr < nrows;
        cp_async16(sm + r * P + c * 8, ok ? g + rr * stride + c * 8 : g, ok);
    }
}

// A fragments (m16k16) of rows row0 .. row0 + 15, columns k0 .. k0 + 15 of a tile.
template <int P>
__device__ __forceinline__ void frag_a(uint32_t a[4], const bf16 *sm, int row0, int k0, int lane) {
    ldsm4(a, sm + (row0 + (lane & 15)) * P + k0 + (lane >> 4) * 8);
}
// B fragments of two n8 blocks (n0 .. n0 + 15) at k0 .. k0 + 15, from a tile stored [n][k]
// (K for S = Q K^T): b[0], b[1] block n0; b[2], b[3] block n0 + 8.
template <int P>
__device__ __forceinline__ void frag_b_nk(uint32_t b[4], const bf16 *sm, int n0, int k0, int lane) {
    ldsm4(b, sm + (n0 + (lane & 7) + (lane >> 4) * 8) * P + k0 + ((lane >> 3) & 1) * 8);
}
// The same from a tile stored [k][n] (V for P V): transposing ldmatrix.
template <int P>
__device__ __forceinline__ void frag_b_kn(uint32_t b[4], const bf16 *sm, int k0, int n0, int lane) {
    ldsm4t(b, sm + (k0 + (lane & 7) + ((lane >> 3) & 1) * 8) * P + n0 + (lane >> 4) * 8);
}

// The C fragments of n blocks 2kk, 2kk + 1 as the A fragment of k step kk.
__device__ __forceinline__ void c_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = pack2(c0[0], c0[1]);
    a[1] = pack2(c0[2], c0[3]);
    a[2] = pack2(c1[0], c1[1]);
    a[3] = pack2(c1[2], c1[3]);
}

template <int D>
constexpr int pitch() {
    return D + 8;
}

// ---- forward --------------------------------------------------------------------------------

template <int D>
__global__ void __launch_bounds__(NT)
    mma_fwd_kernel(const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                   const bf16 *__restrict__ v, const uint8_t *__restrict__ kmask,
                   bf16 *__restrict__ o, float *__restrict__ lse, int T, int S, int Hq, int Hkv,
                   bool causal, float scale) {
    constexpr int P = pitch<D>();
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sQ = reinterpret_cast<bf16 *>(smem_raw), *sK = sQ + BM * P, *sV = sK + 2 * BN * P;
    __shared__ float sBias[2][BN];  // 0 for a visible key, -inf for a masked or missing one
    const int b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv);
    const int t0 = (gridDim.x - 1 - blockIdx.x) * BM;  // longest causal rows first
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int off = S - T;
    const int64_t qs = (int64_t)Hq * D, ks = (int64_t)Hkv * D;
    const bf16 *qb = q + ((int64_t)b * T * Hq + h) * D;
    const bf16 *kb = k + ((int64_t)b * S * Hkv + hk) * D, *vb = v + ((int64_t)b * S * Hkv + hk) * D;
    const int tlast = min(t0 + BM, T) - 1;
    const int kend = causal ? min(S, tlast + off + 1) : S;
    const int ntiles = kend > 0 ? (kend + BN - 1) / BN : 0;
    auto stage = [&](int j) {
        int s0 = j * BN, buf = j & 1;
        load_tile<D>(sK + buf * BN * P, kb, s0, S, ks);
        load_tile<D>(sV + buf * BN * P, vb, s0, S, ks);
        if (threadIdx.x < BN) {
            int s = s0 + threadIdx.x;
            bool ok = s < S && (!kmask || kmask[(int64_t)b * S + s]);
            sBias[buf][threadIdx.x] = ok ? 0.f : -INFINITY;
        }
    };
    load_tile<D>(sQ, qb, t0, T, qs);
    if (ntiles > 0) stage(0);
    cp_commit();

    float acc[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = 0.f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
    uint32_t qf[D / 16][4];
    const float c = scale * LOG2E;
    const int wrow = t0 + w * 16;  // first row of this warp

    for (int j = 0; j < ntiles; j++) {
        if (j + 1 < ntiles) {
            stage(j + 1);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        if (j == 0) {
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) frag_a<P>(qf[kk], sQ, w * 16, kk * 16, lane);
        }
        const bf16 *cK = sK + (j & 1) * BN * P, *cV = sV + (j & 1) * BN * P;
        const float *bias = sBias[j & 1];
        float s[BN / 8][4];
#pragma unroll
        for (int i = 0; i < BN / 8; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
#pragma unroll
            for (int n2 = 0; n2 < BN / 16; n2++) {
                uint32_t bf[4];
                frag_b_nk<P>(bf, cK, n2 * 16, kk * 16, lane);
                mma(s[2 * n2], qf[kk], bf[0], bf[1]);
                mma(s[2 * n2 + 1], qf[kk], bf[2], bf[3]);
            }
        }
        const int s0 = j * BN;
        const bool diag = causal && s0 + BN - 1 > wrow + off;
#pragma unroll
        for (int nb = 0; nb < BN / 8; nb++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = nb * 8 + 2 * tq + (e & 1);
                float x = s[nb][e] + bias[col];
                if (diag && s0 + col > wrow + g + (e >> 1) * 8 + off) x = -INFINITY;
                s[nb][e] = x;
            }
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float mx = m[r];
#pragma unroll
            for (int nb = 0; nb < BN / 8; nb++)
                mx = fmaxf(mx, fmaxf(s[nb][2 * r], s[nb][2 * r + 1]));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            float mu = mx == -INFINITY ? 0.f : mx * c;
            float alpha = exp2f(m[r] * c - mu);
            float rs = 0.f;
#pragma unroll
            for (int nb = 0; nb < BN / 8; nb++) {
                float p0 = exp2f(s[nb][2 * r] * c - mu), p1 = exp2f(s[nb][2 * r + 1] * c - mu);
                s[nb][2 * r] = p0;
                s[nb][2 * r + 1] = p1;
                rs += p0 + p1;
            }
            l[r] = l[r] * alpha + rs;  // this thread's columns; the quad sums at the end
#pragma unroll
            for (int dn = 0; dn < D / 8; dn++) {
                acc[dn][2 * r] *= alpha;
                acc[dn][2 * r + 1] *= alpha;
            }
            m[r] = mx;
        }
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t a[4];
            c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
            for (int d2 = 0; d2 < D / 16; d2++) {
                uint32_t bf[4];
                frag_b_kn<P>(bf, cV, kk * 16, d2 * 16, lane);
                mma(acc[2 * d2], a, bf[0], bf[1]);
                mma(acc[2 * d2 + 1], a, bf[2], bf[3]);
            }
        }
        __syncthreads();
    }
    cp_wait<0>();
#pragma unroll
    for (int r = 0; r < 2; r++) {
        float lt = l[r];
        lt += __shfl_xor_sync(0xffffffffu, lt, 1);
        lt += __shfl_xor_sync(0xffffffffu, lt, 2);
        int t = wrow + g + r * 8;
        if (t >= T) continue;
        float inv = lt > 0.f ? 1.f / lt : 0.f;
        bf16 *orow = o + (((int64_t)b * T + t) * Hq + h) * D;
#pragma unroll
        for (int dn = 0; dn < D / 8; dn++)
            *reinterpret_cast<uint32_t *>(orow + dn * 8 + 2 * tq) =
                pack2(acc[dn][2 * r] * inv, acc[dn][2 * r + 1] * inv);
        if (tq == 0)
            lse[((int64_t)b * Hq + h) * T + t] = lt > 0.f ? m[r] * scale + logf(lt) : -INFINITY;
    }
}

// ---- backward ---------------------------------------------------------------------------

// delta[b, h, t] = sum_d dout * out (one warp per row)
__global__ void mma_delta_kernel(const bf16 *o, const bf16 *dout, float *delta, int64_t rows, int T,
                                 int Hq, int D) {
    int lane = threadIdx.x & 31;
    int64_t wpb = blockDim.x / 32;
    for (int64_t row = blockIdx.x * wpb + (threadIdx.x >> 5); row < rows; row += gridDim.x * wpb) {
        float s = 0.f;  // row = (b * T + t) * Hq + h
        for (int d = 2 * lane; d < D; d += 64) {
            float2 a =
                __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(o + row * D + d));
            float2 e =
                __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(dout + row * D + d));
            s += a.x * e.x + a.y * e.y;
        }
        s = warp_sum(s);
        int64_t h = row % Hq, bt = row / Hq, t = bt % T, b = bt / T;
        if (lane == 0) delta[(b * Hq + h) * T + t] = s;
    }
}

// dK, dV for 64 keys (warp w: keys s0 + 16 w ..), over the query tiles and the G query heads
// of key head hk. Transposed products: S^T = K Q^T, dP^T = V dO^T, dV += P^T dO,
// dK += dS^T Q.
template <int D>
__global__ void __launch_bounds__(NT)
    mma_dkdv_kernel(const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                    const bf16 *__restrict__ v, const uint8_t *__restrict__ kmask,
                    const float *__restrict__ lse, const float *__restrict__ delta,
                    const bf16 *__restrict__ dout, bf16 *__restrict__ dk, bf16 *__restrict__ dv,
                    int T, int S, int Hq, int Hkv, bool causal, float scale) {
    constexpr int P = pitch<D>();
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sK = reinterpret_cast<bf16 *>(smem_raw), *sV = sK + BN * P;
    bf16 *sQ = sV + BN * P, *sO = sQ + 2 * BM * P;
    __shared__ float sL[2][BM], sD[2][BM];  // lse log2(e) (+inf: row sees nothing), delta
    const int b = blockIdx.z, hk = blockIdx.y, s0 = blockIdx.x * BN, G = Hq / Hkv;
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int off = S - T;
    const int64_t qs = (int64_t)Hq * D, ks = (int64_t)Hkv * D;
    load_tile<D>(sK, k + ((int64_t)b * S * Hkv + hk) * D, s0, S, ks);
    load_tile<D>(sV, v + ((int64_t)b * S * Hkv + hk) * D, s0, S, ks);
    const int wkey = s0 + w * 16;  // first key of this warp
    float kbias[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int s = wkey + g + r * 8;
        kbias[r] = s < S && (!kmask || kmask[(int64_t)b * S + s]) ? 0.f : -INFINITY;
    }
    // The first query that sees key s0 is t = s0 - off.
    const int tstart = causal ? max(0, s0 - off) / BM * BM : 0;
    const int nt = T > tstart ? (T - tstart + BM - 1) / BM : 0, niter = G * nt;
    auto stage = [&](int i) {
        int buf = i & 1, hh = hk * G + i / nt, tt = tstart + (i % nt) * BM;
        load_tile<D>(sQ + buf * BM * P, q + ((int64_t)b * T * Hq + hh) * D, tt, T, qs);
        load_tile<D>(sO + buf * BM * P, dout + ((int64_t)b * T * Hq + hh) * D, tt, T, qs);
        if (threadIdx.x < BM) {
            int t = tt + threadIdx.x;
            float L = t < T ? lse[((int64_t)b * Hq + hh) * T + t] : -INFINITY;
            sL[buf][threadIdx.x] = L == -INFINITY ? INFINITY : L * LOG2E;
            sD[buf][threadIdx.x] = t < T ? delta[((int64_t)b * Hq + hh) * T + t] : 0.f;
        }
    };
    if (niter > 0) stage(0);
    cp_commit();
    float gk[D / 8][4], gv[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) gk[i][e] = gv[i][e] = 0.f;
    const float c = scale * LOG2E;

    for (int i = 0; i < niter; i++) {
        if (i + 1 < niter) {
            stage(i + 1);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const int buf = i & 1, tt = tstart + (i % nt) * BM;
        const bf16 *cQ = sQ + buf * BM * P, *cO = sO + buf * BM * P;
        const float *cL = sL[buf], *cD = sD[buf];
        // S^T (16 keys x 64 queries per warp) -> P^T, packed to bf16 A fragments
        float st[BM / 8][4];
#pragma unroll
        for (int n = 0; n < BM / 8; n++) st[n][0] = st[n][1] = st[n][2] = st[n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t a[4];
            frag_a<P>(a, sK, w * 16, kk * 16, lane);
#pragma unroll
            for (int n2 = 0; n2 < BM / 16; n2++) {
                uint32_t bf[4];
                frag_b_nk<P>(bf, cQ, n2 * 16, kk * 16, lane);
                mma(st[2 * n2], a, bf[0], bf[1]);
                mma(st[2 * n2 + 1], a, bf[2], bf[3]);
            }
        }
        const bool diag = causal && tt < wkey + 15 - off;
        uint32_t pa[BM / 16][4];  // P^T as A fragments (k = query)
#pragma unroll
        for (int n = 0; n < BM / 8; n++) {
            float p[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = n * 8 + 2 * tq + (e & 1);
                float x = st[n][e] * c - cL[col] + kbias[e >> 1];
                if (diag && wkey + g + (e >> 1) * 8 > tt + col + off) x = -INFINITY;
                p[e] = exp2f(x);
            }
            pa[n >> 1][(n & 1) * 2] = pack2(p[0], p[1]);
            pa[n >> 1][(n & 1) * 2 + 1] = pack2(p[2], p[3]);
        }
        // dV += P^T dO
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++)
#pragma unroll
            for (int d2 = 0; d2 < D / 16; d2++) {
                uint32_t bf[4];
                frag_b_kn<P>(bf, cO, kk * 16, d2 * 16, lane);
                mma(gv[2 * d2], pa[kk], bf[0], bf[1]);
                mma(gv[2 * d2 + 1], pa[kk], bf[2], bf[3]);
            }
            // dP^T = V dO^T, then dS^T = P^T (dP^T - delta) in place
#pragma unroll
        for (int n = 0; n < BM / 8; n++) st[n][0] = st[n][1] = st[n][2] = st[n][3] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t a[4];
            frag_a<P>(a, sV, w * 16, kk * 16, lane);
#pragma unroll
            for (int n2 = 0; n2 < BM / 16; n2++) {
                uint32_t bf[4];
                frag_b_nk<P>(bf, cO, n2 * 16, kk * 16, lane);
                mma(st[2 * n2], a, bf[0], bf[1]);
                mma(st[2 * n2 + 1], a, bf[2], bf[3]);
            }
        }
        uint32_t da[BM / 16][4];
#pragma unroll
        for (int n = 0; n < BM / 8; n++) {
            float2 p01 = unpack2(pa[n >> 1][(n & 1) * 2]),
                   p23 = unpack2(pa[n >> 1][(n & 1) * 2 + 1]);
            int col = n * 8 + 2 * tq;
            da[n >> 1][(n & 1) * 2] =
                pack2(p01.x * (st[n][0] - cD[col]), p01.y * (st[n][1] - cD[col + 1]));
            da[n >> 1][(n & 1) * 2 + 1] =
                pack2(p23.x * (st[n][2] - cD[col]), p23.y * (st[n][3] - cD[col + 1]));
        }
        // dK += dS^T Q
#pragma unroll
        for (int kk = 0; kk < BM / 16; kk++)
#pragma unroll
            for (int d2 = 0; d2 < D / 16; d2++) {
                uint32_t bf[4];
                frag_b_kn<P>(bf, cQ, kk * 16, d2 * 16, lane);
                mma(gk[2 * d2], da[kk], bf[0], bf[1]);
                mma(gk[2 * d2 + 1], da[kk], bf[2], bf[3]);
            }
        __syncthreads();
    }
    cp_wait<0>();
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int s = wkey + g + r * 8;
        if (s >= S) continue;
        int64_t base = (((int64_t)b * S + s) * Hkv + hk) * D + 2 * tq;
#pragma unroll
        for (int dn = 0; dn < D / 8; dn++) {
            if (dk)
                *reinterpret_cast<uint32_t *>(dk + base + dn * 8) =
                    pack2(gk[dn][2 * r] * scale, gk[dn][2 * r + 1] * scale);
            if (dv)
                *reinterpret_cast<uint32_t *>(dv + base + dn * 8) =
                    pack2(gv[dn][2 * r], gv[dn][2 * r + 1]);
        }
    }
}

// dQ for 64 queries (warp w: rows t0 + 16 w ..) over the key tiles: S = Q K^T, dP = dO V^T,
// dS = P (dP - delta), dQ += dS K.
template <int D>
__global__ void __launch_bounds__(NT)
    mma_dq_kernel(const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                  const bf16 *__restrict__ v, const uint8_t *__restrict__ kmask,
                  const float *__restrict__ lse, const float *__restrict__ delta,
                  const bf16 *__restrict__ dout, bf16 *__restrict__ dq, int T, int S, int Hq,
                  int Hkv, bool causal, float scale) {
    constexpr int P = pitch<D>();
    extern __shared__ __align__(16) unsigned char smem_raw[];
    bf16 *sQ = reinterpret_cast<bf16 *>(smem_raw), *sO = sQ + BM * P;
    bf16 *sK = sO + BM * P, *sV = sK + 2 * BN * P;
    __shared__ float sBias[2][BN];
    const int b = blockIdx.z, h = blockIdx.y, hk = h / (Hq / Hkv);
    const int t0 = (gridDim.x - 1 - blockIdx.x) * BM;
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, tq = lane & 3;
    const int off = S - T;
    const int64_t qs = (int64_t)Hq * D, ks = (int64_t)Hkv * D;
    const bf16 *kb = k + ((int64_t)b * S * Hkv + hk) * D, *vb = v + ((int64_t)b * S * Hkv + hk) * D;
    const int tlast = min(t0 + BM, T) - 1;
    const int kend = causal ? min(S, tlast + off + 1) : S;
    const int ntiles = kend > 0 ? (kend + BN - 1) / BN : 0;
    const int wrow = t0 + w * 16;
    float L[2], Dl[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int t = wrow + g + r * 8;
        float x = t < T ? lse[((int64_t)b * Hq + h) * T + t] : -INFINITY;
        L[r] = x == -INFINITY ? INFINITY : x * LOG2E;
        Dl[r] = t < T ? delta[((int64_t)b * Hq + h) * T + t] : 0.f;
    }
    auto stage = [&](int j) {
        int s0 = j * BN, buf = j & 1;
        load_tile<D>(sK + buf * BN * P, kb, s0, S, ks);
        load_tile<D>(sV + buf * BN * P, vb, s0, S, ks);
        if (threadIdx.x < BN) {
            int s = s0 + threadIdx.x;
            bool ok = s < S && (!kmask || kmask[(int64_t)b * S + s]);
            sBias[buf][threadIdx.x] = ok ? 0.f : -INFINITY;
        }
    };
    load_tile<D>(sQ, q + ((int64_t)b * T * Hq + h) * D, t0, T, qs);
    load_tile<D>(sO, dout + ((int64_t)b * T * Hq + h) * D, t0, T, qs);
    if (ntiles > 0) stage(0);
    cp_commit();
    float gq[D / 8][4];
#pragma unroll
    for (int i = 0; i < D / 8; i++) gq[i][0] = gq[i][1] = gq[i][2] = gq[i][3] = 0.f;
    const float c = scale * LOG2E;

    for (int j = 0; j < ntiles; j++) {
        if (j + 1 < ntiles) {
            stage(j + 1);
            cp_commit();
            cp_wait<1>();
        } else {
            cp_wait<0>();
        }
        __syncthreads();
        const bf16 *cK = sK + (j & 1) * BN * P, *cV = sV + (j & 1) * BN * P;
        const float *bias = sBias[j & 1];
        float s[BN / 8][4], dp[BN / 8][4];
#pragma unroll
        for (int n = 0; n < BN / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) s[n][e] = dp[n][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t aq[4], ao[4];
            frag_a<P>(aq, sQ, w * 16, kk * 16, lane);
            frag_a<P>(ao, sO, w * 16, kk * 16, lane);
#pragma unroll
            for (int n2 = 0; n2 < BN / 16; n2++) {
                uint32_t bk[4], bv[4];
                frag_b_nk<P>(bk, cK, n2 * 16, kk * 16, lane);
                frag_b_nk<P>(bv, cV, n2 * 16, kk * 16, lane);
                mma(s[2 * n2], aq, bk[0], bk[1]);
                mma(s[2 * n2 + 1], aq, bk[2], bk[3]);
                mma(dp[2 * n2], ao, bv[0], bv[1]);
                mma(dp[2 * n2 + 1], ao, bv[2], bv[3]);
            }
        }
        const int s0 = j * BN;
        const bool diag = causal && s0 + BN - 1 > wrow + off;
#pragma unroll
        for (int n = 0; n < BN / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int col = n * 8 + 2 * tq + (e & 1), r = e >> 1;
                float x = s[n][e] * c - L[r] + bias[col];
                if (diag && s0 + col > wrow + g + r * 8 + off) x = -INFINITY;
                s[n][e] = exp2f(x) * (dp[n][e] - Dl[r]);  // dS
            }
#pragma unroll
        for (int kk = 0; kk < BN / 16; kk++) {
            uint32_t a[4];
            c_to_a(a, s[2 * kk], s[2 * kk + 1]);
#pragma unroll
            for (int d2 = 0; d2 < D / 16; d2++) {
                uint32_t bf[4];
                frag_b_kn<P>(bf, cK, kk * 16, d2 * 16, lane);
                mma(gq[2 * d2], a, bf[0], bf[1]);
                mma(gq[2 * d2 + 1], a, bf[2], bf[3]);
            }
        }
        __syncthreads();
    }
    cp_wait<0>();
#pragma unroll
    for (int r = 0; r < 2; r++) {
        int t = wrow + g + r * 8;
        if (t >= T) continue;
        bf16 *row = dq + (((int64_t)b * T + t) * Hq + h) * D + 2 * tq;
#pragma unroll
        for (int dn = 0; dn < D / 8; dn++)
            *reinterpret_cast<uint32_t *>(row + dn * 8) =
                pack2(gq[dn][2 * r] * scale, gq[dn][2 * r + 1] * scale);
    }
}

template <class K>
void set_smem(K kernel, size_t bytes) {
    ET_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

#define DISPATCH_HD(hd, ...)       \
    do {                           \
        if ((hd) == 64) {          \
            constexpr int D = 64;  \
            __VA_ARGS__;           \
        } else if ((hd) == 80) {   \
            constexpr int D = 80;  \
            __VA_ARGS__;           \
        } else {                   \
            constexpr int D = 128; \
            __VA_ARGS__;           \
        }                          \
    } while (0)

void check(int64_t hd, int64_t Hq, int64_t Hkv, int64_t T, int64_t S) {
    if ((hd != 64 && hd != 80 && hd != 128) || Hkv < 1 || Hq % Hkv || T > INT32_MAX ||
        S > INT32_MAX)
        et_cuda_fail("flash attention (mma)", "head dim must be 64, 80 or 128, Hq % Hkv == 0",
                     __FILE__, __LINE__);
}

}  // namespace

extern "C" bool kc_flash_mma_supported(int dt, int64_t hd) {
    if (dt != KC_BF16 || (hd != 64 && hd != 80 && hd != 128)) return false;
    static int cc[64];  // compute capability major per device, 0 = not asked yet
    int dev = et_cuda_current();
    if (dev < 0 || dev >= 64) return false;
    if (!cc[dev]) cc[dev] = et_cuda_properties(dev).cc_major;
    return cc[dev] >= 8;
}

extern "C" void kc_flash_mma_fwd(const void *q, const void *k, const void *v, const uint8_t *kmask,
                                 void *o, float *lse, int64_t B, int64_t T, int64_t S, int64_t Hq,
                                 int64_t Hkv, int64_t hd, bool causal, float scale) {
    check(hd, Hq, Hkv, T, S);
    if (B * T * Hq == 0) return;
    dim3 grid((unsigned)((T + BM - 1) / BM), (unsigned)Hq, (unsigned)B);
    cudaStream_t st = kc_stream();
    DISPATCH_HD(hd, {
        size_t sm = (size_t)(BM + 4 * BN) * pitch<D>() * sizeof(bf16);
        set_smem(mma_fwd_kernel<D>, sm);
        mma_fwd_kernel<D><<<grid, NT, sm, st>>>((const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
                                                kmask, (bf16 *)o, lse, (int)T, (int)S, (int)Hq,
                                                (int)Hkv, causal, scale);
    });
    ET_KERNEL_CHECK();
}

extern "C" void kc_flash_mma_bwd(const void *q, const void *k, const void *v, const uint8_t *kmask,
                                 const void *o, const float *lse, const void *dout, void *dq,
                                 void *dk, void *dv, float *delta, int64_t B, int64_t T, int64_t S,
                                 int64_t Hq, int64_t Hkv, int64_t hd, bool causal, float scale) {
    check(hd, Hq, Hkv, T, S);
    cudaStream_t st = kc_stream();
    if ((dk || dv) && B * S * Hkv > 0 && B * T * Hq == 0) {  // no queries: zero key grads
        if (dk) ET_CUDA_CHECK(cudaMemsetAsync(dk, 0, (size_t)(B * S * Hkv * hd) * 2, st));
        if (dv) ET_CUDA_CHECK(cudaMemsetAsync(dv, 0, (size_t)(B * S * Hkv * hd) * 2, st));
        return;
    }
    if (B * T * Hq == 0) return;
    int64_t rows = B * T * Hq;
    mma_delta_kernel<<<kc_blocks(rows, 8), 256, 0, st>>>((const bf16 *)o, (const bf16 *)dout, delta,
                                                         rows, (int)T, (int)Hq, (int)hd);
    ET_KERNEL_CHECK();
    DISPATCH_HD(hd, {
        size_t sm = (size_t)(6 * 64) * pitch<D>() * sizeof(bf16);
        if (dq) {
            set_smem(mma_dq_kernel<D>, sm);
            dim3 grid((unsigned)((T + BM - 1) / BM), (unsigned)Hq, (unsigned)B);
            mma_dq_kernel<D><<<grid, NT, sm, st>>>(
                (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, kmask, lse, delta,
                (const bf16 *)dout, (bf16 *)dq, (int)T, (int)S, (int)Hq, (int)Hkv, causal, scale);
            ET_KERNEL_CHECK();
        }
        if ((dk || dv) && S > 0) {
            set_smem(mma_dkdv_kernel<D>, sm);
            dim3 grid((unsigned)((S + BN - 1) / BN), (unsigned)Hkv, (unsigned)B);
            mma_dkdv_kernel<D>
                <<<grid, NT, sm, st>>>((const bf16 *)q, (const bf16 *)k, (const bf16 *)v, kmask,
                                       lse, delta, (const bf16 *)dout, (bf16 *)dk, (bf16 *)dv,
                                       (int)T, (int)S, (int)Hq, (int)Hkv, causal, scale);
            ET_KERNEL_CHECK();
        }
    });
}
