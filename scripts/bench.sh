#!/usr/bin/env bash
# Prints pg_recsys's performance figures (see tests/src/bin/recsys_bench/main.rs); uses the installed extension.
#   scripts/bench.sh [backend|import|imdb-large|serving|recommend-mls|recommend-p50|training|accuracy|refit|step-settings|soak|fold-in|fold-in-week|scale]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"
cargo build --quiet --release -p trainer -p recsys_integration_tests
RECSYS_TRAINER="${REPO_ROOT}/target/release/trainer" "${REPO_ROOT}/target/release/recsys_bench" "${1:-backend}"
