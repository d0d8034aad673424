#!/usr/bin/env bash
# tools/pretrain_tiny.sh - remakes the pretrained tiny components that the repo ships in
# configs/tiny-emola/tower (HF CLIPVisionModel) and configs/tiny-emola/decoder (HF
# LlamaForCausalLM), from nothing but the synthetic-face generator:
#   1. pretraining faces: 10,000 + 700 captioned faces of generator seed 2 (the demo's data is
#      seed 1, so no face or identity of the demo's held-out split is seen here);
#   2. the tower: CLIP's contrastive pretraining on their captions (configs/tiny-clip.json,
#      36 epochs; no horizontal flip, because the captions say which way the head turns);
#   3. the decoder: causal-LM pretraining (every token supervised) on the generator's text
#      corpus in the vicuna_v1 chat template's words (configs/pretrain/decoder.json);
#   4. the two exports are copied into configs/tiny-emola/ and their sha256 printed.
# Every step is deterministic: on a CPU with the same SIMD features the files come out
# byte-identical (the thread count does not matter); on another CPU they differ within
# training noise (other GEMM kernels round differently).
# Runs take about 20 min (tower) + 4 min (decoder) on 2 cores. Outputs of earlier runs are
# moved aside (--overwrite), never deleted. --no-copy leaves configs/tiny-emola/ alone.
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
"$bin" pretrain-tower -c configs/tiny-clip.json data.train=runs/pretrain-synth/captions_train.json \
  data.eval=runs/pretrain-synth/captions_test.json clip.flip=false \
  train.output_dir=runs/pretrain-tower --overwrite
# 3. the decoder
"$bin" train -c configs/pretrain/decoder.json --overwrite
# 4. ship
"$bin" probe -c "$cfg" model.vision_path=runs/pretrain-tower/tower --random
if [ $copy = 1 ]; then
  mkdir -p configs/tiny-emola/tower configs/tiny-emola/decoder
  cp runs/pretrain-tower/tower/config.json runs/pretrain-tower/tower/model.safetensors \
    configs/tiny-emola/tower/
  cp runs/pretrain-decoder/merged/config.json runs/pretrain-decoder/merged/model.safetensors \
    configs/tiny-emola/decoder/
fi
sha256sum runs/pretrain-tower/tower/model.safetensors runs/pretrain-decoder/merged/model.safetensors
