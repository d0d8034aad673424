#!/usr/bin/env python3
"""tools/golden/gen_ops.py - PyTorch reference fixtures for every op in core/ops.h.

Writes tests/golden/ops.safetensors, read by tests/test_golden_ops.c.

Every case is a set of tensors named "<case>/<field>":
  inputs   (e.g. "matmul_nn/a", "attn_causal_gqa/q", index tensors as int32),
  gy       the upstream gradient (same shape/dtype as the output),
  y        the reference output,
  g<input> the reference gradient of each float input that takes one ("matmul_nn/ga").

Precision
- f32 cases: inputs are random f32 values; the reference is computed with torch autograd
  in float64 from those exact values and stored as f32. Exceptions, computed in f32 the
  way HF does because the op's contract says so: rope (inv_freq and cos/sin in f32) and
  cast (f32 -> bf16 -> f32 is exact rounding).
- bf16 cases ("*_bf16"): inputs, gy, y and grads are bf16 and torch computes in bf16 the
  way HF does (LlamaRMSNorm upcasts to f32 for the statistics, attention is HF's SDPA path
  with softmax in f32 internally, cross-entropy upcasts logits to f32). The C test
  compares these at <= 1e-2.

Op parameters (transpose flags, eps, scale, dims, ...) are hard-coded here and in the C
test; keep the two in sync. Run from the repository root:
    python3 tools/golden/gen_ops.py
"""
import math
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden",
                   "ops.safetensors")

torch.manual_seed(1234)
T = {}  # name -> tensor


def put(case, field, t):
    name = f"{case}/{field}"
    assert name not in T, name
    t = t.detach().contiguous()
    if t.dtype in (torch.int64, torch.bool, torch.uint8):
        t = t.to(torch.int32)
    T[name] = t.clone()


def randn(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).float()


def run_case(case, fn, inputs, grad_inputs, dtype=torch.float64, store_dtype=torch.float32,
             extra=None):
    """inputs: dict field -> tensor (float tensors in f32 or bf16, index tensors int).
    grad_inputs: fields that take a gradient. fn(**inputs_in_compute_dtype) -> y.
    dtype: compute dtype for float inputs (float64 for f32 cases, None = keep)."""
    for k, v in inputs.items():
        put(case, k, v)
    args = {}
    for k, v in inputs.items():
        if v.is_floating_point():
            a = v.detach().to(dtype) if dtype is not None else v.detach().clone()
            if k in grad_inputs:
                a.requires_grad_(True)
            args[k] = a
        else:
            args[k] = v
    y = fn(**args)
    gy = torch.randn(y.shape).to(store_dtype)
    y.backward(gy.to(y.dtype))
    put(case, "gy", gy)
    put(case, "y", y.to(store_dtype))
    for k in grad_inputs:
        g = args[k].grad
        assert g is not None, (case, k)
        put(case, "g" + k, g.to(store_dtype))
    if extra:
        for k, v in extra.items():
            put(case, k, v)


# ---- linear algebra ---------------------------------------------------------------
def mm(ta, tb):
    def f(a, b):
        A = a.transpose(-1, -2) if ta else a
        B = b.transpose(-1, -2) if tb else b
        return torch.matmul(A, B)
    return f


run_case("matmul_nn", mm(False, False), {"a": randn(3, 4), "b": randn(4, 5)}, ["a", "b"])
run_case("matmul_nt", mm(False, True), {"a": randn(3, 4), "b": randn(5, 4)}, ["a", "b"])
run_case("matmul_tn", mm(True, False), {"a": randn(4, 3), "b": randn(4, 5)}, ["a", "b"])
run_case("matmul_tt", mm(True, True), {"a": randn(4, 3), "b": randn(5, 4)}, ["a", "b"])
run_case("matmul_batched", mm(False, False), {"a": randn(2, 3, 4), "b": randn(2, 4, 5)},
         ["a", "b"])
