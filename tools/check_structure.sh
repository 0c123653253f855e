#!/usr/bin/env bash
# The structure checks (docs/architecture.md "The check"), on a built tree:
#   bash tools/check_structure.sh [BUILD_DIR]     (default build/)
# - tools/check_layers.py: includes and calls run down the floors, no circles;
# - tools/check_repo.py: liblisa's global symbols are prefixed, every cited document is in the
#   repository, README's layout table matches the tree.
# Also a CTest test (`structure`), so the README's test command runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${1:-build}
status=0
python3 tools/check_layers.py "$BUILD_DIR" || status=1
python3 tools/check_repo.py "$BUILD_DIR" || status=1
exit $status
