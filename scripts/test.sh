#!/usr/bin/env bash
# Installs everything the tests need (Python packages into ./.venv, the JavaScript
# socket.io-client into tests/js/node_modules) and runs the whole test suite.
# Extra arguments go to pytest (for example: -k loader, -x).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
exec .venv/bin/python -m pytest "$@"
