#!/usr/bin/env bash
# tests/e2e/e2e_synth.sh BUILD_DIR - `emotune synth` and its synth.* keys: synth.clean equals
# every degradation key at 0; the default benchmark differs from it; the pretraining files
# (captions_*.json, text_*.json) are written and the trainer takes them (captions with the
# plain template, text-only samples with vicuna_v1); bad keys name themselves.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-random.json
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
small=(synth.n_train=28 synth.n_test=7 synth.size=32)
"$bin" synth -c "$cfg" "${small[@]}" synth.dir="$work/clean" synth.clean=true synth.n_text=0 \
  > /dev/null || fail "synth clean"
"$bin" synth -c "$cfg" "${small[@]}" synth.dir="$work/zero" synth.n_text=0 synth.jpeg_prob=0 \
  synth.lowres_prob=0 synth.occlusion_prob=0 synth.landmark_noise=0 > /dev/null || fail "synth zero"
diff -r "$work/clean" "$work/zero" > /dev/null || fail "synth.clean differs from the keys at 0"
"$bin" synth -c "$cfg" "${small[@]}" synth.dir="$work/def" synth.n_text=40 > /dev/null \
  || fail "synth default"
for f in train.json test.json captions_train.json captions_test.json text_train.json text_test.json; do
  [ -s "$work/def/$f" ] || fail "missing $f"
done
[ ! -e "$work/clean/text_train.json" ] || fail "synth.n_text=0 wrote text_train.json"
cmp -s "$work/clean/train.json" "$work/def/train.json" || fail "train.json changed with degradations"
n_lm_diff=0
for f in "$work"/def/landmarks/*.npy; do
  cmp -s "$f" "$work/clean/landmarks/$(basename "$f")" || n_lm_diff=$((n_lm_diff + 1))
done
[ "$n_lm_diff" = 35 ] || fail "$n_lm_diff of 35 landmark files carry detector noise"
[ "$(grep -c '"conversations"' "$work/def/captions_train.json")" = 28 ] || fail "captions_train rows"
[ "$(grep -c '"conversations"' "$work/def/text_train.json")" = 40 ] || fail "text_train rows"
[ "$(grep -c '"conversations"' "$work/def/text_test.json")" = 4 ] || fail "text_test rows"
grep -q '"image"' "$work/def/text_train.json" && fail "text samples name an image"
grep -q '"value":"<image>\\n"},{"from":"gpt"' "$work/def/captions_train.json" || fail "caption turns"
# the trainer takes both: captions with plain, text-only with vicuna_v1 (no face prior)
run=(train.max_steps=2 train.batch_size=4 train.tensorboard=false data.workers=0
     data.eval="$work/def/test.json")
"$bin" train -c "$cfg" "${run[@]}" data.train="$work/def/captions_train.json" data.template=plain \
  train.output_dir="$work/r1" > "$work/r1.log" 2>&1 || { cat "$work/r1.log"; fail "train on captions"; }
"$bin" train -c "$cfg" "${run[@]}" data.train="$work/def/text_train.json" data.template=vicuna_v1 \
  model.face_prior=none train.output_dir="$work/r2" > "$work/r2.log" 2>&1 \
  || { cat "$work/r2.log"; fail "train on text"; }
expect() {  # expect NAME PATTERN ARGS...: the command fails and its output matches PATTERN
  local name=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ] || ! grep -qE "$pat" <<<"$out"; then
    fail "[$name] rc=$rc, wanted /$pat/, got: $out"
  else
    echo "ok   [$name] $(grep -E "$pat" <<<"$out" | head -1)"
  fi
}
expect "quality order" 'jpeg_quality_min 90 / jpeg_quality_max 30' "$bin" synth -c "$cfg" \
  "${small[@]}" synth.dir="$work/b1" synth.jpeg_quality_min=90 synth.jpeg_quality_max=30
expect "lowres range" 'synth.lowres_min' "$bin" synth -c "$cfg" "${small[@]}" \
  synth.dir="$work/b2" synth.lowres_min=0.05
expect "noise range" 'synth.landmark_noise' "$bin" synth -c "$cfg" "${small[@]}" \
  synth.dir="$work/b3" synth.landmark_noise=-1
expect "prob type" 'synth.occlusion_prob must be a number' "$bin" synth -c "$cfg" "${small[@]}" \
  synth.dir="$work/b4" synth.occlusion_prob=often
expect "clean type" 'synth.clean' "$bin" synth -c "$cfg" "${small[@]}" synth.dir="$work/b5" \
  synth.clean=3
[ "$fails" = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
