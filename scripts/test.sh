#!/usr/bin/env bash
# Installs everything the tests need (Python packages into ./.venv, the JavaScript
# socket.io-client into tests/js/node_modules, the page's libraries into the package, and
# Debian's Chromium for the browser tests when it is missing) and runs the whole test suite.
# Extra arguments go to pytest (for example: -k loader, -x). Test files run in parallel processes
# (AURA_TEST_WORKERS, default 3; 0 runs them in this process, one after the other).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
bash scripts/build_page.sh
SUDO=$([ "$(id -u)" = 0 ] || echo "sudo")
export DEBIAN_FRONTEND=noninteractive
# Debian packages the tests use: chromium (the page), prometheus (its promtool checks /metrics).
for tool in chromium:chromium promtool:prometheus; do
    command -v "${tool%%:*}" >/dev/null 2>&1 && continue
    $SUDO apt-get install -y --no-install-recommends "${tool#*:}" \
        || { $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends "${tool#*:}"; } \
        || echo "could not install ${tool#*:}: the tests needing ${tool%%:*} will be skipped (or fail under CI=true)" >&2
done
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
npm ci --prefix tests/js --no-audit --no-fund --loglevel=error
# Playwright drives the system Chromium; it never downloads a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
exec .venv/bin/python -m pytest -n "${AURA_TEST_WORKERS:-3}" --dist loadfile "$@"
