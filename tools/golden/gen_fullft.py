#!/usr/bin/env python3
"""tools/golden/gen_fullft.py - full fine-tuning gradients of the golden LLaVA composition.

The parts and the batch of tools/golden/gen_llava.py (tests/golden/llava/: CLIPVisionModel,
mlp2x_gelu projector, LlamaForCausalLM, two spliced samples), without LoRA, with every
decoder weight (embeddings and lm_head included), every projector weight and every CLIP
tower weight requiring grad (select_layer -2: the last tower layer and post_layernorm never
run and get no gradient). One forward in float64, loss.backward().

Writes tests/golden/fullft/grads.safetensors (read by tests/test_golden_fullft.c):
    loss []                         the causal-LM loss
    grad/<LlamaForCausalLM name>    d loss / d every decoder weight (model.layers.0..., lm_head)
    grad/model.mm_projector.*       d loss / d every projector weight
    grad/vision_model.*             d loss / d every tower weight that runs

  python3 tools/golden/gen_fullft.py                     regenerate
  python3 tools/golden/gen_fullft.py --logits DIR        DIR holds a full fine-tune's merged
      export written by C (tests/golden/fullft/export, made by test_golden_fullft with
      EMOTUNE_WRITE_FULLFT_EXPORT=DIR): transformers loads it with LlamaForCausalLM and its
      logits on the reference embeddings are saved to DIR/../export_logits.safetensors
"""
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import CLIPVisionModel, LlamaForCausalLM  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_llava import OUT as LLAVA, Projector, splice  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "fullft")


def main():
    ref = load_file(os.path.join(LLAVA, "ref.safetensors"))
    clip = CLIPVisionModel.from_pretrained(os.path.join(LLAVA, "clip")).double().eval()
    llama = LlamaForCausalLM.from_pretrained(os.path.join(LLAVA, "llama"),
                                             attn_implementation="eager").double().eval()
    proj = Projector(32, 32).double()
    pw = load_file(os.path.join(LLAVA, "projector.safetensors"))
    proj.load_state_dict({k[len("model."):]: v.double() for k, v in pw.items()})
    for m in (clip, llama, proj):
        for p in m.parameters():
            p.requires_grad_(True)
    ids = [ref["ids0"].long(), ref["ids1"].long()]
    labels = [ref["labels0"].long(), ref["labels1"].long()]
    px = ref["pixel_values"].double()
    hs = clip(pixel_values=px, output_hidden_states=True).hidden_states
    vis = proj.mm_projector(hs[-2][:, 1:])
    embeds, lab, mask, pos = splice(llama.model.embed_tokens, ids, labels, vis)
    out = llama(inputs_embeds=embeds, attention_mask=mask.long(), position_ids=pos, labels=lab)
    out.loss.backward()
    res = {"loss": out.loss.detach().float()}
    n = 0
    for pre, mod in (("", llama), ("model.", proj), ("vision_model.", clip)):
        for k, p in mod.named_parameters():
            if p.grad is None:
                continue
            res[f"grad/{pre}{k.removeprefix(pre)}"] = p.grad.float()
            n += 1
    os.makedirs(OUT, exist_ok=True)
    save_file({k: v.contiguous() for k, v in res.items()}, os.path.join(OUT, "grads.safetensors"))
    print("wrote", OUT, "loss", out.loss.item(), "grads", n)


def logits(d):
    ref = load_file(os.path.join(LLAVA, "ref.safetensors"))
    m = LlamaForCausalLM.from_pretrained(d, attn_implementation="eager")
    print(f"{d}: transformers loaded {type(m).__name__}, dtype {m.dtype}, "
          f"{sum(p.numel() for p in m.parameters())} parameters")
    m = m.double().eval()
    with torch.no_grad():
        lg = m(inputs_embeds=ref["embeds"].double(), attention_mask=ref["mask"].long(),
               position_ids=ref["pos"].long()).logits
    out = os.path.join(os.path.dirname(os.path.abspath(d)), "export_logits.safetensors")
    save_file({"logits": lg.float().contiguous()}, out)
    print("wrote", out, "logits", tuple(lg.shape), "max |logit|", lg.abs().max().item())


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--logits":
        logits(sys.argv[2])
    else:
        main()
