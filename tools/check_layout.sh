#!/usr/bin/env bash
# tools/check_layout.sh - the dependency arrows of DESIGN.md "Layout" that a grep can see:
# core/ names nothing of kernels/cuda (no header, no et_cuda_* / kc_* symbol), nor of
# train/ or data/; data/ includes nothing of train/. Exits 1 naming each offending line.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
check() {  # check DIR REGEX WHAT
  local hits
  hits=$(grep -rnE "$2" "$1" --include='*.c' --include='*.h' || true)
  if [ -n "$hits" ]; then
    echo "check_layout: $1 must not name $3:"
    echo "$hits"
    bad=1
  fi
}
check core 'kernels/cuda|cuda_kernels\.h|\bet_cuda_[a-z_]+|\bkc_[a-z_]+\(' 'the CUDA library'
check core '#include "[./]*(train|data|kernels/cuda)/' 'train/, data/ or kernels/cuda headers'
check data '#include "[./]*train/' 'train/ headers'
check train/models '#include "[./]*train/(trainer|runconfig|checkpoint|progress|tblog|eval/|io/)' 'the loop, eval or io (models sit below them)'
if [ $bad -eq 0 ]; then echo "check_layout: arrows point one way"; fi
exit $bad
