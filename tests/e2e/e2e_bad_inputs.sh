#!/usr/bin/env bash
# tests/e2e/e2e_bad_inputs.sh BUILD_DIR - bad configs and data stop before any training step
# with a clear message (and write no checkpoint); a bad sample mid-run is skipped and counted.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-emola.json
base=(synth.dir="$work/synth" synth.n_train=70 synth.n_test=7 data.train="$work/synth/train.json"
      train.max_steps=3 train.batch_size=4 train.tensorboard=false)
"$bin" synth -c "$cfg" "${base[@]}" > /dev/null || { echo "FAIL: synth"; exit 1; }
fails=0
expect() {  # expect NAME PATTERN ARGS... : the command fails, its stderr matches PATTERN
  local name=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ] || ! grep -qE "$pat" <<<"$out"; then
    echo "FAIL [$name] rc=$rc, wanted /$pat/, got: $out"; fails=$((fails + 1))
  else
    echo "ok   [$name] $(grep -E "$pat" <<<"$out" | head -1)"
  fi
}
expect "unknown key" 'unknown key "train.lrr" \(did you mean "train.lr"\?\)' \
  "$bin" train -c "$cfg" "${base[@]}" train.lrr=1 train.output_dir="$work/o1"
expect "wrong type" 'train.batch_size must be an integer' \
  "$bin" train -c "$cfg" "${base[@]}" train.batch_size=1.5 train.output_dir="$work/o2"
expect "string for number" 'train.lr must be a number, got a string' \
  "$bin" train -c "$cfg" "${base[@]}" train.lr=fast train.output_dir="$work/o3"
expect "missing data file" 'nope.json.*(No such file|cannot open)' \
  "$bin" train -c "$cfg" "${base[@]}" data.train="$work/nope.json" train.output_dir="$work/o4"
expect "missing config file" 'missing.json' "$bin" train -c "$work/missing.json"
printf '[]' > "$work/empty.json"
expect "empty dataset" 'no samples' \
  "$bin" train -c "$cfg" "${base[@]}" data.train="$work/empty.json" train.output_dir="$work/o5"
printf '{"model": {"llm": {"hidden_size": 64,}}}' > "$work/bad.json"
expect "config syntax" 'bad.json: JSON syntax error at line 1, column' "$bin" train -c "$work/bad.json"
# an answer longer than max_len: every sample loses its supervised tokens
expect "answer beyond max_len" "no answer token within data.max_len = 24" \
  "$bin" train -c "$cfg" "${base[@]}" data.template=vicuna_v1 data.max_len=24 train.output_dir="$work/o6"
expect "unknown scheduler" 'train.lr_scheduler = "cosin" is not one of' \
  "$bin" train -c "$cfg" "${base[@]}" train.lr_scheduler=cosin train.output_dir="$work/o7"
if ! nvidia-smi -L > /dev/null 2>&1; then
  expect "no GPU" 'model to device cuda:0: no such device' \
    "$bin" train -c "$cfg" "${base[@]}" train.device=cuda train.output_dir="$work/o8"
fi
for o in o1 o2 o3 o4 o5 o6 o7 o8; do
  if ls "$work/$o/checkpoints"/step-* > /dev/null 2>&1; then
    echo "FAIL: a checkpoint was written in $o"; fails=$((fails + 1))
  fi
done
# a corrupt image mid-run: skipped, counted, training completes
img=$(ls "$work/synth/images" | sed -n 5p)
printf 'not a png' > "$work/synth/images/$img"
out=$("$bin" train -c "$cfg" "${base[@]}" train.output_dir="$work/o7" 2>&1); rc=$?
if [ $rc -ne 0 ] || ! grep -q "samples skipped" <<<"$out" || ! grep -q "image: 1" <<<"$out"; then
  echo "FAIL [bad sample mid-run] rc=$rc: $out"; fails=$((fails + 1))
else
  echo "ok   [bad sample mid-run] $(grep -E 'image: 1' <<<"$out" | head -1)"
fi
[ $fails -eq 0 ] && echo "ok" || { echo "$fails failures"; exit 1; }
