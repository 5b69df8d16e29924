#!/usr/bin/env bash
# Installs the dashboard into ./.venv and serves it with the shipped configuration.
# Extra arguments go to `aura-dashboard` (for example: --config PATH, check-config).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
bash scripts/build_page.sh
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet .
exec .venv/bin/aura-dashboard "$@"
