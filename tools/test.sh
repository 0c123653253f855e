#!/usr/bin/env bash
# The README's test command: installs dependencies, builds everything (the CUDA sources too when
# nvcc is available: compile and link only, sm_80/86/89/90a), and runs the whole test suite.
#   bash tools/test.sh                 # build/ + all tests
#   BUILD_DIR=build-asan CMAKE_ARGS="-DLISA_SANITIZE_ADDRESS=ON -DLISA_SANITIZE_UNDEFINED=ON" bash tools/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh

BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
export PATH="$PATH:/usr/local/cuda/bin"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j"$JOBS"
# ctest runs JOBS tests at once and the MPI tests start several ranks: spinning OpenMP teams (the
# CPU backend's loops and OpenBLAS's OpenMP build share libgomp) of processes that share the cores
# starve each other, so idle threads sleep here (162 s -> 102 s for the suite on 2 cores). A single
# process on its own cores is faster with the default (spin a while, then sleep): not set there.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$JOBS" ${CTEST_ARGS:-}
