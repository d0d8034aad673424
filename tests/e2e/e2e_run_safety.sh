#!/usr/bin/env bash
# tests/e2e/e2e_run_safety.sh BUILD_DIR - a run is never destroyed by accident:
# re-running into a finished run without --resume changes nothing and names --resume and
# --overwrite; --overwrite keeps the old run under a new name; a second process on the same
# output directory is refused (naming the pid), a stale lock is taken over; SIGHUP leaves a
# resumable checkpoint and a stop interrupts a slow loader; fewer samples than a batch ends
# in under a second; a flipped checkpoint byte is refused on resume and export; a run that
# fails before its first step leaves the directory as it was; a killed export leaves the
# previous export (or nothing) and the next one cleans up; prepare with every sample
# failing writes no store.
set -uo pipefail
bin="$1/emotune"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
cfg=configs/tiny-random.json
base=(synth.dir="$work/synth" synth.n_train=40 synth.n_test=7 data.train="$work/synth/train.json"
      train.batch_size=4 train.save_every=2 train.keep_last=2 train.threads=1 data.workers=1)
"$bin" synth -c "$cfg" "${base[@]}" > /dev/null || { echo "FAIL: synth"; exit 1; }
fails=0
fail() { echo "FAIL [$1] $2"; fails=$((fails + 1)); }
ok() { echo "ok   [$1] $2"; }
# snap DIR: one line per file (relative path, size, sha256), sorted
snap() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 -r sha256sum); }

# ---- 1. a finished run is not touched without --resume / --overwrite ------------------
run="$work/run"
"$bin" train -c "$cfg" "${base[@]}" train.max_steps=6 train.output_dir="$run" > "$work/t1.log" 2>&1 ||
  { fail "first run" "$(cat "$work/t1.log")"; }
snap "$run" > "$work/before"
rows=$(wc -l < "$run/metrics.jsonl")
out=$("$bin" train -c "$cfg" "${base[@]}" train.max_steps=6 train.output_dir="$run" 2>&1); rc=$?
snap "$run" > "$work/after"
if [ $rc -eq 0 ] || ! grep -q -- "--resume" <<<"$out" || ! grep -q -- "--overwrite" <<<"$out"; then
  fail "refuse" "rc=$rc: $out"
elif ! cmp -s "$work/before" "$work/after" || [ -e "$run/.emotune.lock" ]; then
  fail "refuse" "the finished run changed: $(diff "$work/before" "$work/after")"
else
  ok "refuse" "rc=$rc, $(wc -l < "$work/after") files unchanged ($rows metrics rows): $(head -c 160 <<<"$out")"
fi

# ---- 2. --overwrite moves the old run aside ---------------------------------------------
out=$("$bin" train -c "$cfg" "${base[@]}" train.max_steps=4 train.output_dir="$run" --overwrite 2>&1); rc=$?
old=$(ls -d "$run".old-* 2>/dev/null | head -1)
if [ $rc -ne 0 ] || [ -z "$old" ] || ! grep -qF "moved to $old" <<<"$out"; then
  fail "overwrite" "rc=$rc old=$old: $out"
elif ! diff <(snap "$old") "$work/before" > /dev/null; then
  fail "overwrite" "the moved run differs from the original"
elif [ ! -d "$run/checkpoints/step-00000004" ] || [ -d "$run/checkpoints/step-00000006" ]; then
  fail "overwrite" "the new run is not a fresh one: $(ls "$run/checkpoints")"
else
  ok "overwrite" "old run kept intact as $(basename "$old"); fresh run at step 4"
fi
out=$("$bin" train -c "$cfg" "${base[@]}" train.output_dir="$run" --overwrite --resume 2>&1); rc=$?
[ $rc -ne 0 ] && grep -q "give one of them" <<<"$out" && ok "both flags" "refused" ||
  fail "both flags" "rc=$rc: $out"

# ---- 3. a second process on the same directory; SIGHUP; resume ---------------------------
live="$work/live"
"$bin" train -c "$cfg" "${base[@]}" train.max_steps=100000 train.output_dir="$live" \
  > "$work/live.log" 2>&1 &
