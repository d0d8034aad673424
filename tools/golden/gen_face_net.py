#!/usr/bin/env python3
"""tools/golden/gen_face_net.py - random-weight FaceXFormer (Swin-v1 + SAM two-way decoder).

Writes, read by tests/test_face_net.c:
  tests/golden/face_net/<case>/config.json        sizes of the case (model_type "facexformer")
  tests/golden/face_net/<case>/model.safetensors  the full state dict (f32; the Swin
                                                  relative_position_index buffers as int32)
                                                  under FaceXFormer's names
  tests/golden/face_net/<case>/io.safetensors     inputs, intermediates and outputs (f32)

Cases:
  tiny        image 64, patch 4, embed 16, depths [2, 2], heads [2, 4], window 4, fuse 32,
              decoder depth 2 / 4 heads / mlp 64, batch 2 (maps 16x16 and 8x8: the odd block
              of both stages runs a real shifted window with the -100 mask); also the loss
              and float64 gradients for training parity.
  reduced224  image 224, patch 4, window 7, embed 16, depths [2, 2, 2, 2], heads [1, 2, 2, 4],
              fuse 32, decoder as above, batch 1: the spatial shapes of the real model
              (56/28/14/7; at 7x7 the window covers the map and torchvision turns the shift off).
  padded      image 40, patch 4, window 4, embed 8, depths [2, 2, 2], heads [2, 2, 4], fuse 32,
              decoder as above, batch 2: maps 10x10 -> 5x5 -> 3x3, so nothing divides evenly.
              Each block zero-pads its (normed) map at the bottom/right up to whole windows,
              10 -> 12, 5 -> 8, 3 -> 4, attends over the padded windows with the padded
              tokens NOT masked as keys (a zero token's k/v is the qkv bias), then crops back;
              PatchMerging zero-pads the odd 5x5 to 6x6 (before its LayerNorm) -> 3x3.  The
              odd blocks of stages 0 and 1 shift by 2 (on the padded map, -100 mask over the
              padded size); at stage 2 the padded 4x4 equals the window, so the shift is off.
              In stage 0's shifted block the padded strip is exactly the rolled-in strip, so
              the -100 mask hides it; in every other block real queries see padded keys.
              Also the loss and float64 gradients, as for tiny.

The model re-states FaceXFormer (github.com/Kartik-3004/facexformer,
network/models/facexformer.py and transformer.py) with every size taken from the config:
  backbone     nn.Sequential(*list(torchvision SwinTransformer(...).children())[:-1]):
               "backbone.0.<k>" = swin.features[k], "backbone.1" = swin.norm (in the state
               dict, unused by every output below)
  stage i      forward hook on features[1 + 2 i], channels-last [B, h_i, w_i, C_i]
  linear_c.i   .proj Linear(C_i, F) on the stage's tokens, to [B, F, h_i, w_i], then
               F.interpolate to (h_0, w_0), bilinear, align_corners=False
  linear_fuse  Conv2d(F * n_stages, F, 1, bias=False) on the stage maps, LAST stage first
  pe_layer     PositionEmbeddingRandom(F // 2): pixel centres ((x+.5)/w, (y+.5)/h) -> 2c-1
               -> @ gaussian [2, F/2] -> * 2 pi -> cat(sin, cos)  => image_pe [1, F, h0, w0]
  face_decoder 7 task tokens + 11 mask tokens (18 queries), SAM TwoWayTransformer (ReLU MLP,
               attention downsample 2, layer 0 skips the query PE and its residual), final
               token->image attention + LayerNorm; 3-layer ReLU MLP heads on tokens 0..6.
               output_upscaling / output_hypernetwork_mlps exist (state dict) but are not run.

io.safetensors:
  "pixels" [B,3,S,S]; "stage<i>" [B,h_i,w_i,C_i]; "fused" [B,h0,w0,F] (channels-last);
  "image_pe" [h0*w0, F] (rows in (y, x) row-major order); "tokens" [B,18,F] (queries after
  norm_final_attn); "keys" [B,h0*w0,F] (image tokens out of the transformer); "landmarks"
  [B,136], "pose" [B,3], "age" [B,8], "gender" [B,2], "race" [B,5].
  tiny and padded only: "r_landmarks", "r_age", "r_fused" (same shapes as the outputs),
  "loss" [1] = sum(landmarks*r_landmarks) + sum(age*r_age) + sum(fused*r_fused), and
  "grad/<name>" for the parameters in GRAD_NAMES[case].

Weights are drawn in f32 after torch.manual_seed (every float parameter and buffer is
re-drawn so that it matters: Linear/Conv weights N(0, 1/fan_in), biases N(0, 0.1^2),
LayerNorm 1 + N(0, 0.1^2) / N(0, 0.1^2), relative position bias tables N(0, 0.5^2), tokens
and the PE gaussian N(0, 1)); the reference runs in float64 (model.double()) from those
f32 values in eval mode and is stored as f32. The script also runs float32 and prints the
worst relative error of each output against the float64 one.  Each case seeds on its own
(seeds 20240611 / 20240612 / 20240613), so one case's bytes never depend on the others.

Checks run on every case (float64): each stage's odd block against itself with the shift
forced to 0 (must differ exactly when the padded map is larger than the window), and every
block against itself with the padded keys masked out (must differ exactly when some real
query shares a window and shift region with a padded key; bit-identical otherwise, so 0
for the unpadded tiny and reduced224); padded also asserts the sizes listed above.

Run from the repo root (torchvision is only needed to regenerate; it is not installed
system-wide here but lives in /tmp/tv):
    PYTHONPATH=/tmp/tv python3 tools/golden/gen_face_net.py          # writes all three cases
    PYTHONPATH=/tmp/tv python3 tools/golden/gen_face_net.py --names  # also print tensor names
Nothing is downloaded (no pretrained weights).
"""
import copy
import json
import math
import os
import sys
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file
import torchvision.models.swin_transformer as tv_swin
from torchvision.models.swin_transformer import (PatchMerging, ShiftedWindowAttention,
                                                 SwinTransformer, SwinTransformerBlock)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "face_net")

