#!/usr/bin/env bash
# tests/e2e/e2e_progress_plots.sh BUILD_DIR - progress and pictures of a real run:
# - on a terminal (a pseudo-terminal made by script(1)) the bar redraws in place ("\r" ...
#   "\x1b[K") and prints its 100% line once; through a pipe it prints plain lines, the 100%
#   line once; an interrupted run ends its bar with "interrupted at step N/M", not ETA 00:00;
# - curves.png is written at the end of training (a 1000 px wide PNG);
# - eval writes confusion.png and its metrics into the run's tb/ (eval/accuracy, eval/uar,
#   eval/war at the checkpoint's step; test_eval_tb.c reads the values back).
set -euo pipefail
bin="$(cd "$1" && pwd)/emotune"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cfg=configs/tiny-random.json
common=(synth.dir="$work/synth" synth.n_train=140 synth.n_test=14 data.train="$work/synth/train.json"
        data.eval="$work/synth/test.json" train.batch_size=4 train.threads=1 data.workers=1
        train.log_every=5)
fail() { echo "FAIL: $*"; exit 1; }
"$bin" synth -c "$cfg" "${common[@]}" > /dev/null

# 1. a terminal: in-place redraws, one final line
if script -qefc "true" /dev/null < /dev/null > /dev/null 2>&1; then
  script -qefc "'$bin' train -c '$cfg' ${common[*]} train.output_dir='$work/tty' train.max_steps=40" \
    /dev/null < /dev/null > "$work/tty.out" 2>&1 || fail "train on a pty: $(tail -3 "$work/tty.out")"
  grep -q $'\x1b\[K' "$work/tty.out" || fail "no clear-to-end-of-line on a terminal"
  n=$(grep -o '100%|' "$work/tty.out" | wc -l)
  [ "$n" -eq 1 ] || fail "terminal: the 100% line was drawn $n times"
  # every bar line was drawn over the previous one: the bar's text shares one terminal line
  bar_lines=$(tr -d '\r' < "$work/tty.out" | grep -c '^train .*%|' || true)
  [ "$bar_lines" -eq 1 ] || fail "terminal: $bar_lines lines hold a bar (expected 1 redrawn)"
else
  echo "script(1) cannot make a pseudo-terminal here: terminal part skipped"
fi

# 2. a pipe: plain lines, the 100% line once, no escape codes
"$bin" train -c "$cfg" "${common[@]}" train.output_dir="$work/pipe" train.max_steps=40 \
  2> "$work/pipe.err" | cat > /dev/null
! grep -q $'\x1b\|\r' "$work/pipe.err" || fail "escape codes or \\r in piped output"
n=$(grep -c '100%|' "$work/pipe.err" || true)
[ "$n" -eq 1 ] || fail "pipe: $n lines at 100% (expected 1)"
lines=$(grep -c '^train .*%|' "$work/pipe.err" || true)
[ "$lines" -ge 5 ] || fail "pipe: $lines progress lines (expected one per 10%)"

# 3. curves.png: a PNG of 1000 px width, no temporary file
png="$work/pipe/curves.png"
[ -s "$png" ] || fail "no curves.png"
[ ! -e "$png.tmp" ] || fail "curves.png.tmp left behind"
w=$(od -An -tu1 -j16 -N4 "$png" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 }')
[ "$w" -eq 1000 ] || fail "curves.png is $w px wide"

# 4. eval: confusion.png, and the metrics in the run's tb/ at step 40
"$bin" eval -c "$cfg" "${common[@]}" train.output_dir="$work/pipe" > "$work/eval.out" 2>&1 ||
  fail "eval: $(tail -3 "$work/eval.out")"
[ -s "$work/pipe/eval/confusion.png" ] || fail "no confusion.png"
grep -q "metrics in TensorBoard under $work/pipe/tb at step 40" "$work/eval.out" ||
  fail "eval did not report its TensorBoard step: $(cat "$work/eval.out")"
for tag in eval/accuracy eval/uar eval/war; do
  grep -aqF "$tag" "$work"/pipe/tb/events.out.tfevents.* || fail "no $tag in tb/"
done

# 5. interrupted: the bar says so instead of showing ETA 00:00
"$bin" train -c "$cfg" "${common[@]}" train.output_dir="$work/int" train.max_steps=100000 \
  2> "$work/int.err" > /dev/null &
pid=$!
for _ in $(seq 1 100); do grep -q '%|' "$work/int.err" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
kill -INT "$pid"
wait "$pid" || true
last=$(grep '%|' "$work/int.err" | tail -1)
echo "$last" | grep -qE -- '-- interrupted at step [0-9]+/100000$' || fail "last bar line: $last"
! echo "$last" | grep -q '<00:00' || fail "an interrupted run shows ETA 00:00: $last"
echo "ok"
