#!/usr/bin/env python3
"""tools/golden/gen_llama.py - tiny random HF LlamaForCausalLM checkpoints and their outputs.

Writes tests/golden/llama/<case>/ (read by tests/test_golden_llama.c and tests/test_llama.c):
  config.json, generation_config.json       from save_pretrained
  model.safetensors                         or model-0000k-of-0000n.safetensors +
                                            model.safetensors.index.json (case "gqa")
  golden.safetensors                        inputs and reference outputs (below)

Cases (all: rms eps 1e-5, random weights N(0, WSTD = 0.15), norms 1 + N(0, 0.1)):
  mha     2 layers, hidden 64, 4 heads, 4 kv heads, inter 128, vocab 320, theta 1e4, f32 file
  gqa     2 layers, hidden 64, 4 heads, 2 kv heads, inter 96, vocab 300, bf16 file, sharded
  bf16    as gqa with weights N(0, 0.02) (HF's initializer_range), bf16 file: the bf16
          forward case. (With WSTD 0.15 even HF's own bf16 forward is 1.9e-2 off f64.)
  llama3  2 layers, hidden 64, 4 heads, 2 kv heads, head_dim 32 (!= 64/4), theta 5e5,
          rope_scaling llama3 (factor 8, low 1, high 4, original 64), f16 file
  tied    3 layers, hidden 64, 4 heads, 1 kv head, vocab 400, tie_word_embeddings,
          attention_bias and mlp_bias, f32 file

golden.safetensors (every case):
  ids      i32 [2, 12]          two full-length samples
  logits   f32 [2, 12, V]       reference logits, positions 0..11, no mask
  loss     f32 []               HF loss with labels = ids (shifted inside HF), labels[1,:3] = -100
gqa and bf16 only:
  logits_hf_bf16 f32 [2, 12, V] HF's own bf16 forward (for comparison with ours)
mha only:
  pad_ids    i32 [2, 12]        sample 1 right-padded after 7 tokens (pad id 0)
  pad_mask   i32 [2, 12]        attention_mask, 1 = token
  pad_logits f32 [2, 12, V]     reference logits (compare only where pad_mask is 1)
  gen_ids    i32 [3, 9]         three prompts of lengths 9, 5, 3, LEFT-padded with pad id 0
  gen_mask   i32 [3, 9]
  gen_out    i32 [3, N]         greedy continuation from generate(do_sample=False,
                                max_new_tokens=32); sequences that hit eos are padded with 0
llama3 only:
  inv_freq  f32 [16]            HF's llama3-scaled inverse frequencies

The reference runs in float64 (model.double()) from the stored weights (so the bf16/f16 files
are the reference: the f64 model holds exactly the rounded values). Greedy generation is
(generation runs in float32, see the comment there) is
checked to have a top-1/top-2 logit gap well above f32 noise at every step.
Run from anywhere:  python3 tools/golden/gen_llama.py
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden",
                    "llama")
WSTD = 0.15
B, T = 2, 12

CASES = {
    "mha": dict(cfg=dict(vocab_size=320, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                         rope_theta=10000.0, pad_token_id=0),
                dtype=torch.float32, shard=None, seed=11),
    "gqa": dict(cfg=dict(vocab_size=300, hidden_size=64, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         rope_theta=10000.0),
                dtype=torch.bfloat16, shard="60KB", seed=12),
    "bf16": dict(cfg=dict(vocab_size=300, hidden_size=64, intermediate_size=96,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          rope_theta=10000.0),
                 dtype=torch.bfloat16, shard=None, seed=15, wstd=0.02),
    "llama3": dict(cfg=dict(vocab_size=300, hidden_size=64, intermediate_size=96,
                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                            head_dim=32, rope_theta=500000.0, max_position_embeddings=512,
                            rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                              high_freq_factor=4.0,
                                              original_max_position_embeddings=64)),
                   dtype=torch.float16, shard=None, seed=13),
    "tied": dict(cfg=dict(vocab_size=400, hidden_size=64, intermediate_size=96,
                          num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
                          rope_theta=10000.0, tie_word_embeddings=True, attention_bias=True,
                          mlp_bias=True, eos_token_id=[2, 7]),
                 dtype=torch.float32, shard=None, seed=14),
}


def randomize(model, seed, wstd):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(wstd * torch.randn(p.shape, generator=g))


def build(case, spec):
    d = os.path.join(ROOT, case)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    cfg = LlamaConfig(rms_norm_eps=1e-5, attn_implementation="eager", **spec["cfg"])
    torch.manual_seed(spec["seed"])
    model = LlamaForCausalLM(cfg).eval()
    randomize(model, spec["seed"], spec.get("wstd", WSTD))
    model = model.to(spec["dtype"])
    kw = dict(safe_serialization=True)
    if spec["shard"]:
        kw["max_shard_size"] = spec["shard"]
    model.save_pretrained(d, **kw)
    # The f64 reference holds exactly the stored (rounded) weights. It is a fresh model:
    # model.to(bf16) also rounded the rotary inv_freq buffer, which HF computes in f32.
    ref = LlamaForCausalLM(cfg).eval()
    ref.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
    ref = ref.double()
    g = torch.Generator().manual_seed(100 + spec["seed"])
    V = cfg.vocab_size
    ids = torch.randint(3, V, (B, T), generator=g)
    out = {"ids": ids.to(torch.int32)}
    with torch.no_grad():
        labels = ids.clone()
        labels[1, :3] = -100
        r = ref(input_ids=ids, labels=labels)
        out["logits"] = r.logits.float()
        out["loss"] = r.loss.float().reshape(())
        if case in ("gqa", "bf16"):
            hf16 = LlamaForCausalLM(cfg).eval()
            hf16.load_state_dict({k: v.float() for k, v in model.state_dict().items()})
            hf16 = hf16.to(torch.bfloat16)
            hf16.model.rotary_emb.inv_freq = ref.model.rotary_emb.inv_freq.float()
            out["logits_hf_bf16"] = hf16(input_ids=ids).logits.float()
        if case == "mha":
            pad_ids = ids.clone()
            mask = torch.ones(B, T, dtype=torch.long)
            pad_ids[1, 7:] = 0
            mask[1, 7:] = 0
            out["pad_ids"] = pad_ids.to(torch.int32)
            out["pad_mask"] = mask.to(torch.int32)
            out["pad_logits"] = ref(input_ids=pad_ids, attention_mask=mask).logits.float()
            lens = [9, 5, 3]
            P = max(lens)
            gen_ids = torch.zeros(3, P, dtype=torch.long)
            gen_mask = torch.zeros(3, P, dtype=torch.long)
            for i, n in enumerate(lens):
                gen_ids[i, P - n:] = torch.randint(3, V, (n,), generator=g)
                gen_mask[i, P - n:] = 1
            # float32 for generation: HF eager attention casts the f64 mask to f32 inside
            # softmax, so f64 left-padded rows become all -inf (NaN)
            gen = LlamaForCausalLM(cfg).eval()
            gen.load_state_dict({k: v.float() for k, v in ref.state_dict().items()})
            res = gen.generate(input_ids=gen_ids, attention_mask=gen_mask, do_sample=False,
                               max_new_tokens=32, pad_token_id=0, eos_token_id=2,
                               output_scores=True, return_dict_in_generate=True)
            new = res.sequences[:, P:]
            gaps = []
            for s in res.scores:
                top = torch.topk(s, 2, dim=-1).values
                gaps.append((top[:, 0] - top[:, 1]).min().item())
            print(f"  generation: {new.shape[1]} new tokens, min top-1/top-2 gap {min(gaps):.3g}")
            assert min(gaps) > 1e-4, "greedy path too close to a tie: change the seed"
            out["gen_ids"] = gen_ids.to(torch.int32)
            out["gen_mask"] = gen_mask.to(torch.int32)
            out["gen_out"] = new.to(torch.int32).contiguous()
        if case == "llama3":
            out["inv_freq"] = ref.model.rotary_emb.inv_freq.float().clone()
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(d, "golden.safetensors"))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{case}: {sorted(os.listdir(d))} {size / 1024:.0f} KiB, loss {out['loss'].item():.5f}")
    return size


if __name__ == "__main__":
    total = sum(build(c, s) for c, s in CASES.items())
    print(f"total {total / 1024:.0f} KiB")
    cfgs = {c: json.load(open(os.path.join(ROOT, c, "config.json"))) for c in CASES}
    assert cfgs["llama3"]["rope_scaling"]["rope_type"] == "llama3"
