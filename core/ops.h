// core/ops.h - the op API: plain functions over tensors, each with forward and backward.
// defines: et_matmul, et_linear, et_add, et_sub, et_mul, et_scale, et_mul_exp, et_add_bcast,
//          et_sum_last, et_mean_last, et_embedding, et_rmsnorm, et_layernorm,
//          et_add_rmsnorm, et_add_layernorm, et_rope,
//          et_rope_inv_freq, et_softmax, et_attention, et_silu, et_gelu, et_quick_gelu,
//          et_swiglu, et_relu, et_cross_entropy, et_concat, et_narrow, et_reshape, et_gather_rows,
//          et_scatter_rows, et_permute, et_mean_pool, et_avg_pool2d, et_resize_bilinear,
//          et_patch_embed, et_bilinear_sample, et_dropout, et_cast
//
// Common contract
// - Every function returns a NEW tensor (caller releases) and borrows its inputs.
// - Shapes and dtypes are validated; a mismatch is a programmer error (ET_ASSERT aborts
//   with the shapes).
// - Float inputs may be f32, bf16, f16 or f64. The output takes the dtype of the first
//   (activation) input; other float inputs (weights) are widened on the fly, so a bf16
//   frozen weight works with f32 activations. CPU computes in f32 (f64 when the
//   activation is f64, for gradient checks); bf16/f16 are widened and rounded back.
//   f64 may not be mixed with other float dtypes.
// - Index inputs (ids, targets, positions, masks) are i32 (masks may also be u8).
// - With grad mode on and any input requiring grad, the op records a tape node
//   (autograd.h). Inputs that do not require grad get no gradient and cost no work.
#ifndef ET_OPS_H
#define ET_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "tensor.h"

// ---- linear algebra -------------------------------------------------------------
// a: [..., M, K] ([..., K, M] with trans_a), b: [..., K, N] ([..., N, K] with trans_b).
// Batch dims of a and b are equal, or b is 2-D and shared by every batch. -> [..., M, N]
et_tensor *et_matmul(et_tensor *a, et_tensor *b, bool trans_a, bool trans_b);
// x: [..., in], w: [out, in] (HF layout, y = x w^T + b), b: [out] or NULL -> [..., out]
et_tensor *et_linear(et_tensor *x, et_tensor *w, et_tensor *b);

// ---- elementwise ----------------------------------------------------------------
et_tensor *et_add(et_tensor *a, et_tensor *b);  // same shape
et_tensor *et_sub(et_tensor *a, et_tensor *b);
et_tensor *et_mul(et_tensor *a, et_tensor *b);
et_tensor *et_scale(et_tensor *a, double s);
// y = x * exp(s) with s a learned scalar (numel 1; CLIP's logit scale). Gradients reach x
// and s (ds = exp(s) sum(dy * x), summed in double). CPU only (core/ops_scalar.c).
et_tensor *et_mul_exp(et_tensor *x, et_tensor *s);
// b's shape equals the trailing dims of a (e.g. a [B, T, D] + b [D] or b [T, D]).
et_tensor *et_add_bcast(et_tensor *a, et_tensor *b);

// ---- reductions -----------------------------------------------------------------
et_tensor *et_sum_last(et_tensor *x);   // [..., D] -> [...]
et_tensor *et_mean_last(et_tensor *x);  // [..., D] -> [...]

// ---- embedding ------------------------------------------------------------------
// w: [V, D], ids: i32 [...] each in [0, V) -> [..., D]. Backward scatter-adds into dw.
et_tensor *et_embedding(et_tensor *w, et_tensor *ids);

// ---- normalisation --------------------------------------------------------------
// HF LlamaRMSNorm: y = cast(x * rsqrt(mean(x^2) + eps), x.dtype) * w; stats in f32.
// w: [D] or NULL (no affine).
et_tensor *et_rmsnorm(et_tensor *x, et_tensor *w, double eps);
// y = (x - mean) * rsqrt(var + eps) * w + b (biased var). w, b: [D] or NULL.
et_tensor *et_layernorm(et_tensor *x, et_tensor *w, et_tensor *b, double eps);
// Residual add fused with the norm (a pre-norm block's `h = x + res; n = norm(h)`):
// returns norm(x + res) and sets *sum = x + res (a NEW reference the caller releases).
// Bit-identical to `*sum = et_add(x, res); y = et_rmsnorm(*sum, w, eps)` (resp.
// et_layernorm), bf16/f16 sums rounded to x's dtype before normalising, and recorded as
// those two tape nodes ("et_add" with inputs x, res; the norm with input *sum), so
// gradients from later uses of *sum accumulate with the norm's as usual. x and res have
// the same shape (checks of et_add and the norm). On a device the backend's fused op runs
// when it has one, else the two plain ops.
et_tensor *et_add_rmsnorm(et_tensor *x, et_tensor *res, et_tensor *w, double eps, et_tensor **sum);
et_tensor *et_add_layernorm(et_tensor *x, et_tensor *res, et_tensor *w, et_tensor *b, double eps,
                            et_tensor **sum);

// ---- position encoding ----------------------------------------------------------
// HF rotary embedding, half-split layout (pairs (i, i + hd/2)).
// x: [B, T, H, hd], pos: i32 [B, T], inv_freq: f32 [hd/2] -> [B, T, H, hd].
// cos/sin are computed in f32 from pos * inv_freq and cast to x's dtype as HF does.
et_tensor *et_rope(et_tensor *x, et_tensor *pos, et_tensor *inv_freq);
// inv_freq[i] = theta^(-2i/hd) in f32 (no scaling; llama3 scaling lives in train/).
et_tensor *et_rope_inv_freq(int64_t head_dim, double theta);

