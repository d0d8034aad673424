#!/usr/bin/env bash
# tools/setup.sh - installs what emotune needs to build and test on Debian/Ubuntu
# (only the packages that are missing; non-interactive). Run as root or with sudo.
set -euo pipefail
pkgs=(cmake make gcc pkg-config libopenblas-dev libopenblas-openmp-dev libcjson-dev libhdf5-dev libjpeg62-turbo-dev libpng-dev zlib1g-dev libomp-dev
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
      clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
