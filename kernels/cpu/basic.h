// kernels/cpu/basic.h - elementwise, reductions, embedding, row gather/scatter, pooling,
// im2col, bilinear sampling and batched GEMM kernels (f32 and f64, see ktemplate.h).
// defines: k_binary_*, k_add_bcast_*, k_rowsum_*, k_embedding_*, k_gather_rows_*,
//          k_scatter_add_rows_*, k_mean_pool_*, k_avg_pool2d_*, k_im2col_*, k_col2im_*,
//          k_bilinear_*, k_masked_scale_*, k_bmm_*
#ifndef ET_K_BASIC_H
#define ET_K_BASIC_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { K_ADD = 0, K_SUB, K_MUL } k_binop;

#define K_BASIC_DECLS(real, S)                                                                    \
    /* y[i] = a[i] op b[i] (n elements) */                                                        \
    void k_binary_##S(k_binop op, const real *a, const real *b, real *y, int64_t n);              \
    /* y[i] = alpha * x[i] */                                                                     \
    void k_scale_##S(const real *x, real *y, int64_t n, real alpha);                              \
    /* y (rows, nb) = a (rows, nb) + b (nb) broadcast over rows */                                \
    void k_add_bcast_##S(const real *a, const real *b, real *y, int64_t rows, int64_t nb);        \
    /* y (nb) = sum over rows of x (rows, nb) */                                                  \
    void k_colsum_##S(const real *x, real *y, int64_t rows, int64_t nb);                          \
    /* y (rows) = scale * sum over d of x (rows, d) */                                            \
    void k_rowsum_##S(const real *x, real *y, int64_t rows, int64_t d, real scale);               \
    /* gx (rows, d) = scale * gy (rows) broadcast */                                              \
    void k_rowsum_bwd_##S(const real *gy, real *gx, int64_t rows, int64_t d, real scale);         \
    /* y (m, d) = x[idx[m]] rows; x (n, d) */                                                     \
    void k_gather_rows_##S(const real *x, const int32_t *idx, real *y, int64_t m, int64_t d);     \
    /* gx[idx[m]] += gy[m] (deterministic: rows accumulate in index order) */                     \
    void k_scatter_add_rows_##S(const real *gy, const int32_t *idx, real *gx, int64_t m,          \
                                int64_t d);                                                       \
    /* y (B, D) = masked mean over T of x (B, T, D); mask (B, T) may be NULL */                   \
    void k_mean_pool_fwd_##S(const real *x, const int32_t *mask, real *y, int64_t B, int64_t T,   \
                             int64_t D);                                                          \
    void k_mean_pool_bwd_##S(const real *gy, const int32_t *mask, real *gx, int64_t B, int64_t T, \
                             int64_t D);                                                          \
    /* channels-last avg pool: x (B, H, W, C) -> y (B, Ho, Wo, C) */                              \
    void k_avg_pool2d_fwd_##S(const real *x, real *y, int64_t B, int64_t H, int64_t W, int64_t C, \
                              int k, int stride);                                                 \
    void k_avg_pool2d_bwd_##S(const real *gy, real *gx, int64_t B, int64_t H, int64_t W,          \
                              int64_t C, int k, int stride);                                      \
    /* img (B, C, H, W) -> cols (B, nP, C*p*p), patch order row-major, (c, ky, kx) inner */       \
    void k_im2col_##S(const real *img, real *cols, int64_t B, int64_t C, int64_t H, int64_t W,    \
                      int p);                                                                     \
    /* gimg (B, C, H, W) = col2im(gcols (B, nP, C*p*p)); pixels outside patches stay 0 */         \
    void k_col2im_##S(const real *gcols, real *gimg, int64_t B, int64_t C, int64_t H, int64_t W,  \
                      int p);                                                                     \
    /* feat (B, H, W, C) sampled at pts (B, P, 2) -> y (B, P, C) (grid_sample semantics) */       \
    void k_bilinear_fwd_##S(const real *feat, const real *pts, real *y, int64_t B, int64_t H,     \
                            int64_t W, int64_t C, int64_t P);                                     \
    void k_bilinear_bwd_##S(const real *gy, const real *pts, real *gfeat, int64_t B, int64_t H,   \
                            int64_t W, int64_t C, int64_t P);                                     \
    /* x (B, H, W, C) -> y (B, Ho, Wo, C): bilinear resize as torch interpolate (bilinear,  */    \
    /* align_corners false, no antialias); taps in float as torch computes them            */     \
    void k_resize_bilinear_fwd_##S(const real *x, real *y, int64_t B, int64_t H, int64_t W,       \
                                   int64_t C, int64_t Ho, int64_t Wo);                            \
    void k_resize_bilinear_bwd_##S(const real *gy, real *gx, int64_t B, int64_t H, int64_t W,     \
                                   int64_t C, int64_t Ho, int64_t Wo);                            \
    /* y[i] = x[i] * keep[i] * scale */                                                           \
    void k_masked_scale_##S(const real *x, const uint8_t *keep, real *y, int64_t n, real scale);  \
    /* batched C[b] = op(A[b]) op(B[b]) (+ beta C); strides in elements, 0 = shared */            \
    void k_bmm_##S(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,              \
                   const real *A, int64_t sa, const real *Bm, int64_t sb, real beta, real *C,     \
                   int64_t sc);

K_BASIC_DECLS(float, f32)
K_BASIC_DECLS(double, f64)

#endif
