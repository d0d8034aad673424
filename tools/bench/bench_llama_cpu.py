#!/usr/bin/env python3
"""CPU LoRA training step of a tiny LLaMA: emotune vs PyTorch + PEFT, measured in one run.

Runs build/bench_llama_cpu (emotune: forward + causal LM loss over every token + backward
of a random f32 LLaMA with LoRA on q,k,v,o,gate,up,down) and then the same step with
transformers' LlamaForCausalLM + PEFT LoRA, attn_implementation "eager" and "sdpa", on the
same number of threads, and prints tokens/s and the ratios. Each side: `--warmup` steps,
then the median of `--steps` timed steps; `--rounds` rounds alternate all implementations,
the best round of each is reported (all round medians are printed).

--simd auto,avx2,... runs emotune once per SIMD path (EMOTUNE_SIMD; auto = the best the CPU
has), each a row of the table, so the AVX2 path can be measured on an AVX-512 machine.
--torch-isa avx2 caps PyTorch at AVX2 as well (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS,
ONEDNN_MAX_CPU_ISA, set before torch is imported), i.e. an AVX2-only CPU for both sides.
OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, if set, reach only emotune (PyTorch runs on MKL).
With --base-bin, a second emotune build (e.g. an older commit's bench_llama_cpu) joins the
rounds as "emotune-base" (SIMD path --base-simd, default auto), so a change can be measured
before/after in the same run.
Usage: python3 tools/bench/bench_llama_cpu.py [--threads N] [--bin build/bench_llama_cpu]
       [--simd auto,avx2] [--torch-isa native|avx2] [--base-bin OTHER/bench_llama_cpu]
       [--base-simd auto|avx512|avx2|scalar]
"""
import argparse
import os
import statistics
import subprocess
import time

CFG = dict(vocab_size=1000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
           num_attention_heads=8, num_key_value_heads=8, head_dim=32,
           max_position_embeddings=512, rms_norm_eps=1e-6, tie_word_embeddings=False)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TORCH_AVX2_ENV = dict(ATEN_CPU_CAPABILITY="avx2", MKL_ENABLE_INSTRUCTIONS="AVX2",
                      ONEDNN_MAX_CPU_ISA="AVX2")


def cpu_model():
    name, flags = "?", set()
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k.strip() == "model name" and name == "?":
                name = v.strip()
            elif k.strip() == "flags" and not flags:
                flags = set(v.split())
    level = "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "sse4.2"
    return f"{name} ({level}, {os.cpu_count()} logical CPUs)"


def torch_model(threads, attn):
    import torch
    import transformers
    import peft
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(**CFG, attn_implementation=attn)
    model = transformers.LlamaForCausalLM(cfg).float()
    lcfg = peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS,
                           bias="none", task_type="CAUSAL_LM")
    model = peft.get_peft_model(model, lcfg)
    model.train()
    assert model.base_model.model.config._attn_implementation == attn
    return model


def torch_step_time(model, batch, seq, steps, warmup):
    import torch
    ids = torch.randint(0, CFG["vocab_size"], (batch, seq))
    times = []
    for it in range(warmup + steps):
        model.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        t1 = time.perf_counter()
        if it >= warmup:
            times.append(t1 - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bin", default="build/bench_llama_cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--simd", default="auto",
                    help="comma list of emotune SIMD paths: auto, avx512, avx2, scalar")
    ap.add_argument("--torch-isa", choices=["native", "avx2"], default="native")
    ap.add_argument("--base-bin", default=None)
    ap.add_argument("--base-simd", default="auto", choices=["auto", "avx512", "avx2", "scalar"],
                    help="the SIMD path of --base-bin (EMOTUNE_SIMD)")
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               OPENBLAS_NUM_THREADS=str(args.threads))
    env.pop("EMOTUNE_SIMD", None)
    tail = [str(args.steps), str(args.warmup), str(args.batch), str(args.seq)]
    bins = {}
    for path in args.simd.split(","):
        if path not in ("auto", "avx512", "avx2", "scalar"):
            ap.error(f"--simd: {path} is not auto, avx512, avx2 or scalar")
        e = dict(env) if path == "auto" else dict(env, EMOTUNE_SIMD=path)
        bins[f"emotune ({path})"] = ([args.bin] + tail, e)
    if args.base_bin:
        e = dict(env) if args.base_simd == "auto" else dict(env, EMOTUNE_SIMD=args.base_simd)
        bins[f"emotune-base ({args.base_simd})"] = ([args.base_bin] + tail, e)
    # PyTorch's side: its own ISA choice (or AVX2), no OpenBLAS tuning meant for emotune.
    for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        os.environ.pop(k, None)
    if args.torch_isa == "avx2":
        os.environ.update(TORCH_AVX2_ENV)
    import peft
    import torch
    models = {attn: torch_model(args.threads, attn) for attn in ("eager", "sdpa")}
    ntrain = sum(p.numel() for p in models["eager"].parameters() if p.requires_grad)
    rounds = {k: [] for k in bins}
    rounds.update({"eager": [], "sdpa": []})
    info = {}
    # Rounds alternate the implementations so that background load hits them alike; each
    # round gives one median per implementation, the table shows the best round.
    for r in range(args.rounds):
        for name, (cmd, e) in bins.items():
            lines = subprocess.run(cmd, env=e, check=True, capture_output=True,
                                   text=True).stdout
            got = dict(line.split() for line in lines.splitlines())
            rounds[name].append(float(got["step_s"]))
            info[name] = got
        for attn in ("eager", "sdpa"):
            rounds[attn].append(torch_step_time(models[attn], args.batch, args.seq, args.steps,
                                                args.warmup))
        print(f"round {r + 1}/{args.rounds} (ms): " +
              ", ".join(f"{k} {v[-1] * 1e3:.1f}" for k, v in rounds.items()), flush=True)
    tokens = args.batch * args.seq
    first = next(iter(bins))
    print(f"CPU: {cpu_model()}")
    print(f"threads: {args.threads}; PyTorch {torch.__version__} (CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, --torch-isa {args.torch_isa}), PEFT "
          f"{peft.__version__}; batch {args.batch} x seq {args.seq} = {tokens} tokens/step; "
          f"per round the median of {args.steps} steps after {args.warmup} warmup; best of "
          f"{args.rounds} rounds")
    print(f"trainable parameters: emotune {int(info[first]['trainable'])}, PEFT {ntrain}")
    for k, v in rounds.items():
        print(f"round medians (ms) {k}: " + ", ".join(f"{x * 1e3:.1f}" for x in v))
    peers = {attn: min(rounds[attn]) for attn in ("eager", "sdpa")}
    print()
    print("| implementation | code path | step ms (best round) | tokens/s | vs eager | vs sdpa |")
    print("|---|---|---|---|---|---|")
    for name in bins:
        t = min(rounds[name])
        path = f"simd {info[name].get('simd', '?')}, gemm {info[name].get('gemm', '?')}"
        print(f"| {name} | {path} | {t * 1e3:.1f} | {tokens / t:.0f} | "
              f"{peers['eager'] / t:.2f}x | {peers['sdpa'] / t:.2f}x |")
    for attn in ("eager", "sdpa"):
        p = peers[attn]
        print(f"| PyTorch + PEFT, attn {attn} | {torch.backends.cpu.get_cpu_capability()} | "
              f"{p * 1e3:.1f} | {tokens / p:.0f} | - | - |")


if __name__ == "__main__":
    main()
