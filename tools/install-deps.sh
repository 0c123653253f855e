#!/usr/bin/env bash
# Installs the Debian packages the engine builds and tests with. Idempotent: does nothing when
# everything is already installed. Needs root (or sudo) for apt-get.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git        # toolchain
  libopenblas-openmp-dev                      # CPU sgemm (kernels/cpu); the OpenMP build: FindOpenBLASLib.cmake says why
  libcjson-dev                                # JSON: configs, safetensors headers, CLI I/O
  libcriterion-dev                            # unit tests
  libpng-dev libjpeg62-turbo-dev zlib1g-dev   # image decode/encode; zlib: .bin deflate + CRC-32
  clang                                       # libFuzzer targets
  libopenmpi-dev openmpi-bin                  # MPI: CPU tensor parallelism + multi-rank tests (mpirun)
  libmicrohttpd-dev                           # `lisa serve` (HTTP/1.1 server)
  prometheus                                  # promtool: the /metrics test checks a scrape with it
  python3 python3-pytest                      # the Python binding's test (python/tests)
  chromium                                    # the demo page's browser test (headless)
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
