#!/usr/bin/env bash
# tests/e2e/e2e_pretrain_tower.sh BUILD_DIR - `emotune pretrain-tower` on a tiny tower: a run
# stopped after step 3 (as by Ctrl-C: EMOTUNE_STOP_AT_STEP) and resumed ends with the same
# tower/ and clip_head.safetensors bytes as an uninterrupted run; the run directory rules;
# metrics.jsonl keys; the eval line; bad caption samples (no gpt turn, a missing image) are
# skipped and counted, or stop the run with data.max_bad_samples = 0; `emotune probe` on the
# exported tower.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-clip.json
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
"$bin" synth -c configs/tiny-random.json synth.dir="$work/synth" synth.n_train=48 synth.n_test=16 \
  synth.size=32 > /dev/null || { echo "FAIL: synth"; exit 1; }
# the synthetic train.json's gpt turn (the emotion) serves as the caption
common=(data.train="$work/synth/train.json" data.eval="$work/synth/test.json"
        'model.vision={"hidden_size":16,"intermediate_size":32,"num_hidden_layers":1,"num_attention_heads":2,"image_size":32,"patch_size":8}'
        clip.text_width=16 clip.projection_dim=8 clip.flip=true train.max_steps=8 train.batch_size=8
        train.save_every=2 train.threads=1 data.workers=2 train.log_every=1)
out=$("$bin" pretrain-tower -c "$cfg" "${common[@]}" train.output_dir="$work/ref" 2>&1) ||
  { echo "FAIL: reference run: $out"; exit 1; }
grep -q "pretrain-tower: 8/8 steps" <<<"$out" || fail "reference run summary: $out"
grep -qE "eval .*test.json \(16 images\): image->text retrieval [0-9.]+ %, zero-shot emotion [0-9.]+ % \([0-9] classes\)" <<<"$out" ||
  fail "no eval line: $out"
for f in tower/config.json tower/model.safetensors clip_head.safetensors metrics.jsonl config.json; do
  [ -s "$work/ref/$f" ] || fail "reference run lacks $f"
done
for k in loss lr logit_scale acc images_per_s; do
  grep -q "\"$k\":" "$work/ref/metrics.jsonl" || fail "metrics.jsonl has no $k"
done
[ "$(wc -l < "$work/ref/metrics.jsonl")" -eq 8 ] || fail "metrics.jsonl: $(wc -l < "$work/ref/metrics.jsonl") lines, wanted 8"
# stopped after step 3, then resumed
run="$work/run"
out=$(EMOTUNE_STOP_AT_STEP=3 "$bin" pretrain-tower -c "$cfg" "${common[@]}" train.output_dir="$run" 2>&1)
rc=$?
[ $rc -eq 130 ] || fail "stopped run: rc $rc (wanted 130): $out"
grep -q "checkpoint .*step-00000003 holds step 3; continue with --resume" <<<"$out" || fail "stop message: $out"
[ -e "$run/tower" ] && fail "a stopped run exported a tower"
out=$("$bin" pretrain-tower -c "$cfg" "${common[@]}" train.output_dir="$run" 2>&1) &&
  fail "a non-empty output_dir was accepted without --resume"
grep -q -- "--resume" <<<"$out" || fail "refusal does not name --resume: $out"
out=$("$bin" pretrain-tower -c "$cfg" "${common[@]}" train.output_dir="$run" --resume 2>&1) ||
  fail "resume: $out"
grep -q "resumed from .*step-00000003" <<<"$out" || fail "resume message: $out"
cmp -s "$work/ref/tower/model.safetensors" "$run/tower/model.safetensors" ||
  fail "resumed tower differs from the uninterrupted run"
cmp -s "$work/ref/clip_head.safetensors" "$run/clip_head.safetensors" ||
  fail "resumed clip_head differs from the uninterrupted run"
[ $fails -eq 0 ] && echo "ok   stop at step 3 + --resume: tower and head identical to the uninterrupted run"
# bad samples: one without a gpt turn, one whose image is missing
jq '[.[0:22][], (.[22] | .conversations = [.conversations[0]]), (.[23] | .image = "images/none.png")]' \
  "$work/synth/train.json" > "$work/synth/bad.json"
out=$("$bin" pretrain-tower -c "$cfg" "${common[@]}" data.train="$work/synth/bad.json" data.eval= \
  train.max_steps=4 train.output_dir="$work/bad1" 2>&1) || fail "run with 2 bad samples: $out"
# (4 steps of 8 walk the 24 samples more than once: each pass skips both again)
grep -qE "pretrain-tower: (2|4) samples skipped" <<<"$out" || fail "skips not counted: $out"
grep -q "sample 22 .*conversations has no gpt turn" <<<"$out" || fail "no-gpt sample not named: $out"
grep -q "sample 23 .*images/none.png': no such file" <<<"$out" || fail "missing image not named: $out"
out=$("$bin" pretrain-tower -c "$cfg" "${common[@]}" data.train="$work/synth/bad.json" data.eval= \
  data.max_bad_samples=0 train.max_steps=4 train.output_dir="$work/bad2" 2>&1) &&
  fail "max_bad_samples=0 did not stop the run"
grep -q "bad.json: more than data.max_bad_samples = 0 bad samples" <<<"$out" || fail "bad-sample stop message: $out"
[ $fails -eq 0 ] && echo "ok   bad samples skipped and counted; max_bad_samples = 0 stops with the file named"
# the linear probe on the exported tower, with the random tower next to it
out=$("$bin" probe -c "$cfg" "${common[@]}" model.vision_path="$work/ref/tower" --random 2>&1) ||
  fail "probe: $out"
grep -qE "probe: tower .*: pooled features \(D=16\): train [0-9.]+ %, test [0-9.]+ % \(48 train, 16 test" <<<"$out" ||
  fail "probe line: $out"
grep -q "probe: random tower of the same shape: patch_mean features" <<<"$out" || fail "random probe line: $out"
out=$("$bin" probe -c "$cfg" "${common[@]}" 2>&1) || fail "probe of the random tower: $out"
grep -q "random tower (model.vision, seed 2): patch_mean features" <<<"$out" || fail "random probe: $out"
[ $fails -eq 0 ] && echo "ok   probe" && exit 0
exit 1
