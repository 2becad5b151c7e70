#!/usr/bin/env bash
# The private PostgreSQL 15 cluster for development, demo and tests: a project-local data directory on a
# non-default port, run by the postgres user, with pg_cron (and pg_recsys unless RECSYS_PRELOAD=0) preloaded.
#   scripts/cluster.sh init|start|stop|restart|status|install|psql|destroy|env
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DATA_DIR="${RECSYS_CLUSTER_DIR}/data"
LOG_FILE="${RECSYS_CLUSTER_DIR}/postgres.log"
PRELOAD="${RECSYS_PRELOAD:-1}"

pg_ctl() { as_pg_owner "${PG_BINDIR}/pg_ctl" -D "${DATA_DIR}" "$@"; }

is_running() { [ -d "${DATA_DIR}" ] && pg_ctl status >/dev/null 2>&1; }

preload_libraries() {
  if [ "${PRELOAD}" = "1" ]; then echo "pg_cron,pg_recsys"; else echo "pg_cron"; fi
}

cmd_init() {
  if [ -f "${DATA_DIR}/PG_VERSION" ]; then
    log "cluster: already initialised in ${DATA_DIR}"
  else
    log "cluster: initdb in ${DATA_DIR}"
    mkdir -p "${RECSYS_CLUSTER_DIR}/run"
    [ "$(id -u)" -ne 0 ] || chown -R postgres:postgres "${RECSYS_CLUSTER_DIR}"
    as_pg_owner "${PG_BINDIR}/initdb" -D "${DATA_DIR}" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  fi
  write_config
}

write_config() {
  as_pg_owner tee "${DATA_DIR}/pg_recsys.conf" >/dev/null <<EOF
# Written by scripts/cluster.sh; re-written on every start.
port = ${PGPORT}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${PGHOST}'
shared_preload_libraries = '$(preload_libraries)'
cron.database_name = '${PGDATABASE}'
cron.use_background_workers = on
max_worker_processes = 16
max_connections = 50
shared_buffers = 256MB
logging_collector = off
EOF
  grep -q "^include_if_exists = 'pg_recsys.conf'" "${DATA_DIR}/postgresql.conf" ||
    echo "include_if_exists = 'pg_recsys.conf'" | as_pg_owner tee -a "${DATA_DIR}/postgresql.conf" >/dev/null
}

cmd_start() {
  cmd_init
  if is_running; then
    log "cluster: already running on port ${PGPORT}"
  else
    log "cluster: starting on port ${PGPORT} (preload: $(preload_libraries))"
    # libgomp reads OMP_WAIT_POLICY when libtorch is loaded: idle OpenMP workers should sleep, not spin.
    as_pg_owner env OMP_WAIT_POLICY=PASSIVE "${PG_BINDIR}/pg_ctl" -D "${DATA_DIR}" -l "${LOG_FILE}" -w -t 60 start >/dev/null ||
      { tail -n 30 "${LOG_FILE}" >&2; die "cluster failed to start (log: ${LOG_FILE})"; }
  fi
  if ! psql -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = '${PGDATABASE}'" | grep -q 1; then
    log "cluster: creating database ${PGDATABASE}"
    psql -d postgres -qc "CREATE DATABASE ${PGDATABASE}"
  fi
}

cmd_stop() {
  if is_running; then
    log "cluster: stopping"
    pg_ctl -m fast -w stop >/dev/null
  else
    log "cluster: not running"
  fi
}

cmd_status() {
  if is_running; then
    log "cluster: running on port ${PGPORT}, socket ${PGHOST}, data ${DATA_DIR}"
  else
    log "cluster: not running (data ${DATA_DIR})"
    return 3
  fi
}

# Builds and installs the extension into Debian's PostgreSQL. A running server must not have the old .so
# replaced under it (that crashes its backends), so the cluster is stopped around the install.
cmd_install() {
  local profile_flag=()
  [ "${RECSYS_BUILD_PROFILE:-release}" = "release" ] && profile_flag=(--release)
  local was_running=0
  if is_running; then was_running=1; cmd_stop; fi
  install_libtorch_for_postgres
  install_minilm_for_postgres
  log "extension: cargo pgrx install ${profile_flag[*]}"
  (cd "${REPO_ROOT}/pg_recsys" && cargo pgrx install "${profile_flag[@]}" --pg-config "${PG_CONFIG}")
  if [ "${was_running}" = 1 ]; then cmd_start; fi
}

cmd_destroy() {
  cmd_stop
  log "cluster: removing ${RECSYS_CLUSTER_DIR}"
  rm -rf "${RECSYS_CLUSTER_DIR}"
}

# Prints export lines so that `eval "$(scripts/cluster.sh env)"` points psql at the private cluster.
cmd_env() {
  printf 'export PGHOST=%q PGPORT=%q PGUSER=%q PGDATABASE=%q\n' "${PGHOST}" "${PGPORT}" "${PGUSER}" "${PGDATABASE}"
}

case "${1:-status}" in
  init) cmd_init ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  restart) cmd_stop; cmd_start ;;
  status) cmd_status ;;
  install) cmd_install ;;
  psql) shift; exec psql "$@" ;;
  destroy) cmd_destroy ;;
  env) cmd_env ;;
  *) die "usage: $0 init|start|stop|restart|status|install|psql|destroy|env" ;;
esac
