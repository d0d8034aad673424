// kernels/cuda/cuda_kernels.h - the C interface of the CUDA kernels (kernels/cuda/*.cu).
// defines: et_cuda_* (runtime: devices, streams, raw allocation, copies), kc_* (launchers)
//
// Contract
// - Plain C: no CUDA header is needed to include this (streams are void *). The .cu files
//   implement every function with C linkage; kernels/cuda/ops_cuda.c is the only caller
//   in the library (tests and benches may call the runtime functions).
// - Launchers run on the compute stream of the current device of the calling thread
//   (et_cuda_use); they do not synchronise. Pointers are device pointers unless named
//   host_*. Dtype arguments are et_dtype values: ET_F32 (0) and ET_BF16 (1) are supported
//   by every launcher; float scratch (statistics, lse, master weights) is always f32.
// - Errors: a failing CUDA / cuBLAS / cuDNN call or kernel launch is a programmer error
//   (or a broken device) and aborts with file:line and the error string
//   (kernels/cuda/cuda_common.cuh). Only et_cuda_raw_alloc reports failure (NULL) so
//   that the caching allocator can drop its cache and retry.
// - Thread safety: the runtime state is initialised once; launchers may be called from
//   several threads, each using the stream of its current device.
#ifndef ET_CUDA_KERNELS_H
#define ET_CUDA_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// ---- runtime (runtime.cu) --------------------------------------------------------------
typedef struct {
    char name[256];
    int cc_major, cc_minor, sm_count;
    size_t total_mem;
} et_cuda_props;

int et_cuda_device_count(void);           // 0 when the driver or device is missing
void et_cuda_use(int index);              // cudaSetDevice for this thread
int et_cuda_current(void);                // device index of this thread
void *et_cuda_compute_stream(int index);  // cudaStream_t (one per device)
void *et_cuda_comm_stream(int index);     // second stream, for communication later
void et_cuda_sync(int index);             // synchronises the device's compute stream
et_cuda_props et_cuda_properties(int index);
// Raw device memory for core/alloc.c (ET_CUDA pools); counts cudaMalloc calls.
void *et_cuda_raw_alloc(int index, size_t bytes);
void et_cuda_raw_free(int index, void *ptr);
uint64_t et_cuda_n_mallocs(int index);
// Copies of nbytes: host -> device, device -> host (synchronous for the host buffer),
// device -> device (stream-ordered; across devices through peer copy).
void et_cuda_h2d(int index, void *dst, const void *host_src, size_t nbytes);
void et_cuda_d2h(int index, void *host_dst, const void *src, size_t nbytes);
void et_cuda_d2d(int dst_index, void *dst, int src_index, const void *src, size_t nbytes);
// Strided 2-D copy on the device: rows of `width` bytes (concat, narrow).
void et_cuda_copy2d(void *dst, size_t dpitch, const void *src, size_t spitch, size_t width,
                    size_t rows);
void et_cuda_memset0(void *dst, size_t nbytes);

// ---- elementwise (elementwise.cu) ---------------------------------------------------
enum { KC_ADD = 0, KC_SUB, KC_MUL };
enum { KC_SILU = 0, KC_GELU, KC_QUICK_GELU, KC_RELU };
// y = convert(x); dtypes may differ (f32 <-> bf16 <-> f16, i32 <-> u8)
void kc_convert(void *y, int ydt, const void *x, int xdt, int64_t n);
void kc_fill(void *y, int dt, double value, int64_t n);
void kc_add_into(void *y, int ydt, const void *x, int xdt, int64_t n);  // y += x
void kc_binary(int op, int dt, const void *a, const void *b, void *y, int64_t n);
void kc_scale(int dt, const void *x, void *y, int64_t n, float s);
void kc_add_bcast(int dt, const void *a, const void *b, void *y, int64_t rows, int64_t nb);
void kc_colsum(int dt, const void *x, void *y, int64_t rows, int64_t nb);
void kc_rowsum(int dt, const void *x, void *y, int64_t rows, int64_t d, float scale);
void kc_rowsum_bwd(int dt, const void *gy, void *gx, int64_t rows, int64_t d, float scale);
void kc_act_fwd(int kind, int dt, const void *x, void *y, int64_t n);
void kc_act_bwd(int kind, int dt, const void *gy, const void *x, void *gx, int64_t n);
void kc_swiglu_fwd(int dt, const void *g, const void *u, void *y, int64_t n);
void kc_swiglu_bwd(int dt, const void *dy, const void *g, const void *u, void *dg, void *du,
                   int64_t n);
