#!/usr/bin/env python3
"""One LoRA training step of a LLaVA-1.5-7B-shaped model: emotune vs transformers + PEFT.

Runs build-cuda/bench_cuda_step (see its header for the emotune side), then the same model
in transformers + peft on the same GPU: LlavaForConditionalGeneration with random weights
in bf16 (CLIP ViT-L/14-336 tower, feature layer -2, "default" = patch features, gelu
mlp2x projector; Vicuna-7B-shaped LlamaForCausalLM), LoRA r 128 / alpha 256 / dropout 0.05
on q/k/v/o/gate/up/down of the language model (LLaVA's find_all_linear_names), projector
trainable, gradient checkpointing on (non-reentrant; the tower's layers are checkpointed
too but it takes no grad), SDPA attention, torch.optim.AdamW(fused=True), clip 1.0.
Each sample: <s>, 576 image tokens, 1471 text tokens = 2048; labels ignore the first 65.
Step time: median of --steps timed steps after 2 warm-ups (synchronised). Peak memory:
torch.cuda.max_memory_allocated over the timed steps (the caching allocator's analogue
of emotune's bytes_peak). MFU = the same model-FLOP count as the C bench / its measured
bf16 GEMM ceiling, so the MFU ratio equals the tokens/s ratio.
Then a table: tokens/s, MFU, peak GiB, emotune/HF ratios.
Needs torch, transformers (>= 4.47: input_ids carry one image token per patch) and peft.
Usage: python3 tools/bench/bench_cuda_step.py [--bin build-cuda/bench_cuda_step]
         [--batch 8,16] [--steps 5] [--skip-emotune] [--skip-hf]
"""
import argparse
import statistics
import subprocess
import time


def hf_step(batch, steps, seq=2048, n_img=576):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    torch.manual_seed(0)
    vcfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                            num_attention_heads=16, image_size=336, patch_size=14,
                            projection_dim=768, hidden_act="quick_gelu", layer_norm_eps=1e-5)
    tcfg = LlamaConfig(vocab_size=32000, hidden_size=4096, intermediate_size=11008,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                       max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
                       tie_word_embeddings=False)
    cfg = LlavaConfig(vision_config=vcfg, text_config=tcfg, image_token_index=32000 - 1,
                      projector_hidden_act="gelu", vision_feature_layer=-2,
                      vision_feature_select_strategy="default")
    cfg._attn_implementation = "sdpa"
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = LlavaForConditionalGeneration(cfg)
    torch.set_default_dtype(torch.float32)
    model.config.use_cache = False
    lora = LoraConfig(r=128, lora_alpha=256, lora_dropout=0.05, bias="none",
                      task_type="CAUSAL_LM",
                      target_modules=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)")
    model = get_peft_model(model, lora)
    for n, p in model.named_parameters():
        if "multi_modal_projector" in n:
            p.requires_grad_(True)
    for n, p in model.named_parameters():  # trainables in fp32 (emotune: f32 LoRA, projector)
        if p.requires_grad:
            p.data = p.data.float()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=2e-4, weight_decay=0.0, fused=True)
    img_id = cfg.image_token_index
    ids = torch.randint(3, 32000 - 1, (batch, seq), device="cuda")
    ids[:, 1:1 + n_img] = img_id
    labels = ids.clone()
    labels[:, :1 + n_img + 64] = -100
    pixels = torch.randn(batch, 3, 336, 336, device="cuda", dtype=torch.bfloat16)
    ts = []
    loss = None
    for i in range(steps + 2):
        if i == 2:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(input_ids=ids, pixel_values=pixels, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        if i >= 2:
            ts.append(time.perf_counter() - t0)
        loss = out.loss.item()
    peak = torch.cuda.max_memory_allocated() / 2**30
    del model, opt, out
    torch.cuda.empty_cache()
    return statistics.median(ts), peak, loss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build-cuda/bench_cuda_step")
    ap.add_argument("--batch", default="8,16")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--skip-emotune", action="store_true")
    ap.add_argument("--skip-hf", action="store_true")
    args = ap.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    ours, ceiling = {}, None
    if not args.skip_emotune:
        out = subprocess.run([args.bin, "--batch", args.batch, "--steps", str(args.steps)],
                             capture_output=True, text=True)
        print(out.stdout.strip())
        if out.returncode != 0:
            print("emotune bench did not run (rc %d): %s" % (out.returncode, out.stderr.strip()[-2000:]))
        for line in out.stdout.splitlines():
            f = line.split()
            if f[:2] == ["ceiling", "bf16_gemm_tflops"]:
                ceiling = float(f[2])
            elif f and f[0] == "step":
                kv = dict(zip(f[1::2], f[2::2]))
                ours[int(kv["mb"])] = kv
    if args.skip_hf:
        return
    import torch
    import transformers
    import peft
    print("torch %s, transformers %s, peft %s, %s" % (torch.__version__, transformers.__version__,
                                                      peft.__version__, torch.cuda.get_device_name()))
    print("%4s %12s %12s %7s %8s %8s %9s %9s" % ("mb", "emotune tok/s", "HF tok/s", "ratio",
                                                 "MFU ours", "MFU HF", "peak ours", "peak HF"))
    for b in batches:
        try:
            st, peak, loss = hf_step(b, args.steps)
        except RuntimeError as e:  # e.g. out of memory
            print("%4d HF step failed: %s" % (b, str(e).splitlines()[0]))
            continue
        hf_tps = b * 2048 / st
        o = ours.get(b)
        if o:
            tps = float(o["tokens_per_s"])
            mfu = float(o["mfu"])
            hf_mfu = mfu * hf_tps / tps
            print("%4d %12.0f %12.0f %6.2fx %7.1f%% %7.1f%% %8.1fG %8.1fG   (HF loss %.4f)" % (
                b, tps, hf_tps, tps / hf_tps, 100 * mfu, 100 * hf_mfu, float(o["peak_gib"]),
                peak, loss))
        else:
            print("%4d %12s %12.0f %7s %8s %8s %9s %8.1fG   (HF loss %.4f)" % (
                b, "-", hf_tps, "-", "-", "-", "-", peak, loss))
    if ceiling:
        print("MFU against the measured bf16 GEMM ceiling %.1f TFLOP/s (8192^3)" % ceiling)


if __name__ == "__main__":
    main()
