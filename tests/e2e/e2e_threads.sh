#!/usr/bin/env bash
# tests/e2e/e2e_threads.sh BUILD_DIR - the OpenMP wait policy emotune starts with
# (core/threads.h): GOMP_SPINCOUNT=100 unless the environment sets OMP_WAIT_POLICY or
# GOMP_SPINCOUNT, which win; the re-execution keeps the arguments, output and exit status.
# libgomp prints the values it read with OMP_DISPLAY_ENV=verbose (once per process start).
set -uo pipefail
bin="$1/emotune"
# GOMP_SPINCOUNT and its display are libgomp's (GCC's OpenMP); another runtime: skip.
ldd "$bin" | grep -q libgomp || { echo "skip: $bin is not linked to libgomp"; exit 77; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0
check() {  # check NAME COND_RESULT DETAIL
  if [ "$2" -eq 0 ]; then echo "ok   [$1]"; else echo "FAIL [$1] $3"; fails=$((fails + 1)); fi
}
spin() {  # the GOMP_SPINCOUNT values libgomp read, one per process start, space-separated
  grep -oE "GOMP_SPINCOUNT = '[0-9]+'" | grep -oE "[0-9]+" | tr '\n' ' '
}
clean=(env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT OMP_DISPLAY_ENV=verbose)

got=$("${clean[@]}" "$bin" --help 2>&1 >/dev/null | spin)
[[ "$got" == *" 100 " && "$got" != *" 100 100 " ]]; check "default: spin count 100 after one re-exec" $? "read: $got"
got=$("${clean[@]}" OMP_WAIT_POLICY=active "$bin" --help 2>&1 >/dev/null | spin)
[ "$got" = "30000000000 " ]; check "OMP_WAIT_POLICY=active wins, no re-exec" $? "read: $got"
got=$("${clean[@]}" GOMP_SPINCOUNT=50 "$bin" --help 2>&1 >/dev/null | spin)
[ "$got" = "50 " ]; check "GOMP_SPINCOUNT=50 wins" $? "read: $got"

# Same output and exit status with and without the re-execution.
env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$bin" train --help > "$work/a" 2>&1; ra=$?
env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive "$bin" train --help > "$work/b" 2>&1; rb=$?
cmp -s "$work/a" "$work/b" && [ $ra -eq $rb ] && [ $ra -eq 0 ]
check "train --help: same output and status" $? "rc $ra/$rb"
env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$bin" no-such-command "two words" > "$work/a" 2>&1; ra=$?
env -u GOMP_SPINCOUNT OMP_WAIT_POLICY=passive "$bin" no-such-command "two words" > "$work/b" 2>&1; rb=$?
cmp -s "$work/a" "$work/b" && [ $ra -eq 2 ] && [ $rb -eq 2 ]
check "unknown command: same message, exit 2" $? "rc $ra/$rb: $(cat "$work/a")"

# A short training run under the default policy (2 threads) finishes.
cfg=configs/tiny-random.json
base=(synth.dir="$work/synth" synth.n_train=24 synth.n_test=4 data.train="$work/synth/train.json"
      train.max_steps=2 train.batch_size=4 train.tensorboard=false train.output_dir="$work/run")
"$bin" synth -c "$cfg" "${base[@]}" > /dev/null 2>&1
out=$("${clean[@]}" OMP_NUM_THREADS=2 "$bin" train -c "$cfg" "${base[@]}" 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "train: 2/2 steps" <<<"$out" && [[ " $(spin <<<"$out")" == *" 100 " ]]
check "train runs with spin count 100" $? "rc $rc: $(tail -3 <<<"$out")"

[ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all threads checks passed"