COMMON = dict(patch_size=4, num_channels=3, mlp_ratio=4.0, layer_norm_eps=1e-5, fuse_dim=32,
              decoder_depth=2, decoder_heads=4, decoder_mlp_dim=64,
              attention_downsample_rate=2, num_mask_tokens=11)
CASES = [
    ("tiny", dict(image_size=64, embed_dim=16, depths=[2, 2], num_heads=[2, 4], window_size=4),
     dict(batch=2, seed=20240611, grad=True)),
    ("reduced224", dict(image_size=224, embed_dim=16, depths=[2, 2, 2, 2],
                        num_heads=[1, 2, 2, 4], window_size=7),
     dict(batch=1, seed=20240612, grad=False)),
    # embed 8, not 16: with 16 the state dict alone is 827 KB (stage 2 blocks at C=64) and
    # the case comes to 1.17 MB; with 8 it stays well under 1 MB.  The geometry (what the
    # case is for) depends only on image / patch / window / depths.
    ("padded", dict(image_size=40, embed_dim=8, depths=[2, 2, 2], num_heads=[2, 2, 4],
                    window_size=4),
     dict(batch=2, seed=20240613, grad=True)),
]
# Every case re-seeds (torch.manual_seed(seed)) before drawing anything, so adding or
# reordering cases never changes the bytes of another case.
CONFIG_KEYS = ["model_type", "image_size", "patch_size", "num_channels", "embed_dim", "depths",
               "num_heads", "window_size", "mlp_ratio", "layer_norm_eps", "fuse_dim",
               "decoder_depth", "decoder_heads", "decoder_mlp_dim",
               "attention_downsample_rate", "num_mask_tokens"]

