#!/usr/bin/env bash
# Runs every test layer against real PostgreSQL and real libtorch:
#   1. plain `cargo test` for the crates without pgrx (model, trainer);
#   2. `#[pg_test]` inside a pgrx-managed server (run as the postgres user when we are root);
#   3. the integration crate (`tests/`), which starts its own throwaway clusters with the installed extension.
# The private dev cluster is stopped while extension builds are installed and started again afterwards.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"

[ -f "${LIBTORCH}/lib/libtorch_cpu.so" ] || die "libtorch missing at ${LIBTORCH}: run scripts/bootstrap.sh first"
install_libtorch_for_postgres

dev_cluster_was_running=0
if scripts/cluster.sh status >/dev/null 2>&1; then
  dev_cluster_was_running=1
  scripts/cluster.sh stop
fi
restart_dev_cluster() { [ "${dev_cluster_was_running}" = 0 ] || scripts/cluster.sh start; }
trap restart_dev_cluster EXIT

log "tests 1/3 (at ${SECONDS} s): cargo test (model crate)"
cargo test --workspace --exclude pg_recsys --exclude recsys_integration_tests

log "tests 2/3 (at ${SECONDS} s): cargo pgrx test (#[pg_test] inside a backend)"
pgrx_args=(test "pg${PG_MAJOR}")
if [ "$(id -u)" -eq 0 ]; then
  pgrx_data="${REPO_ROOT}/target/pgrx-test-data"
  rm -rf "${pgrx_data}" && mkdir -p "${pgrx_data}" && chown postgres:postgres "${pgrx_data}"
  pgrx_args+=(--runas postgres --pgdata "${pgrx_data}")
fi
(cd pg_recsys && cargo pgrx "${pgrx_args[@]}")

log "tests 3/3 (at ${SECONDS} s): integration tests against real clusters with the installed extension"
scripts/cluster.sh install
cargo build -p trainer
cargo test -p recsys_integration_tests -- --test-threads=1
log "tests done at ${SECONDS} s"
