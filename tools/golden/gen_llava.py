#!/usr/bin/env python3
"""tools/golden/gen_llava.py - a tiny LLaVA-style composition with PEFT LoRA in torch.

Parts (random, tiny):
  CLIPVisionModel  hidden 32, intermediate 64, 2 layers, 2 heads, image 16, patch 4 (16
                   patches), quick_gelu; features = hidden_states[-2] without CLS (LLaVA)
  projector        mlp2x_gelu: Linear(32, 32), GELU, Linear(32, 32) (LLaVA-1.5 names
                   model.mm_projector.0 / .2)
  LlamaForCausalLM vocab 64, hidden 32, intermediate 48, 2 layers, 4 heads, 2 kv heads
  PEFT LoRA        r=4, lora_alpha=8, dropout 0 on q,k,v,o,gate,up,down (lora_B set to
                   N(0, 0.1^2) so every gradient is non-trivial)
Batch: two samples of different lengths, one <image> (IMAGE_TOKEN_INDEX -200) each at a
different position, answer spans labelled (others -100). The splice is LLaVA's
prepare_inputs_labels_for_multimodal: embed the text chunks, insert the image features
(labels IGNORE), pad right with zero embeddings, attention mask, position ids 0..len-1.

Writes, read by tests/test_golden_llava.c (references in float64, stored as f32):
  tests/golden/llava/clip/        CLIPVisionModel.save_pretrained
  tests/golden/llava/llama/       LlamaForCausalLM.save_pretrained (the base, f32)
  tests/golden/llava/adapter/     PeftModel.save_pretrained
  tests/golden/llava/projector.safetensors
  tests/golden/llava/llava_config.json   LLaVA-1.5 style mm_* fields for the composition
  tests/golden/llava/ref.safetensors
    pixel_values [2, 3, 16, 16]; ids0, ids1, labels0, labels1 (i32, unpadded)
    embeds [2, T, 32], labels [2, T], mask [2, T], pos [2, T] (the spliced batch)
    logits [2, T, 64], loss []
    grad/<adapter key>            d loss / d every lora_A / lora_B (PEFT's saved key names)
    grad/model.mm_projector.*     d loss / d every projector parameter

  python3 tools/golden/gen_llava.py                     regenerate
  python3 tools/golden/gen_llava.py --check-export DIR  DIR/adapter (PEFT adapter written by
      et_lora_save_adapter) and DIR/merged (et_export_merged_llama): PEFT loads the
      adapter onto the base, transformers loads the merged checkpoint; both must give the
      reference logits (run test_golden_llava with EMOTUNE_KEEP_EXPORT=DIR first)
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import (CLIPVisionConfig, CLIPVisionModel, LlamaConfig,  # noqa: E402
                          LlamaForCausalLM)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "llava")
IMAGE_TOKEN_INDEX = -200
IGNORE = -100
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Projector(nn.Module):  # LLaVA's mlp2x_gelu as nn.Sequential: indices 0 and 2
    def __init__(self, din, h):
        super().__init__()
        self.mm_projector = nn.Sequential(nn.Linear(din, h), nn.GELU(), nn.Linear(h, h))


def make_parts():
    torch.manual_seed(2024)
    vcfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, image_size=16, patch_size=4,
                            hidden_act="quick_gelu", layer_norm_eps=1e-5)
    clip = CLIPVisionModel(vcfg).eval()
    lcfg = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                       attn_implementation="eager")
    llama = LlamaForCausalLM(lcfg).eval()
    proj = Projector(32, 32)
    with torch.no_grad():
        for m in (clip, llama, proj):
            for p in m.parameters():
                p.add_(0.1 * torch.randn_like(p))
    return clip, llama, proj


def batch_inputs():
    g = torch.Generator().manual_seed(5)
    ids0 = torch.randint(3, 64, (12,), generator=g)
    ids0[0] = 1
    ids0[3] = IMAGE_TOKEN_INDEX
    ids1 = torch.randint(3, 64, (8,), generator=g)
    ids1[0] = 1
    ids1[1] = IMAGE_TOKEN_INDEX
    lab0 = torch.full_like(ids0, IGNORE)
    lab0[7:] = ids0[7:]
    lab1 = torch.full_like(ids1, IGNORE)
    lab1[4:] = ids1[4:]
    px = torch.randn(2, 3, 16, 16, generator=g)
    return [ids0, ids1], [lab0, lab1], px


def encode(clip, proj, px):
    with torch.no_grad():
        hs = clip(pixel_values=px, output_hidden_states=True).hidden_states
    feats = hs[-2][:, 1:]  # select_layer -2, select_feature "patch"
    return proj.mm_projector(feats)


def splice(embed, ids_list, labels_list, image_features):
    """LLaVA's prepare_inputs_labels_for_multimodal (one image per sample, right padding)."""
    new_embeds, new_labels = [], []
    for b, (ids, labels) in enumerate(zip(ids_list, labels_list)):
        where = [-1] + torch.where(ids == IMAGE_TOKEN_INDEX)[0].tolist() + [ids.shape[0]]
        ids_chunks, lab_chunks = [], []
        for i in range(len(where) - 1):
            ids_chunks.append(ids[where[i] + 1:where[i + 1]])
            lab_chunks.append(labels[where[i] + 1:where[i + 1]])
        sizes = [c.shape[0] for c in lab_chunks]
        text = embed(torch.cat(ids_chunks))
        text_chunks = torch.split(text, sizes, dim=0)
        cur_e, cur_l = [], []
        n_images = len(where) - 2
        for i in range(n_images + 1):
            cur_e.append(text_chunks[i])
            cur_l.append(lab_chunks[i])
            if i < n_images:
                f = image_features[b]
                cur_e.append(f)
                cur_l.append(torch.full((f.shape[0],), IGNORE, dtype=labels.dtype))
        new_embeds.append(torch.cat(cur_e))
        new_labels.append(torch.cat(cur_l))
    T = max(x.shape[0] for x in new_embeds)
    B = len(new_embeds)
    H = new_embeds[0].shape[1]
    dt = new_embeds[0].dtype
    emb = []
    lab = torch.full((B, T), IGNORE, dtype=new_labels[0].dtype)
    mask = torch.zeros((B, T), dtype=torch.bool)
    pos = torch.zeros((B, T), dtype=torch.long)
    for i, (e, lb) in enumerate(zip(new_embeds, new_labels)):
        n = e.shape[0]
        emb.append(torch.cat((e, torch.zeros((T - n, H), dtype=dt)), dim=0))
        lab[i, :n] = lb
        mask[i, :n] = True
        pos[i, :n] = torch.arange(0, n)
    return torch.stack(emb, dim=0), lab, mask, pos


