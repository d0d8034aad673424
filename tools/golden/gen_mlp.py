#!/usr/bin/env python3
"""tools/golden/gen_mlp.py - 20 AdamW training steps of a 2-layer MLP in torch.

Writes tests/golden/mlp_adamw.safetensors, read by tests/test_golden_mlp.c, which runs the
same 20 steps with emotune's ops (et_linear, et_gelu, et_cross_entropy), optimizer
(et_adamw), clipping (et_clip_grad_norm) and schedule (et_lr_factor, cosine).

Model and data (float32, CPU, seeded):
  x [16, 8] (3 * randn, so the grad norm starts near 1.9 and the first 7 steps are clipped)
  x -> Linear(8, 32) -> GELU (exact erf) -> Linear(32, 5) -> logits [16, 5]
  loss = cross_entropy(logits, targets, ignore_index=-100), targets 3 and 11 ignored
Training, per step k = 0..19:
  loss, backward, total_norm = clip_grad_norm_(params, max_norm=1.0), opt.step(),
  sched.step(), with
  AdamW(lr 1e-2, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01, foreach=False) on all
  four tensors (biases decay too), and LambdaLR with HF transformers'
  get_cosine_schedule_with_warmup(num_warmup_steps=3, num_training_steps=20,
  num_cycles=0.5). transformers is not needed: the lambda below is written out with the
  same formula as transformers.optimization._get_cosine_schedule_with_warmup_lr_lambda.

Tensors: "w1" [32, 8], "b1" [32], "w2" [5, 32], "b2" [5] (initial weights), "x" [16, 8],
"targets" (int32 [16]), "losses" [20] (the loss of step k, before its update),
"grad_norms" [20] (pre-clip total norm of step k), "final_w1", "final_b1", "final_w2",
"final_b2" (after 20 steps).

The script also reruns the whole loop in float64 from the same initial values and prints how
far the float32 run is from it: a sanity check that the trajectory is not sensitive to
rounding (no near-zero gradient whose sign could flip Adam's first update), so an
independent f32 implementation can be held to 1e-5. Run:  python3 tools/golden/gen_mlp.py
"""
import math
import os

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "golden",
                   "mlp_adamw.safetensors")

N, DIN, DH, DOUT = 16, 8, 32, 5
STEPS, WARMUP = 20, 3
LR, BETAS, EPS, WD, MAX_NORM = 1e-2, (0.9, 0.999), 1e-8, 0.01, 1.0


def cosine_with_warmup(num_warmup_steps, num_training_steps, num_cycles=0.5):
    """HF transformers get_cosine_schedule_with_warmup's lr lambda, written out."""
    def lr_lambda(current_step):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        progress = float(current_step - num_warmup_steps) / float(
            max(1, num_training_steps - num_warmup_steps))
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress)))
    return lr_lambda


def train(init, x, targets, dtype):
    params = [init[k].to(dtype).clone().requires_grad_(True) for k in ("w1", "b1", "w2", "b2")]
    w1, b1, w2, b2 = params
    x = x.to(dtype)
    opt = torch.optim.AdamW(params, lr=LR, betas=BETAS, eps=EPS, weight_decay=WD,
                            foreach=False)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(WARMUP, STEPS))
    losses, norms = [], []
    for _ in range(STEPS):
        opt.zero_grad(set_to_none=True)
        h = F.gelu(F.linear(x, w1, b1), approximate="none")
        logits = F.linear(h, w2, b2)
        loss = F.cross_entropy(logits, targets.long(), ignore_index=-100)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, MAX_NORM)
        opt.step()
        sched.step()
        losses.append(loss.item())
        norms.append(norm.item())
    return losses, norms, [p.detach() for p in params]


def rel(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return ((a - b).abs().max() / b.abs().max()).item()


def main():
    torch.manual_seed(20240611)
    torch.set_num_threads(1)
    l1, l2 = torch.nn.Linear(DIN, DH), torch.nn.Linear(DH, DOUT)
    init = {"w1": l1.weight.detach().clone(), "b1": l1.bias.detach().clone(),
            "w2": l2.weight.detach().clone(), "b2": l2.bias.detach().clone()}
    x = 3.0 * torch.randn(N, DIN)  # scaled so that the first 7 steps are clipped
    targets = torch.randint(0, DOUT, (N,), dtype=torch.int32)
    targets[3] = -100
    targets[11] = -100

    losses, norms, final = train(init, x, targets, torch.float32)
    losses64, norms64, final64 = train(init, x, targets, torch.float64)
    print("f32 vs f64: losses %.2e  norms %.2e" % (rel(losses, losses64), rel(norms, norms64)))
    for name, a, b in zip(("w1", "b1", "w2", "b2"), final, final64):
        print("f32 vs f64: final %s %.2e" % (name, rel(a, b)))
    print("losses", " ".join("%.5f" % v for v in losses))
    print("norms ", " ".join("%.4f" % v for v in norms))
    clipped = sum(1 for v in norms if v > MAX_NORM)
    print("steps clipped: %d of %d" % (clipped, STEPS))

    tensors = dict(init)
    tensors.update({
        "x": x, "targets": targets,
        "losses": torch.tensor(losses, dtype=torch.float32),
        "grad_norms": torch.tensor(norms, dtype=torch.float32),
    })
    for name, t in zip(("w1", "b1", "w2", "b2"), final):
        tensors["final_" + name] = t
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    save_file(tensors, OUT)
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")


if __name__ == "__main__":
    main()
