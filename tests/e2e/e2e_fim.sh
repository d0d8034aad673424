#!/usr/bin/env bash
# tests/e2e/e2e_fim.sh BUILD_DIR - EMO-LLaMA's Face Info Mining through the CLI, on the shipped
# tiny face network (configs/tiny-emo-llama.json):
# - a run resumed from its step-3 checkpoint (the later one removed, as after a crash) ends with the same bytes as the uninterrupted run
#   (trainables with model.fim.* and model.fim_projector.*, optimizer state,
#   non_lora_trainables.safetensors); the face network file is untouched;
# - eval reports an accuracy; `emotune generate` answers from the face image alone (the
#   network predicts the landmarks: no --landmarks), and without --image it says what to pass;
# - attribute_prompt.source network: train, eval and generate render the network's age,
#   gender and race; without a face network it is refused;
# - landmark+fim and fim.landmarks=dataset train; a prepared store trains with FIM;
# - bad input: no model.face_net_path stops before any step, named; a dataset landmark out
#   of range with fim.landmarks=dataset (pixel coordinates) is a bad sample, skipped and
#   counted with the file, the sample and the field.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-emo-llama.json
net=configs/tiny-emola/face_net
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
common=(synth.dir="$work/synth" synth.n_train=48 synth.n_test=8 data.train="$work/synth/train.json"
        data.eval="$work/synth/test.json" model.projector_path= train.max_steps=6
        train.batch_size=4 train.save_every=3 train.keep_last=10 train.tensorboard=false
        train.threads=1 data.workers=1 train.log_every=1 eval.batch_size=8)
"$bin" synth -c "$cfg" "${common[@]}" > /dev/null || { echo "FAIL: synth"; exit 1; }
net_sum=$(sha256sum "$net/model.safetensors" | cut -d' ' -f1)

ref="$work/ref" run="$work/run"
"$bin" train -c "$cfg" "${common[@]}" train.output_dir="$ref" > "$work/ref.log" 2>&1 ||
  { echo "FAIL: reference run: $(tail -5 "$work/ref.log")"; exit 1; }
