#!/usr/bin/env bash
# The weekly cycle: import the new week's ratings → train → register → activate only if the new model beats the
# active one on ratings it has not seen → refresh batch_recommendations. Connects with the standard PG* variables
# (for the private cluster: eval "$(scripts/cluster.sh env)"); the role needs recsys_admin.
#   scripts/weekly.sh [--movielens DIR] [--imdb DIR] [-- extra trainer train flags]
# Cron example (Sundays 02:00; the script refreshes the batch itself):
#   0 2 * * 0  cd /srv/pg_recsys && PGDATABASE=recsys scripts/weekly.sh --movielens /data/new-week >> /var/log/recsys-weekly.log 2>&1
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRAINER="${RECSYS_TRAINER:-${REPO_ROOT}/target/release/trainer}"
PSQL="${PSQL:-/usr/lib/postgresql/15/bin/psql}"
REFRESH_K="${RECSYS_REFRESH_K:-10}"

movielens="" imdb=""
while [ $# -gt 0 ]; do
  case "$1" in
    --movielens) movielens="$2"; shift 2 ;;
    --imdb) imdb="$2"; shift 2 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--movielens DIR] [--imdb DIR] [-- trainer train flags]" >&2; exit 2 ;;
  esac
done
[ -x "${TRAINER}" ] || { echo "trainer not found at ${TRAINER} (cargo build --release -p trainer, or set RECSYS_TRAINER)" >&2; exit 1; }

step() { printf '\033[1;34m[weekly]\033[0m %s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
if [ -n "${movielens}" ]; then step "1/3 import new ratings from ${movielens}"; "${TRAINER}" import movielens "${movielens}"; fi
if [ -n "${imdb}" ]; then step "1/3 import IMDb metadata from ${imdb}"; "${TRAINER}" import imdb "${imdb}"; fi
step "2/3 train, register, activate if better than the active model"
"${TRAINER}" train --activate-if-better "$@"
step "3/3 refresh batch_recommendations with the active model"
"${PSQL}" -X -v ON_ERROR_STOP=1 -qc "CALL recsys.recsys_refresh_batch(${REFRESH_K})"
"${PSQL}" -X -c "SELECT run_id, kind, model_version, duration_seconds, prospective_rmse, prospective_ratings,
                        catalogue_coverage_percent, changed_percent, previous_batch_users AS rated_after_batch,
                        round(previous_batch_recall_at_10::numeric, 3) AS batch_recall, round(popularity_recall_at_10::numeric, 3) AS popularity_recall,
                        round(previous_batch_hit_rate::numeric, 3) AS batch_hit_rate, round(popularity_hit_rate::numeric, 3) AS popularity_hit_rate
                 FROM recsys.quality_history ORDER BY run_id DESC LIMIT 4"
step "done"
