#!/usr/bin/env bash
# tests/e2e/e2e_train_modes.sh BUILD_DIR - train.trainable's modes end to end:
# - full fine-tuning (decoder + embeddings, bf16 stored weights, weight decay), projector
#   only (LLaVA stage 1) and a trainable tower: a run resumed from its step-4 checkpoint
#   (the later ones removed, as after a crash) ends with the same bytes as the
#   uninterrupted run: trainables, optimizer state and the final files (merged/,
#   mm_projector.safetensors, vision/);
# - full fine-tuning stopped by SIGINT mid-run and resumed gives the same bytes; so does
#   full fine-tuning under train.recompute;
# - stage 2 starts from stage 1's mm_projector.safetensors (model.projector_path);
# - `emotune export` writes what each mode trained (merged/ without adapter, vision/,
#   mm_projector.safetensors);
# - bad input stops before any step with its message: an unknown group, a group the model
#   lacks, a projector file of other shapes.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-random.json
common=(synth.dir="$work/synth" synth.n_train=48 synth.n_test=8 data.train="$work/synth/train.json"
        data.eval="$work/synth/test.json" train.max_steps=8 train.batch_size=4 train.save_every=2
        train.keep_last=10 train.tensorboard=false train.threads=1 data.workers=1)
"$bin" synth -c "$cfg" "${common[@]}" > /dev/null || { echo "FAIL: synth"; exit 1; }
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

fft=(lora.enabled=false 'train.trainable=["decoder","embeddings"]' model.weight_dtype=bf16
     train.lr=1e-3 train.weight_decay=0.01)
stage1=(lora.enabled=false model.face_prior=none 'train.trainable=["projector"]' train.lr=1e-3)
tower=(lora.enabled=false 'train.trainable=["tower","projector","face_prior"]' train.lr=1e-3)

