#!/usr/bin/env bash
# tests/e2e/e2e_messages.sh BUILD_DIR - paths and messages (issue 12, points 3, 5, 6):
# - the committed tiny config runs from another directory given as an absolute -c: its
#   relative input paths (tokenizer, synth.dir, data.train / data.eval) resolve against the
#   config's directory, the run's output_dir against the working directory;
# - messages name what to change: a key typed on the command line is blamed on the command
#   line (with the nearest key, section and name weighed apart), a forgotten -c says so, every
#   missing input path is listed with its key in one message, numbers print as typed,
#   select_layer out of range and a tokenizer.json with trailing data are errors (no abort),
#   generate without <image> says what the prompt needs;
# - interop: --version, exported config.json floats are JSON floats, the adapter names its
#   base, help texts and README point at nothing missing.
set -uo pipefail
bin="$(cd "$1" && pwd)/emotune"
src="$(cd "$(dirname "$0")/../.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
expect() {  # expect NAME PATTERN ARGS... : the command fails (no abort), its output matches
  local name=$1 pat=$2; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  if [ $rc -eq 0 ] || [ $rc -ge 128 ] || ! grep -qE -- "$pat" <<<"$out"; then
    fail "[$name] rc=$rc, wanted /$pat/, got: $out"
  else
    echo "ok   [$name] $(grep -E -- "$pat" <<<"$out" | head -1)"
  fi
}
small=(synth.n_train=40 synth.n_test=8 train.max_steps=3 train.batch_size=4 train.save_every=3
       train.tensorboard=false data.workers=0 eval.max_samples=4)

# ---- point 3: the committed config, copied with its tokenizer, run from elsewhere ----------
mkdir -p "$work/cfg" "$work/elsewhere"
cp "$src/configs/tiny-random.json" "$work/cfg/"
cp -r "$src/configs/tiny-emola" "$work/cfg/"
cfg="$work/cfg/tiny-random.json"
cd "$work/elsewhere" || exit 1
out=$("$bin" synth -c "$cfg" "${small[@]}" 2>&1) || fail "[synth from elsewhere] $out"
# synth.dir "../runs/synth" is beside the config's directory, not under the working one
[ -s "$work/runs/synth/train.json" ] || fail "[synth.dir] not resolved against the config: $(ls -R "$work" | head)"
[ ! -e "$work/elsewhere/../elsewhere/runs/synth" ] || fail "[synth.dir] written under the cwd"
out=$("$bin" train -c "$cfg" "${small[@]}" 2>&1) || fail "[train from elsewhere] $out"
# train.output_dir "runs/tiny-random" is relative to the working directory
[ -s "$work/elsewhere/runs/tiny-random/adapter/adapter_config.json" ] ||
  fail "[output_dir] no adapter under the working directory: $out"
out=$("$bin" eval -c "$cfg" "${small[@]}" 2>&1) || fail "[eval from elsewhere] $out"
[ -s "$work/elsewhere/runs/tiny-random/eval/metrics.json" ] || fail "[eval output] $out"
# --print-config shows the resolved (absolute) input paths
out=$("$bin" train -c "$cfg" --print-config 2>&1)
grep -q "\"tokenizer\":[[:space:]]*\"$work/cfg/tiny-emola/tokenizer.json\"" <<<"$out" ||
  fail "[print-config tokenizer] $(grep tokenizer <<<"$out")"
grep -q "\"output_dir\":[[:space:]]*\"runs/tiny-random\"" <<<"$out" ||
  fail "[print-config output_dir] $(grep output_dir <<<"$out")"
# the committed config itself, by absolute path, from /: loads and resolves its tokenizer
out=$(cd / && "$bin" train -c "$src/configs/tiny-random.json" --print-config 2>&1) ||
  fail "[absolute -c from /] $out"
grep -q "\"$src/configs/tiny-emola/tokenizer.json\"" <<<"$out" || fail "[committed tokenizer] $out"
# command-line paths are relative to the working directory
out=$("$bin" train -c "$cfg" data.train=mine.json --print-config 2>&1)
grep -q "\"train\":[[:space:]]*\"$work/elsewhere/mine.json\"" <<<"$out" ||
  fail "[override relative to cwd] $(grep '"train"' <<<"$out")"

# ---- point 5: messages ----------------------------------------------------------------------
expect "cli key blamed on the command line" \
  'command line: unknown key "train.epoch" \(did you mean "train.epochs"\?\)' \
  "$bin" train -c "$cfg" train.epoch=3
expect "section + key suggestion" 'unknown key "trian.lr" \(did you mean "train.lr"\?\)' \
  "$bin" train -c "$cfg" trian.lr=1e-4
printf '{"train": {"epoch": 3}}' > "$work/typo.json"
expect "file key blamed on the file" "typo.json: unknown key \"train.epoch\"" \
  "$bin" train -c "$work/typo.json"
