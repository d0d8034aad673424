#!/usr/bin/env bash
# tools/demo.sh - the main job on the embedded default, from a fresh clone: installs what is
# missing (Debian/Ubuntu), builds, writes the synthetic-face dataset, instruction-tunes the
# tiny EmoLA-style model (configs/tiny-emola.json) on the CPU, evaluates it on the held-out
# faces and prints the metrics table. Extra arguments are config overrides (key=value).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target emotune_cli
cfg=configs/tiny-emola.json
./build/emotune synth -c "$cfg" "$@"
# a previous demo run is moved aside to runs/tiny-emola.old-<time>, never deleted
./build/emotune train -c "$cfg" --overwrite "$@"
./build/emotune eval -c "$cfg" "$@"
echo "demo: done in $(( $(date +%s) - start )) s (outputs in runs/tiny-emola)"