run_case("matmul_batched4d_nt", mm(False, True), {"a": randn(2, 2, 3, 4), "b": randn(2, 2, 5, 4)},
         ["a", "b"])
run_case("matmul_shared", mm(False, False), {"a": randn(2, 3, 4), "b": randn(4, 5)}, ["a", "b"])
run_case("matmul_shared_tt", mm(True, True), {"a": randn(2, 4, 3), "b": randn(5, 4)}, ["a", "b"])

run_case("linear_bias", lambda x, w, b: F.linear(x, w, b),
         {"x": randn(2, 3, 6), "w": randn(5, 6), "b": randn(5)}, ["x", "w", "b"])
run_case("linear_nobias", lambda x, w: F.linear(x, w),
         {"x": randn(4, 6), "w": randn(5, 6)}, ["x", "w"])

# ---- elementwise / reductions -------------------------------------------------------
run_case("add", lambda a, b: a + b, {"a": randn(3, 5), "b": randn(3, 5)}, ["a", "b"])
run_case("sub", lambda a, b: a - b, {"a": randn(3, 5), "b": randn(3, 5)}, ["a", "b"])
run_case("mul", lambda a, b: a * b, {"a": randn(3, 5), "b": randn(3, 5)}, ["a", "b"])
run_case("scale", lambda a: a * -1.75, {"a": randn(3, 5)}, ["a"])  # s = -1.75
run_case("add_bcast_d", lambda a, b: a + b, {"a": randn(2, 3, 4), "b": randn(4)}, ["a", "b"])
run_case("add_bcast_td", lambda a, b: a + b, {"a": randn(2, 3, 4), "b": randn(3, 4)}, ["a", "b"])
run_case("sum_last", lambda x: x.sum(-1), {"x": randn(2, 3, 5)}, ["x"])
run_case("mean_last", lambda x: x.mean(-1), {"x": randn(2, 3, 5)}, ["x"])

# ---- embedding (repeated ids) -----------------------------------------------------
run_case("embedding", lambda w, ids: F.embedding(ids.long(), w),
         {"w": randn(7, 4), "ids": torch.tensor([[1, 3, 3, 0, 6], [3, 1, 5, 5, 5]],
                                                 dtype=torch.int32)}, ["w"])

# ---- normalisation ------------------------------------------------------------------
def rmsnorm_hf(x, w, eps):
    # HF LlamaRMSNorm: statistics in f32, cast back to the input dtype, then * weight.
    dt = x.dtype
    h = x.to(torch.float32) if dt != torch.float64 else x
    var = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(var + eps)
    h = h.to(dt)
    return h if w is None else w * h


run_case("rmsnorm", lambda x, w: rmsnorm_hf(x, w, 1e-5),
         {"x": randn(2, 3, 8), "w": randn(8) * 0.5 + 1.0}, ["x", "w"])  # eps 1e-5
run_case("rmsnorm_noaffine", lambda x: rmsnorm_hf(x, None, 1e-6),
         {"x": randn(2, 3, 8, scale=2.0)}, ["x"])  # eps 1e-6, w NULL
run_case("layernorm", lambda x, w, b: F.layer_norm(x, (8,), w, b, 1e-5),
         {"x": randn(2, 3, 8, scale=1.5) + 0.7, "w": randn(8) * 0.5 + 1.0, "b": randn(8)},
         ["x", "w", "b"])  # eps 1e-5
run_case("layernorm_noaffine", lambda x: F.layer_norm(x, (8,), None, None, 1e-6),
         {"x": randn(2, 3, 8)}, ["x"])  # eps 1e-6, w = b = NULL