// keep[i] = uniform(seed, offset + i) >= p (core/rng.h Philox stream); y = x keep scale
void kc_dropout(int dt, const void *x, void *y, uint8_t *keep, int64_t n, float p, float scale,
                uint64_t seed, uint64_t offset);
void kc_masked_scale(int dt, const void *x, const uint8_t *keep, void *y, int64_t n, float scale);
// core/optim.c's AdamW on n elements; c = {decay, w1, beta2, c2, neg_step, bc2_sqrt, eps}
void kc_adamw(float *w, const float *g, float *m, float *v, void *half, int hdt, int64_t n,
              const double c[7]);

// ---- optimizer (optim.cu): multi-tensor, several tensors per launch -------------------
typedef struct {
    float *w;        // f32 parameter or master (n)
    const float *g;  // f32 grad (n)
    float *m, *v;    // f32 moments (n)
    void *half;      // bf16/f16 parameter (n) or NULL
    int hdt;         // dtype of half
    int64_t n;
    double decay, neg_step, bc2_sqrt;  // per tensor: 1 - lr wd, -lr / (1 - b1^t), sqrt(1 - b2^t)
} kc_adamw_tensor;
// core/optim.c's AdamW on every tensor (shared w1 = 1 - beta1, beta2, c2 = 1 - beta2, eps).
void kc_adamw_multi(int n, const kc_adamw_tensor *ts, double w1, double beta2, double c2,
                    double eps);
// f64 partials kc_sumsq_multi needs for these tensors.
int64_t kc_sumsq_partials(int n, const int64_t *numel);
// out[0] (device f64) = sum of x^2 over the n f32 buffers; deterministic (fixed blocks,
// partials summed in order by one block). partials: kc_sumsq_partials(n, numel) f64.
void kc_sumsq_multi(int n, const float *const *x, const int64_t *numel, double *partials,
                    double *out);
// x *= s over the n f32 buffers.
void kc_scale_multi(int n, float *const *x, const int64_t *numel, float s);

// ---- nn (nn.cu) ---------------------------------------------------------------------
// Normalisations: stats in f32; w, b f32 [D] or NULL; rstd, mean f32 [rows].
// rmsnorm with half activations follows HF: normalise, round to x's dtype, multiply by w.
// res (optional): x = x_in + res is formed first and written to xsum (fused residual).
void kc_rmsnorm_fwd(int dt, const void *x, const void *res, void *xsum, const float *w, void *y,
                    float *rstd, int64_t rows, int64_t D, float eps);
void kc_rmsnorm_bwd(int dt, const void *dy, const void *x, const float *w, const float *rstd,
                    void *dx, float *dw, int64_t rows, int64_t D);
void kc_layernorm_fwd(int dt, const void *x, const void *res, void *xsum, const float *w,
                      const float *b, void *y, float *mean, float *rstd, int64_t rows, int64_t D,
                      float eps);
void kc_layernorm_bwd(int dt, const void *dy, const void *x, const float *w, const float *mean,
                      const float *rstd, void *dx, float *dw, float *db, int64_t rows, int64_t D);
// cos/sin tables [BT, hd/2] in f32 from pos and inv_freq, rounded through dtype dt (HF)
void kc_rope_table(int dt, const int32_t *pos, const float *inv_freq, float *cos, float *sin,
                   int64_t BT, int64_t half);
void kc_rope(int dt, const void *x, const float *cos, const float *sin, void *y, int64_t BT,
             int64_t H, int64_t hd, int sign);
void kc_softmax_fwd(int dt, const void *x, void *y, int64_t rows, int64_t D);
void kc_softmax_bwd(int dt, const void *dy, const void *y, void *dx, int64_t rows, int64_t D);
// Fused cross-entropy: lse[N], per-row loss (0 for ignored rows); out[0] = mean loss over
// counted rows (0 when none), count[0] = counted rows. Targets outside [0, V) other than
// ignore_index count as ignored (the op layer validates host targets).
void kc_cross_entropy_fwd(int dt, const void *logits, const int32_t *tgt, float *lse,
                          float *row_loss, float *out, int32_t *count, int64_t N, int64_t V,
                          int ignore_index);
