// kernels/cpu/nn.h - CPU kernels of the neural-network ops (core/ops_nn.c).
// defines: k_rmsnorm_*, k_layernorm_*, k_add_rmsnorm_fwd_*, k_add_layernorm_fwd_*, k_rope_*,
//          k_softmax_*, k_attention_*, k_silu_*, k_gelu_*, k_quick_gelu_*, k_swiglu_*,
//          k_cross_entropy_*, k_mul_cols_*, k_rope_table_f32, k_attention_slots,
//          k_exp_sub_f32
//
// Every kernel exists as name_f32 and name_f64 (kernels/cpu/ktemplate.h); the f32 ones
// accumulate row statistics in float (double where cheap), the f64 ones in double.
// "rows" is the product of all dims but the last; D the last dim. Optional pointers may
// be NULL (no affine weight, a gradient nobody wants). Gradient outputs are written, not
// accumulated, unless the comment says otherwise.
#ifndef ET_K_NN_H
#define ET_K_NN_H

#include <stdbool.h>
#include <stdint.h>

#define K_NN_DECLS(real, S)                                                                  \
    /* y = x * rsqrt(mean(x^2) + eps) (* w when w); rstd[r] = that rsqrt */                  \
    void k_rmsnorm_fwd_##S(const real *x, /* (rows, D) */                                    \
                           const real *w, /* (D) or NULL */                                  \
                           real *y,       /* (rows, D) */                                    \
                           real *rstd,    /* (rows) */                                       \
                           int64_t rows, int64_t D, double eps);                             \
    /* Fused residual add: s = x + res row by row (then round_row(s_row, D) when given:   */ \
    /* the rounding of the activation dtype), and k_rmsnorm_fwd of s in the same pass    */  \
    /* over the row (same arithmetic, bit for bit).                                      */  \
    void k_add_rmsnorm_fwd_##S(const real *x,                        /* (rows, D) */         \
                               const real *res,                      /* (rows, D) */         \
                               void (*round_row)(real *, int64_t n), /* or NULL */           \
                               const real *w,                        /* (D) or NULL */       \
                               real *s,                              /* (rows, D) */         \
                               real *y,                              /* (rows, D) */         \
                               real *rstd,                           /* (rows) */            \
                               int64_t rows, int64_t D, double eps);                         \
    /* y[r, j] *= w[j] in place */                                                           \
    void k_mul_cols_##S(real *y,       /* (rows, D) */                                       \
                        const real *w, /* (D) */                                             \
                        int64_t rows, int64_t D);                                            \
    void k_rmsnorm_bwd_##S(const real *dy,   /* (rows, D) */                                 \
                           const real *x,    /* (rows, D) */                                 \
                           const real *w,    /* (D) or NULL */                               \
                           const real *rstd, /* (rows) */                                    \
                           real *dx,         /* (rows, D) or NULL */                         \
                           real *dw,         /* (D) or NULL */                               \
                           int64_t rows, int64_t D);                                         \
    /* y = (x - mean) * rstd * w + b, biased variance */                                     \
    void k_layernorm_fwd_##S(const real *x, /* (rows, D) */                                  \
                             const real *w, /* (D) or NULL */                                \
                             const real *b, /* (D) or NULL */                                \
                             real *y,       /* (rows, D) */                                  \
                             real *mean,    /* (rows) */                                     \
                             real *rstd,    /* (rows) */                                     \
                             int64_t rows, int64_t D, double eps);                           \
    /* s = x + res (rounded by round_row when given), then k_layernorm_fwd of s in the  */   \
    /* same pass over the row (same arithmetic, bit for bit)                             */  \
    void k_add_layernorm_fwd_##S(const real *x,                        /* (rows, D) */       \
                                 const real *res,                      /* (rows, D) */       \
                                 void (*round_row)(real *, int64_t n), /* or NULL */         \
                                 const real *w,                        /* (D) or NULL */     \
                                 const real *b,                        /* (D) or NULL */     \
                                 real *s,                              /* (rows, D) */       \
                                 real *y,                              /* (rows, D) */       \
                                 real *mean,                           /* (rows) */          \
                                 real *rstd,                           /* (rows) */          \
                                 int64_t rows, int64_t D, double eps);                       \
    void k_layernorm_bwd_##S(const real *dy,   /* (rows, D) */                               \
                             const real *x,    /* (rows, D) */                               \
                             const real *w,    /* (D) or NULL */                             \
                             const real *mean, /* (rows) */                                  \
                             const real *rstd, /* (rows) */                                  \
                             real *dx,         /* (rows, D) or NULL */                       \
                             real *dw,         /* (D) or NULL */                             \
                             real *db,         /* (D) or NULL */                             \
                             int64_t rows, int64_t D);                                       \
    /* Half-split rotation of every head: y[i] = x[i] c - x[i+h] s, y[i+h] = x[i+h] c +   */ \
    /* x[i] s, h = hd/2, (c, s) = (cos, sign * sin)[bt, i]. sign -1 is the transpose.    */  \
    void k_rope_##S(const real *x,   /* (BT, H, hd) */                                       \
                    const real *cos, /* (BT, hd/2) */                                        \
                    const real *sin, /* (BT, hd/2) */                                        \
                    real *y,         /* (BT, H, hd) */                                       \
                    int64_t BT, int64_t H, int64_t hd, int sign);                            \
    /* softmax over the last dim; a row of all -inf gives zeros */                           \
    void k_softmax_fwd_##S(const real *x, /* (rows, D) */                                    \
                           real *y,       /* (rows, D) */                                    \
                           int64_t rows, int64_t D);                                         \
    void k_softmax_bwd_##S(const real *dy, /* (rows, D) */                                   \
                           const real *y,  /* (rows, D) */                                   \
                           real *dx,       /* (rows, D) */                                   \
                           int64_t rows, int64_t D);                                         \
    /* Attention on the [B, T, H, hd] layout; kmask nonzero = attend; lse = -inf marks a */  \
    /* query row with no visible key (its output is zero). scratch holds `slots` (T, S)  */  \
    /* matrices, slots = k_attention_slots(B * Hkv) (at most that many threads run).     */  \
    void k_attention_fwd_##S(const real *q,        /* (B, T, Hq, hd) */                      \
                             const real *k,        /* (B, S, Hkv, hd) */                     \
                             const real *v,        /* (B, S, Hkv, hd) */                     \
                             const uint8_t *kmask, /* (B, S) or NULL */                      \
                             real *o,              /* (B, T, Hq, hd) */                      \
                             real *lse,            /* (B, Hq, T) */                          \
                             real *probs,          /* (B, Hq, T, S) kept for bwd, or NULL */ \
                             real *scratch,        /* (slots, T, S) */                       \
                             int64_t slots, int64_t B, int64_t T, int64_t S, int64_t Hq,     \
                             int64_t Hkv, int64_t hd, bool causal, double scale);            \
    /* Uses fwd's probs, or with NULL recomputes them from q, k and lse. dq, dk, dv are  */  \
    /* written (dk, dv summed over the query heads of a group); any may be NULL. Of a    */  \
    /* probs row only the columns a causal row block computed are read.                */    \
    void k_attention_bwd_##S(const real *q,        /* (B, T, Hq, hd) */                      \
                             const real *k,        /* (B, S, Hkv, hd) */                     \
                             const real *v,        /* (B, S, Hkv, hd) */                     \
                             const uint8_t *kmask, /* (B, S) or NULL */                      \
                             const real *lse,      /* (B, Hq, T) */                          \
                             const real *probs,    /* (B, Hq, T, S) from fwd, or NULL */     \
                             const real *dout,     /* (B, T, Hq, hd) */                      \
                             real *dq,             /* (B, T, Hq, hd) or NULL */              \
                             real *dk,             /* (B, S, Hkv, hd) or NULL */             \
                             real *dv,             /* (B, S, Hkv, hd) or NULL */             \
                             real *scratch,        /* (slots, 2, T, S) */                    \
                             int64_t slots, int64_t B, int64_t T, int64_t S, int64_t Hq,     \
                             int64_t Hkv, int64_t hd, bool causal, double scale);            \
    /* activations: y = f(x); dx = dy * f'(x) */                                             \
    void k_silu_fwd_##S(const real *x, real *y, int64_t n); /* (n) */                        \
    void k_silu_bwd_##S(const real *dy, const real *x, real *dx, int64_t n);                 \
    void k_gelu_fwd_##S(const real *x, real *y, int64_t n);                                  \
    void k_gelu_bwd_##S(const real *dy, const real *x, real *dx, int64_t n);                 \
    void k_quick_gelu_fwd_##S(const real *x, real *y, int64_t n);                            \
    void k_quick_gelu_bwd_##S(const real *dy, const real *x, real *dx, int64_t n);           \
    void k_relu_fwd_##S(const real *x, real *y, int64_t n);                                  \
    void k_relu_bwd_##S(const real *dy, const real *x, real *dx, int64_t n);                 \
    /* y = silu(g) * u */                                                                    \
    void k_swiglu_fwd_##S(const real *g, /* (n) */                                           \
                          const real *u, /* (n) */                                           \
                          real *y,       /* (n) */                                           \
                          int64_t n);                                                        \
    void k_swiglu_bwd_##S(const real *dy, /* (n) */                                          \
                          const real *g,  /* (n) */                                          \
                          const real *u,  /* (n) */                                          \
                          real *dg,       /* (n) or NULL */                                  \
                          real *du,       /* (n) or NULL */                                  \
                          int64_t n);                                                        \
    /* Sum over counted rows of lse - logits[target]; lse[r] for every counted row. */       \
    /* Returns the sum; *count gets the number of rows with target != ignore_index.  */      \
    double k_cross_entropy_fwd_##S(const real *logits,    /* (N, V) */                       \
                                   const int32_t *target, /* (N) */                          \
                                   real *lse,             /* (N) */                          \
                                   int64_t N, int64_t V, int ignore_index, int64_t *count);  \
    /* dlogits = g * (softmax - onehot) on counted rows, 0 on ignored ones */                \
    void k_cross_entropy_bwd_##S(const real *logits,    /* (N, V) */                         \
                                 const int32_t *target, /* (N) */                            \
                                 const real *lse,       /* (N) */                            \
                                 real *dlogits,         /* (N, V) */                         \
                                 int64_t N, int64_t V, int ignore_index, double g);

K_NN_DECLS(float, f32)
K_NN_DECLS(double, f64)

// x[i] = exp(x[i] - c) in place, i < n, on the SIMD level in use (kernels/cpu/simd.h):
// Cephes polynomial, <= 2 ulp; below -87.33654 (after subtracting c) gives 0, above
// 88.72283 +inf, NaN stays NaN. The attention softmax and cross-entropy use it.
void k_exp_sub_f32(float *x, int64_t n, float c);

// Scratch slots the attention kernels use for `units` = B * Hkv work units:
// min(units, OpenMP max threads), at least 1.
int64_t k_attention_slots(int64_t units);

// cos/sin of pos[bt] * inv_freq[i], all in f32 (as HF computes them).
void k_rope_table_f32(const int32_t *pos,     // (BT)
                      const float *inv_freq,  // (half)
                      float *cos,             // (BT, half)
                      float *sin,             // (BT, half)
                      int64_t BT, int64_t half);

#endif
