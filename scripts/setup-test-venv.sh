#!/usr/bin/env bash
# Creates the Python venv the server tests run in (openai client, requests, pytest) under a
# build directory: scripts/setup-test-venv.sh [BUILD_DIR]. Idempotent; fails loudly.
set -euo pipefail
build_dir="${1:-build}"
venv="$build_dir/venv-test"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import openai, requests, pytest, jsonschema" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "openai>=1.30" "requests>=2.31" "pytest>=7" "jsonschema>=4"
"$venv/bin/python" -c "import openai, requests, pytest, jsonschema"
