#!/usr/bin/env bash
# tests/e2e/e2e_ablate.sh BUILD_DIR - `emotune ablate`: a 2-run matrix trains and evaluates
# each run in its own directory and writes one markdown table; running it again reuses the
# finished runs; "seeds" / --seeds repeat each run per train.seed (mean ± sd in the table);
# bad matrices stop before any training with a message naming the file.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-random.json
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
base=(synth.dir="$work/synth" synth.n_train=70 synth.n_test=14 data.train="$work/synth/train.json"
      data.eval="$work/synth/test.json" train.batch_size=4 train.tensorboard=false data.workers=0)
"$bin" synth -c "$cfg" "${base[@]}" > /dev/null || { echo "FAIL: synth"; exit 1; }
cat > "$work/m.json" <<'J'
{"name": "prior ablation (e2e)", "overrides": ["train.max_steps=4"],
 "runs": [{"name": "Visual + landmark"}, {"name": "visual only", "overrides": ["model.face_prior=none"]},
          {"name": "landmark only", "overrides": ["model.visual_tokens=false"]}]}
J
out=$("$bin" ablate -c "$cfg" --matrix "$work/m.json" --out "$work/abl" "${base[@]}" 2>&1) || fail "ablate: $out"
for d in visual-landmark visual-only landmark-only; do
  [ -f "$work/abl/$d/ablation_row.json" ] || fail "no row for $d"
  [ -f "$work/abl/$d/eval/metrics.json" ] || fail "no eval metrics for $d"
  grep -qE '"max_steps":[[:space:]]+4,' "$work/abl/$d/config.json" || fail "$d: matrix override not applied"
done
grep -qE '"face_prior":[[:space:]]+"none"' "$work/abl/visual-only/config.json" || fail "visual-only: run override not applied"
grep -qE '"face_prior":[[:space:]]+"landmark"' "$work/abl/visual-landmark/config.json" || fail "base run changed"
rows=$(grep -c '^| \(visual\|Visual\|landmark\)' "$work/abl/results.md")
[ "$rows" = 3 ] || fail "results.md has $rows rows: $(cat "$work/abl/results.md")"
grep -q '^| visual only | `model.face_prior=none` | 4 |' "$work/abl/results.md" || fail "row format: $(cat "$work/abl/results.md")"
[ "$(grep -c '"accuracy"' "$work/abl/results.json")" = 3 ] || fail "results.json rows"
# the prior-only run trains no projector (its non-LoRA trainables are the expert's alone)
grep -q 'mm_projector' "$work/abl/landmark-only/non_lora_trainables.safetensors" && fail "landmark only: projector trained"
grep -q 'landmark_expert' "$work/abl/landmark-only/non_lora_trainables.safetensors" || fail "landmark only: no expert"
# a second run over the same directory reuses both rows (no training)
out=$("$bin" ablate -c "$cfg" --matrix "$work/m.json" --out "$work/abl" "${base[@]}" 2>&1) || fail "rerun: $out"
[ "$(grep -c 'finished earlier' <<<"$out")" = 3 ] || fail "rerun did not reuse: $out"
# seeds: every run once per train.seed in <run>/seed-S; the table gives mean ± sd
cat > "$work/ms.json" <<'J'
{"name": "seeds (e2e)", "overrides": ["train.max_steps=2"], "seeds": [5, 6],
 "runs": [{"name": "both"}, {"name": "visual only", "overrides": ["model.face_prior=none"]}]}
J
out=$("$bin" ablate -c "$cfg" --matrix "$work/ms.json" --out "$work/abs" "${base[@]}" 2>&1) || fail "ablate seeds: $out"
for d in both/seed-5 both/seed-6 visual-only/seed-5 visual-only/seed-6; do
  [ -f "$work/abs/$d/ablation_row.json" ] || fail "seeds: no row for $d"
done
grep -qE '"seed":[[:space:]]+6,' "$work/abs/both/seed-6/config.json" || fail "seeds: train.seed not applied"
grep -qE '^\| visual only \| `model.face_prior=none` \| 2 \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ ± [0-9.]+ \|' "$work/abs/results.md" ||
  fail "seeds: row format: $(cat "$work/abs/results.md")"
grep -q 'mean ± sample standard deviation over 2 seeds (train.seed = 5, 6)' "$work/abs/results.md" ||
  fail "seeds: footnote: $(cat "$work/abs/results.md")"
[ "$(grep -c '"seed"' "$work/abs/results.json")" = 4 ] || fail "seeds: results.json rows"
# --seeds replaces the matrix's list; finished seeds are reused
out=$("$bin" ablate -c "$cfg" --matrix "$work/ms.json" --out "$work/abs" --seeds 6,7 "${base[@]}" 2>&1) || fail "--seeds: $out"
[ "$(grep -c 'finished earlier' <<<"$out")" = 2 ] && [ -f "$work/abs/both/seed-7/ablation_row.json" ] ||
  fail "--seeds 6,7: $out"
echo "ok   [seeds]"
# bad matrices: nothing is trained
expect() {
  local name=$1 pat=$2 file=$3 out rc
  out=$("$bin" ablate -c "$cfg" --matrix "$file" --out "$work/bad" "${base[@]}" 2>&1); rc=$?
  if [ $rc -eq 0 ] || ! grep -qE "$pat" <<<"$out" || [ -e "$work/bad" ]; then
    fail "[$name] rc=$rc, wanted /$pat/ and no output dir, got: $out"
  else
    echo "ok   [$name] $(grep -E "$pat" <<<"$out" | head -1)"
  fi
}
printf '{"runs": []}' > "$work/b1.json"
expect "no runs" 'b1.json: "runs" must be a non-empty array' "$work/b1.json"
printf '{"runs": [{"name": "a b"}, {"name": "A-B"}]}' > "$work/b2.json"
expect "same dir" 'b2.json: runs "a b" and "A-B" map to the same directory a-b' "$work/b2.json"
printf '{"runs": [{"name": "x", "overrides": ["train.lrr=1"]}]}' > "$work/b3.json"
expect "unknown key" 'b3.json: run "x".*unknown key "train.lrr"' "$work/b3.json"
printf '{"runs": [{"name": "x", "overrides": [3]}]}' > "$work/b4.json"
expect "override type" 'b4.json: runs\[0\].overrides\[0\] is not a "key=value" string' "$work/b4.json"
printf '{"runs": [{"name": "x"},]}' > "$work/b5.json"
expect "syntax" 'b5.json: JSON syntax error at line 1, column' "$work/b5.json"
expect "missing" 'nope.json' "$work/nope.json"
printf '{"seeds": [1, 1], "runs": [{"name": "x"}]}' > "$work/b6.json"
expect "seeds" 'b6.json: "seeds" must be an array of 1 to 16 distinct non-negative integers' "$work/b6.json"
out=$("$bin" ablate -c "$cfg" --matrix "$work/m.json" --out "$work/bad" --seeds 1,x "${base[@]}" 2>&1)
grep -q -- '--seeds "1,x": expected 1 to 16 distinct non-negative integers' <<<"$out" && [ ! -e "$work/bad" ] ||
  fail "[--seeds 1,x] $out"
[ $fails -eq 0 ] && echo "e2e_ablate: ok" || { echo "e2e_ablate: $fails failure(s)"; exit 1; }