// dlogits = (gy / count) (softmax - onehot) on counted rows; gy f32 device scalar
void kc_cross_entropy_bwd(int dt, const void *logits, const int32_t *tgt, const float *lse,
                          const float *gy, const int32_t *count, void *dlogits, int64_t N,
                          int64_t V, int ignore_index);
// y[m] = x[idx[m]] rows of D elements (any dtype, by element size); idx outside [0, n)
// gives a zero row
void kc_gather_rows(size_t elem, const void *x, const int32_t *idx, void *y, int64_t m, int64_t n,
                    int64_t D);
// Permute copy (et_permute): y (numel elements, row-major over shape[0..ndim-1]) gathers
// x at offset sum_k idx_k * stride[k] (elements); any dtype by element size 1, 2, 4 or 8;
// 1 <= ndim <= 8.
void kc_permute(size_t elem, const void *x, void *y, int ndim, const int64_t *shape,
                const int64_t *stride, int64_t numel);
// y[idx[m]] = src[m]
void kc_scatter_rows(size_t elem, const void *src, const int32_t *idx, void *y, int64_t m,
                     int64_t D);
void kc_zero_rows(size_t elem, void *y, const int32_t *idx, int64_t m, int64_t D);
// Deterministic scatter-add (embedding / gather backward): gw (n, D) = sum over m with
// idx[m] == r of gy[m], in index order (stable sort + one owner per row). gw is written.
void kc_scatter_add_rows(int dt, const void *gy, const int32_t *idx, void *gw, int64_t m, int64_t n,
                         int64_t D);
void kc_mean_pool_fwd(int dt, const void *x, const int32_t *mask, void *y, int64_t B, int64_t T,
                      int64_t D);
void kc_mean_pool_bwd(int dt, const void *gy, const int32_t *mask, void *gx, int64_t B, int64_t T,
                      int64_t D);
void kc_avg_pool2d_fwd(int dt, const void *x, void *y, int64_t B, int64_t H, int64_t W, int64_t C,
                       int k, int stride);
void kc_avg_pool2d_bwd(int dt, const void *gy, void *gx, int64_t B, int64_t H, int64_t W, int64_t C,
                       int k, int stride);
void kc_im2col(int dt, const void *img, void *cols, int64_t B, int64_t C, int64_t H, int64_t W,
               int p);
void kc_col2im(int dt, const void *cols, void *img, int64_t B, int64_t C, int64_t H, int64_t W,
               int p);
void kc_bilinear_fwd(int dt, const void *feat, const float *pts, void *y, int64_t B, int64_t H,
                     int64_t W, int64_t C, int64_t P);
// gfeat f32 (B, H, W, C), accumulated with atomics (not bitwise deterministic)
void kc_bilinear_bwd(int dt, const void *gy, const float *pts, float *gfeat, int64_t B, int64_t H,
                     int64_t W, int64_t C, int64_t P);

// Bilinear resize (et_resize_bilinear), channels-last x (B, H, W, C) -> y (B, Ho, Wo, C),
// torch interpolate's taps (align_corners false, float). The backward gathers: each input
// pixel sums the outputs that read it (deterministic, no atomics); gx in dt.
void kc_resize_bilinear_fwd(int dt, const void *x, void *y, int64_t B, int64_t H, int64_t W,
                            int64_t C, int64_t Ho, int64_t Wo);
void kc_resize_bilinear_bwd(int dt, const void *gy, void *gx, int64_t B, int64_t H, int64_t W,
                            int64_t C, int64_t Ho, int64_t Wo);

// ---- GEMM (gemm.cu, cuBLASLt) ----------------------------------------------------------
// Row-major C[b] (M, N) = op(A[b]) op(B[b]) (+ beta C[b]) (+ bias[N] broadcast over rows).
// A, B in dtype dt (f32 or bf16), C in cdt (dt or f32); fp32 accumulation. Strides in
// elements (0 = shared across the batch). bias in cdt or NULL.
void kc_gemm(int dt, int cdt, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
             const void *A, int64_t sa, const void *B, int64_t sb, float beta, void *C, int64_t sc,
             const void *bias);
// The same with C = alpha op(A) op(B) + beta C (the LoRA branch accumulates s h B^T into y).
void kc_gemm_ab(int dt, int cdt, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                float alpha, const void *A, int64_t sa, const void *B, int64_t sb, float beta,
                void *C, int64_t sc, const void *bias);

