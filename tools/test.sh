#!/usr/bin/env bash
# tools/test.sh - configures, builds and runs emotune's test suites with ctest.
#   tools/test.sh                 Release build in build/, every suite
#   tools/test.sh --sanitize      ASan+UBSan build in build-asan/, unit + gradcheck + golden suites
#   tools/test.sh --fuzz SECONDS [REGEX]
#                                 clang libFuzzer build in build-fuzz/, each fuzz target (or
#                                 those matching REGEX) run for SECONDS on its seeds and the
#                                 corpus it grew before (build-fuzz/fuzz-corpus/<name>/, log in
#                                 build-fuzz/fuzz-logs/<name>.log); all run, failures listed
#   tools/test.sh --cuda          CUDA build (-DEMOTUNE_CUDA=ON, sm_90) in build-cuda/ and, when
#                                 nvidia-smi sees a GPU, its GPU suites (test_cuda_*, e2e_device)
#   tools/test.sh --cuda-emu      the CUDA op layer over the host emulator of its kernels
#                                 (-DEMOTUNE_CUDA_EMU=ON, kernels/cuda/emu) in build-emu/, and
#                                 the GPU suites (test_cuda_*) and e2e_device against it; no
#                                 GPU needed
#   tools/test.sh --cuda-emu-asan the same GPU suites in an ASan+UBSan build (build-emu-asan/)
# Extra arguments go to ctest (e.g. -L golden, -R test_tensor).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
mode=${1:-}
case "$mode" in
  --sanitize)
    shift
    cmake -S . -B build-asan -DEMOTUNE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    cmake --build build-asan -j"$jobs"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
    export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1
    ctest --test-dir build-asan --output-on-failure -j"$jobs" -L 'unit|gradcheck|golden' "$@"
    ;;
  --fuzz)
    # Every target runs (a failure does not stop the others) on a corpus grown from its seeds
    # in build-fuzz/fuzz-corpus/<name>/ (kept between runs), logging to
    # build-fuzz/fuzz-logs/<name>.log; crash/leak/timeout inputs go to build-fuzz/fuzz-artifacts/.
    # Optional third argument: a regular expression selecting targets (e.g. 'store|video').
    secs=${2:?usage: tools/test.sh --fuzz SECONDS [TARGET_REGEX]}
    only=${3:-}
    CC=clang cmake -S . -B build-fuzz -DEMOTUNE_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug
    cmake --build build-fuzz -j"$jobs"
    mkdir -p build-fuzz/fuzz-logs build-fuzz/fuzz-corpus build-fuzz/fuzz-artifacts
    # leaks inside libhdf5 itself on malformed files are HDF5's (tests/fuzz/lsan.supp)
    export LSAN_OPTIONS="suppressions=$PWD/tests/fuzz/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
    failed=()
    for f in build-fuzz/fuzz_*; do
      [ -x "$f" ] && [ -f "$f" ] || continue
      name=$(basename "$f")
      short=${name#fuzz_}
      if [ -n "$only" ] && ! grep -qE "$only" <<<"$short"; then continue; fi
      corpus=build-fuzz/fuzz-corpus/$short
      log=build-fuzz/fuzz-logs/$short.log
      mkdir -p "$corpus"
      [ -d "tests/fuzz/corpus/$short" ] && cp -rn tests/fuzz/corpus/"$short"/. "$corpus"/
      echo "fuzz: $name for ${secs}s (corpus $corpus, log $log)"
      rc=0
      "$f" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="build-fuzz/fuzz-artifacts/$short-" "$corpus" > "$log" 2>&1 || rc=$?
      grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$log" || true
      echo "fuzz: $name corpus: $(find "$corpus" -type f | wc -l) files"
      if [ "$rc" -ne 0 ]; then
        tail -50 "$log"
        echo "fuzz: $name failed (exit $rc; log $log)"
        failed+=("$name")
      fi
    done
    if [ ${#failed[@]} -gt 0 ]; then
      echo "fuzz: ${#failed[@]} target(s) failed: ${failed[*]}"
      exit 1
    fi
    echo "fuzz: every target ran ${secs}s without a finding"
    ;;
  --cuda)
    shift
    cmake -S . -B build-cuda -DEMOTUNE_CUDA=ON -DCMAKE_BUILD_TYPE=Release
    cmake --build build-cuda -j"$jobs"
    if nvidia-smi -L > /dev/null 2>&1; then
      ctest --test-dir build-cuda --output-on-failure -R 'test_cuda_|e2e_device' "$@"
    else
      echo "test.sh: no GPU here; the CUDA build compiled, its GPU suites were not run"
    fi
    ;;
  --cuda-emu)
    shift
    cmake -S . -B build-emu -DEMOTUNE_CUDA_EMU=ON -DCMAKE_BUILD_TYPE=Release
    cmake --build build-emu -j"$jobs"
    ctest --test-dir build-emu --output-on-failure -R 'test_cuda_|e2e_device' "$@"
    # the 7B-shaped LoRA step's code path at a reduced shape, bf16, against the CPU backend
    build-emu/bench_cuda_step --reduced
    ;;
  --cuda-emu-asan)
    shift
    cmake -S . -B build-emu-asan -DEMOTUNE_CUDA_EMU=ON -DEMOTUNE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
    cmake --build build-emu-asan -j"$jobs"
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
    export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1
    ctest --test-dir build-emu-asan --output-on-failure -R 'test_cuda_' "$@"
    ;;
  *)
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
    cmake --build build -j"$jobs"
    ctest --test-dir build --output-on-failure -j"$jobs" "$@"
    ;;
esac