# ---- rope (HF LlamaRotaryEmbedding + apply_rotary_pos_emb), x [B,T,H,hd] -------------
def hf_inv_freq(hd, theta):
    return 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.int64).float() / hd))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_hf(x, pos, inv_freq):
    # LlamaRotaryEmbedding.forward (f32), then apply_rotary_pos_emb on [B,H,T,hd].
    inv = inv_freq[None, :, None].float().expand(pos.shape[0], -1, 1)
    freqs = (inv @ pos[:, None, :].float()).transpose(1, 2)  # [B,T,hd/2]
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos().to(x.dtype)[:, None]  # unsqueeze_dim=1 -> [B,1,T,hd]
    sin = emb.sin().to(x.dtype)[:, None]
    xh = x.transpose(1, 2)  # [B,H,T,hd]
    out = xh * cos + rotate_half(xh) * sin
    return out.transpose(1, 2)


inv8 = hf_inv_freq(8, 10000.0)  # head_dim 8, theta 10000
run_case("rope", lambda x, pos: rope_hf(x, pos, inv8),
         {"x": randn(2, 5, 3, 8), "pos": torch.tensor([[3, 4, 5, 6, 7], [10, 11, 12, 13, 14]],
                                                       dtype=torch.int32)},
         ["x"], dtype=None, extra={"inv_freq": inv8})

# ---- softmax / attention ------------------------------------------------------------
run_case("softmax", lambda x: torch.softmax(x, -1), {"x": randn(3, 7, scale=3.0)}, ["x"])


def attn_ref(q, k, v, mask, causal, scale):
    """softmax(QK^T*scale + mask) V, layout [B,T,H,hd], GQA by repeat_interleave."""
    B, Tq, Hq, hd = q.shape
    S, Hkv = k.shape[1], k.shape[2]
    rep = Hq // Hkv
    qh = q.transpose(1, 2)
    kh = k.transpose(1, 2).repeat_interleave(rep, dim=1)  # query head h -> kv head h//rep
    vh = v.transpose(1, 2).repeat_interleave(rep, dim=1)
    s = (qh @ kh.transpose(-1, -2)) * scale  # [B,Hq,T,S]
    allowed = torch.ones(B, 1, Tq, S, dtype=torch.bool)
    if causal:
        t = torch.arange(Tq)[:, None]
        si = torch.arange(S)[None, :]
        allowed = allowed & (si <= t + (S - Tq))[None, None]
    if mask is not None:
        allowed = allowed & (mask != 0)[:, None, None, :]
    s = s.masked_fill(~allowed, -1e30)  # finite: a fully masked row stays NaN-free
    p = torch.softmax(s, -1) * allowed.any(-1, keepdim=True).to(s.dtype)  # empty row -> 0
    return (p @ vh).transpose(1, 2)


hd = 8
run_case("attn_causal_gqa",
         lambda q, k, v, mask: attn_ref(q, k, v, mask, True, hd ** -0.5),
         {"q": randn(2, 5, 4, hd), "k": randn(2, 5, 2, hd), "v": randn(2, 5, 2, hd),
          "mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.int32)},
         ["q", "k", "v"])  # causal, scale 8^-0.5
run_case("attn_bidir_mha",
         lambda q, k, v: attn_ref(q, k, v, None, False, 0.3),
         {"q": randn(2, 4, 3, 4), "k": randn(2, 4, 3, 4), "v": randn(2, 4, 3, 4)},
         ["q", "k", "v"])  # not causal, no mask, scale 0.3
run_case("attn_causal_t_lt_s",
         lambda q, k, v: attn_ref(q, k, v, None, True, hd ** -0.5),
         {"q": randn(1, 3, 2, hd), "k": randn(1, 6, 1, hd), "v": randn(1, 6, 1, hd)},
         ["q", "k", "v"])  # causal, T=3 < S=6, scale 8^-0.5
# Left padding + causal: query 0 of sample 1 sees no key -> zeros and zero gradient.
run_case("attn_empty_row",
         lambda q, k, v, mask: attn_ref(q, k, v, mask, True, 0.5),
         {"q": randn(2, 4, 2, 4), "k": randn(2, 4, 1, 4), "v": randn(2, 4, 1, 4),
          "mask": torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1]], dtype=torch.int32)},
         ["q", "k", "v"])  # causal, scale 0.5