grep -q "train: 6/6 steps" "$work/ref.log" || fail "reference run summary: $(tail -3 "$work/ref.log")"
"$bin" train -c "$cfg" "${common[@]}" train.output_dir="$run" > /dev/null 2>&1 || fail "second run"
# as after a crash once step 3 was saved: the later checkpoint and the final files gone
rm -rf "$run/checkpoints/step-00000006" "$run/adapter" "$run"/*.safetensors
"$bin" train -c "$cfg" "${common[@]}" train.output_dir="$run" --resume > "$work/res.log" 2>&1 ||
  fail "resume: $(tail -3 "$work/res.log")"
grep -q "step-00000003" "$work/res.log" || fail "did not resume from step 3: $(head -5 "$work/res.log")"
for f in checkpoints/step-00000006/trainables.safetensors checkpoints/step-00000006/optimizer.safetensors \
         non_lora_trainables.safetensors; do
  if [ ! -s "$ref/$f" ]; then fail "the run wrote no $f"
  elif ! cmp -s "$ref/$f" "$run/$f"; then fail "resumed $f differs"; fi
done
python3 - "$ref/non_lora_trainables.safetensors" <<'EOF' || fail "non_lora_trainables names"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
h = json.loads(b[8:8 + struct.unpack("<Q", b[:8])[0]])
names = [k for k in h if k != "__metadata__"]
assert any(k.startswith("model.fim.queries") for k in names), names
assert "model.fim_projector.0.weight" in names and "model.fim_projector.2.bias" in names, names
assert not any(k.startswith(("backbone", "face_decoder", "linear_")) for k in names), names
EOF
[ "$(sha256sum "$net/model.safetensors" | cut -d' ' -f1)" = "$net_sum" ] || fail "the face network file changed"
[ $fails -eq 0 ] && echo "ok   resumed from step 3: FIM trainables, optimizer and export identical"

out=$("$bin" eval -c "$cfg" "${common[@]}" train.output_dir="$ref" 2>&1) || fail "eval: $out"
grep -qE "accuracy \(WAR\) +[0-9.]+ %" <<<"$out" || fail "eval line: $out"
img=$(jq -r '.[0].image' "$work/synth/test.json")
out=$("$bin" generate -c "$cfg" "${common[@]}" train.output_dir="$ref" \
  --prompt "<image>
What is the facial expression?" --image "$work/synth/$img" 2>&1) ||
  fail "generate from the image alone: $out"
out=$("$bin" generate -c "$cfg" "${common[@]}" train.output_dir="$ref" --prompt "<image> hi" 2>&1) &&
  fail "generate without --image was accepted"
grep -q "pass --image FILE" <<<"$out" || fail "generate without --image: $out"
[ $fails -eq 0 ] && echo "ok   eval, and generate from the face image alone"

# attribute_prompt.source network: the face network's age / gender / race words
agr=(attribute_prompt.enabled=true attribute_prompt.source=network)
out=$("$bin" train -c "$cfg" "${common[@]}" "${agr[@]}" train.max_steps=2 train.output_dir="$work/agr" 2>&1) ||
  fail "train with the network's attributes: $out"
grep -q "attribute prompt: age, gender and race of 48 of 48 samples from the face network" <<<"$out" ||
  fail "network attributes line: $out"
out=$("$bin" generate -c "$cfg" "${common[@]}" "${agr[@]}" train.output_dir="$work/agr" \
  --prompt "<image> What is the facial expression?" --image "$work/synth/$img" 2>&1) || fail "generate with AGR: $out"
grep -qE "attribute prompt from the face network: .*Attributes of the person: age [0-9+-]+, gender (male|female), race (White|Black|Indian|Asian|Others)\." <<<"$out" ||
  fail "generate's attribute prompt: $out"
out=$("$bin" eval -c "$cfg" "${common[@]}" "${agr[@]}" train.output_dir="$work/agr" 2>&1) || fail "eval with AGR: $out"
out=$("$bin" train -c "$cfg" "${common[@]}" "${agr[@]}" model.face_prior=landmark train.output_dir="$work/agr2" 2>&1) &&
  fail "network attributes without a face network were accepted"
grep -q 'attribute_prompt.source "network" reads the face network' <<<"$out" || fail "no-network AGR message: $out"
[ $fails -eq 0 ] && echo "ok   attribute_prompt.source network in train, eval and generate"

for v in "model.face_prior=landmark+fim" "fim.landmarks=dataset" "fim.local_pool=true"; do
  out=$("$bin" train -c "$cfg" "${common[@]}" "$v" train.max_steps=2 \
    train.output_dir="$work/v-${v//[^a-z]/}" 2>&1) || fail "$v: $out"
done
[ $fails -eq 0 ] && echo "ok   landmark+fim, dataset landmarks and pooled local clues train"

# the store keeps the network's priors: 20 steps from it give the losses of 20 steps from
# the images (test_fim_prior checks that the network does not run then)
"$bin" prepare -c "$cfg" "${common[@]}" --out "$work/store.h5" > "$work/prep.log" 2>&1 ||
  fail "prepare: $(tail -3 "$work/prep.log")"
twenty=(train.max_steps=20 train.save_every=0 train.epochs=10)
"$bin" train -c "$cfg" "${common[@]}" "${twenty[@]}" train.output_dir="$work/online" > /dev/null 2>&1 ||
  fail "20 steps online"
out=$("$bin" train -c "$cfg" "${common[@]}" "${twenty[@]}" data.store="$work/store.h5" \
  train.output_dir="$work/from-store" 2>&1) || fail "20 steps from the store: $out"
python3 - "$work/online/metrics.jsonl" "$work/from-store/metrics.jsonl" <<'EOF' || fail "store run != online run"
import json, sys
a = [json.loads(l)["loss"] for l in open(sys.argv[1]) if '"loss"' in l]
b = [json.loads(l)["loss"] for l in open(sys.argv[2]) if '"loss"' in l]
assert len(a) == 20 and len(b) == 20, (len(a), len(b))
d = max(abs(x - y) for x, y in zip(a, b))
assert d <= 1e-6, d
print("ok   20 steps from the store = 20 steps from the images (max loss difference %.1e)" % d)
EOF
out=$("$bin" train -c "$cfg" "${common[@]}" data.store="$work/store.h5" fim.landmarks=dataset \
  train.output_dir="$work/other-store" 2>&1) && fail "a store of network landmarks trained a dataset-landmark model"
grep -q "store.h5: the store's face priors are fim/1 .* at network landmarks.* but this model's Face Info Mining needs fim/1 .* at dataset landmarks" <<<"$out" ||
  fail "store layout message: $out"
out=$("$bin" train -c "$cfg" "${common[@]}" data.store="$work/store.h5" model.face_net_path=tests/golden/face_net/tiny \
  train.output_dir="$work/other-net" 2>&1) && fail "a store of another network was accepted"
grep -q "the store's face priors are .* network [0-9a-f]\{16\}" <<<"$out" || fail "other network message: $out"

out=$("$bin" train -c "$cfg" "${common[@]}" model.face_net_path= train.output_dir="$work/nonet" 2>&1) &&
  fail "FIM without a face network was accepted"
grep -q "model.face_prior=fim needs model.face_net_path" <<<"$out" || fail "no-network message: $out"
jq '[.[0:7][], (.[7] | .landmark = [range(136)]), .[8:][]]' "$work/synth/train.json" > "$work/synth/px.json"
out=$("$bin" train -c "$cfg" "${common[@]}" fim.landmarks=dataset data.train="$work/synth/px.json" \
  train.max_steps=12 train.output_dir="$work/px" 2>&1) || fail "a run with one bad sample stopped: $out"
grep -q "skipping a bad sample: .*px.json:[0-9]*: sample 7 .*field 'landmark': .*outside \[-2, 2\]" <<<"$out" ||
  fail "out-of-range landmark message: $out"
grep -q "landmarks: 1 " <<<"$out" || fail "the bad sample is not counted: $out"
[ $fails -eq 0 ] && echo "ok   no network is refused, an out-of-range landmark is skipped, both named" && exit 0
exit 1
