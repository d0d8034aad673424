#!/usr/bin/env python3
"""tools/golden/gen_tiny_export.py - the tiny model's export (configs/tiny-random.json) loaded
in PEFT + transformers: the same logits as emotune (issue 6).

Pipeline (with --build DIR, the emotune build to run; default build/):
  1. emotune synth (256 train faces) and emotune train train.max_steps=40 in a work dir
     (default /tmp/emotune-tiny-export): LoRA B != 0, projector and expert trained.
  2. emotune export --merged --base: WORK/export/{adapter, non_lora_trainables.safetensors,
     merged, base/llm, base/vision}.
  3. The fixed batch, written by the C side (test_golden_tiny_export --dump-batch) from a
     two-sample dataset (pair.json: synthetic faces 0 and 3, one with the emotion answer, one
     with a longer free-text answer, so the spliced lengths differ and padding is exercised):
     pixels [2, 3, 64, 64] (CLIP-preprocessed), landmarks [2, 136], ids/k, labels/k.
  With --export DIR --batch FILE the steps above are skipped and DIR / FILE are used.

Then, in torch (f32, eager attention):
  - base/llm with LlamaForCausalLM.from_pretrained and base/vision with
    CLIPVisionModel.from_pretrained, output_loading_info: no missing, unexpected or
    mismatched keys; PeftModel.from_pretrained(base, adapter): every lora_A / lora_B of the
    PEFT model equals the file's tensor.
  - Image tokens: the tower's hidden_states[-2] without CLS (LLaVA select_layer -2, patch),
    the projector mlp2x_gelu (Linear, GELU, Linear; model.mm_projector.{0,2}); the expert
    token: model.landmark_expert.{0,2} (same MLP) on the landmarks, ONE token placed right
    after the visual tokens; spliced at the <image> placeholder (-200) as train/models/mllm.c does
    (text embeddings from embed_tokens, right padding with zeros, positions 0..n-1).
  - logits_peft: the PeftModel with inputs_embeds; logits_peft_merged: after PEFT's
    merge_and_unload; logits_merged_export: emotune's merged/ loaded by LlamaForCausalLM.
    The three must agree within 1e-4 abs (asserted here).

Writes tests/golden/tiny_export/:
  adapter/adapter_config.json, adapter/adapter_model.safetensors   (the C export, copied)
  non_lora_trainables.safetensors                                  (projector, expert)
  base/llm/config.json, base/vision/config.json                    (the C export's text)
  base_digest.json   {"base/llm/model.safetensors" | "base/vision/model.safetensors":
                      {tensor: {dtype, shape, fnv1a64 of its bytes}}} (the 4 MB base weights
                      are not committed; they are a pure function of model.init_seed)
  batch.safetensors  the fixed batch
  ref.safetensors    logits_peft, logits_peft_merged, logits_merged_export [B, T, V] f32
                     (zero at padded positions), len i32 [B] (spliced lengths)
Read by tests/test_golden_tiny_export.c.

  python3 tools/golden/gen_tiny_export.py [--build build] [--work /tmp/emotune-tiny-export]
  python3 tools/golden/gen_tiny_export.py --export DIR --batch FILE
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from peft import PeftModel  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import CLIPVisionModel, LlamaForCausalLM  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "golden", "tiny_export")
CONFIG = os.path.join(ROOT, "configs", "tiny-random.json")
IMAGE_TOKEN_INDEX = -200
TOL = 1e-4


def run(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def make_inputs(build, work):
    emotune = os.path.join(build, "emotune")
    dump = os.path.join(build, "test_golden_tiny_export")
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    synth = os.path.join(work, "synth")
    run([emotune, "synth", "-c", CONFIG, f"synth.dir={synth}", "synth.n_train=256",
         "synth.n_test=16"])
    run([emotune, "train", "-c", CONFIG, f"data.train={synth}/train.json",
         f"data.eval={synth}/test.json", f"train.output_dir={work}/run", "train.max_steps=40",
         "train.save_every=40", "data.workers=0"])
    export = os.path.join(work, "export")
    run([emotune, "export", "-c", CONFIG, f"train.output_dir={work}/run", "--out", export,
         "--merged", "--base"])
    with open(os.path.join(synth, "train.json")) as f:
        samples = json.load(f)
    a, b = dict(samples[0]), dict(samples[3])
    b["conversations"] = [
        {"from": "human", "value": "<image>\nDescribe the facial expression."},
        {"from": "gpt", "value": f"The face shows {b['label']}."},
    ]
    pair = os.path.join(synth, "pair.json")
    with open(pair, "w") as f:
        json.dump([a, b], f, indent=1)
    batch = os.path.join(work, "batch.safetensors")
    run([dump, "--dump-batch", pair, batch])
    return export, batch


def check_loading(info, what):
    bad = {k: v for k, v in info.items() if v and k != "error_msgs"}
    assert not bad and not info.get("error_msgs"), f"{what}: {bad} {info.get('error_msgs')}"


def mlp2x_gelu(sd, prefix, din, h):
    m = nn.Sequential(nn.Linear(din, h), nn.GELU(), nn.Linear(h, h))
    m.load_state_dict({k[len(prefix) + 1:]: v for k, v in sd.items() if k.startswith(prefix + ".")},
                      strict=True)
    return m.eval()


def splice(embed, ids_list, image_tokens, prior_tokens):
    """train/models/mllm.c's et_mllm_splice: text, [visual tokens, prior token] at the placeholder."""
    rows = []
    for b, ids in enumerate(ids_list):
        ids = ids.long()
        where = torch.where(ids == IMAGE_TOKEN_INDEX)[0].tolist()
        assert len(where) == 1
        w = where[0]
        parts = [embed(ids[:w]), image_tokens[b], prior_tokens[b], embed(ids[w + 1:])]
        rows.append(torch.cat(parts))
    T = max(r.shape[0] for r in rows)
    H = rows[0].shape[1]
    emb = torch.zeros(len(rows), T, H)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    pos = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        n = r.shape[0]
        emb[i, :n] = r
        mask[i, :n] = 1
        pos[i, :n] = torch.arange(n)
    return emb, mask, pos, torch.tensor([r.shape[0] for r in rows], dtype=torch.int32)