# ---- activations ----------------------------------------------------------------------
run_case("silu", lambda x: F.silu(x), {"x": randn(3, 7, scale=2.0)}, ["x"])
run_case("gelu", lambda x: F.gelu(x), {"x": randn(3, 7, scale=2.0)}, ["x"])
run_case("quick_gelu", lambda x: x * torch.sigmoid(1.702 * x), {"x": randn(3, 7, scale=2.0)},
         ["x"])
run_case("swiglu", lambda gate, up: F.silu(gate) * up,
         {"gate": randn(3, 7, scale=2.0), "up": randn(3, 7)}, ["gate", "up"])

# ---- loss ---------------------------------------------------------------------------
run_case("cross_entropy", lambda logits, targets: F.cross_entropy(
    logits, targets.long(), ignore_index=-100),
    {"logits": randn(6, 10, scale=2.0),
     "targets": torch.tensor([3, -100, 0, 9, -100, 3], dtype=torch.int32)},
    ["logits"])  # ignore_index -100


def ce_all_ignored(logits, targets):
    # Contract: no counted target -> 0 and zero gradient (torch would give NaN).
    return (logits * 0).sum()


run_case("cross_entropy_all_ignored", ce_all_ignored,
         {"logits": randn(3, 5), "targets": torch.tensor([-100, -100, -100], dtype=torch.int32)},
         ["logits"])

# ---- shape ----------------------------------------------------------------------------
run_case("concat_dim0", lambda a, b, c: torch.cat([a, b, c], 0),
         {"a": randn(2, 3, 4), "b": randn(1, 3, 4), "c": randn(3, 3, 4)}, ["a", "b", "c"])
run_case("concat_dim1", lambda a, b: torch.cat([a, b], 1),
         {"a": randn(2, 1, 4), "b": randn(2, 3, 4)}, ["a", "b"])
run_case("concat_last", lambda a, b: torch.cat([a, b], 2),
         {"a": randn(2, 3, 2), "b": randn(2, 3, 5)}, ["a", "b"])
run_case("narrow_inner", lambda x: x.narrow(1, 2, 3), {"x": randn(2, 6, 4)}, ["x"])  # dim 1
run_case("narrow_outer", lambda x: x.narrow(0, 1, 2), {"x": randn(4, 3, 2)}, ["x"])  # dim 0
run_case("reshape", lambda x: x.reshape(6, -1), {"x": randn(2, 3, 4)}, ["x"])  # [6, -1]

# ---- gather / scatter rows -------------------------------------------------------------
run_case("gather_rows", lambda x, idx: x[idx.long()],
         {"x": randn(5, 4), "idx": torch.tensor([4, 0, 2, 2, 4, 1], dtype=torch.int32)}, ["x"])


def scatter_rows(base, idx, src):
    out = base.clone()
    out[idx.long()] = src
    return out


run_case("scatter_rows", scatter_rows,
         {"base": randn(6, 4), "idx": torch.tensor([4, 1, 2], dtype=torch.int32),
          "src": randn(3, 4)}, ["base", "src"])

# ---- pooling ----------------------------------------------------------------------------
def mean_pool(x, mask):
    m = (mask != 0).to(x.dtype)[..., None]
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


run_case("mean_pool_mask", mean_pool,
         {"x": randn(3, 5, 4), "mask": torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1],
                                                      [0, 0, 0, 0, 0]], dtype=torch.int32)},
         ["x"])  # sample 2 has an empty mask -> zeros
run_case("mean_pool_nomask", lambda x: x.mean(1), {"x": randn(2, 5, 4)}, ["x"])