// ---- softmax / attention --------------------------------------------------------
et_tensor *et_softmax(et_tensor *x);  // over the last dim, f32 accumulation
// Scaled dot-product attention, layout [batch, seq, heads, head_dim] (no transposes).
// q: [B, T, Hq, hd], k/v: [B, S, Hkv, hd], Hq % Hkv == 0 (grouped-query: query head h
// uses kv head h / (Hq/Hkv)). key_mask: i32 or u8 [B, S], nonzero = attend, or NULL.
// causal: query t sees keys s <= t + (S - T). scale: usually hd^-0.5.
// A query row with no visible key yields zeros (and zero gradient), never NaN.
// -> [B, T, Hq, hd]. Softmax in f32; backward recomputes the probabilities.
et_tensor *et_attention(et_tensor *q, et_tensor *k, et_tensor *v, et_tensor *key_mask, bool causal,
                        double scale);

// ---- activations ----------------------------------------------------------------
et_tensor *et_silu(et_tensor *x);                      // x * sigmoid(x)
et_tensor *et_gelu(et_tensor *x);                      // exact: 0.5 x (1 + erf(x / sqrt 2))
et_tensor *et_quick_gelu(et_tensor *x);                // x * sigmoid(1.702 x)
et_tensor *et_swiglu(et_tensor *gate, et_tensor *up);  // silu(gate) * up
et_tensor *et_relu(et_tensor *x);  // max(x, 0); gradient 0 at x = 0 (torch's convention)

// ---- loss -----------------------------------------------------------------------
// logits: [N, V] (any float dtype, computed in f32; f64 stays f64), targets: i32 [N].
// Mean over targets != ignore_index; a batch with no counted target gives 0 (and zero
// gradient), not NaN. -> scalar [] of f32 (f64 for f64 logits).
et_tensor *et_cross_entropy(et_tensor *logits, et_tensor *targets, int ignore_index);

// ---- shape ----------------------------------------------------------------------
// Concatenate n tensors along dim (all other dims equal, same dtype).
et_tensor *et_concat(int n, et_tensor *const *ts, int dim);
// x[..., start:start+len, ...] along dim; a view when it stays contiguous.
et_tensor *et_narrow(et_tensor *x, int dim, int64_t start, int64_t len);
// Same elements, new shape (a view). One dim may be -1.
et_tensor *et_reshape(et_tensor *x, int ndim, const int64_t *shape);

// y = x with its dims reordered, y.shape[i] = x.shape[perm[i]] (torch's
// x.permute(perm).contiguous()): a copy, any dtype. Backward permutes by the inverse.
et_tensor *et_permute(et_tensor *x, int ndim, const int *perm);

// ---- row gather / scatter (splicing visual tokens into text) --------------------
// x: [N, D], idx: i32 [M] -> [M, D] with row m = x[idx[m]] (repeats allowed).
et_tensor *et_gather_rows(et_tensor *x, et_tensor *idx);
// base: [N, D], idx: i32 [M] (distinct), src: [M, D] -> copy of base with row idx[m]
// replaced by src[m]. Backward: dbase = dy with those rows zeroed, dsrc = dy[idx].
et_tensor *et_scatter_rows(et_tensor *base, et_tensor *idx, et_tensor *src);

// ---- pooling --------------------------------------------------------------------
// x: [B, T, D], mask: i32/u8 [B, T] (nonzero = count) or NULL -> [B, D] mean over T.
// A row with an empty mask gives zeros.
et_tensor *et_mean_pool(et_tensor *x, et_tensor *mask);
// Channels-last average pooling, no padding: x [B, H, W, C] -> [B, Ho, Wo, C],
// Ho = (H - k) / stride + 1. Equals torch avg_pool2d on the NCHW permutation.
et_tensor *et_avg_pool2d(et_tensor *x, int k, int stride);

// Bilinear resize of channels-last maps: x [B, H, W, C] -> [B, Ho, Wo, C], equal to torch
// F.interpolate(mode="bilinear", align_corners=False) on the NCHW permutation (border
// samples clamp to the edge; no antialias). FaceXFormer's multi-scale fusion upsamples so.
et_tensor *et_resize_bilinear(et_tensor *x, int64_t Ho, int64_t Wo);

// ---- vision ---------------------------------------------------------------------
// Conv2d with stride = kernel = p, no padding, as im2col + GEMM.
// img: [B, C, H, W], w: [D, C, p, p], b: [D] or NULL -> [B, (H/p)*(W/p), D] (row-major
// patch order, as CLIP's flatten(2).transpose(1, 2)).
et_tensor *et_patch_embed(et_tensor *img, et_tensor *w, et_tensor *b);
// Bilinear sampling of channels-last features at 2-D points, as torch grid_sample
// (mode bilinear, padding zeros, align_corners false) with grid [B, 1, P, 2].
// feat: [B, H, W, C], pts: [B, P, 2] (x, y) in [-1, 1] -> [B, P, C].
// Gradient flows to feat only (points are data).
et_tensor *et_bilinear_sample(et_tensor *feat, et_tensor *pts);

// ---- regularisation / casts -----------------------------------------------------
// Inverted dropout: y = x * mask / (1 - p); mask from Philox at (seed, offset) so the
// same call gives the same mask on CPU, GPU and after a resume. p == 0 returns a copy.
et_tensor *et_dropout(et_tensor *x, double p, uint64_t seed, uint64_t offset);
et_tensor *et_cast(et_tensor *x, et_dtype dt);  // between f32/bf16/f16/f64

#endif
