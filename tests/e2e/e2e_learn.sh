#!/usr/bin/env bash
# tests/e2e/e2e_learn.sh BUILD_DIR - the main job (tools/demo.sh's recipe) on a small budget:
# synthetic faces -> stage 1 (projector on captions) -> stage 2 (loads stage 1's projector)
# -> eval; the tiny model's emotion accuracy must rise clearly above chance (14%): >= 30%.
set -euo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-emola.json
over=(synth.dir="$work/synth" synth.n_train=700 synth.n_test=140 data.train="$work/synth/train.json"
      data.eval="$work/synth/test.json" train.output_dir="$work/run" train.epochs=1
      train.max_steps=160 train.save_every=80 train.tensorboard=false)
"$bin" synth -c "$cfg" "${over[@]}"
"$bin" train -c configs/tiny-emola-stage1.json data.train="$work/synth/captions_train.json" \
  data.eval="$work/synth/captions_test.json" train.output_dir="$work/stage1" train.max_steps=40 \
  train.tensorboard=false
[ -s "$work/stage1/mm_projector.safetensors" ] || { echo "FAIL: stage 1 wrote no projector"; exit 1; }
over+=(model.projector_path="$work/stage1/mm_projector.safetensors")
"$bin" train -c "$cfg" "${over[@]}"
out=$("$bin" eval -c "$cfg" "${over[@]}")
echo "$out"
acc=$(python3 - "$work/run/eval/metrics.json" <<'PY' 2>/dev/null || grep -o '"accuracy":[0-9.e+-]*' "$work/run/eval/metrics.json" | cut -d: -f2
import json, sys
print(json.load(open(sys.argv[1]))["accuracy"])
PY
)
echo "accuracy: $acc"
awk -v a="$acc" 'BEGIN { exit !(a >= 0.30) }' || { echo "FAIL: accuracy $acc < 0.30 (chance 0.14)"; exit 1; }
for f in predictions.jsonl metrics.json confusion.png; do
  [ -s "$work/run/eval/$f" ] || { echo "FAIL: missing $f"; exit 1; }
done
[ -s "$work/run/adapter/adapter_model.safetensors" ] || { echo "FAIL: no adapter"; exit 1; }
[ -s "$work/run/metrics.jsonl" ] || { echo "FAIL: no metrics.jsonl"; exit 1; }
echo "ok"