def avg_pool_cl(k, s):
    return lambda x: F.avg_pool2d(x.permute(0, 3, 1, 2), k, s).permute(0, 2, 3, 1)


run_case("avg_pool2d_k2s2", avg_pool_cl(2, 2), {"x": randn(2, 6, 6, 3)}, ["x"])
run_case("avg_pool2d_k3s2", avg_pool_cl(3, 2), {"x": randn(1, 7, 5, 2)}, ["x"])

# ---- vision -----------------------------------------------------------------------------
def patch_embed(img, w, b=None):
    return F.conv2d(img, w, b, stride=w.shape[-1]).flatten(2).transpose(1, 2)


run_case("patch_embed", patch_embed,
         {"img": randn(2, 3, 8, 12), "w": randn(5, 3, 4, 4, scale=0.3), "b": randn(5)},
         ["img", "w", "b"])  # p = 4 -> 2*3 patches
run_case("patch_embed_nobias", patch_embed,
         {"img": randn(1, 2, 6, 6), "w": randn(4, 2, 3, 3, scale=0.3)}, ["img", "w"])


def bilinear(feat, pts):
    g = F.grid_sample(feat.permute(0, 3, 1, 2), pts[:, None, :, :].to(feat.dtype),
                      mode="bilinear", padding_mode="zeros", align_corners=False)
    return g[:, :, 0, :].permute(0, 2, 1)  # [B,C,1,P] -> [B,P,C]


pts = torch.tensor([[[0.0, 0.0], [-1.0, -1.0], [1.0, 1.0], [0.97, -0.99], [-1.08, 0.3],
                     [1.15, 1.2], [0.31, -0.62], [-0.93, 1.04]],
                    [[0.5, 0.25], [-1.01, 0.0], [0.999, 0.5], [1.3, 0.0], [-0.2, -1.12],
                     [0.6, 0.7], [-0.77, -0.41], [0.05, 0.95]]], dtype=torch.float32)
run_case("bilinear_sample", bilinear, {"feat": randn(2, 5, 6, 3), "pts": pts}, ["feat"])

# ---- regularisation / casts --------------------------------------------------------------
run_case("dropout_p0", lambda x: x * 1.0, {"x": randn(3, 5)}, ["x"])  # p = 0 -> copy
# emotune lets gradients flow in the compute dtype (f32) through a bf16 intermediate
# (core/ops_internal.h), so d(cast)/dx is the identity and gx == gy exactly; torch rounds
# the gradient to bf16 on the way back. Both are stored: "gx" (emotune's contract, exact)
# and "gx_torch" (torch's bf16-rounded gradient, compared at the bf16 tolerance).
run_case("cast_bf16_roundtrip",
         lambda x: x + (x.to(torch.bfloat16).to(torch.float32) - x).detach(),  # == the cast
         {"x": randn(3, 5)}, ["x"], dtype=None)
_x = T["cast_bf16_roundtrip/x"].clone().requires_grad_(True)
assert torch.equal(_x.to(torch.bfloat16).to(torch.float32), T["cast_bf16_roundtrip/y"])
_x.to(torch.bfloat16).to(torch.float32).backward(T["cast_bf16_roundtrip/gy"])
put("cast_bf16_roundtrip", "gx_torch", _x.grad)

# ---- bf16 cases (torch computes in bf16 as HF does), compared at 1e-2 ------------------------
BF = torch.bfloat16


def rb(*shape, scale=1.0):
    return randn(*shape, scale=scale).to(BF)


def run_bf16(case, fn, inputs, grad_inputs):
    run_case(case, fn, inputs, grad_inputs, dtype=None, store_dtype=BF)


run_bf16("linear_bf16", lambda x, w, b: F.linear(x, w, b),
         {"x": rb(2, 3, 16), "w": rb(8, 16, scale=0.25), "b": rb(8)}, ["x", "w", "b"])
