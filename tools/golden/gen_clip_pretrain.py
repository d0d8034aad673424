#!/usr/bin/env python3
"""tools/golden/gen_clip_pretrain.py - transformers' reading of a tower that emotune pretrained.

tests/golden/clip_pretrain/tower/ is committed as emotune wrote it: `emotune pretrain-tower`
(train/pretrain_tower.c) for 15 steps on synthetic face captions, a tiny shape (hidden 32,
intermediate 64, 2 layers, 2 heads, image 32, patch 8, quick_gelu), so its post_layernorm is
a trained one (not the identity). Remake it with (from the repository root, after
`emotune synth` and captions in runs/synth/captions_train.json):

  emotune pretrain-tower -c configs/tiny-clip.json \\
    'model.vision={"hidden_size":32,"intermediate_size":64,"num_hidden_layers":2,
                   "num_attention_heads":2,"image_size":32,"patch_size":8,
                   "hidden_act":"quick_gelu"}' \\
    clip.text_width=16 clip.projection_dim=16 train.max_steps=15 train.batch_size=16 \\
    train.lr=0.01 train.threads=1 data.eval= train.output_dir=OUT
  cp -r OUT/tower tests/golden/clip_pretrain/tower

This script loads it with CLIPVisionModel.from_pretrained (and fails on any missing or
unexpected key), runs fixed pixel inputs, and writes, read by
tests/test_golden_clip_pretrain.c:
  tests/golden/clip_pretrain/ref.safetensors
    "pixel_values"        [3, 3, 32, 32]
    "last_hidden_state"   [3, 17, 32]
    "pooler_output"       [3, 32]   post_layernorm(last_hidden_state[:, 0])
References run in float64 (model.double()) from the f32 weights and are stored as f32.
Run from anywhere:  python3 tools/golden/gen_clip_pretrain.py
"""
import os

import torch
from safetensors.torch import save_file
from transformers import CLIPVisionModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "clip_pretrain")

model, info = CLIPVisionModel.from_pretrained(os.path.join(OUT, "tower"), output_loading_info=True)
bad = {k: v for k, v in info.items() if v}
if bad:
    raise SystemExit(f"transformers reports {bad}")
vm = getattr(model, "vision_model", model)  # transformers 5 flattens the wrapper
post = vm.post_layernorm
if torch.allclose(post.weight, torch.ones_like(post.weight)):
    raise SystemExit("the fixture's post_layernorm is the identity: pretrain it first")
model = model.double().eval()
g = torch.Generator().manual_seed(20261207)
pixels = torch.randn(3, 3, 32, 32, generator=g, dtype=torch.float32)
with torch.no_grad():
    out = model(pixel_values=pixels.double())
save_file(
    {
        "pixel_values": pixels.contiguous(),
        "last_hidden_state": out.last_hidden_state.float().contiguous(),
        "pooler_output": out.pooler_output.float().contiguous(),
    },
    os.path.join(OUT, "ref.safetensors"),
    metadata={"format": "pt"},
)
print("loading info:", info)
print("wrote", os.path.join(OUT, "ref.safetensors"))
