#!/usr/bin/env bash
# tools/pretrain_tiny.sh - remakes the pretrained tiny components that the repo ships in
# configs/tiny-emola/tower (HF CLIPVisionModel) and configs/tiny-emola/decoder (HF
# LlamaForCausalLM), from nothing but the synthetic-face generator:
#   1. pretraining faces: 10,000 + 700 captioned faces of generator seed 2 in
#      runs/pretrain-synth (the demo's data is seed 1, so no face or identity of the demo's
#      held-out split is seen here), with the short captions (synth.caption_style short:
#      "Face of a young adult female, dark skin, expressing disgust (clear). Active: AU9
#      (nose wrinkler), ..."); and the demo's default data in runs/synth (its text corpus);
#   2. the tower: CLIP's contrastive pretraining on those captions (configs/tiny-clip.json:
#      36 epochs of batch 64; clip.shuffle_block 7, so a batch holds whole identities and
#      only the expression tells their captions apart; no horizontal flip, because the
#      captions say which way the head turns) -> runs/pretrain-tower/tower;
#   3. the decoder: causal-LM pretraining (every token supervised) on the generator's text
#      corpus in the vicuna_v1 chat template's words (configs/pretrain/decoder.json)
#      -> runs/pretrain-decoder/merged;
#   4. a linear probe of the new tower on the demo's faces (and of a random one), then the
#      two exports are copied into configs/tiny-emola/ and their sha256 printed.
# Every step is deterministic: on a CPU with the same SIMD features the files come out
# byte-identical (the thread count does not matter); on another CPU they differ within
# training noise (other GEMM kernels round differently). About 15 min (tower) + 4 min
# (decoder) on 2 free cores. Outputs of earlier runs are moved aside (--overwrite), never
# deleted. --no-copy leaves configs/tiny-emola/ alone (to compare the sha256 only).
set -euo pipefail
cd "$(dirname "$0")/.."
copy=1
[ "${1:-}" = "--no-copy" ] && copy=0
bash tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target emotune_cli
bin=./build/emotune
cfg=configs/tiny-emola.json
# 1. pretraining faces (images + captions) and the demo's default data (text corpus)
"$bin" synth -c "$cfg" synth.seed=2 synth.n_train=10000 synth.n_test=700 synth.n_text=0 \
  synth.dir=runs/pretrain-synth
"$bin" synth -c "$cfg"
# 2. the tower
"$bin" pretrain-tower -c configs/tiny-clip.json --overwrite
# 3. the decoder
"$bin" train -c configs/pretrain/decoder.json --overwrite
# 4. probe, ship
"$bin" probe -c "$cfg" model.vision_path=runs/pretrain-tower/tower --random
if [ $copy = 1 ]; then
  mkdir -p configs/tiny-emola/tower configs/tiny-emola/decoder
  cp runs/pretrain-tower/tower/config.json runs/pretrain-tower/tower/model.safetensors \
    configs/tiny-emola/tower/
  cp runs/pretrain-decoder/merged/config.json runs/pretrain-decoder/merged/model.safetensors \
    configs/tiny-emola/decoder/
fi
sha256sum runs/pretrain-tower/tower/model.safetensors runs/pretrain-decoder/merged/model.safetensors \
  configs/tiny-emola/tower/model.safetensors configs/tiny-emola/decoder/model.safetensors
