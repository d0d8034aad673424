#!/usr/bin/env bash
# tests/e2e/e2e_bad_inputs.sh BUILD_DIR - bad configs and data stop before any training step
# with a clear message (and write no checkpoint); a bad sample mid-run is skipped and counted.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-random.json
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
# ---- issue 12: input read differently by Python, broken text, values that crashed ----------
# duplicate keys (Python takes the last, cJSON the first) and nesting past the parser's limit
printf '{"train": {"lr": 0.001, "max_steps": 3, "lr": 0.1}}' > "$work/dup.json"
expect "config duplicate key" 'dup.json: duplicate key "lr" at train.lr' "$bin" train -c "$work/dup.json"
{ printf '{"train": '; for _ in $(seq 1001); do printf '['; done; for _ in $(seq 1001); do printf ']'; done
  printf '}'; } > "$work/deep.json"
expect "config nesting" 'deep.json: JSON nesting deeper than 1000 levels at line 1' "$bin" train -c "$work/deep.json"
printf '{"name": "m", "runs": [{"name": "a", "overrides": ["train.lr=1"], "name": "b"}]}' > "$work/mdup.json"
expect "ablation matrix duplicate key" 'mdup.json: duplicate key "name" at runs\[0\]\.name' \
  "$bin" ablate -c "$cfg" --matrix "$work/mdup.json" --out "$work/abl"
sed 's/"model":{"type":"BPE"/"model":{"type":"BPE","type":"WordPiece"/' configs/tiny-emola/tokenizer.json > "$work/tok_dup.json"
expect "tokenizer duplicate key" 'tok_dup.json: duplicate key "type" at model.type' \
  "$bin" train -c "$cfg" "${base[@]}" model.tokenizer="$work/tok_dup.json" train.output_dir="$work/o9"
# convert --shard-mb: parsed and range-checked before anything is read
for v in 1e3 -5 0 99999999999999999999999; do
  expect "convert --shard-mb $v" "shard-mb $v: expected a whole number of MiB from 1 to 8388608" \
    "$bin" convert --from "$work/nope" --out "$work/conv" --shard-mb "$v"
done
# samples: a duplicate key, a \u0000 escape, invalid UTF-8, NaN landmarks: each skipped,
# counted and named; the 4 good samples still make the step
mkdir -p "$work/bad/images" "$work/bad/landmarks"
# samples 10..17 (image 4 was damaged above); file lines 2..9 hold samples 0..7
cp "$work/synth/images"/synth_0000{10..17}.png "$work/bad/images/"
cp "$work/synth/landmarks"/synth_0000{10..17}.npy "$work/bad/landmarks/"
{ echo '['; sed -n '12,19p' "$work/synth/train.json" | sed '$ s/},$/}/'; echo ']'; } > "$work/bad/train.json"
sed -i '2s/"source":"synth"/"source":"synth","image":"images\/synth_000012.png"/
        3s/"from":"gpt","value":"/"from":"gpt","value":"x\\u0000/
        4s/"from":"gpt","value":"/"from":"gpt","value":"\xff/' "$work/bad/train.json"
printf '\x00\x00\xc0\x7f' | dd of="$work/bad/landmarks/synth_000013.npy" bs=1 seek=136 conv=notrunc 2> /dev/null
# 4 good samples = one batch: a second step makes the loader visit every sample of epoch 0
out=$("$bin" train -c "$cfg" "${base[@]}" data.train="$work/bad/train.json" train.max_steps=2 \
      train.output_dir="$work/o10" 2>&1); rc=$?
# the loader names the first sample of each reason; which one comes first depends on the order
first='sample 0 \(id "synth_000010"\): duplicate key "image" at image|sample 1 \(id "synth_000011"\): a string holds the escape \\u0000|sample 2 \(id "synth_000012"\): conversations\[1\]\.value is not valid UTF-8 \(byte 0xff'
for pat in "$first" 'sample 3 \(id "synth_000013"\): field .landmark.: .*synth_000013.npy holds NaN at index 2' \
           '[4-8] samples skipped' 'invalid sample: [3-6] ' 'landmarks: [12] '; do
  if [ $rc -ne 0 ] || ! grep -qE "$pat" <<<"$out"; then
    echo "FAIL [bad samples] rc=$rc, wanted /$pat/: $out"; fails=$((fails + 1))
  else
    echo "ok   [bad samples] $(grep -oE "$pat" <<<"$out" | head -1)"
  fi
done
# a store whose token ids are past the decoder's vocabulary (prepared with another tokenizer
# under the same name): refused per sample with the store and sample named, no SIGABRT
python3 - configs/tiny-emola/tokenizer.json "$work/tok_shift.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
t["model"]["vocab"] = {k: v + 2000 for k, v in t["model"]["vocab"].items()}
for a in t.get("added_tokens", []): a["id"] += 2000
json.dump(t, open(sys.argv[2], "w"))
PY
cp "$work/tok_shift.json" "$work/tok.json"
"$bin" prepare -c "$cfg" "${base[@]}" data.train="$work/synth/train.json" model.tokenizer="$work/tok.json" \
  model.llm.vocab_size=4096 --out "$work/shift.h5" > /dev/null 2>&1 || echo "FAIL: prepare with the shifted tokenizer"
cp configs/tiny-emola/tokenizer.json "$work/tok.json"
out=$("$bin" train -c "$cfg" "${base[@]}" data.train= data.store="$work/shift.h5" model.tokenizer="$work/tok.json" \
      train.output_dir="$work/o11" 2>&1); rc=$?
pat='shift.h5: sample [0-9]+: token id [0-9]+ at token [0-9]+ is outside the vocabulary \[0, 1024\)'
if [ $rc -eq 0 ] || [ $rc -ge 128 ] || ! grep -qE "$pat" <<<"$out"; then
  echo "FAIL [store ids past the vocabulary] rc=$rc, wanted /$pat/: $out"; fails=$((fails + 1))
else
  echo "ok   [store ids past the vocabulary] $(grep -oE "$pat" <<<"$out" | head -1)"
fi
[ $fails -eq 0 ] && echo "ok" || { echo "$fails failures"; exit 1; }