def raw_digests(path):
    """FNV-1a 64 of every tensor's bytes, read straight from the safetensors layout."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in sorted(header.items()):
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        h = 1469598103934665603
        for c in data[base + b:base + e]:
            h = ((h ^ c) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
        out[name] = {"dtype": info["dtype"], "shape": info["shape"], "fnv1a64": f"{h:016x}"}
    return out


def masked(logits, lens):
    x = logits.detach().clone().float()
    for b, n in enumerate(lens.tolist()):
        x[b, n:] = 0
    return x.contiguous()


def max_err(a, b, lens):
    return max((a[i, :n] - b[i, :n]).abs().max().item() for i, n in enumerate(lens.tolist()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", default="/tmp/emotune-tiny-export")
    ap.add_argument("--export")
    ap.add_argument("--batch")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.export and args.batch:
        export, batch_path = args.export, args.batch
    else:
        export, batch_path = make_inputs(os.path.abspath(args.build), args.work)

    llm, info = LlamaForCausalLM.from_pretrained(os.path.join(export, "base", "llm"),
                                                 torch_dtype=torch.float32,
                                                 attn_implementation="eager",
                                                 output_loading_info=True)
    check_loading(info, "base/llm")
    clip, info = CLIPVisionModel.from_pretrained(os.path.join(export, "base", "vision"),
                                                 torch_dtype=torch.float32,
                                                 attn_implementation="eager",
                                                 output_loading_info=True)
    check_loading(info, "base/vision")
    llm.eval(), clip.eval()
    peft = PeftModel.from_pretrained(llm, os.path.join(export, "adapter")).eval()
    ad = load_file(os.path.join(export, "adapter", "adapter_model.safetensors"))
    sd = peft.state_dict()
    n_lora = 0
    for k, v in ad.items():
        pk = k.replace(".lora_A.weight", ".lora_A.default.weight").replace(
            ".lora_B.weight", ".lora_B.default.weight")
        assert pk in sd and torch.equal(sd[pk], v), f"adapter tensor {k} not loaded"
        n_lora += 1
    n_peft = sum(1 for k in sd if ".lora_" in k)
    assert n_lora == n_peft == 2 * 7 * llm.config.num_hidden_layers, (n_lora, n_peft)
    assert any(v.abs().max() > 0 for k, v in ad.items() if "lora_B" in k), "untrained adapter"

    tr = load_file(os.path.join(export, "non_lora_trainables.safetensors"))
    H = llm.config.hidden_size
    proj = mlp2x_gelu(tr, "model.mm_projector", clip.config.hidden_size, H)
    expert = mlp2x_gelu(tr, "model.landmark_expert", tr["model.landmark_expert.0.weight"].shape[1],
                        H)
    batch = load_file(batch_path)
    B = batch["pixels"].shape[0]
    ids = [batch[f"ids/{i}"] for i in range(B)]
    with torch.no_grad():
        hs = clip(pixel_values=batch["pixels"], output_hidden_states=True).hidden_states
        image_tokens = proj(hs[-2][:, 1:])
        prior_tokens = expert(batch["landmarks"]).unsqueeze(1)
        emb, mask, pos, lens = splice(llm.get_input_embeddings(), ids, image_tokens, prior_tokens)
        logits_peft = peft(inputs_embeds=emb, attention_mask=mask, position_ids=pos).logits
        merged = peft.merge_and_unload().eval()
        logits_peft_merged = merged(inputs_embeds=emb, attention_mask=mask,
                                    position_ids=pos).logits
        ours, info = LlamaForCausalLM.from_pretrained(os.path.join(export, "merged"),
                                                      torch_dtype=torch.float32,
                                                      attn_implementation="eager",
                                                      output_loading_info=True)
        check_loading(info, "merged")
        logits_ours = ours.eval()(inputs_embeds=emb, attention_mask=mask, position_ids=pos).logits
    e1 = max_err(logits_peft, logits_peft_merged, lens)
    e2 = max_err(logits_peft, logits_ours, lens)
    print(f"spliced lengths {lens.tolist()}, max |logit| {logits_peft.abs().max().item():.3g}")
    print(f"PEFT vs merge_and_unload: {e1:.3g}; PEFT vs emotune merged export: {e2:.3g}")
    assert e1 <= TOL and e2 <= TOL

    os.makedirs(os.path.join(OUT, "adapter"), exist_ok=True)
    for d in ("llm", "vision"):
        os.makedirs(os.path.join(OUT, "base", d), exist_ok=True)
        shutil.copyfile(os.path.join(export, "base", d, "config.json"),
                        os.path.join(OUT, "base", d, "config.json"))
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copyfile(os.path.join(export, "adapter", f), os.path.join(OUT, "adapter", f))
    shutil.copyfile(os.path.join(export, "non_lora_trainables.safetensors"),
                    os.path.join(OUT, "non_lora_trainables.safetensors"))
    shutil.copyfile(batch_path, os.path.join(OUT, "batch.safetensors"))
    digests = {f"base/{d}/model.safetensors":
               raw_digests(os.path.join(export, "base", d, "model.safetensors"))
               for d in ("llm", "vision")}
    with open(os.path.join(OUT, "base_digest.json"), "w") as f:
        json.dump(digests, f, indent=1)
        f.write("\n")
    save_file({"logits_peft": masked(logits_peft, lens),
               "logits_peft_merged": masked(logits_peft_merged, lens),
               "logits_merged_export": masked(logits_ours, lens), "len": lens},
              os.path.join(OUT, "ref.safetensors"),
              metadata={"format": "pt", "peft": __import__("peft").__version__,
                        "transformers": __import__("transformers").__version__,
                        "torch": torch.__version__})
    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(OUT) for f in fs)
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
