#!/usr/bin/env python3
"""tools/golden/gen_block.py - one LLaMA decoder block (HF LlamaDecoderLayer) in torch.

Writes tests/golden/block.safetensors, read by tests/test_golden_block.c.

Config: x [B=2, T=6, hidden 32], Hq=4, Hkv=2, head_dim 8, intermediate 48, rms eps 1e-5,
rope theta 10000, positions 0..T-1 per sample, causal attention plus a key padding mask
(sample 1 has its last 2 tokens padded), no biases.

  n1  = RMSNorm(x) * input_layernorm.weight
  q,k,v = q_proj(n1), k_proj(n1), v_proj(n1)    viewed [B,T,H,hd]
  q,k = rope(q), rope(k)                        (HF half-split rotate_half)
  a   = softmax(q k^T * hd^-0.5 + mask) v       (GQA: query head h uses kv head h // 2)
  h   = x + o_proj(a)
  n2  = RMSNorm(h) * post_attention_layernorm.weight
  out = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))

The computation follows HF's float32 code path step by step (inv_freq and cos/sin in f32,
RMSNorm statistics in f32). By default it runs in float64 from the f32 inputs so that the
stored reference (cast to f32) is more accurate than any f32 implementation; the script
also runs it in float32 and prints how far the two are apart (they must agree to < 1e-5).

Tensors: "x", "pos" (i32 [B,T]), "mask" (i32 [B,T], 1 = attend), "gy", "out", the weights
under their HF names (e.g. "self_attn.q_proj.weight") and their gradients under "grad/<name>"
plus "grad/x". Run from anywhere:  python3 tools/golden/gen_block.py
"""
import os
import sys

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden",
                   "block.safetensors")

B, T, D, HQ, HKV, HD, I = 2, 6, 32, 4, 2, 8, 48
EPS, THETA = 1e-5, 10000.0

torch.manual_seed(4321)
W = {
    "input_layernorm.weight": 1.0 + 0.1 * torch.randn(D),
    "self_attn.q_proj.weight": 0.2 * torch.randn(HQ * HD, D),
    "self_attn.k_proj.weight": 0.2 * torch.randn(HKV * HD, D),
    "self_attn.v_proj.weight": 0.2 * torch.randn(HKV * HD, D),
    "self_attn.o_proj.weight": 0.2 * torch.randn(D, HQ * HD),
    "post_attention_layernorm.weight": 1.0 + 0.1 * torch.randn(D),
    "mlp.gate_proj.weight": 0.2 * torch.randn(I, D),
    "mlp.up_proj.weight": 0.2 * torch.randn(I, D),
    "mlp.down_proj.weight": 0.2 * torch.randn(D, I),
}
x0 = torch.randn(B, T, D)
pos = torch.arange(T, dtype=torch.int32)[None].repeat(B, 1)
mask = torch.ones(B, T, dtype=torch.int32)
mask[1, T - 2:] = 0
gy = torch.randn(B, T, D)


def rmsnorm(x, w):
    # LlamaRMSNorm: variance in f32 (f64 when running the f64 reference), then * weight.
    h = x.float() if x.dtype != torch.float64 else x
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + EPS)
    return w * h.to(x.dtype)


def rotate_half(x):
    return torch.cat((-x[..., HD // 2:], x[..., :HD // 2]), dim=-1)


def rope_cos_sin(dtype):
    # LlamaRotaryEmbedding: inv_freq and angles in f32, cos/sin cast to the activation dtype.
    inv_freq = 1.0 / (THETA ** (torch.arange(0, HD, 2, dtype=torch.int64).float() / HD))
    freqs = (inv_freq[None, :, None].expand(B, -1, 1) @ pos[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)  # [B,T,hd]
    return emb.cos().to(dtype)[:, None], emb.sin().to(dtype)[:, None]  # [B,1,T,hd]


def block(x, w):
    dt = x.dtype
    n1 = rmsnorm(x, w["input_layernorm.weight"])
    q = F.linear(n1, w["self_attn.q_proj.weight"]).view(B, T, HQ, HD).transpose(1, 2)
    k = F.linear(n1, w["self_attn.k_proj.weight"]).view(B, T, HKV, HD).transpose(1, 2)
    v = F.linear(n1, w["self_attn.v_proj.weight"]).view(B, T, HKV, HD).transpose(1, 2)
    cos, sin = rope_cos_sin(dt)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = k.repeat_interleave(HQ // HKV, dim=1)  # repeat_kv
    v = v.repeat_interleave(HQ // HKV, dim=1)
    allowed = torch.ones(T, T, dtype=torch.bool).tril()[None, None] & (mask != 0)[:, None, None, :]
    bias = torch.zeros(B, 1, T, T, dtype=dt).masked_fill(~allowed, torch.finfo(dt).min)
    s = q @ k.transpose(2, 3) * HD ** -0.5 + bias
    p = torch.softmax(s, dim=-1, dtype=torch.float32).to(dt) if dt != torch.float64 \
        else torch.softmax(s, dim=-1)
    a = (p @ v).transpose(1, 2).reshape(B, T, HQ * HD)
    h = x + F.linear(a, w["self_attn.o_proj.weight"])
    n2 = rmsnorm(h, w["post_attention_layernorm.weight"])
    m = F.silu(F.linear(n2, w["mlp.gate_proj.weight"])) * F.linear(n2, w["mlp.up_proj.weight"])
    return h + F.linear(m, w["mlp.down_proj.weight"])


def run(dtype):
    x = x0.to(dtype).requires_grad_(True)
    w = {k: v.to(dtype).requires_grad_(True) for k, v in W.items()}
    out = block(x, w)
    out.backward(gy.to(dtype))
    grads = {"grad/x": x.grad}
    grads.update({"grad/" + k: v.grad for k, v in w.items()})
    return out.detach(), grads


out64, g64 = run(torch.float64)
out32, g32 = run(torch.float32)


def rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


worst = max([rel(out32, out64)] + [rel(g32[k], g64[k]) for k in g64])
print(f"f32 vs f64 reference: max relative difference {worst:.3g}", file=sys.stderr)
assert worst < 1e-5, worst

tensors = {"x": x0, "pos": pos, "mask": mask, "gy": gy, "out": out64.float()}
tensors.update(W)
tensors.update({k: v.float() for k, v in g64.items()})
tensors = {k: v.contiguous() for k, v in tensors.items()}
save_file(tensors, OUT, metadata={"generator": "tools/golden/gen_block.py",
                                  "torch": torch.__version__})
print(f"wrote {len(tensors)} tensors to {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)",
      file=sys.stderr)
