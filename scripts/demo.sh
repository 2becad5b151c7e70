#!/usr/bin/env bash
# README command 1: installs everything (scripts/bootstrap.sh), builds and installs the extension, brings up the
# private cluster, creates the extension and shows what runs inside the backend.
#   scripts/demo.sh            run it all (idempotent)
#   scripts/demo.sh --stop     stop the private cluster       scripts/demo.sh --destroy   remove it
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"

case "${1:-}" in
  --stop) exec scripts/cluster.sh stop ;;
  --destroy) exec scripts/cluster.sh destroy ;;
  "") ;;
  *) die "usage: $0 [--stop|--destroy]" ;;
esac

log "demo 1/4: bootstrap"
scripts/bootstrap.sh
log "demo 2/4: build and install the extension (release)"
scripts/cluster.sh install
log "demo 3/4: private cluster"
scripts/cluster.sh start
log "demo 4/4: extension in database ${PGDATABASE}"
psql -v ON_ERROR_STOP=1 -qc "CREATE EXTENSION IF NOT EXISTS pg_cron" \
     -c "CREATE EXTENSION IF NOT EXISTS pg_recsys" \
     -c "ALTER DATABASE ${PGDATABASE} SET search_path = \"\$user\", public, recsys"
psql -c "SELECT * FROM recsys_version_info()"
log "done. Connect with: eval \"\$(scripts/cluster.sh env)\" && psql"
