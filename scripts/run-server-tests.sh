#!/usr/bin/env bash
# Runs the server's end-to-end tests (tests/server, pytest + openai client) against a build:
# scripts/run-server-tests.sh [BUILD_DIR] [pytest args...]. Creates the test venv first; if
# that fails, this fails (the tests are never skipped). PYTEST_DIR picks another suite with the
# same venv (tests/deploy: replicas behind HAProxy).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build_dir="$(cd "${1:-$root/build}" && pwd)"
shift || true
"$root/scripts/setup-test-venv.sh" "$build_dir"
export NANOVLLM_BIN="${NANOVLLM_BIN:-$build_dir/bin/nanovllm}"
cd "$root/${PYTEST_DIR:-tests/server}"
exec "$build_dir/venv-test/bin/python" -m pytest -q -p no:cacheprovider "$@" .
