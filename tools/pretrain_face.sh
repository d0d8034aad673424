#!/usr/bin/env bash
# tools/pretrain_face.sh - remakes the tiny face analysis network the repo ships in
# configs/tiny-emola/face_net (FaceXFormer's architecture at 64 px: embed 32, depths [2, 2],
# fuse 64; config.json + model.safetensors, FaceXFormer's names), from nothing but the
# synthetic-face generator:
#   1. 10,000 + 700 faces of generator seed 3 with exact landmarks (synth.landmark_noise 0)
#      in runs/pretrain-face-synth (the demo's data is seed 1: no demo face or identity);
#   2. `emotune pretrain-face -c configs/pretrain/face_net.json`: landmark L1 x 100 + the age,
#      gender and race cross-entropies, 20 epochs of batch 32 -> runs/pretrain-face/face_net,
#      then scored on the 700 held-out faces (landmark NME, age / gender / skin accuracy);
#   3. the export is copied into configs/tiny-emola/face_net and its sha256 printed.
# Deterministic like tools/pretrain_tiny.sh (same CPU SIMD features: the same bytes). About
# 20 min on 2 free cores. Earlier outputs are moved aside (--overwrite), never deleted.
# --no-copy leaves configs/tiny-emola/ alone (to compare the sha256 only).
set -euo pipefail
cd "$(dirname "$0")/.."
copy=1
[ "${1:-}" = "--no-copy" ] && copy=0
bash tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target emotune_cli
bin=./build/emotune
"$bin" synth -c configs/tiny-emola.json synth.seed=3 synth.n_train=10000 synth.n_test=700 \
  synth.n_text=0 synth.landmark_noise=0 synth.dir=runs/pretrain-face-synth
"$bin" pretrain-face -c configs/pretrain/face_net.json --overwrite
if [ $copy -eq 1 ]; then
  mkdir -p configs/tiny-emola/face_net
  cp runs/pretrain-face/face_net/config.json runs/pretrain-face/face_net/model.safetensors \
    configs/tiny-emola/face_net/
fi
sha256sum runs/pretrain-face/face_net/model.safetensors configs/tiny-emola/face_net/model.safetensors
