#!/usr/bin/env python3
"""Causal bf16 attention (B 4, seq 2048, 32 heads, hd 128): emotune's attention (each
implementation: mma = bf16 tensor-core flash kernels, cudnn = cuDNN fused attention through
emotune's backend-graph plans, ref = f32-math flash kernels) vs PyTorch SDPA with the flash
backend and with the cuDNN backend, on one GPU in one run. The last line compares emotune's
best against the best peer (issue 5 target: ratio >= 0.9 on fwd+bwd).

Runs build-cuda/bench_cuda_attention, then torch.nn.functional.scaled_dot_product_attention
on [B, H, T, hd] tensors under torch.nn.attention.sdpa_kernel(<backend>) (median of 10
reps after 2 warm-ups, synchronised), and prints ms, TFLOP/s (FlashAttention's count:
fwd 4 B H T^2 hd / 2, bwd 2.5x) and the ratio emotune / peer (>1: emotune faster).
Usage: python3 tools/bench/bench_cuda_attention.py [--bin build-cuda/bench_cuda_attention]
"""
import argparse
import statistics
import subprocess
import time


def peer(backend_name, B, T, H, hd):
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    backend = getattr(SDPBackend, backend_name)
    q, k, v, g = (torch.randn(B, H, T, hd, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    res = {}
    for mode in ("fwd", "fwdbwd"):
        for x in (q, k, v):
            x.requires_grad_(mode == "fwdbwd")
        ts = []
        with sdpa_kernel([backend]):
            for r in range(12):
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                o = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
                if mode == "fwdbwd":
                    o.backward(g)
                torch.cuda.synchronize()
                if r >= 2:
                    ts.append(time.perf_counter() - t0)
                q.grad = k.grad = v.grad = None
        res[mode] = statistics.median(ts)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="build-cuda/bench_cuda_attention")
    args = ap.parse_args()
    out = subprocess.run([args.bin], capture_output=True, text=True)
    print(out.stdout.strip())
    if out.returncode != 0:
        print("emotune bench did not run (rc %d): %s" % (out.returncode, out.stderr.strip()))
        return
    ours, shape = {}, None  # ours[impl][mode] = seconds
    for line in out.stdout.splitlines():
        f = line.split()
        if f[:2] == ["attn", "shape"]:
            shape = tuple(int(x) for x in f[2:6])
        elif len(f) == 5 and f[0] == "attn" and f[2] in ("fwd", "fwdbwd"):
            ours.setdefault(f[1], {})[f[2]] = float(f[3]) * 1e-3
    B, T, H, hd = shape
    flop = 4.0 * B * H * T * T * hd / 2
    mult = {"fwd": 1.0, "fwdbwd": 3.5}
    import torch
    print("torch %s, %s" % (torch.__version__, torch.cuda.get_device_name()))
    peers = {}
    for name in ("FLASH_ATTENTION", "CUDNN_ATTENTION"):
        try:
            peers[name] = peer(name, B, T, H, hd)
        except Exception as e:  # backend unavailable on this build/GPU
            print("%s: unavailable (%s)" % (name, e))
    for mode in ("fwd", "fwdbwd"):
        for name, r in peers.items():
            print("%-7s %-16s %8.3f ms %6.1f TFLOP/s" % (mode, name, r[mode] * 1e3,
                                                         mult[mode] * flop / r[mode] * 1e-12))
        for impl, r in ours.items():
            line = "%-7s emotune %-8s %8.3f ms %6.1f TFLOP/s" % (
                mode, impl, r[mode] * 1e3, mult[mode] * flop / r[mode] * 1e-12)
            for name, p in peers.items():
                line += " | vs %s %.2f" % (name, p[mode] / r[mode])
            print(line)
    if peers and ours:
        for mode in ("fwd", "fwdbwd"):
            best_impl = min(ours, key=lambda i: ours[i][mode])
            best_peer = min(peers, key=lambda n: peers[n][mode])
            ratio = peers[best_peer][mode] / ours[best_impl][mode]
            print("best %-7s emotune %s vs %s: ratio %.2f (target >= 0.90: %s)" % (
                mode, best_impl, best_peer, ratio, "met" if ratio >= 0.9 else "NOT met"))


if __name__ == "__main__":
    main()