// ---- attention (attention.cu) --------------------------------------------------------
// Flash attention on [B, T, H, hd]: q (B, T, Hq, hd), k/v (B, S, Hkv, hd), kmask u8 (B, S)
// or NULL, causal: query t sees keys s <= t + S - T. lse f32 (B, Hq, T), -inf for a row
// with no visible key (its output is zero). hd <= 128.
void kc_flash_fwd(int dt, const void *q, const void *k, const void *v, const uint8_t *kmask,
                  void *o, float *lse, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                  int64_t hd, bool causal, float scale);
// dq, dk, dv written (any may be NULL); delta f32 scratch (B, Hq, T). Deterministic.
void kc_flash_bwd(int dt, const void *q, const void *k, const void *v, const uint8_t *kmask,
                  const void *o, const float *lse, const void *dout, void *dq, void *dk, void *dv,
                  float *delta, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                  int64_t hd, bool causal, float scale);

// Which implementation et_attention uses on CUDA: KC_ATTN_AUTO picks the bf16 tensor-core
// kernels (attention_mma.cu) where kc_flash_mma_supported, else the f32-math reference
// kernels above; KC_ATTN_REF forces the reference; KC_ATTN_MMA is AUTO (the reference where
// the mma kernels do not apply); KC_ATTN_CUDNN uses cuDNN where kc_cudnn_attn_prepare
// accepts the shape (else AUTO, with a one-line note on stderr per shape). The default comes
// from the environment variable EMOTUNE_ATTN (auto | ref | mma | cudnn), read once;
// kc_attention_set_impl overrides it for the process (tests, benches). Not thread-safe
// against concurrent attention calls.
enum { KC_ATTN_AUTO = 0, KC_ATTN_REF, KC_ATTN_MMA, KC_ATTN_CUDNN };
int kc_attention_impl(void);
void kc_attention_set_impl(int impl);

// ---- attention, bf16 tensor cores (attention_mma.cu) ---------------------------------
// Same contract as kc_flash_fwd / kc_flash_bwd (same lse, so the families mix) for bf16
// with hd 64, 80 or 128 on sm_80+ (kc_flash_mma_supported). Deterministic (no atomics).
bool kc_flash_mma_supported(int dt, int64_t hd);
void kc_flash_mma_fwd(const void *q, const void *k, const void *v, const uint8_t *kmask, void *o,
                      float *lse, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                      int64_t hd, bool causal, float scale);
void kc_flash_mma_bwd(const void *q, const void *k, const void *v, const uint8_t *kmask,
                      const void *o, const float *lse, const void *dout, void *dq, void *dk,
                      void *dv, float *delta, int64_t B, int64_t T, int64_t S, int64_t Hq,
                      int64_t Hkv, int64_t hd, bool causal, float scale);

// ---- attention, cuDNN fused (attention_cudnn.cu, backend graph API) ---------------------
// True when cuDNN >= 9 loads, a handle can be created and the device is sm_80+.
bool kc_cudnn_attention_available(void);
// Builds (once per shape, cached) the forward or backward plan for bf16 [B, T|S, H, hd]
// (causal only with T == S; padded: per-sample key lengths) and returns the workspace
// bytes kc_cudnn_attn_fwd/bwd need, or -1 when cuDNN cannot run it: kc_cudnn_attn_why()
// then names the failing step and cuDNN's message (calling thread's last failure).
int64_t kc_cudnn_attn_prepare(bool fwd, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                              int64_t hd, bool causal, bool padded);
const char *kc_cudnn_attn_why(void);
// seqlens: device i32 [2 B] (query lengths, then key lengths) or NULL (no padding); ws:
// device workspace of the prepared size. lse: f32 (B, Hq, T) as kc_flash_fwd. The backward
// writes dq, dk, dv (none may be NULL).
void kc_cudnn_attn_fwd(const void *q, const void *k, const void *v, void *o, float *lse,
                       const int32_t *seqlens, void *ws, int64_t B, int64_t T, int64_t S,
                       int64_t Hq, int64_t Hkv, int64_t hd, bool causal, float scale);
void kc_cudnn_attn_bwd(const void *q, const void *k, const void *v, const void *o, const float *lse,
                       const void *dout, void *dq, void *dk, void *dv, const int32_t *seqlens,
                       void *ws, int64_t B, int64_t T, int64_t S, int64_t Hq, int64_t Hkv,
                       int64_t hd, bool causal, float scale);

#ifdef __cplusplus
}
#endif

#endif
