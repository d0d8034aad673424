#!/usr/bin/env python3
"""tools/golden/gen_lora.py - PEFT LoRA on a toy LLaMA-named module tree.

The toy model (D=16, I=24, 2 layers, no biases) names its nn.Linear modules as LLaMA does
(model.layers.N.self_attn.{q,k,v,o}_proj, model.layers.N.mlp.{gate,up,down}_proj):

  for each layer:  x = x + o_proj(silu(q_proj(x)) * k_proj(x) + v_proj(x))
                   x = x + down_proj(silu(gate_proj(x)) * up_proj(x))

Cases (r=4, lora_alpha=8, dropout 0; lora_B set to N(0, 0.1^2) so the branch matters):
  std: target_modules ["q_proj", "v_proj", "down_proj"]        scale alpha/r
  rs:  target_modules ".*\\.(k_proj|up_proj|o_proj)" (regex), use_rslora, scale alpha/sqrt(r)

Writes, read by tests/test_golden_lora.c:
  tests/golden/lora/base.safetensors      the toy model's weights under their HF names
  tests/golden/lora/<case>/               PeftModel.save_pretrained (adapter_config.json,
                                          adapter_model.safetensors, f32)
  tests/golden/lora/ref.safetensors
    "x" [2, 5, 16], "gy" [2, 5, 16]
    "<case>/y", "<case>/gx"               forward output and d(sum(y*gy))/dx
    "<case>/grad/<key>"                   gradient of every adapter tensor (<key> as in
                                          adapter_model.safetensors)
    "<case>/merged/<module>.weight"       merge_and_unload() weight of every target module
References run in float64 (model.double()) from the f32 weights and are stored as f32.

  python3 tools/golden/gen_lora.py              regenerate
  python3 tools/golden/gen_lora.py --check DIR  load an adapter directory (e.g. one exported
                                                by emotune) with PEFT onto the toy model and
                                                compare its output with the fixture's case
                                                named by DIR's target modules
"""
import copy
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # base_model_name_or_path is a made-up name

import torch  # noqa: E402
import torch.nn as nn
import torch.nn.functional as F
from peft import LoraConfig, PeftModel, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "lora")
D, I, L = 16, 24, 2


class Attn(nn.Module):
    def __init__(self):
        super().__init__()
        for n in ("q_proj", "k_proj", "v_proj", "o_proj"):
            setattr(self, n, nn.Linear(D, D, bias=False))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_proj = nn.Linear(D, I, bias=False)
        self.up_proj = nn.Linear(D, I, bias=False)
        self.down_proj = nn.Linear(I, D, bias=False)


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = Attn()
        self.mlp = MLP()


class Inner(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([Layer() for _ in range(L)])


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.model = Inner()

    def forward(self, x):
        for ly in self.model.layers:
            a = ly.self_attn
            x = x + a.o_proj(F.silu(a.q_proj(x)) * a.k_proj(x) + a.v_proj(x))
            m = ly.mlp
            x = x + m.down_proj(F.silu(m.gate_proj(x)) * m.up_proj(x))
        return x

    def prepare_inputs_for_generation(self, *args, **kwargs):  # PeftModelForCausalLM wants it
        raise NotImplementedError


CASES = {
    "std": dict(target_modules=["q_proj", "v_proj", "down_proj"], use_rslora=False),
    "rs": dict(target_modules=r".*\.(k_proj|up_proj|o_proj)", use_rslora=True),
}


def make_base():
    torch.manual_seed(99)
    base = Toy()
    with torch.no_grad():
        for p in base.parameters():
            p.copy_(0.3 * torch.randn_like(p))
    return base


def main():
    base = make_base()
    torch.manual_seed(7)
    x = torch.randn(2, 5, D)
    gy = torch.randn(2, 5, D)
    save_file({k: v.contiguous() for k, v in base.state_dict().items()},
              os.path.join(OUT, "base.safetensors"))
    ref = {"x": x, "gy": gy}
    for case, kw in CASES.items():
        cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, task_type="CAUSAL_LM",
                         base_model_name_or_path="emotune/toy-llama", **kw)
        pm = PeftModel(copy.deepcopy(base), cfg)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n:
                    p.copy_(0.1 * torch.randn_like(p))
        pm.save_pretrained(os.path.join(OUT, case))
        os.remove(os.path.join(OUT, case, "README.md"))  # PEFT's model card, not needed
        saved = load_file(os.path.join(OUT, case, "adapter_model.safetensors"))
        pm = pm.double()
        xd = x.double().requires_grad_(True)
        y = pm(xd)
        (y * gy.double()).sum().backward()
        ref[f"{case}/y"] = y.detach().float()
        ref[f"{case}/gx"] = xd.grad.float()
        params = dict(pm.named_parameters())
        for key in saved:
            # base_model.model.<m>.lora_A.weight -> base_model.model.<m>.lora_A.default.weight
            pname = key.replace(".lora_A.weight", ".lora_A.default.weight").replace(
                ".lora_B.weight", ".lora_B.default.weight")
            ref[f"{case}/grad/{key}"] = params[pname].grad.float()
        merged = pm.merge_and_unload()
        sd = merged.state_dict()
        for key in saved:
            if ".lora_A." in key:
                mod = key[len("base_model.model."):-len(".lora_A.weight")]
                ref[f"{case}/merged/{mod}.weight"] = sd[f"{mod}.weight"].float()
    save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(OUT, "ref.safetensors"))
    print("wrote", OUT)


def check(d):
    with open(os.path.join(d, "adapter_config.json")) as f:
        tm = json.load(f)["target_modules"]
    case = "rs" if isinstance(tm, str) else "std"
    cfg = LoraConfig.from_pretrained(d)
    pm = PeftModel(make_base(), cfg)
    res = set_peft_model_state_dict(pm, load_file(os.path.join(d, "adapter_model.safetensors")))
    missing = [k for k in res.missing_keys if "lora_" in k]
    if missing or res.unexpected_keys:
        sys.exit(f"{d}: missing {missing}, unexpected {res.unexpected_keys}")
    pm = pm.double()
    ref = load_file(os.path.join(OUT, "ref.safetensors"))
    with torch.no_grad():
        y = pm(ref["x"].double())
    err = ((y - ref[f"{case}/y"].double()).abs().max() / ref[f"{case}/y"].abs().max()).item()
    print(f"{d}: PEFT loads it, case {case}, output rel err {err:.3g}")
    sys.exit(0 if err < 1e-5 else 1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--check":
        check(sys.argv[2])
    else:
        main()