GRAD_NAMES = {}
GRAD_NAMES["tiny"] = [
    "backbone.0.0.0.weight",
    "backbone.0.1.1.attn.qkv.weight",
    "backbone.0.1.1.attn.relative_position_bias_table",
    "backbone.0.2.reduction.weight",
    "backbone.0.3.1.mlp.0.weight",
    "linear_c.1.proj.weight",
    "linear_fuse.weight",
    "face_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight",
    "face_decoder.transformer.layers.1.cross_attn_image_to_token.v_proj.weight",
    "face_decoder.landmarks_token.weight",
    "face_decoder.age_prediction_head.layers.2.weight",
]
GRAD_NAMES["padded"] = [
    "backbone.0.0.0.weight",
    "backbone.0.1.1.attn.qkv.weight",                  # stage 0: padded 10 -> 12, shifted
    "backbone.0.1.1.attn.relative_position_bias_table",
    "backbone.0.2.reduction.weight",                   # merge 10x10 -> 5x5 (even)
    "backbone.0.3.1.attn.qkv.weight",                  # stage 1: padded 5 -> 8, shifted
    "backbone.0.3.1.attn.relative_position_bias_table",
    "backbone.0.3.1.mlp.0.weight",
    "backbone.0.4.reduction.weight",                   # merge 5x5 -> 3x3 (odd: zero pad)
    "backbone.0.5.1.attn.qkv.weight",                  # stage 2: padded 3 -> 4, shift off
    "backbone.0.5.1.attn.relative_position_bias_table",
    "linear_c.2.proj.weight",
    "linear_fuse.weight",
    "face_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight",
    "face_decoder.transformer.layers.1.cross_attn_image_to_token.v_proj.weight",
    "face_decoder.landmarks_token.weight",
    "face_decoder.age_prediction_head.layers.2.weight",
]

TASKS = [  # (token attribute, head attribute, output size, io name or None)
    ("landmarks_token", "landmarks_prediction_head", 136, "landmarks"),
    ("pose_token", "pose_prediction_head", 3, "pose"),
    ("attribute_token", "attribute_prediction_head", 40, None),
    ("visibility_token", "visibility_prediction_head", 29, None),
    ("age_token", "age_prediction_head", 8, "age"),
    ("gender_token", "gender_prediction_head", 2, "gender"),
    ("race_token", "race_prediction_head", 5, "race"),
]


# ---------------------------------------------------------------------------------------
# FaceXFormer / SAM modules, re-stated (attribute names give the state-dict names).

class MLP(nn.Module):
    """num_layers Linears (input -> hidden ... -> output), ReLU after all but the last."""

    def __init__(self, input_dim, hidden_dim, output_dim, num_layers):
        super().__init__()
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        last = len(self.layers) - 1
        for i, lin in enumerate(self.layers):
            x = lin(x)
            if i < last:
                x = F.relu(x)
        return x


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel dim of an NCHW map (eps 1e-6)."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).square().mean(1, keepdim=True)
        y = (x - mean) / torch.sqrt(var + self.eps)
        return y * self.weight[:, None, None] + self.bias[:, None, None]


class MLPBlock(nn.Module):
    def __init__(self, dim, hidden, act=nn.ReLU):
        super().__init__()
        self.lin1 = nn.Linear(dim, hidden)
        self.lin2 = nn.Linear(hidden, dim)
        self.act = act()

    def forward(self, x):
        return self.lin2(self.act(self.lin1(x)))


class Attention(nn.Module):
    """SAM attention: q/k/v projected to dim // downsample, split in heads, softmax(q k^T /
    sqrt(head_dim)) v, heads merged, out_proj back to dim."""

    def __init__(self, dim, num_heads, downsample_rate=1):
        super().__init__()
        self.internal_dim = dim // downsample_rate
        self.num_heads = num_heads
        assert self.internal_dim % num_heads == 0
        self.q_proj = nn.Linear(dim, self.internal_dim)
        self.k_proj = nn.Linear(dim, self.internal_dim)
        self.v_proj = nn.Linear(dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, dim)

    def _heads(self, x):
        b, n, c = x.shape
        return x.reshape(b, n, self.num_heads, c // self.num_heads).transpose(1, 2)

    def forward(self, q, k, v):
        q = self._heads(self.q_proj(q))
        k = self._heads(self.k_proj(k))
        v = self._heads(self.v_proj(v))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
        out = torch.matmul(torch.softmax(scores, dim=-1), v)
        b, h, n, d = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, h * d))


class TwoWayAttentionBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_dim, downsample_rate, skip_first_layer_pe):
        super().__init__()
        self.self_attn = Attention(dim, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.cross_attn_token_to_image = Attention(dim, num_heads, downsample_rate)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLPBlock(dim, mlp_dim, nn.ReLU)
        self.norm3 = nn.LayerNorm(dim)
        self.norm4 = nn.LayerNorm(dim)
        self.cross_attn_image_to_token = Attention(dim, num_heads, downsample_rate)
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(self, queries, keys, query_pe, key_pe):
        # 1. token self-attention (layer 0: no PE and no residual)
        if self.skip_first_layer_pe:
            queries = self.self_attn(queries, queries, queries)
        else:
            qp = queries + query_pe
            queries = queries + self.self_attn(qp, qp, queries)
        queries = self.norm1(queries)
        # 2. tokens attend to the image
        queries = queries + self.cross_attn_token_to_image(queries + query_pe, keys + key_pe, keys)
        queries = self.norm2(queries)
        # 3. token MLP
        queries = self.norm3(queries + self.mlp(queries))
        # 4. image attends to the tokens
        keys = keys + self.cross_attn_image_to_token(keys + key_pe, queries + query_pe, queries)
        keys = self.norm4(keys)
        return queries, keys


class TwoWayTransformer(nn.Module):
    def __init__(self, depth, dim, num_heads, mlp_dim, downsample_rate=2):
        super().__init__()
        self.layers = nn.ModuleList(
            TwoWayAttentionBlock(dim, num_heads, mlp_dim, downsample_rate, i == 0)
            for i in range(depth))
        self.final_attn_token_to_image = Attention(dim, num_heads, downsample_rate)
        self.norm_final_attn = nn.LayerNorm(dim)

    def forward(self, image, image_pe, point_embedding):
        keys = image.flatten(2).transpose(1, 2)          # [B, hw, C], (y, x) row-major
        key_pe = image_pe.flatten(2).transpose(1, 2)
        queries = point_embedding
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embedding, key_pe)
        attn = self.final_attn_token_to_image(queries + point_embedding, keys + key_pe, keys)
        queries = self.norm_final_attn(queries + attn)
        return queries, keys


