#!/usr/bin/env bash
# Prints pg_recsys's performance figures (see tests/src/bin/recsys_bench.rs); uses the installed extension.
#   scripts/bench.sh [backend]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"
cargo run --quiet --release -p recsys_integration_tests --bin recsys_bench -- "${1:-backend}"
