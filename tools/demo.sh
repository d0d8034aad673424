#!/usr/bin/env bash
# tools/demo.sh - the main job on the embedded default, from a fresh clone: installs what is
# missing (Debian/Ubuntu), builds, writes the synthetic-face dataset and runs LLaVA's two
# stages on the CPU from the shipped pretrained tiny tower and decoder (configs/tiny-emola/,
# remade by tools/pretrain_tiny.sh):
#   stage 1: the projector alone on the faces' captions, plain template
#            (configs/tiny-emola-stage1.json -> runs/tiny-emola-stage1/mm_projector.safetensors);
#   stage 2: LoRA + projector + landmark expert on the instruction data, vicuna_v1
#            (configs/tiny-emola.json, which loads stage 1's projector);
# then evaluates on the held-out faces and prints the metrics table. Extra arguments are
# config overrides (key=value) for the synth and stage-2 steps.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target emotune_cli
cfg=configs/tiny-emola.json
./build/emotune synth -c "$cfg" "$@"
# a previous demo run is moved aside to runs/<name>.old-<time>, never deleted
./build/emotune train -c configs/tiny-emola-stage1.json --overwrite
./build/emotune train -c "$cfg" --overwrite "$@"
./build/emotune eval -c "$cfg" "$@"
echo "demo: done in $(( $(date +%s) - start )) s (outputs in runs/tiny-emola)"
