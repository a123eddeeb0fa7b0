#!/usr/bin/env bash
# Set-up in one command on Debian 12: installs what is missing, builds, then
#   ./dev.sh node [NODE OPTIONS]   runs a node with defaults (or your options)
#   ./dev.sh test                  runs every test (unit + end to end)
#   ./dev.sh build                 only builds
# BUILD (default: build), WM_WERROR and WM_SANITIZER are passed to CMake.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(
  build-essential cmake pkg-config curl
  libzmq3-dev libsodium-dev liblmdb-dev libcjson-dev libmicrohttpd-dev
  libcurl4-openssl-dev libssl-dev libzip-dev libcmocka-dev
  python3 python3-venv python3-pip-whl python3-setuptools-whl
  python3-wheel-whl python3-zmq python3-nacl python3-yaml nginx-light iproute2
  logrotate
)
BUILD=${BUILD:-build}

install_missing() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
      missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "dev.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  cmake -S . -B "$BUILD" -DWM_WERROR="${WM_WERROR:-OFF}" \
    -DWM_SANITIZER="${WM_SANITIZER:-none}" -DWM_TEST_HOOKS="${WM_TEST_HOOKS:-ON}" >/dev/null
  cmake --build "$BUILD" -j"$(nproc)"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
  node)  install_missing; build; exec "$BUILD/node/wheelmesh" node "$@" ;;
  test)  install_missing; build
         cd "$BUILD" && exec ctest --output-on-failure -j2 "$@" ;;
  build) install_missing; build ;;
  *) echo "usage: ./dev.sh node [OPTIONS] | test [CTEST OPTIONS] | build" >&2
     exit 2 ;;
esac
