#!/usr/bin/env bash
# README command 1: installs everything (scripts/bootstrap.sh), builds and installs the extension and the trainer,
# brings up the private cluster, creates the extension, imports the demo data in seeds/ with the real importers and
# shows what runs inside the backend: a trained model, the batch refresh, two users' recommendations.
#   scripts/demo.sh            run it all (idempotent)
#   scripts/demo.sh --no-pretrained   stop after importing the data (no training)
#   scripts/demo.sh --stop     stop the private cluster       scripts/demo.sh --destroy   remove it
#   scripts/demo.sh --reset    drop and recreate the demo database first (after an update changed the extension's
#                              SQL: 0.x has no upgrade scripts)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "${REPO_ROOT}"

TRAIN=1
RESET=0
case "${1:-}" in
  --stop) exec scripts/cluster.sh stop ;;
  --destroy) exec scripts/cluster.sh destroy ;;
  --no-pretrained) TRAIN=0 ;;
  --reset) RESET=1 ;;
  "") ;;
  *) die "usage: $0 [--no-pretrained|--reset|--stop|--destroy]" ;;
esac

TRAINER="${REPO_ROOT}/target/release/trainer"

log "demo 1/6: bootstrap"
scripts/bootstrap.sh
log "demo 2/6: build and install the extension, build the trainer (release)"
scripts/cluster.sh install
cargo build --release -p trainer
log "demo 3/6: private cluster"
scripts/cluster.sh start
log "demo 4/6: extension in database ${PGDATABASE}"
# The database's comment records which build of the extension's SQL script created its objects.
default_version="$(psql -Atqc "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_recsys'")"
script_hash="$(sha256sum "$("${PG_CONFIG}" --sharedir)/extension/pg_recsys--${default_version}.sql" | cut -c1-16)"
if [ "${RESET}" = 1 ]; then
  log "reset: dropping and recreating database ${PGDATABASE}"
  psql -d postgres -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS ${PGDATABASE} WITH (FORCE)" -c "CREATE DATABASE ${PGDATABASE}"
fi
installed_version="$(psql -Atqc "SELECT extversion FROM pg_extension WHERE extname = 'pg_recsys'")"
if [ -n "${installed_version}" ] && [ "${installed_version}" != "${default_version}" ]; then
  log "updating pg_recsys ${installed_version} -> ${default_version} in ${PGDATABASE} (ratings, models and the batch are kept)"
  psql -v ON_ERROR_STOP=1 -qc "ALTER EXTENSION pg_recsys UPDATE" -c "COMMENT ON DATABASE ${PGDATABASE} IS 'pg_recsys script ${script_hash}'"
fi
stale="$(psql -Atqc "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'pg_recsys')
                       AND shobj_description(oid, 'pg_database') IS DISTINCT FROM 'pg_recsys script ${script_hash}'
                     FROM pg_database WHERE datname = current_database()")"
if [ "${stale}" = t ]; then
  die "database ${PGDATABASE} holds pg_recsys ${default_version} objects from another development build of the same version's SQL script (released versions update with ALTER EXTENSION pg_recsys UPDATE); keep what you need, then run: scripts/demo.sh --reset"
fi
psql -v ON_ERROR_STOP=1 -qc "CREATE EXTENSION IF NOT EXISTS pg_cron" \
     -c "CREATE EXTENSION IF NOT EXISTS pg_recsys" \
     -c "ALTER DATABASE ${PGDATABASE} SET search_path = \"\$user\", public, recsys" \
     -c "COMMENT ON DATABASE ${PGDATABASE} IS 'pg_recsys script ${script_hash}'"
log "demo 5/6: import the demo data (seeds/) with the real importers; re-running merges, nothing is duplicated"
"${TRAINER}" import movielens seeds/demo/movielens
"${TRAINER}" import imdb seeds/demo/imdb
if [ "${TRAIN}" = 1 ]; then
  log "demo 6/6: train the hybrid model on the demo data, evaluate it and register + activate it; refresh the batch"
  "${TRAINER}" train --activate --if-data-changed
  psql -v ON_ERROR_STOP=1 -c "CALL recsys_refresh_batch(10)"
  psql -c "SELECT version, status, created_at, round((metrics #>> '{random_holdout,model,rmse}')::numeric, 4) AS rmse,
                  round((metrics #>> '{random_holdout,bias_baseline,rmse}')::numeric, 4) AS bias_baseline_rmse
           FROM models ORDER BY version DESC LIMIT 3"
  for user in 1 2; do
    psql -c "SELECT m.title, m.year, r.rating AS rated FROM ratings r JOIN movies m USING (movie_id)
             WHERE r.user_id = ${user} ORDER BY r.rating DESC, m.title LIMIT 5" \
         -c "SELECT rank, title, year, genres, round(score::numeric, 2) AS predicted, model_version
             FROM recommendations_report WHERE user_id = ${user} ORDER BY rank"
  done
  psql -c "SELECT round(recsys_predict_new(1, 'The Midnight Heist', ARRAY['Crime','Thriller'],
                  ARRAY['Christopher Nolan'], ARRAY['Christian Bale', 'Michael Caine'], 130, 2026)::numeric, 2)
                  AS predicted_for_user_1_new_nolan_heist_film"
  psql -c "SELECT rank, title, round(score::numeric, 2) AS predicted, because FROM recsys_recommend(1, 3, explain => true)"
  psql -c "SELECT component, detail, round(contribution::numeric, 3) AS contribution
           FROM recsys_explain(1, (SELECT movie_id FROM recommendations_report WHERE user_id = 1 AND rank = 1))" \
       -c "SELECT rank, title, round(similarity::numeric, 3) AS similarity FROM recsys_similar_movies(1, 5)" \
       -c "SELECT rank, user_id, round(similarity::numeric, 3) AS similarity FROM recsys_similar_users(1, 5)"
fi
psql -c "SELECT * FROM recsys_version_info()"
psql -c "SELECT (SELECT count(*) FROM movies) AS movies, (SELECT count(*) FROM users) AS users,
                (SELECT count(*) FROM ratings) AS ratings, (SELECT count(*) FROM persons) AS persons"
log "done. Connect with: eval \"\$(scripts/cluster.sh env)\" && psql"