# resume_check NAME FINAL_FILE ARGS...: uninterrupted vs resumed from step 4
resume_check() {
  local name=$1 final=$2; shift 2
  local ref="$work/$name-ref" run="$work/$name-int"
  "$bin" train -c "$cfg" "${common[@]}" "$@" train.output_dir="$ref" > "$work/$name.log" 2>&1 \
    || { fail "$name: run failed: $(tail -3 "$work/$name.log")"; return; }
  "$bin" train -c "$cfg" "${common[@]}" "$@" train.output_dir="$run" > /dev/null 2>&1 \
    || { fail "$name: second run failed"; return; }
  # as after a crash once step 4 was saved: later checkpoints and the final files gone
  rm -rf "$run"/checkpoints/step-00000006 "$run"/checkpoints/step-00000008 "$run/merged" \
    "$run/vision" "$run/adapter" "$run"/*.safetensors
  "$bin" train -c "$cfg" "${common[@]}" "$@" train.output_dir="$run" --resume \
    > "$work/$name.resume.log" 2>&1 || { fail "$name: resume failed: $(tail -3 "$work/$name.resume.log")"; return; }
  grep -q "train: 8/8 steps" "$work/$name.resume.log" || fail "$name: resume did not finish"
  for f in checkpoints/step-00000008/trainables.safetensors \
           checkpoints/step-00000008/optimizer.safetensors $final; do
    if [ ! -s "$ref/$f" ]; then fail "$name: the run wrote no $f"
    elif ! cmp -s "$ref/$f" "$run/$f"; then fail "$name: resumed $f differs"
    else echo "ok   [$name] resumed $f identical ($(stat -c %s "$ref/$f") bytes)"; fi
  done
}
resume_check fullft merged/model.safetensors "${fft[@]}"
resume_check stage1 mm_projector.safetensors "${stage1[@]}"
resume_check tower vision/model.safetensors "${tower[@]}"

# full fine-tuning stopped by SIGINT mid-run (a checkpoint at that step), then --resume
sig=(train.max_steps=30 train.save_every=0)
"$bin" train -c "$cfg" "${common[@]}" "${fft[@]}" "${sig[@]}" train.output_dir="$work/sig-ref" \
  > /dev/null 2>&1 || fail "fullft 30 steps"
"$bin" train -c "$cfg" "${common[@]}" "${fft[@]}" "${sig[@]}" train.output_dir="$work/sig" \
  > "$work/sig.log" 2>&1 &
pid=$!
sleep 0.8
kill -INT "$pid" 2>/dev/null
wait "$pid"
stopped=$(ls "$work/sig/checkpoints" 2>/dev/null | tail -1)
"$bin" train -c "$cfg" "${common[@]}" "${fft[@]}" "${sig[@]}" train.output_dir="$work/sig" --resume \
  > /dev/null 2>&1 || fail "fullft: resume after SIGINT"
if cmp -s "$work/sig-ref/checkpoints/step-00000030/trainables.safetensors" \
     "$work/sig/checkpoints/step-00000030/trainables.safetensors" &&
   cmp -s "$work/sig-ref/merged/model.safetensors" "$work/sig/merged/model.safetensors"; then
  echo "ok   [fullft] stopped by SIGINT at ${stopped:-the end}, resumed: identical weights and merged/"
else
  fail "fullft: SIGINT + resume differs from the uninterrupted run"
fi
# a run killed while writing its final results (simulated: merged/ and the stage files gone):
# --resume writes what is missing and leaves the rest as it was
cp "$work/sig-ref/non_lora_trainables.safetensors" "$work/nlt.keep"
touch -d '2000-01-01' "$work/sig-ref/non_lora_trainables.safetensors"
mv "$work/sig-ref/merged" "$work/merged.keep"
out=$("$bin" train -c "$cfg" "${common[@]}" "${fft[@]}" "${sig[@]}" train.output_dir="$work/sig-ref" \
  --resume 2>&1) || fail "fullft: resume of a finished run: $out"
if cmp -s "$work/merged.keep/model.safetensors" "$work/sig-ref/merged/model.safetensors" &&
   grep -q "wrote the 1 final result(s) missing" <<<"$out" &&
   [ "$(stat -c %Y "$work/sig-ref/non_lora_trainables.safetensors")" = "$(date -d 2000-01-01 +%s)" ]; then
  echo "ok   [fullft] --resume after the last step rewrites only the missing merged/"
else
  fail "fullft: --resume after the last step: $out"
fi

# full fine-tuning under block recompute: the same weights as without
"$bin" train -c "$cfg" "${common[@]}" "${fft[@]}" train.recompute=true \
  train.output_dir="$work/fullft-rc" > /dev/null 2>&1 || fail "fullft with train.recompute"
cmp -s "$work/fullft-ref/checkpoints/step-00000008/trainables.safetensors" \
  "$work/fullft-rc/checkpoints/step-00000008/trainables.safetensors" \
  && echo "ok   [fullft] train.recompute=true gives the same weights" \
  || fail "fullft: train.recompute changes the weights"
# full fine-tuning: no adapter, no non_lora_trainables, the decoder in merged/ (bf16)
[ ! -e "$work/fullft-ref/adapter" ] || fail "fullft: an adapter was written"
grep -q '"torch_dtype":[[:space:]]*"bfloat16"' "$work/fullft-ref/merged/config.json" \
  || fail "fullft: merged/config.json is not bf16"
# the optimizer holds f32 masters of the bf16 weights, and the no-decay groups (HF's rule)
opt="$work/fullft-ref/checkpoints/step-00000008/optimizer.safetensors"
grep -qa 'decoder.model.layers.0.mlp.up_proj.weight.master' "$opt" || fail "fullft: no f32 master"
grep -qa 'decoder_no_decay.model.norm.weight.exp_avg' "$opt" || fail "fullft: no no-decay group"
# stage 1: only the projector, under LLaVA's names
for t in model.mm_projector.0.weight model.mm_projector.0.bias model.mm_projector.2.weight \
         model.mm_projector.2.bias; do
  grep -qa "\"$t\"" "$work/stage1-ref/mm_projector.safetensors" || fail "stage1: no $t"
done
# stage 2 starts from stage 1's projector
out=$("$bin" train -c "$cfg" "${common[@]}" train.max_steps=2 train.output_dir="$work/stage2" \
  model.projector_path="$work/stage1-ref/mm_projector.safetensors" 2>&1) \
  || fail "stage2: $out"
grep -q "mm_projector.safetensors" "$work/stage2/config.json" || fail "stage2: projector_path not in config.json"
[ -d "$work/stage2/adapter" ] && echo "ok   [stage2] LoRA + projector + expert from stage 1's projector"

# an export's non_lora_trainables.safetensors (projector + expert) works as projector_path too
out=$("$bin" train -c "$cfg" "${common[@]}" train.max_steps=1 train.output_dir="$work/stage2b" \
  model.projector_path="$work/stage2/non_lora_trainables.safetensors" 2>&1) \
  && echo "ok   [stage2] model.projector_path reads non_lora_trainables.safetensors" \
  || fail "stage2 from non_lora_trainables: $out"

# export per mode
"$bin" export -c "$cfg" "${common[@]}" "${fft[@]}" train.output_dir="$work/fullft-ref" \
  --out "$work/x-fullft" > /dev/null 2>&1 || fail "export fullft"
[ ! -e "$work/x-fullft/adapter" ] && cmp -s "$work/x-fullft/merged/model.safetensors" \
  "$work/fullft-ref/merged/model.safetensors" && echo "ok   [export] full fine-tune: merged/, no adapter" \
  || fail "export fullft: merged/ missing, different or an adapter written"
"$bin" export -c "$cfg" "${common[@]}" "${stage1[@]}" train.output_dir="$work/stage1-ref" \
  --out "$work/x-stage1" > /dev/null 2>&1 || fail "export stage1"
cmp -s "$work/x-stage1/mm_projector.safetensors" "$work/stage1-ref/mm_projector.safetensors" \
  && echo "ok   [export] stage 1: mm_projector.safetensors" || fail "export stage1"
"$bin" export -c "$cfg" "${common[@]}" "${tower[@]}" train.output_dir="$work/tower-ref" \
  --out "$work/x-tower" > /dev/null 2>&1 || fail "export tower"
grep -q CLIPVisionModel "$work/x-tower/vision/config.json" 2>/dev/null \
  && echo "ok   [export] tower: vision/ (CLIPVisionModel)" || fail "export tower: no vision/"

# bad input: stops before any step, nothing written
expect() {  # expect NAME PATTERN ARGS...
  local name=$1 pat=$2; shift 2
  local o="$work/bad-$name" msg rc
  msg=$("$bin" train -c "$cfg" "${common[@]}" "$@" train.output_dir="$o" 2>&1); rc=$?
  if [ $rc -eq 0 ] || ! grep -qF -- "$pat" <<<"$msg"; then
    fail "[$name] rc=$rc, wanted \"$pat\", got: $msg"
  elif [ -e "$o/checkpoints" ] || [ -e "$o/metrics.jsonl" ]; then
    fail "[$name] wrote $o"
  else echo "ok   [$name] $(grep -F -- "$pat" <<<"$msg" | head -1)"; fi
}
expect unknown-group 'train.trainable: unknown group "towr"; the groups are lora, projector, face_prior, decoder, tower, embeddings' \
  lora.enabled=false 'train.trainable=["towr"]'
expect no-tower 'train.trainable lists "tower" but the model has no vision tower in use' \
  lora.enabled=false model.vision=null 'train.trainable=["tower"]'
expect lora-off 'train.trainable lists "lora" but lora.enabled is false' \
  lora.enabled=false 'train.trainable=["lora"]'
expect projector-shape "projector.safetensors (model.projector_path): tensor model.mm_projector.0.weight has shape [32, 32] but this model's projector needs [128, 96]" \
  model.projector_path="$PWD/tests/golden/llava/projector.safetensors"
expect projector-missing "grads.safetensors (model.projector_path): no tensor model.mm_projector.0.weight" \
  model.projector_path="$PWD/tests/golden/fullft/grads.safetensors"
[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok: all training modes"
