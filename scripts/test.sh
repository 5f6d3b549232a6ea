#!/usr/bin/env bash
# The project's test command (the README's second command). On a fresh machine it first
# installs the real programs the end-to-end tests use (rotel, Prometheus, promtool, hey,
# wrk, the Compose validator, hadolint; see scripts/install-test-tools.sh), then runs every
# test in the workspace, doctests included.
#
# Tests that need one of those programs fail loudly under CI=true when it is missing, and
# elsewhere print a SKIPPED line saying why.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-tools.sh
# shellcheck disable=SC1091
source .tools/env

cargo test --workspace --all-features --no-fail-fast "$@"
