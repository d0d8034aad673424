#!/usr/bin/env bash
# tests/e2e/e2e_store.sh BUILD_DIR - training from a prepared HDF5 store (data.store): synth,
# prepare, train a few steps from the store; the JSON run and the store run see the same
# data (same first-window loss); a store made for another template or image size stops
# before any step with a clear message; a store with video samples is refused; the
# data.supervise rule travels with the store.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-random.json
base=(synth.dir="$work/synth" synth.n_train=48 synth.n_test=4 data.train="$work/synth/train.json"
      train.max_steps=4 train.batch_size=4 train.log_every=1 train.tensorboard=false)
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
"$bin" synth -c "$cfg" "${base[@]}" > /dev/null || { echo "FAIL: synth"; exit 1; }
out=$("$bin" prepare -c "$cfg" "${base[@]}" --out "$work/train.h5" 2>&1) ||
  { echo "FAIL: prepare: $out"; exit 1; }
grep -q "48 samples written" <<<"$out" || fail "[prepare] $out"
# same run from JSON and from the store: identical losses (same batches, same model)
"$bin" train -c "$cfg" "${base[@]}" train.output_dir="$work/json" > "$work/json.log" 2>&1 ||
  fail "[train json] $(tail -3 "$work/json.log")"
"$bin" train -c "$cfg" "${base[@]}" data.train= data.store="$work/train.h5" \
  train.output_dir="$work/store" > "$work/store.log" 2>&1 ||
  fail "[train store] $(tail -3 "$work/store.log")"
if [ -f "$work/store/metrics.jsonl" ] && [ -f "$work/json/metrics.jsonl" ]; then
  a=$(grep -o '"loss":[^,]*' "$work/json/metrics.jsonl" | head -4 | tr '\n' ' ')
  b=$(grep -o '"loss":[^,]*' "$work/store/metrics.jsonl" | head -4 | tr '\n' ' ')
  if [ -n "$a" ] && [ "$a" = "$b" ]; then echo "ok   [store = json] $b"; else fail "[store = json] json: $a store: $b"; fi
  ls -d "$work/store/checkpoints"/step-00000004 > /dev/null 2>&1 || fail "[store] no checkpoint step-00000004"
else
  fail "[train] no metrics.jsonl"
fi
expect() {  # expect NAME PATTERN ARGS... : fails before any step, stderr matches PATTERN
  local name=$1 pat=$2 out rc; shift 2
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ] || ! grep -qE "$pat" <<<"$out"; then fail "[$name] rc=$rc, wanted /$pat/: $out"
  else echo "ok   [$name] $(grep -E "$pat" <<<"$out" | head -1)"; fi
}
expect "template mismatch" 'train.h5: the store was tokenized with template "plain" but data.template is "vicuna_v1"' \
  "$bin" train -c "$cfg" "${base[@]}" data.store="$work/train.h5" data.template=vicuna_v1 \
  train.output_dir="$work/o1"
expect "image size mismatch" 'train.h5: the store holds 64x64 images but the model.s tower takes 32' \
  "$bin" train -c "$cfg" "${base[@]}" data.store="$work/train.h5" model.vision.image_size=32 \
  train.output_dir="$work/o2"
expect "missing store" 'data.store += .*/nope.h5: No such file or directory' \
  "$bin" train -c "$cfg" "${base[@]}" data.store="$work/nope.h5" train.output_dir="$work/o3"
# videos: synth clips prepared into a store are refused by train (no video model yet)
out=$("$bin" synth -c "$cfg" "${base[@]}" synth.dir="$work/clips" synth.n_clips=4 2>&1) || fail "[synth clips] $out"
[ -f "$work/clips/clips.json" ] || fail "[synth clips] no clips.json"
out=$("$bin" prepare -c "$cfg" "${base[@]}" model.face_prior=none --data "$work/clips/clips.json" \
      data.video_frames=3 --out "$work/clips.h5" 2>&1) || fail "[prepare clips] $out"
expect "video refused" 'clips.h5: 4 video samples .*not supported yet' \
  "$bin" train -c "$cfg" "${base[@]}" model.face_prior=none data.store="$work/clips.h5" \
  train.output_dir="$work/o4"
# data.supervise=all (causal-LM labels) is recorded in the store: the JSON and store runs see
# the same labels (equal losses, unlike the answers-only run), a mismatch is refused
v1=(data.template=vicuna_v1)
"$bin" train -c "$cfg" "${base[@]}" "${v1[@]}" train.output_dir="$work/json_v1" > /dev/null 2>&1 ||
  fail "[train json v1]"
"$bin" prepare -c "$cfg" "${base[@]}" "${v1[@]}" data.supervise=all --out "$work/all.h5" > /dev/null 2>&1 ||
  fail "[prepare all] failed"
"$bin" train -c "$cfg" "${base[@]}" "${v1[@]}" data.supervise=all train.output_dir="$work/json_all" \
  > /dev/null 2>&1 || fail "[train json all]"
"$bin" train -c "$cfg" "${base[@]}" "${v1[@]}" data.supervise=all data.train= data.store="$work/all.h5" \
  train.output_dir="$work/store_all" > /dev/null 2>&1 || fail "[train store all]"
a=$(grep -o '"loss":[^,]*' "$work/json_all/metrics.jsonl" 2>/dev/null | head -4 | tr '\n' ' ')
b=$(grep -o '"loss":[^,]*' "$work/store_all/metrics.jsonl" 2>/dev/null | head -4 | tr '\n' ' ')
c=$(grep -o '"loss":[^,]*' "$work/json_v1/metrics.jsonl" 2>/dev/null | head -4 | tr '\n' ' ')
if [ -n "$a" ] && [ "$a" = "$b" ] && [ "$a" != "$c" ]; then echo "ok   [supervise=all store = json] $b"
else fail "[supervise=all] json: $a store: $b answers: $c"; fi
expect "supervise mismatch" 'all.h5: the store.s labels were made with data.supervise=all but the config says answers' \
  "$bin" train -c "$cfg" "${base[@]}" "${v1[@]}" data.train= data.store="$work/all.h5" train.output_dir="$work/o5"
expect "supervise choice" 'data.supervise.*"some".*answers\|all' \
  "$bin" train -c "$cfg" "${base[@]}" data.supervise=some train.output_dir="$work/o6"
for o in o1 o2 o3 o4 o5 o6; do
  ls "$work/$o/checkpoints"/step-* > /dev/null 2>&1 && fail "a checkpoint was written in $o"
done
[ $fails -eq 0 ] && echo "ok" || { echo "$fails failures"; exit 1; }