pid=$!; pids+=("$pid")
for _ in $(seq 1 100); do [ -d "$live/checkpoints/step-00000004" ] && break; sleep 0.1; done
out=$("$bin" train -c "$cfg" "${base[@]}" train.max_steps=100000 train.output_dir="$live" --resume 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "in use by another emotune process (pid $pid " <<<"$out"; then
  ok "concurrent" "$out"
else
  fail "concurrent" "rc=$rc: $out"
fi
kill -HUP "$pid"
t0=$(date +%s.%N)
wait "$pid"; rc=$?
dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
last=$(ls -d "$live"/checkpoints/step-* | tail -1)
step=$((10#${last##*step-}))
if [ $rc -ne 130 ] || ! grep -q "interrupted" "$work/live.log" || [ ! -f "$last/state.json" ] ||
   [ -e "$live/.emotune.lock" ]; then
  fail "SIGHUP" "rc=$rc after ${dt}s, last=$last: $(tail -3 "$work/live.log")"
else
  ok "SIGHUP" "rc=$rc after ${dt}s, checkpoint $(basename "$last"), lock released"
fi
want=$((step + 3))
out=$("$bin" train -c "$cfg" "${base[@]}" train.max_steps=$want train.output_dir="$live" --resume 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q "resumed from .*step-$(printf %08d "$step") (step $step of $want)" <<<"$out" &&
   [ -d "$live/checkpoints/step-$(printf %08d "$want")" ]; then
  ok "resume after SIGHUP" "step $step -> $want"
else
  fail "resume after SIGHUP" "rc=$rc: $out"
fi
# under nohup SIGHUP stays ignored: the run goes on to its end
nohup "$bin" train -c "$cfg" "${base[@]}" train.max_steps=30 train.output_dir="$work/nohup" \
  > "$work/nohup.log" 2>&1 &
pid=$!; pids+=("$pid")
for _ in $(seq 1 100); do [ -e "$work/nohup/.emotune.lock" ] && break; sleep 0.05; done
kill -HUP "$pid"; wait "$pid"; rc=$?
[ $rc -eq 0 ] && [ -d "$work/nohup/checkpoints/step-00000030" ] && ok "nohup" "SIGHUP ignored" ||
  fail "nohup" "rc=$rc: $(tail -3 "$work/nohup.log")"
# a run killed with SIGKILL leaves its lock file: the next run takes it over with a note
"$bin" train -c "$cfg" "${base[@]}" train.max_steps=100000 train.output_dir="$live" --resume \
  > /dev/null 2>&1 &
pid=$!; pids+=("$pid")
for _ in $(seq 1 100); do [ "$(cat "$live/.emotune.lock" 2>/dev/null)" = "$pid" ] && break; sleep 0.1; done
sleep 0.3
kill -9 "$pid"; wait "$pid" 2>/dev/null
out=$("$bin" train -c "$cfg" "${base[@]}" train.max_steps=1 train.output_dir="$live" --resume 2>&1); rc=$?
if [ $rc -eq 0 ] && grep -q "taking over the lock left by pid $pid" <<<"$out"; then
  ok "stale lock" "$(grep "taking over" <<<"$out")"
else
  fail "stale lock" "rc=$rc: $out"
fi

# ---- 4. no hang: fewer samples than a batch; a stop interrupts a slow loader -------------
python3 - "$work/synth" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1] + "/train.json"))
json.dump(d[:3], open(sys.argv[1] + "/three.json", "w"))
five = d[:5]
for x in five[:2]:
    x["image"] = "missing/" + x["image"]
json.dump(five, open(sys.argv[1] + "/five.json", "w"))
EOF
for name in three five; do
  t0=$(date +%s.%N)
  out=$(timeout 20 "$bin" train -c "$cfg" "${base[@]}" data.train="$work/synth/$name.json" \
        train.max_steps=5 train.output_dir="$work/hang_$name" 2>&1); rc=$?
  dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
  case $name in
    three) pat="3 samples, fewer than one optimizer step takes \(train.batch_size 4 x train.grad_accum 1 = 4\)" ;;
    five) pat="only 3 of the 5 samples load \(2 bad, see above\), fewer than one batch of batch_size 4" ;;
  esac
  if [ $rc -eq 0 ] || [ $rc -eq 124 ] || ! grep -qE "$pat" <<<"$out" ||
     awk -v t="$dt" 'BEGIN { exit !(t >= 1.0) }' || [ -e "$work/hang_$name" ]; then
    fail "hang $name" "rc=$rc in ${dt}s: $out"
  else
    ok "hang $name" "${dt}s: $(grep -oE "$pat" <<<"$out")"
  fi