def main():
    clip, llama, proj = make_parts()
    os.makedirs(OUT, exist_ok=True)
    clip.save_pretrained(os.path.join(OUT, "clip"), safe_serialization=True)
    llama.save_pretrained(os.path.join(OUT, "llama"), safe_serialization=True)
    save_file({f"model.{k}": v.contiguous() for k, v in proj.state_dict().items()},
              os.path.join(OUT, "projector.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(OUT, "llava_config.json"), "w") as f:
        f.write('{\n  "architectures": ["LlavaLlamaForCausalLM"],\n  "model_type": "llava",\n'
                '  "mm_hidden_size": 32,\n  "mm_projector_type": "mlp2x_gelu",\n'
                '  "mm_vision_select_layer": -2,\n  "mm_vision_select_feature": "patch",\n'
                '  "image_aspect_ratio": "pad",\n  "mm_vision_tower": "clip",\n'
                '  "hidden_size": 32\n}\n')
    cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS,
                     task_type="CAUSAL_LM", base_model_name_or_path="emotune/tiny-llava-llama")
    pm = get_peft_model(llama, cfg)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(0.1 * torch.randn_like(p))
    pm.save_pretrained(os.path.join(OUT, "adapter"))
    readme = os.path.join(OUT, "adapter", "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    saved = load_file(os.path.join(OUT, "adapter", "adapter_model.safetensors"))

    ids, labels, px = batch_inputs()
    clip, pm, proj = clip.double(), pm.double(), proj.double()
    vis = encode(clip, proj, px.double())
    emb_layer = pm.get_base_model().model.embed_tokens
    embeds, lab, mask, pos = splice(emb_layer, ids, labels, vis)
    out = pm(inputs_embeds=embeds, attention_mask=mask.long(), position_ids=pos, labels=lab)
    out.loss.backward()
    ref = {"pixel_values": px, "embeds": embeds.detach().float(), "labels": lab.int(),
           "mask": mask.int(), "pos": pos.int(), "logits": out.logits.detach().float(),
           "loss": out.loss.detach().float()}
    for b in range(2):
        ref[f"ids{b}"] = ids[b].int()
        ref[f"labels{b}"] = labels[b].int()
    params = dict(pm.named_parameters())
    for key in saved:
        pname = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight")
        ref[f"grad/{key}"] = params[pname].grad.float()
    for k, p in proj.named_parameters():
        ref[f"grad/model.{k}"] = p.grad.float()
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(OUT, "ref.safetensors"))
    print("wrote", OUT, "loss", out.loss.item(), "T", embeds.shape[1])


def check_export(d):
    ref = load_file(os.path.join(OUT, "ref.safetensors"))
    emb, mask, pos = ref["embeds"].double(), ref["mask"].long(), ref["pos"].long()
    rl = ref["logits"].double()
    m = mask.bool()

    def err(lg):
        return ((lg[m] - rl[m]).abs().max() / rl[m].abs().max()).item()

    base = LlamaForCausalLM.from_pretrained(os.path.join(OUT, "llama"),
                                            attn_implementation="eager")
    pm = PeftModel.from_pretrained(base, os.path.join(d, "adapter")).double().eval()
    with torch.no_grad():
        lg = pm(inputs_embeds=emb, attention_mask=mask, position_ids=pos).logits
    e1 = err(lg)
    print(f"{d}/adapter: PEFT loads it; logits rel err vs reference {e1:.3g}")
    merged = LlamaForCausalLM.from_pretrained(os.path.join(d, "merged"),
                                              attn_implementation="eager").double().eval()
    with torch.no_grad():
        lg2 = merged(inputs_embeds=emb, attention_mask=mask, position_ids=pos).logits
    e2 = err(lg2)
    print(f"{d}/merged: transformers loads it; logits rel err vs reference {e2:.3g}")
    sys.exit(0 if max(e1, e2) < 1e-4 else 1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check-export":
        check_export(sys.argv[2])
    else:
        main()