class FaceDecoder(nn.Module):
    def __init__(self, dim, transformer, num_mask_tokens):
        super().__init__()
        self.transformer = transformer
        for tok, _, _, _ in TASKS:
            setattr(self, tok, nn.Embedding(1, dim))
        self.mask_tokens = nn.Embedding(num_mask_tokens, dim)
        # segmentation path (GELU is FaceDecoder's default activation); in the state dict only
        self.output_upscaling = nn.Sequential(
            nn.ConvTranspose2d(dim, dim // 4, kernel_size=2, stride=2),
            LayerNorm2d(dim // 4),
            nn.GELU(),
            nn.ConvTranspose2d(dim // 4, dim // 8, kernel_size=2, stride=2),
            nn.GELU(),
        )
        self.output_hypernetwork_mlps = MLP(dim, dim, dim // 8, 3)
        for _, head, n_out, _ in TASKS:
            setattr(self, head, MLP(dim, dim, n_out, 3))

    def forward(self, image, image_pe):
        toks = torch.cat([getattr(self, t).weight for t, _, _, _ in TASKS]
                         + [self.mask_tokens.weight], dim=0)
        toks = toks.unsqueeze(0).expand(image.shape[0], -1, -1)
        pos = image_pe.expand(image.shape[0], -1, -1, -1)
        hs, keys = self.transformer(image, pos, toks)
        heads = {}
        for i, (_, head, _, name) in enumerate(TASKS):
            heads[head] = getattr(self, head)(hs[:, i, :])
        return hs, keys, heads


class PositionEmbeddingRandom(nn.Module):
    def __init__(self, num_pos_feats):
        super().__init__()
        self.register_buffer("positional_encoding_gaussian_matrix", torch.randn(2, num_pos_feats))

    def forward(self, h, w):
        g = self.positional_encoding_gaussian_matrix
        ys = (torch.arange(h, dtype=g.dtype) + 0.5) / h
        xs = (torch.arange(w, dtype=g.dtype) + 0.5) / w
        coords = torch.stack([xs[None, :].expand(h, w), ys[:, None].expand(h, w)], dim=-1)
        ang = 2 * math.pi * ((2 * coords - 1) @ g)       # [h, w, F/2]
        return torch.cat([ang.sin(), ang.cos()], dim=-1).permute(2, 0, 1)  # [F, h, w]


class StageProj(nn.Module):
    def __init__(self, in_dim, out_dim):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim)


class FaceXFormer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        n = len(cfg["depths"])
        ws, ps = cfg["window_size"], cfg["patch_size"]
        swin = SwinTransformer(patch_size=[ps, ps], embed_dim=cfg["embed_dim"],
                               depths=cfg["depths"], num_heads=cfg["num_heads"],
                               window_size=[ws, ws], mlp_ratio=cfg["mlp_ratio"],
                               stochastic_depth_prob=0.0,
                               norm_layer=partial(nn.LayerNorm, eps=cfg["layer_norm_eps"]),
                               block=SwinTransformerBlock, downsample_layer=PatchMerging)
        self.backbone = nn.Sequential(*list(swin.children())[:-1])   # drops swin.head
        self.feats = []
        mods = dict(self.backbone.named_modules())
        for i in range(n):
            mods[f"0.{1 + 2 * i}"].register_forward_hook(
                lambda m, inp, out: self.feats.append(out))
        fd = cfg["fuse_dim"]
        self.pe_layer = PositionEmbeddingRandom(fd // 2)
        self.face_decoder = FaceDecoder(
            fd, TwoWayTransformer(cfg["decoder_depth"], fd, cfg["decoder_heads"],
                                  cfg["decoder_mlp_dim"], cfg["attention_downsample_rate"]),
            cfg["num_mask_tokens"])
        self.linear_c = nn.ModuleList(
            StageProj(cfg["embed_dim"] * 2 ** i, fd) for i in range(n))
        self.linear_fuse = nn.Conv2d(fd * n, fd, kernel_size=1, bias=False)

    def forward(self, x):
        self.feats = []
        self.backbone(x)        # runs swin.norm/avgpool too, as FaceXFormer does; unused
        stages = list(self.feats)
        h0, w0 = stages[0].shape[1:3]
        maps = []
        for st, lc in zip(stages, self.linear_c):
            b, h, w, c = st.shape
            y = lc.proj(st.reshape(b, h * w, c))                     # [B, hw, F]
            y = y.transpose(1, 2).reshape(b, -1, h, w)
            maps.append(F.interpolate(y, size=(h0, w0), mode="bilinear", align_corners=False))
        fused = self.linear_fuse(torch.cat(maps[::-1], dim=1))       # [B, F, h0, w0]
        image_pe = self.pe_layer(h0, w0).unsqueeze(0)                # [1, F, h0, w0]
        tokens, keys, heads = self.face_decoder(fused, image_pe)
        return dict(stages=stages, fused=fused, image_pe=image_pe, tokens=tokens, keys=keys,
                    heads=heads)


# ---------------------------------------------------------------------------------------

def randomize(model):
    """Re-draw every float parameter/buffer (in module order) so that each one matters."""
    done = set()

    def put(prefix, name, t, value):
        with torch.no_grad():
            t.copy_(value)
        done.add(f"{prefix}.{name}" if prefix else name)

    for mname, m in model.named_modules():
        own = dict(m.named_parameters(recurse=False))
        own.update({k: v for k, v in m.named_buffers(recurse=False)})
        for pname, t in own.items():
            if not t.is_floating_point():
                continue
            if isinstance(m, (nn.Linear, nn.Conv2d)) and pname == "weight":
                v = torch.randn(t.shape) / math.sqrt(t[0].numel())
            elif isinstance(m, nn.ConvTranspose2d) and pname == "weight":
                v = torch.randn(t.shape) / math.sqrt(t.shape[0])
            elif isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and pname == "bias":
                v = 0.1 * torch.randn(t.shape)
            elif isinstance(m, (nn.LayerNorm, LayerNorm2d)):
                v = (1.0 if pname == "weight" else 0.0) + 0.1 * torch.randn(t.shape)
            elif isinstance(m, ShiftedWindowAttention) and pname == "relative_position_bias_table":
                v = 0.5 * torch.randn(t.shape)
            elif isinstance(m, nn.Embedding) or pname == "positional_encoding_gaussian_matrix":
                v = torch.randn(t.shape)
            else:
                raise SystemExit(f"randomize: no rule for {mname}.{pname} ({type(m).__name__})")
            put(mname, pname, t, v)
    floats = {k for k, v in model.state_dict().items() if v.is_floating_point()}
    assert floats == done, sorted(floats ^ done)
    others = {k for k, v in model.state_dict().items() if not v.is_floating_point()}
    assert all(k.endswith("relative_position_index") for k in others), others


def state_dict_f32(model):
    sd = {}
    for k, v in model.state_dict().items():
        v = v.detach().clone().contiguous()
        sd[k] = v.to(torch.int32) if k.endswith("relative_position_index") else v.float()
    return sd


def outputs(res):
    b, f, h, w = res["fused"].shape
    o = {f"stage{i}": s for i, s in enumerate(res["stages"])}
    o["fused"] = res["fused"].permute(0, 2, 3, 1)
    o["image_pe"] = res["image_pe"][0].reshape(f, h * w).t()
    o["tokens"] = res["tokens"]
    o["keys"] = res["keys"]
    for _, head, _, name in TASKS:
        if name:
            o[name] = res["heads"][head]
    return o


def check_shift(model, cfg, x):
    """Each stage's odd block against the same block with its shift forced to 0."""
    feats = model.backbone[0]
    seen = {}
    hooks = []
    for i in range(len(cfg["depths"])):
        blk = feats[1 + 2 * i][1]
        hooks.append(blk.register_forward_pre_hook(
            lambda m, inp, i=i: seen.__setitem__(i, inp[0].detach())))
    with torch.no_grad():
        model(x)
    for hk in hooks:
        hk.remove()
    shifted = []
    for i in range(len(cfg["depths"])):
        stage = feats[1 + 2 * i]
        assert stage[0].attn.shift_size == [0, 0]
        blk = stage[1]
        ws = cfg["window_size"]
        assert blk.attn.shift_size == [ws // 2, ws // 2]
        flat = copy.deepcopy(blk)
        flat.attn.shift_size = [0, 0]
        with torch.no_grad():
            d = (blk(seen[i]) - flat(seen[i])).abs().max().item()
        h = seen[i].shape[1]
        on = ws < h                     # torchvision: no shift when window >= (padded) map
        print(f"    stage {i}: map {h}x{seen[i].shape[2]}, shift {blk.attn.shift_size} "
              f"{'on' if on else 'off (window >= map)'}; |shifted - unshifted| = {d:.3g}")
        assert (d > 1e-3) if on else (d == 0.0), "shift check failed"
        shifted.append(on)
    return shifted


def check_padding(model, cfg, x):
    """torchvision zero-pads each block's normed map up to whole windows and does NOT mask
    the padded tokens as keys (their k/v are just the qkv bias).  Re-runs every block with
    the padded keys masked out (-1e9 added to their scores): the output must change in the
    blocks where some real query sees a padded key, and stay bit-identical in the others.
    A padded key is hidden anyway when the map does not pad, or when the block shifts and
    every padded key lies in another shift region than every real query of its window
    (the -100 mask: exp(-100) vanishes even in float64), e.g. 10 -> 12 with window 4 and
    shift 2, where the 2 padded rows/columns are exactly the rolled-in strip.
    Returns {(stage, block): ((h, w), (padded h, padded w), effective shift, seen)}."""
    feats = model.backbone[0]
    seen = {}
    hooks = []
    for i, depth in enumerate(cfg["depths"]):
        for j in range(depth):
            hooks.append(feats[1 + 2 * i][j].register_forward_pre_hook(
                lambda m, inp, key=(i, j): seen.__setitem__(key, inp[0].detach())))
    with torch.no_grad():
        model(x)
    for hk in hooks:
        hk.remove()

    orig = tv_swin.shifted_window_attention
    info = {}

    def masked(inp, qkv_weight, proj_weight, rel_bias, window_size, num_heads, shift_size,
               **kw):
        b, h, w, _ = inp.shape
        wh, ww = window_size
        ph, pw = -(-h // wh) * wh, -(-w // ww) * ww
        shift = [s if win < p else 0 for s, win, p in zip(shift_size, window_size, (ph, pw))]
        info["pad"] = (h, w, ph, pw, shift)
        pad = inp.new_ones(ph, pw)
        pad[:h, :w] = 0
        if sum(shift) > 0:
            pad = torch.roll(pad, shifts=(-shift[0], -shift[1]), dims=(0, 1))
        nw = (ph // wh) * (pw // ww)
        pad = pad.view(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3).reshape(nw, wh * ww)
        region = inp.new_zeros(ph, pw)         # shift regions, as torchvision labels them
        if sum(shift) > 0:
            count = 0
            for hs in ((0, -wh), (-wh, -shift[0]), (-shift[0], None)):
                for ws_ in ((0, -ww), (-ww, -shift[1]), (-shift[1], None)):
                    region[hs[0]:hs[1], ws_[0]:ws_[1]] = count
                    count += 1
        region = region.view(ph // wh, wh, pw // ww, ww).permute(0, 2, 1, 3)
        region = region.reshape(nw, wh * ww)
        same = region[:, :, None] == region[:, None, :]                  # [nW, query, key]
        info["seen"] = bool((same & (pad[:, :, None] == 0) & (pad[:, None, :] == 1)).any())
        key_mask = (-1e9 * pad).view(1, nw, 1, 1, wh * ww).expand(b, -1, -1, -1, -1)
        bias = rel_bias + key_mask.reshape(b * nw, 1, 1, wh * ww)   # [B*nW, heads, N, N]
        return orig(inp, qkv_weight, proj_weight, bias, window_size, num_heads, shift_size,
                    **kw)

    blocks = {}
    for i, depth in enumerate(cfg["depths"]):
        for j in range(depth):
            blk = feats[1 + 2 * i][j]
            with torch.no_grad():
                ref = blk(seen[(i, j)])
                tv_swin.shifted_window_attention = masked
                try:
                    alt = blk(seen[(i, j)])
                finally:
                    tv_swin.shifted_window_attention = orig
            h, w, ph, pw, shift = info["pad"]
            d = (ref - alt).abs().max().item()
            seen_pad = info["seen"]
            print(f"    stage {i} block {j}: map {h}x{w} -> windows over {ph}x{pw}, shift "
                  f"{shift}, padded keys {'seen' if seen_pad else 'hidden'}; "
                  f"|unmasked - padded keys masked| = {d:.3g}")
            assert (d > 1e-3) if seen_pad else (d == 0.0), "padding check failed"
            blocks[(i, j)] = ((h, w), (ph, pw), shift, seen_pad)
    return blocks


def run_case(name, case_cfg, opts, print_names):
    cfg = dict(COMMON, **case_cfg, model_type="facexformer")
    cfg = {k: cfg[k] for k in CONFIG_KEYS}
    print(f"== {name}")
    torch.manual_seed(opts["seed"])
    model = FaceXFormer(cfg)
    randomize(model)
    model.eval()
    sd = state_dict_f32(model)
    m32 = FaceXFormer(cfg).eval()      # f32 twin (a deepcopy would keep hooks bound to `model`)
    m32.load_state_dict(model.state_dict())
    if print_names:
        for k in sd:
            print(f"  {k} {list(sd[k].shape)} {str(sd[k].dtype).replace('torch.', '')}")

    B, S = opts["batch"], cfg["image_size"]
    pixels = torch.randn(B, 3, S, S)
    io = {"pixels": pixels}

    m64 = model.double()
    if opts["grad"]:
        res = m64(pixels.double())
        o64 = outputs(res)
        r = {"r_landmarks": torch.randn(o64["landmarks"].shape),
             "r_age": torch.randn(o64["age"].shape),
             "r_fused": torch.randn(o64["fused"].shape)}
        loss = ((o64["landmarks"] * r["r_landmarks"].double()).sum()
                + (o64["age"] * r["r_age"].double()).sum()
                + (o64["fused"] * r["r_fused"].double()).sum())
        params = dict(m64.named_parameters())
        grads = torch.autograd.grad(loss, [params[n] for n in GRAD_NAMES[name]])
        io.update(r)
        io["loss"] = loss.detach().reshape(1).float()
        for n, g in zip(GRAD_NAMES[name], grads):
            io[f"grad/{n}"] = g.float()
            print(f"    grad/{n} {list(g.shape)} |g|max {g.abs().max().item():.3g}")
        print(f"    loss {loss.item():.6f}")
    else:
        with torch.no_grad():
            o64 = outputs(m64(pixels.double()))
    for k, v in o64.items():
        io[k] = v.detach().float().contiguous()

    with torch.no_grad():
        o32 = outputs(m32(pixels))
    for k in o64:
        a, b = o64[k].detach(), o32[k].double()
        rel = ((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item()
        print(f"    {k:10s} {list(o64[k].shape)} max|x| {a.abs().max().item():8.3g}  "
              f"f32 vs f64 rel {rel:.2e}")

    shifted = check_shift(m64, cfg, pixels.double())
    pads = check_padding(m64, cfg, pixels.double())
    sizes = [tuple(io[f"stage{i}"].shape[1:3]) for i in range(len(cfg["depths"]))]
    if name == "reduced224":
        assert sizes == [(56, 56), (28, 28), (14, 14), (7, 7)], sizes
    if name == "padded":   # merges pad 5 -> 6; windows pad 10 -> 12, 5 -> 8, 3 -> 4
        assert sizes == [(10, 10), (5, 5), (3, 3)], sizes
        assert shifted == [True, True, False], shifted
        want = {(0, 0): ((12, 12), [0, 0], True), (0, 1): ((12, 12), [2, 2], False),
                (1, 0): ((8, 8), [0, 0], True), (1, 1): ((8, 8), [2, 2], True),
                (2, 0): ((4, 4), [0, 0], True), (2, 1): ((4, 4), [0, 0], True)}
        assert {k: v[1:] for k, v in pads.items()} == want, pads
    else:
        assert all(v[0] == v[1] and not v[3] for v in pads.values()), pads

    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    save_file({k: v.contiguous() for k, v in io.items()}, os.path.join(d, "io.safetensors"),
              metadata={"format": "pt"})
    for fn in ("config.json", "model.safetensors", "io.safetensors"):
        print(f"    {name}/{fn}: {os.path.getsize(os.path.join(d, fn))} bytes")


def main():
    print_names = "--names" in sys.argv[1:]
    torch.set_num_threads(1)    # fixed reduction order: reruns write identical bytes
    for name, case_cfg, opts in CASES:
        run_case(name, case_cfg, opts, print_names)


if __name__ == "__main__":
    main()
