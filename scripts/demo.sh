#!/usr/bin/env bash
# README command 1: installs everything (scripts/bootstrap.sh), builds and installs the extension and the trainer,
# brings up the private cluster, creates the extension, imports the demo data in seeds/ with the real importers and
# shows what runs inside the backend.
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

TRAINER="${REPO_ROOT}/target/release/trainer"

log "demo 1/5: bootstrap"
scripts/bootstrap.sh
log "demo 2/5: build and install the extension, build the trainer (release)"
scripts/cluster.sh install
cargo build --release -p trainer
log "demo 3/5: private cluster"
scripts/cluster.sh start
log "demo 4/5: extension in database ${PGDATABASE}"
psql -v ON_ERROR_STOP=1 -qc "CREATE EXTENSION IF NOT EXISTS pg_cron" \
     -c "CREATE EXTENSION IF NOT EXISTS pg_recsys" \
     -c "ALTER DATABASE ${PGDATABASE} SET search_path = \"\$user\", public, recsys"
log "demo 5/5: import the demo data (seeds/) with the real importers; re-running merges, nothing is duplicated"
"${TRAINER}" import movielens seeds/demo/movielens
"${TRAINER}" import imdb seeds/demo/imdb
psql -c "SELECT * FROM recsys_version_info()"
psql -c "SELECT (SELECT count(*) FROM movies) AS movies, (SELECT count(*) FROM users) AS users,
                (SELECT count(*) FROM ratings) AS ratings, (SELECT count(*) FROM persons) AS persons"
log "done. Connect with: eval \"\$(scripts/cluster.sh env)\" && psql"