run_bf16("rmsnorm_bf16", lambda x, w: rmsnorm_hf(x, w, 1e-5),
         {"x": rb(2, 3, 16), "w": (randn(16) * 0.5 + 1.0).to(BF)}, ["x", "w"])  # eps 1e-5


def attn_sdpa(q, k, v, mask):
    # HF sdpa path: [B,H,T,hd], GQA by repeat_kv (repeat_interleave), boolean mask.
    B, Tq, Hq, d = q.shape
    rep = Hq // k.shape[2]
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))
    kh = kh.repeat_interleave(rep, dim=1)
    vh = vh.repeat_interleave(rep, dim=1)
    causal = torch.ones(Tq, Tq, dtype=torch.bool).tril()
    allowed = causal[None, None] & (mask != 0)[:, None, None, :]
    o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=allowed, scale=d ** -0.5)
    return o.transpose(1, 2)


run_bf16("attn_causal_gqa_bf16", attn_sdpa,
         {"q": rb(2, 5, 4, 8), "k": rb(2, 5, 2, 8), "v": rb(2, 5, 2, 8),
          "mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.int32)},
         ["q", "k", "v"])  # causal, scale 8^-0.5
run_bf16("silu_bf16", lambda x: F.silu(x), {"x": rb(3, 16, scale=2.0)}, ["x"])
run_bf16("swiglu_bf16", lambda gate, up: F.silu(gate) * up,
         {"gate": rb(3, 16, scale=2.0), "up": rb(3, 16)}, ["gate", "up"])


def ce_hf(logits, targets):
    # HF: logits.float() then cross-entropy (loss is f32; grad flows back as bf16).
    return F.cross_entropy(logits.float(), targets.long(), ignore_index=-100)


# loss y/gy are f32 scalars (the C op returns f32 for bf16 logits); glogits is bf16.
for k, v in {"logits": rb(6, 32, scale=2.0),
             "targets": torch.tensor([5, -100, 31, 0, 7, -100], dtype=torch.int32)}.items():
    put("cross_entropy_bf16", k, v)
_lg = T["cross_entropy_bf16/logits"].clone().requires_grad_(True)
_y = ce_hf(_lg, T["cross_entropy_bf16/targets"])
_gy = torch.randn(())
_y.backward(_gy)
put("cross_entropy_bf16", "gy", _gy)
put("cross_entropy_bf16", "y", _y)
put("cross_entropy_bf16", "glogits", _lg.grad)

# ---- mixed dtypes: a frozen bf16 weight with f32 activations (widened on the fly) --------
run_case("linear_f32_bf16w", lambda x, w, b: F.linear(x, w, b),
         {"x": randn(3, 16), "w": rb(8, 16, scale=0.25), "b": randn(8)}, ["x", "b"])

# ---- face network ops (appended last, so the draws above keep their values) -------------
def resize_cl(ho, wo):
    return lambda x: F.interpolate(x.permute(0, 3, 1, 2), size=(ho, wo), mode="bilinear",
                                   align_corners=False).permute(0, 2, 3, 1)


run_case("resize_up2", resize_cl(6, 8), {"x": randn(2, 3, 4, 3)}, ["x"])
run_case("resize_up4", resize_cl(12, 20), {"x": randn(1, 3, 5, 2)}, ["x"])
run_case("resize_down", resize_cl(3, 4), {"x": randn(1, 7, 5, 2)}, ["x"])
run_case("resize_1row", resize_cl(3, 8), {"x": randn(1, 1, 4, 2)}, ["x"])
run_case("relu", lambda x: F.relu(x), {"x": randn(4, 9)}, ["x"])
run_case("permute_0213", lambda x: x.permute(0, 2, 1, 3), {"x": randn(2, 3, 4, 5)}, ["x"])

save_file(T, OUT, metadata={"generator": "tools/golden/gen_ops.py", "torch": torch.__version__})
print(f"wrote {len(T)} tensors to {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)",
      file=sys.stderr)
