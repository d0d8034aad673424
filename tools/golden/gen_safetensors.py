#!/usr/bin/env python3
"""tools/golden/gen_safetensors.py - a safetensors file written by the reference package.

Writes tests/golden/st_python.safetensors with safetensors.torch.save_file (the writer HF
uses), read by tests/test_safetensors.c to check that emotune's reader agrees with the
reference writer byte for byte. Every value is hard-coded (no randomness) and exactly
representable in its dtype, so the C test checks them with ==. Keep the two in sync.

Contents
  f32      [2, 3] float32   0.5 * i - 1 (i = 0..5)
  f64      [3]    float64   1/3, -2.25, 1e300
  bf16     [4]    bfloat16  1, -2.5, 0.0078125, 3.3895313892515355e38 (bf16 max)
  f16      [2, 2] float16   1, -0.5, 65504, 5.9604644775390625e-08 (smallest subnormal)
  i32      [3]    int32     -7, 0, 2147483647
  i64      [2, 2] int64     0, -1, 2147483647, -2147483648 (loaded as i32)
  i64_big  [1]    int64     2**40 (out of i32 range: loading it is an error)
  u8       [4]    uint8     0, 1, 200, 255
  i8       [3]    int8      0, 5, 127 (loaded as u8)
  i8_neg   [2]    int8      3, -4 (negative: loading it is an error)
  bool     [5]    bool      T F T T F (loaded as u8 0/1)
  i16      [2]    int16     1, -1 (unsupported dtype)
  scalar   []     float32   42.0 (0-d)
  empty    [0, 3] float32   (no elements)
metadata {"format": "pt"}

Run from the repository root:
    python3 tools/golden/gen_safetensors.py
"""
import os

import torch
from safetensors.torch import save_file

OUT = os.path.join("tests", "golden", "st_python.safetensors")


def main():
    t = {
        "f32": (torch.arange(6, dtype=torch.float32) * 0.5 - 1).reshape(2, 3),
        "f64": torch.tensor([1.0 / 3.0, -2.25, 1e300], dtype=torch.float64),
        "bf16": torch.tensor([1.0, -2.5, 0.0078125, 3.3895313892515355e38], dtype=torch.bfloat16),
        "f16": torch.tensor([[1.0, -0.5], [65504.0, 5.9604644775390625e-08]], dtype=torch.float16),
        "i32": torch.tensor([-7, 0, 2147483647], dtype=torch.int32),
        "i64": torch.tensor([[0, -1], [2147483647, -2147483648]], dtype=torch.int64),
        "i64_big": torch.tensor([2**40], dtype=torch.int64),
        "u8": torch.tensor([0, 1, 200, 255], dtype=torch.uint8),
        "i8": torch.tensor([0, 5, 127], dtype=torch.int8),
        "i8_neg": torch.tensor([3, -4], dtype=torch.int8),
        "bool": torch.tensor([True, False, True, True, False]),
        "i16": torch.tensor([1, -1], dtype=torch.int16),
        "scalar": torch.tensor(42.0, dtype=torch.float32),
        "empty": torch.zeros((0, 3), dtype=torch.float32),
    }
    save_file(t, OUT, metadata={"format": "pt"})
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {len(t)} tensors)")


if __name__ == "__main__":
    main()
