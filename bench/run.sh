#!/usr/bin/env bash
# The benchmark in one command: installs the dashboard into ./.venv, Glances (the idle-cost
# baseline) beside it, the `fast` extra (uvloop, for --uvloop), the page's libraries (the app
# refuses to start without them; scripts/build_page.sh), the Node baseline server and client
# driver (npm ci in bench/node), then runs every scenario. Arguments go to `python -m bench`
# (see --help), for example:
#   bash bench/run.sh --clients 100,1000,5000 --idle-clients 1000,10000
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet -e '.[fast]'
bash scripts/build_page.sh
# Measurement tools only, never dependencies of the package.
.venv/bin/python -m pip install --quiet 'glances[web]>=4.0' 'py-spy>=0.3'
exec .venv/bin/python -m bench "$@"
