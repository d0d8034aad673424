#!/usr/bin/env python3
"""tools/golden/gen_clip.py - tiny random CLIP vision towers and a LLaVA projector in transformers.

Writes, read by tests/test_golden_clip.c:
  tests/golden/clip/vision/   CLIPVisionModel.save_pretrained(safe_serialization=True)
                              (hidden 64, intermediate 128, 4 layers, 4 heads, image 32,
                              patch 8, quick_gelu, eps 1e-5)
  tests/golden/clip/full/     CLIPModel.save_pretrained (vision: hidden 48, intermediate 96,
                              3 layers, 3 heads, image 24, patch 6, gelu, eps 1e-6; a
                              1-layer text tower whose tensors the C loader must ignore)
  tests/golden/clip/ref.safetensors
    "<m>/pixel_values"        [2, 3, S, S] (m = vision | full)
    "<m>/hs<k>"               hidden_states[k] for every k (CLS included), [2, N+1, D]
    "proj/input"              [2, 16, 64]: vision/hs3 without CLS (select_layer -2, patch)
    "proj/out"                mlp2x_gelu(proj/input), [2, 16, 40]
  tests/golden/clip/projector.safetensors
    model.mm_projector.0.{weight,bias} [40, 64], model.mm_projector.2.{weight,bias} [40, 40]

References run in float64 (model.double()) from the f32 weights and are stored as f32.
Run from anywhere:  python3 tools/golden/gen_clip.py
"""
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "clip")

torch.manual_seed(1234)
ref = {}


def randomize(model):
    # HF init leaves LayerNorms at 1/0 and biases at 0; perturb everything so every tensor
    # matters in the comparison.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))


def run(tag, model, image_size):
    model.eval()
    randomize(model)
    model.save_pretrained(os.path.join(OUT, tag), safe_serialization=True)
    px = torch.randn(2, 3, image_size, image_size)
    vm = model if isinstance(model, CLIPVisionModel) else model.vision_model
    with torch.no_grad():
        hs = vm.double()(pixel_values=px.double(), output_hidden_states=True).hidden_states
    ref[f"{tag}/pixel_values"] = px
    for k, h in enumerate(hs):
        ref[f"{tag}/hs{k}"] = h.float()
    return hs


vcfg = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                        num_attention_heads=4, image_size=32, patch_size=8,
                        hidden_act="quick_gelu", layer_norm_eps=1e-5)
hs = run("vision", CLIPVisionModel(vcfg), 32)

full = CLIPConfig(
    text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                     num_attention_heads=2, vocab_size=64, max_position_embeddings=16),
    vision_config=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                       num_attention_heads=3, image_size=24, patch_size=6, hidden_act="gelu",
                       layer_norm_eps=1e-6),
    projection_dim=16)
run("full", CLIPModel(full), 24)

# mlp2x_gelu projector on vision hidden_states[-2] patch features.
H = 40
proj = {
    "model.mm_projector.0.weight": 0.1 * torch.randn(H, 64),
    "model.mm_projector.0.bias": 0.1 * torch.randn(H),
    "model.mm_projector.2.weight": 0.1 * torch.randn(H, H),
    "model.mm_projector.2.bias": 0.1 * torch.randn(H),
}
x = hs[-2][:, 1:].double()
p = {k: v.double() for k, v in proj.items()}
y = F.linear(F.gelu(F.linear(x, p["model.mm_projector.0.weight"], p["model.mm_projector.0.bias"])),
             p["model.mm_projector.2.weight"], p["model.mm_projector.2.bias"])
ref["proj/input"] = x.float().contiguous()
ref["proj/out"] = y.float()
save_file(proj, os.path.join(OUT, "projector.safetensors"))
save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(OUT, "ref.safetensors"))
print("wrote", OUT)
