#!/usr/bin/env python3
"""CPU engine benchmark: emotune vs OpenBLAS direct vs PyTorch, measured in one run.

Runs build/bench_cpu (emotune's et_matmul and direct cblas_sgemm, interleaved) and then
the same measurements with PyTorch (torch.matmul, and torch.add on 16-element tensors
with and without autograd) on the same number of threads, and prints the table with
ratios. Usage: python3 tools/bench/bench_cpu.py [--threads N] [--bin build/bench_cpu]
"""
import argparse
import os
import subprocess
import time


def torch_numbers(threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    out = {"version": torch.__version__}
    for n in (256, 512, 1024, 2048):
        a, b = torch.randn(n, n), torch.randn(n, n)
        reps = 30 if n <= 512 else 8 if n <= 1024 else 4
        torch.matmul(a, b)
        best = 1e30
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.matmul(a, b)
            best = min(best, time.perf_counter() - t0)
        out[f"gemm{n}"] = 2.0 * n ** 3 / best * 1e-9
    a, b = torch.ones(16), torch.full((16,), 2.0)
    with torch.no_grad():
        for _ in range(1000):
            torch.add(a, b)
        iters = 200000
        t0 = time.perf_counter()
        for _ in range(iters):
            torch.add(a, b)
        out["small_op_nograd"] = (time.perf_counter() - t0) / iters * 1e9
    a.requires_grad_(True)
    iters = 100000
    t0 = time.perf_counter()
    for _ in range(iters):
        torch.add(a, b)
    out["small_op_grad"] = (time.perf_counter() - t0) / iters * 1e9
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--bin", default="build/bench_cpu")
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    lines = subprocess.run([args.bin], env=env, check=True, capture_output=True, text=True).stdout
    ours = {}
    for line in lines.splitlines():
        k, *v = line.split()
        if k == "gemm":
            ours[f"gemm{v[0]}"] = (float(v[1]), float(v[2]))
        else:
            ours[k] = float(v[0])
    peer = torch_numbers(args.threads)
    print(f"threads: {args.threads}; PyTorch: {peer['version'] if peer else 'not installed'}")
    print()
    print("| square GEMM n | OpenBLAS direct GFLOP/s | emotune et_matmul GFLOP/s | emotune / direct | torch.matmul GFLOP/s | emotune / torch |")
    print("|---|---|---|---|---|---|")
    for n in (256, 512, 1024, 2048):
        direct, et = ours[f"gemm{n}"]
        t = peer[f"gemm{n}"] if peer else float("nan")
        print(f"| {n} | {direct:.1f} | {et:.1f} | {et / direct:.3f} | {t:.1f} | {et / t:.2f} |")
    print()
    print("| small op call (add, 16 floats) | emotune ns | PyTorch ns | PyTorch / emotune |")
    print("|---|---|---|---|")
    for key, label in (("small_op_nograd", "no grad"), ("small_op_grad", "recording autograd")):
        t = peer[key] if peer else float("nan")
        print(f"| {label} | {ours[key]:.0f} | {t:.0f} | {t / ours[key]:.1f}x |")


if __name__ == "__main__":
    main()
