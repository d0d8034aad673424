// kernels/cuda/optim.cu - multi-tensor optimizer kernels (cuda_kernels.h): fused AdamW over
// many parameters per launch, the gradients' sum of squares (deterministic f64 reduction)
// and their scaling for global-norm clipping.
//
// A launch covers up to MT_MAX tensors passed by value (kernel parameters); every tensor
// gets ceil(n / MT_CHUNK) blocks and each block finds its tensor in the prefix table
// `first` (a linear scan of <= MT_MAX entries). The sum of squares writes one f64 partial
// per block (in block order across launches), then one block adds the partials in a
// fixed order: the result does not depend on timing, only on the tensor list.
#include <string.h>

#include "cuda_common.cuh"

#define MT_MAX 24
#define MT_THREADS 256
#define MT_CHUNK (MT_THREADS * 16)  // elements per block

struct MtTable {
    int n;
    int64_t first[MT_MAX + 1];  // first block of tensor i; first[n] = blocks of the launch
    int64_t numel[MT_MAX];
};

__device__ __forceinline__ int mt_find(const MtTable &t, int64_t block) {
    int i = 0;
    while (i + 1 < t.n && block >= t.first[i + 1]) i++;
    return i;
}

static int64_t mt_blocks(int64_t n) { return (n + MT_CHUNK - 1) / MT_CHUNK; }

// ---- AdamW ---------------------------------------------------------------------------------

struct MtAdam {
    MtTable t;
    float *w[MT_MAX];
    const float *g[MT_MAX];
    float *m[MT_MAX];
    float *v[MT_MAX];
    void *half[MT_MAX];
    int hdt[MT_MAX];
    float decay[MT_MAX], neg_step[MT_MAX], bc2[MT_MAX];
};

struct AdamShared {
    float w1, one_m_w1, b2, c2, eps;
    bool small;
};

// The arithmetic of core/optim.c adamw_f32 (and kc_adamw): single-rounding fmas, IEEE
// division and square root.
__global__ void adamw_multi_kernel(MtAdam a, AdamShared c) {
    const int ti = mt_find(a.t, blockIdx.x);
    const int64_t lo = (blockIdx.x - a.t.first[ti]) * (int64_t)MT_CHUNK;
    const int64_t n = a.t.numel[ti], hi = lo + MT_CHUNK < n ? lo + MT_CHUNK : n;
    float *w = a.w[ti], *m = a.m[ti], *v = a.v[ti];
    const float *g = a.g[ti];
    const float decay = a.decay[ti], neg_step = a.neg_step[ti], bc2 = a.bc2[ti];
    void *half = a.half[ti];
    const int hdt = a.hdt[ti];
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        float wi = w[i] * decay;
        float gi = g[i], mi = m[i];
        mi = c.small ? __fmaf_rn(c.w1, gi - mi, mi) : __fmaf_rn(-(gi - mi), c.one_m_w1, gi);
        float vi = __fmaf_rn(c.c2 * gi, gi, v[i] * c.b2);
        float denom = __fdiv_rn(__fsqrt_rn(vi), bc2) + c.eps;
        wi = wi + __fdiv_rn(neg_step * mi, denom);
        m[i] = mi;
        v[i] = vi;
        w[i] = wi;
        if (half) {
            if (hdt == KC_BF16)
                ((bf16 *)half)[i] = __float2bfloat16_rn(wi);
            else
                ((__half *)half)[i] = __float2half_rn(wi);
        }
    }
}

extern "C" void kc_adamw_multi(int n, const kc_adamw_tensor *ts, double w1, double beta2, double c2,
                               double eps) {
    AdamShared c;
    c.w1 = (float)w1;
    c.one_m_w1 = 1.0f - c.w1;
    c.small = fabsf(c.w1) < 0.5f;
    c.b2 = (float)beta2;
    c.c2 = (float)c2;
    c.eps = (float)eps;
    cudaStream_t s = kc_stream();
    for (int base = 0; base < n;) {
        MtAdam a;
        memset(&a, 0, sizeof a);
        int64_t blocks = 0;
        while (base < n && a.t.n < MT_MAX) {
            const kc_adamw_tensor *x = &ts[base++];
            if (x->n <= 0) continue;
            int k = a.t.n++;
            a.t.first[k] = blocks;
            a.t.numel[k] = x->n;
            a.w[k] = x->w, a.g[k] = x->g, a.m[k] = x->m, a.v[k] = x->v;
            a.half[k] = x->half, a.hdt[k] = x->hdt;
            a.decay[k] = (float)x->decay, a.neg_step[k] = (float)x->neg_step;
            a.bc2[k] = (float)x->bc2_sqrt;
            blocks += mt_blocks(x->n);
        }
        if (!a.t.n) continue;
        a.t.first[a.t.n] = blocks;
        adamw_multi_kernel<<<(unsigned)blocks, MT_THREADS, 0, s>>>(a, c);
        ET_KERNEL_CHECK();
    }
}

