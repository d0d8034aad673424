#!/usr/bin/env bash
# tests/e2e/e2e_pretrain_face.sh BUILD_DIR - `emotune pretrain-face` on a tiny face network: a
# run stopped after step 3 (as by Ctrl-C: EMOTUNE_STOP_AT_STEP) and resumed ends with the same
# face_net/ bytes as an uninterrupted run; metrics.jsonl keys; the eval line; the export
# continues as model.face_net_path; a sample whose attributes are not a known group stops the
# run before any step, naming the file, the sample and the value; a sample without
# landmarks likewise.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/pretrain/face_net.json
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
"$bin" synth -c configs/tiny-random.json synth.dir="$work/synth" synth.n_train=48 synth.n_test=16 \
  synth.size=32 synth.landmark_noise=0 synth.n_text=0 > /dev/null || { echo "FAIL: synth"; exit 1; }
common=(data.train="$work/synth/train.json" data.eval="$work/synth/test.json"
        'model.face_net={"image_size":32,"embed_dim":8,"depths":[2,1],"num_heads":[2,2],"window_size":4,"fuse_dim":16,"decoder_depth":1,"decoder_heads":2,"decoder_mlp_dim":16}'
        train.max_steps=8 train.batch_size=8 train.save_every=2 train.threads=1 data.workers=2
        train.log_every=1)
out=$("$bin" pretrain-face -c "$cfg" "${common[@]}" train.output_dir="$work/ref" 2>&1) ||
  { echo "FAIL: reference run: $out"; exit 1; }
grep -q "pretrain-face: 8/8 steps" <<<"$out" || fail "reference run summary: $out"
grep -qE "eval .*test.json \(16 faces\): landmark NME [0-9.]+ % \(inter-ocular\), age [0-9.]+ %, gender [0-9.]+ %, race [0-9.]+ %" <<<"$out" ||
  fail "no eval line: $out"
for f in face_net/config.json face_net/model.safetensors metrics.jsonl config.json; do
  [ -s "$work/ref/$f" ] || fail "reference run lacks $f"
done
for k in loss lr l1 age_acc gender_acc race_acc grad_norm images_per_s; do
  grep -q "\"$k\":" "$work/ref/metrics.jsonl" || fail "metrics.jsonl has no $k"
done
run="$work/run"
out=$(EMOTUNE_STOP_AT_STEP=3 "$bin" pretrain-face -c "$cfg" "${common[@]}" train.output_dir="$run" 2>&1)
rc=$?
[ $rc -eq 130 ] || fail "stopped run: rc $rc (wanted 130): $out"
[ -e "$run/face_net" ] && fail "a stopped run exported the network"
out=$("$bin" pretrain-face -c "$cfg" "${common[@]}" train.output_dir="$run" --resume 2>&1) ||
  fail "resume: $out"
grep -q "resumed from .*step-00000003" <<<"$out" || fail "resume message: $out"
cmp -s "$work/ref/face_net/model.safetensors" "$run/face_net/model.safetensors" ||
  fail "resumed network differs from the uninterrupted run"
[ $fails -eq 0 ] && echo "ok   stop at step 3 + --resume: the network is identical to the uninterrupted run"
# the export continues as model.face_net_path
out=$("$bin" pretrain-face -c "$cfg" "${common[@]}" model.face_net_path="$work/ref/face_net" \
  train.max_steps=2 train.output_dir="$work/cont" 2>&1) || fail "continue from the export: $out"
[ $fails -eq 0 ] && echo "ok   continued from the export"
# bad attributes, missing landmarks: stopped before any step, named
jq '[.[0:20][], (.[20] | .attributes.race = "martian"), .[21:][]]' "$work/synth/train.json" > "$work/synth/bad.json"
out=$("$bin" pretrain-face -c "$cfg" "${common[@]}" data.train="$work/synth/bad.json" \
  train.output_dir="$work/bad" 2>&1) && fail "an unknown race was accepted"
grep -q "bad.json: sample 20 .*attributes.race \"martian\"" <<<"$out" || fail "bad race message: $out"
[ -e "$work/bad/checkpoints" ] && fail "a refused run wrote checkpoints"
jq '[.[0:5][], (.[5] | del(.landmark)), .[6:][]]' "$work/synth/train.json" > "$work/synth/nolm.json"
out=$("$bin" pretrain-face -c "$cfg" "${common[@]}" data.train="$work/synth/nolm.json" \
  train.output_dir="$work/nolm" 2>&1) && fail "a sample without landmarks was accepted"
grep -q "nolm.json: sample 5 .*no \"landmark\"" <<<"$out" || fail "no-landmark message: $out"
[ $fails -eq 0 ] && echo "ok   bad attributes and missing landmarks are refused before any step" && exit 0
exit 1
