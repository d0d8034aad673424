#!/usr/bin/env bash
# tests/e2e/e2e_device.sh BUILD_DIR - the main job on the device backend: synthetic faces ->
# train with train.device=cuda -> eval and generate there, checked against the same run on
# the CPU. Runs where the build has a CUDA backend and a device: a GPU, or the host emulator
# of the CUDA kernel interface (-DEMOTUNE_CUDA_EMU=ON, kernels/cuda/emu), which runs
# ops_cuda.c, train/io/device_move.c and the trainer's / evaluator's device paths in CI.
# Exits 77 (skipped) when the build has no usable device.
# Checks: per-step losses and grad norms within 1e-3 (relative) of the CPU run (f32 on both
# sides; only summation orders differ); the device-trained weights evaluated on the device
# and on the CPU give the same predictions (allowing 2 of 64 to flip on near-ties); the CPU
# and device runs reach the same accuracy within 6 points.
set -euo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-random.json
over=(synth.dir="$work/synth" synth.n_train=256 synth.n_test=64 data.train="$work/synth/train.json"
      data.eval="$work/synth/test.json" train.epochs=1 train.max_steps=24 train.save_every=12
      train.log_every=1 train.tensorboard=false train.threads=1 lora.dropout=0.1)
"$bin" synth -c "$cfg" "${over[@]}" > /dev/null
if ! "$bin" train -c "$cfg" "${over[@]}" train.output_dir="$work/gpu" train.device=cuda \
    > "$work/gpu.log" 2>&1; then
  if grep -q "no such device" "$work/gpu.log"; then
    echo "skipped: this build has no usable CUDA device (GPU or -DEMOTUNE_CUDA_EMU=ON)"
    exit 77
  fi
  echo "FAIL: training on the device"; cat "$work/gpu.log"; exit 1
fi
grep -q "model on cuda:0" "$work/gpu.log" || { echo "FAIL: the run did not move to cuda:0"; exit 1; }
"$bin" train -c "$cfg" "${over[@]}" train.output_dir="$work/cpu" > "$work/cpu.log" 2>&1 ||
  { echo "FAIL: training on the CPU"; cat "$work/cpu.log"; exit 1; }

# per-step loss and grad norm: device vs CPU
field() { grep -o "\"$2\":[-0-9.e+]*" "$1" | cut -d: -f2; }
for f in loss grad_norm; do
  paste <(field "$work/cpu/metrics.jsonl" $f) <(field "$work/gpu/metrics.jsonl" $f) > "$work/$f.txt"
  n=$(wc -l < "$work/$f.txt")
  [ "$n" -ge 24 ] || { echo "FAIL: $n $f values logged, expected 24"; exit 1; }
  awk -v what="$f" '{ d = $1 - $2; if (d < 0) d = -d; r = d / ($1 < 0 ? -$1 : $1);
       if (r > m) m = r; if (r > 1e-3) { printf "FAIL: step %d %s cpu %s device %s\n", NR, what, $1, $2; bad = 1 } }
       END { printf "%s: worst relative difference device vs cpu %.2e over %d steps\n", what, m, NR; exit bad }' \
    "$work/$f.txt"
done

# evaluation of the device-trained weights, on the device and on the CPU
ev=("${over[@]}" train.output_dir="$work/gpu")
"$bin" eval -c "$cfg" "${ev[@]}" train.device=cuda eval.output_dir="$work/ev_gpu" > "$work/evg.log" 2>&1 ||
  { echo "FAIL: eval on the device"; cat "$work/evg.log"; exit 1; }
grep -q "eval: model on cuda:0" "$work/evg.log" || { echo "FAIL: eval did not run on cuda:0"; exit 1; }
"$bin" eval -c "$cfg" "${ev[@]}" eval.output_dir="$work/ev_cpu" > /dev/null 2>&1
"$bin" eval -c "$cfg" "${over[@]}" train.output_dir="$work/cpu" eval.output_dir="$work/ev_ref" \
  > /dev/null 2>&1
pred() { grep -o '"prediction":"[^"]*"' "$1/predictions.jsonl"; }
flips=$(diff <(pred "$work/ev_gpu") <(pred "$work/ev_cpu") | grep -c '^<' || true)
echo "eval: $flips of 64 predictions differ between device and CPU (same weights)"
[ "$flips" -le 2 ] || { echo "FAIL: too many predictions differ"; exit 1; }
acc() { tr -d ' \t\n' < "$1/metrics.json" | grep -o '"accuracy":[0-9.e+-]*' | head -1 | cut -d: -f2; }
a_gpu=$(acc "$work/ev_gpu") a_ref=$(acc "$work/ev_ref")
echo "accuracy: device-trained on device $a_gpu, cpu-trained on cpu $a_ref"
[ -n "$a_gpu" ] && [ -n "$a_ref" ] || { echo "FAIL: no accuracy in metrics.json"; exit 1; }
awk -v a="$a_gpu" -v b="$a_ref" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.06) }' ||
  { echo "FAIL: accuracies differ by more than 6 points"; exit 1; }

# emotune generate on the device
img=$(ls "$work"/synth/images/* 2>/dev/null | head -1 || true)
if [ -n "$img" ]; then
  lm=$(ls "$work"/synth/landmarks/* 2>/dev/null | head -1 || true)
  args=(--image "$img"); [ -n "$lm" ] && args+=(--landmarks "$lm")
  "$bin" generate -c "$cfg" "${ev[@]}" train.device=cuda "${args[@]}" --prompt "<image> What emotion?" \
    > "$work/gen.txt" 2> "$work/gen.log" || { echo "FAIL: generate on the device"; cat "$work/gen.log"; exit 1; }
  [ -s "$work/gen.txt" ] || { echo "FAIL: generate printed nothing"; exit 1; }
fi
echo "ok"