expect "forgotten -c" 'train: no config given: pass -c FILE' "$bin" train train.epochs=1
expect "forgotten -c (eval)" 'eval: no config given: pass -c FILE' "$bin" eval
expect "forgotten -c (ablate)" 'ablate: no config given: pass -c FILE' \
  "$bin" ablate --matrix "$src/configs/ablation/emola-prior.json" --out "$work/abl"
[ ! -e "$work/abl" ] || fail "[forgotten -c (ablate)] wrote $work/abl"
expect "missing path names its key" 'data.train +=.*/nope.json: No such file or directory' \
  "$bin" train -c "$cfg" data.train=nope.json
out=$("$bin" train -c "$src/configs/emola-7b.json" 2>&1); rc=$?
n=$(grep -cE '^  (model\.(llava_path|vision_path|tokenizer)|data\.(train|root)) +=' <<<"$out")
if [ $rc -eq 0 ] || [ "$n" != 5 ] || ! grep -q "5 input paths cannot be used" <<<"$out"; then
  fail "[emola-7b: all missing paths at once] rc=$rc n=$n: $out"
else
  echo "ok   [emola-7b: all missing paths at once] $(head -1 <<<"$out")"
fi
expect "integers print as integers" 'train.epochs = 2000000 is out of range \[1, 1048576\]' \
  "$bin" train -c "$cfg" train.epochs=2000000
expect "select_layer out of range" 'model.select_layer = -9 is out of range for the 3-layer vision tower.*use -4..3' \
  "$bin" train -c "$cfg" "${small[@]}" model.select_layer=-9
{ cat "$work/cfg/tiny-emola/tokenizer.json"; printf '\n{"junk": 1}\n'; } > "$work/tok_junk.json"
expect "tokenizer with trailing data" 'tok_junk.json: trailing data after the JSON object' \
  "$bin" train -c "$cfg" "${small[@]}" model.tokenizer="$work/tok_junk.json" train.output_dir="$work/o_tok"
img=$(ls "$work/runs/synth/images" | head -1)
lm="$work/runs/synth/landmarks/${img%.*}.npy"
expect "generate without <image>" '--prompt has no <image> placeholder.*--prompt "<image> ' \
  "$bin" generate -c "$cfg" --prompt "hello" --image "$work/runs/synth/images/$img" --landmarks "$lm"
out=$("$bin" generate -c "$cfg" --prompt "<image> What emotion?" --image "$work/runs/synth/images/$img" \
  --landmarks "$lm" 2>&1) || fail "[generate with <image>] $out"

# ---- point 6: interop -------------------------------------------------------------------------
out=$("$bin" --version 2>&1) && grep -qE '^emotune [0-9]+\.[0-9]+' <<<"$out" || fail "[--version] $out"
echo "ok   [--version] $out"
out=$("$bin" export -c "$cfg" --out "$work/export" --base 2>&1) || fail "[export --base] $out"
grep -qE '"rope_theta":[[:space:]]*10000\.0,' "$work/export/base/llm/config.json" ||
  fail "[config.json floats] $(grep rope_theta "$work/export/base/llm/config.json")"
grep -qE '"attention_dropout":[[:space:]]*0\.0,' "$work/export/base/llm/config.json" ||
  fail "[config.json attention_dropout] $(grep attention_dropout "$work/export/base/llm/config.json")"
grep -qE '"initializer_factor":[[:space:]]*1\.0,' "$work/export/base/vision/config.json" ||
  fail "[vision config.json floats]"
grep -qE '"base_model_name_or_path":[[:space:]]*"emotune/random-init-llama"' \
  "$work/export/adapter/adapter_config.json" || fail "[base_model_name_or_path] $(grep base_model "$work/export/adapter/adapter_config.json")"
# select_layer against a tower loaded from a checkpoint (model.vision_path): an error, no abort
expect "select_layer vs a loaded tower" 'config: model.select_layer = 5 is out of range for the 3-layer vision tower' \
  "$bin" train -c "$cfg" "${small[@]}" model.vision=null model.vision_path="$work/export/base/vision" \
  model.select_layer=5 train.output_dir="$work/o_sel"
help=$("$bin" train --help 2>&1)
grep -q "eval runs on the CPU" <<<"$help" && fail "[train --help] still says eval runs on the CPU"
grep -q "train.device.*train, eval and generate on GPU 0" <<<"$help" || fail "[train --help device] $(grep train.device <<<"$help")"
for f in "$src/README.md"; do
  grep -q "REFERENCE.md" "$f" && fail "[$f] points to REFERENCE.md, which is not in the repository"
done
"$bin" --help 2>&1 | grep -q "REFERENCE" && fail "[--help] names REFERENCE.md"
[ $fails -eq 0 ] && echo "ok" || { echo "$fails failures"; exit 1; }