// ---- sum of squares / scale ------------------------------------------------------------------

struct MtPtrs {
    MtTable t;
    float *x[MT_MAX];
};

__device__ __forceinline__ double block_sum_f64(double v) {
    __shared__ double sh[MT_THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    if (lane == 0) sh[wid] = v;
    __syncthreads();
    double r = 0;
    if (threadIdx.x == 0)
        for (int k = 0; k < (int)(blockDim.x >> 5); k++) r += sh[k];
    return r;  // valid in thread 0
}

__global__ void sumsq_kernel(MtPtrs p, double *partials) {
    const int ti = mt_find(p.t, blockIdx.x);
    const int64_t lo = (blockIdx.x - p.t.first[ti]) * (int64_t)MT_CHUNK;
    const int64_t n = p.t.numel[ti], hi = lo + MT_CHUNK < n ? lo + MT_CHUNK : n;
    const float *x = p.x[ti];
    double s = 0;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        double xi = (double)x[i];
        s += xi * xi;
    }
    s = block_sum_f64(s);
    if (threadIdx.x == 0) partials[blockIdx.x] = s;
}

__global__ void sum_partials_kernel(const double *partials, int64_t n, double *out) {
    double s = 0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += partials[i];
    s = block_sum_f64(s);
    if (threadIdx.x == 0) *out = s;
}

__global__ void scale_multi_kernel(MtPtrs p, float sc) {
    const int ti = mt_find(p.t, blockIdx.x);
    const int64_t lo = (blockIdx.x - p.t.first[ti]) * (int64_t)MT_CHUNK;
    const int64_t n = p.t.numel[ti], hi = lo + MT_CHUNK < n ? lo + MT_CHUNK : n;
    float *x = p.x[ti];
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) x[i] *= sc;
}

extern "C" int64_t kc_sumsq_partials(int n, const int64_t *numel) {
    int64_t b = 0;
    for (int i = 0; i < n; i++)
        if (numel[i] > 0) b += mt_blocks(numel[i]);
    return b;
}

// Packs the next launch's tensors starting at *base; returns its block count (0 = done).
static int64_t mt_pack(MtPtrs *p, int n, float *const *x, const int64_t *numel, int *base) {
    memset(p, 0, sizeof *p);
    int64_t blocks = 0;
    while (*base < n && p->t.n < MT_MAX) {
        int i = (*base)++;
        if (numel[i] <= 0) continue;
        int k = p->t.n++;
        p->t.first[k] = blocks;
        p->t.numel[k] = numel[i];
        p->x[k] = x[i];
        blocks += mt_blocks(numel[i]);
    }
    p->t.first[p->t.n] = blocks;
    return blocks;
}

extern "C" void kc_sumsq_multi(int n, const float *const *x, const int64_t *numel, double *partials,
                               double *out) {
    cudaStream_t s = kc_stream();
    int64_t off = 0;
    for (int base = 0; base < n;) {
        MtPtrs p;
        int64_t blocks = mt_pack(&p, n, (float *const *)x, numel, &base);
        if (!blocks) continue;
        sumsq_kernel<<<(unsigned)blocks, MT_THREADS, 0, s>>>(p, partials + off);
        ET_KERNEL_CHECK();
        off += blocks;
    }
    if (off == 0) {
        ET_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), s));
        return;
    }
    sum_partials_kernel<<<1, MT_THREADS, 0, s>>>(partials, off, out);
    ET_KERNEL_CHECK();
}

extern "C" void kc_scale_multi(int n, float *const *x, const int64_t *numel, float sc) {
    cudaStream_t s = kc_stream();
    for (int base = 0; base < n;) {
        MtPtrs p;
        int64_t blocks = mt_pack(&p, n, x, numel, &base);
        if (!blocks) continue;
        scale_multi_kernel<<<(unsigned)blocks, MT_THREADS, 0, s>>>(p, sc);
        ET_KERNEL_CHECK();
    }
}
