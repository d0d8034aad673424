#!/usr/bin/env bash
# tests/e2e/e2e_resume.sh BUILD_DIR [TRIALS] - crash safety: a training run killed with
# SIGKILL at random moments (some during checkpoint writes, slowed down by
# EMOTUNE_CKPT_SLOW_MS) and resumed each time with --resume must end with exactly the
# trainable weights of an uninterrupted run, and no half-written checkpoint is ever loaded.
set -euo pipefail
bin="$1/emotune"
trials=${2:-10}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-random.json
common=(synth.dir="$work/synth" synth.n_train=140 synth.n_test=14 data.train="$work/synth/train.json"
        data.eval="$work/synth/test.json" train.max_steps=400 train.batch_size=4 train.save_every=4
        train.keep_last=2 train.tensorboard=false lora.dropout=0.1 train.threads=1 data.workers=2)
"$bin" synth -c "$cfg" "${common[@]}" > /dev/null
"$bin" train -c "$cfg" "${common[@]}" train.output_dir="$work/ref" > /dev/null 2>&1
ref="$work/ref/checkpoints/step-00000400/trainables.safetensors"
[ -s "$ref" ] || { echo "FAIL: reference run wrote no final checkpoint"; exit 1; }
run="$work/crash"
kills=0
for t in $(seq 1 "$trials"); do
  # random delay: 0.3 .. 1.5 s; checkpoint files written slowly on odd trials
  delay=$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.3 + 0.9 * rand() }')
  slow=0; [ $((t % 2)) -eq 1 ] && slow=150
  EMOTUNE_CKPT_SLOW_MS=$slow "$bin" train -c "$cfg" "${common[@]}" train.output_dir="$run" --resume \
    > "$work/log.$t" 2>&1 &
  pid=$!
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
  wait "$pid" 2>/dev/null || true
  # a step-* directory must always be complete
  for d in "$run"/checkpoints/step-*; do
    [ -d "$d" ] || continue
    for f in trainables.safetensors optimizer.safetensors state.json config.json; do
      [ -s "$d/$f" ] || { echo "FAIL: $d lacks $f after a kill"; exit 1; }
    done
  done
done
"$bin" train -c "$cfg" "${common[@]}" train.output_dir="$run" --resume > "$work/log.final" 2>&1
got="$run/checkpoints/step-00000400/trainables.safetensors"
if ! cmp -s "$ref" "$got"; then
  echo "FAIL: resumed weights differ from the uninterrupted run"; cat "$work/log.final"; exit 1
fi
echo "ok: $kills kills in $trials trials; final weights identical to the uninterrupted run"
[ "$kills" -ge $((trials / 2)) ] || { echo "FAIL: only $kills of $trials runs were killed mid-way"; exit 1; }