done
EMOTUNE_LOADER_SLOW_MS=4000 "$bin" train -c "$cfg" "${base[@]}" train.max_steps=5 \
  train.output_dir="$work/slow" > "$work/slow.log" 2>&1 &
pid=$!; pids+=("$pid")
sleep 1.5
kill -TERM "$pid"
t0=$(date +%s.%N)
wait "$pid"; rc=$?
dt=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
# the loader stops waiting at once; only joining the worker in the middle of its 4 s sample
# takes the rest
if [ $rc -ne 130 ] || ! grep -q "interrupted while waiting for data" "$work/slow.log" ||
   awk -v t="$dt" 'BEGIN { exit !(t >= 4.5) }'; then
  fail "stop in a loader wait" "rc=$rc after ${dt}s: $(cat "$work/slow.log")"
else
  ok "stop in a loader wait" "rc=$rc ${dt}s after SIGTERM"
fi

# ---- 5. checkpoint checksums: a flipped byte is refused on resume and export -------------
ck="$work/ck"
"$bin" train -c "$cfg" "${base[@]}" train.max_steps=4 train.output_dir="$ck" > /dev/null 2>&1 ||
  fail "checksum run" "training failed"
flip() { python3 -c "
import sys; p = sys.argv[1]; b = bytearray(open(p, 'rb').read()); b[len(b) // 2] ^= 1
open(p, 'wb').write(b)" "$1"; }
for f in trainables.safetensors optimizer.safetensors; do
  flip "$ck/checkpoints/step-00000004/$f"
  out=$("$bin" train -c "$cfg" "${base[@]}" train.max_steps=6 train.output_dir="$ck" --resume 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q "step-00000004/$f: checksum mismatch" <<<"$out" &&
     [ ! -d "$ck/checkpoints/step-00000006" ]; then
    ok "flipped byte, resume" "$f refused"
  else
    fail "flipped byte, resume" "rc=$rc: $out"
  fi
  out=$("$bin" export -c "$cfg" "${base[@]}" train.output_dir="$ck" --out "$work/ck_export" 2>&1); rc=$?
  if [ $rc -ne 0 ] && grep -q "$f: checksum mismatch" <<<"$out" && [ ! -e "$work/ck_export" ]; then
    ok "flipped byte, export" "$f refused, nothing written"
  else
    fail "flipped byte, export" "rc=$rc: $out"
  fi
  flip "$ck/checkpoints/step-00000004/$f"  # flipped back
done

# ---- 6. a run that fails before its first step leaves the directory as it was ------------
snap "$ck" > "$work/before"
for bad in data.train="$work/nope.json" train.lr_scheduler=cosin; do
  out=$("$bin" train -c "$cfg" "${base[@]}" train.max_steps=8 train.output_dir="$ck" --resume "$bad" 2>&1); rc=$?
  snap "$ck" > "$work/after"
  if [ $rc -ne 0 ] && cmp -s "$work/before" "$work/after"; then
    ok "early failure ($bad)" "nothing changed: $(tail -1 <<<"$out" | head -c 120)"
  else
    fail "early failure ($bad)" "rc=$rc, changes: $(diff "$work/before" "$work/after")"
  fi
done
out=$("$bin" train -c "$cfg" "${base[@]}" data.train="$work/nope.json" train.output_dir="$work/never" 2>&1)
[ ! -e "$work/never" ] && ok "early failure, fresh" "no directory left" ||
  fail "early failure, fresh" "$(ls -a "$work/never")"

# ---- 7. export: atomic as a whole ----------------------------------------------------------
exp="$work/export"
ex=("$bin" export -c "$cfg" "${base[@]}" train.output_dir="$ck" --out "$exp" --merged)
EMOTUNE_EXPORT_SLOW_MS=3000 "${ex[@]}" > /dev/null 2>&1 &
pid=$!; pids+=("$pid")
for _ in $(seq 1 100); do [ -d "$exp.tmp-export-$pid/adapter" ] && break; sleep 0.05; done
kill -9 "$pid"; wait "$pid" 2>/dev/null
[ ! -e "$exp" ] && [ -d "$exp.tmp-export-$pid" ] && ok "killed first export" "nothing at --out" ||
  fail "killed first export" "$(ls "$work")"
"${ex[@]}" > "$work/ex.log" 2>&1 || fail "export" "$(cat "$work/ex.log")"
if [ -f "$exp/adapter/adapter_model.safetensors" ] && [ -f "$exp/merged/config.json" ] &&
   [ -f "$exp/non_lora_trainables.safetensors" ] && ! ls -d "$work"/export.tmp-* > /dev/null 2>&1 &&
   grep -q "removing .*export.tmp-export-$pid" "$work/ex.log"; then
  ok "export" "complete; the killed export's temp directory removed"
else
  fail "export" "$(ls -R "$work" | grep -i export) $(cat "$work/ex.log")"
fi
snap "$exp" > "$work/before"
out=$("${ex[@]}" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q -- "--overwrite" <<<"$out" && diff <(snap "$exp") "$work/before" > /dev/null; then
  ok "re-export refused" "$(head -c 140 <<<"$out")"
else
  fail "re-export refused" "rc=$rc: $out"
fi
EMOTUNE_EXPORT_SLOW_MS=3000 "${ex[@]}" --overwrite > /dev/null 2>&1 &
pid=$!; pids+=("$pid")
for _ in $(seq 1 100); do [ -d "$exp.tmp-export-$pid/adapter" ] && break; sleep 0.05; done
kill -9 "$pid"; wait "$pid" 2>/dev/null
if diff <(snap "$exp") "$work/before" > /dev/null && ! ls -d "$exp".old-* > /dev/null 2>&1; then
  ok "killed re-export" "the previous export is intact"
else
  fail "killed re-export" "$(ls "$work")"
fi
out=$("${ex[@]}" --overwrite 2>&1); rc=$?
old=$(ls -d "$exp".old-* 2>/dev/null | head -1)
if [ $rc -eq 0 ] && [ -n "$old" ] && diff <(snap "$old") "$work/before" > /dev/null &&
   [ -f "$exp/merged/config.json" ] && ! ls -d "$work"/export.tmp-* > /dev/null 2>&1; then
  ok "export --overwrite" "old export moved to $(basename "$old"), stale temp removed"
else
  fail "export --overwrite" "rc=$rc: $out $(ls "$work")"
fi

# ---- 8. prepare with every sample failing writes no store --------------------------------
python3 - "$work/synth" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1] + "/train.json"))[:4]
for x in d:
    x["image"] = "missing/" + x["image"]
json.dump(d, open(sys.argv[1] + "/allbad.json", "w"))
EOF
out=$("$bin" prepare -c "$cfg" "${base[@]}" --data "$work/synth/allbad.json" --out "$work/bad.h5" 2>&1); rc=$?
if [ $rc -ne 0 ] && grep -q "no sample could be prepared (all 4 failed), so no store was written" <<<"$out" &&
   ! ls "$work"/bad.h5* > /dev/null 2>&1; then
  ok "prepare, all bad" "rc=$rc, no store file"
else
  fail "prepare, all bad" "rc=$rc: $out $(ls "$work")"
fi

[ $fails -eq 0 ] && echo "ok" || { echo "$fails failures"; exit 1; }
