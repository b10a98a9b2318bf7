#!/usr/bin/env bash
# Installs the Debian packages Spate's build and tests need. Idempotent: when everything is
# present it only runs dpkg-query and exits; `apt-get update` runs only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git curl python3
  libboost-dev libyaml-cpp-dev libcli11-dev libfmt-dev libspdlog-dev
  liblz4-dev libzstd-dev libxxhash-dev libsimdjson-dev zlib1g-dev libre2-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev zstd
  libpq-dev postgresql
  libhiredis-dev redis-server
  libsqlite3-dev sqlite3
  python3-aiosmtpd
  librdkafka-dev kcat
  nodejs
  prometheus
  chromium
)
# `--fuzz`: also the clang toolchain and runtime that libFuzzer needs (make fuzz).
# `--bench`: also the load generator and the HTTP peer of the benchmarks (make bench).
for arg in "$@"; do
  case "$arg" in
    --fuzz) PACKAGES+=(clang libclang-rt-14-dev) ;;
    --bench) PACKAGES+=(wrk nginx-light) ;;
  esac
done

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# npm (the Kubernetes schema validation and, later, the web UI tests): Debian's `npm` package,
# unless a nodejs build that bundles npm (e.g. NodeSource's) already provides the command.
if ! command -v npm >/dev/null 2>&1; then missing+=(npm); fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
