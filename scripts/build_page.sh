#!/usr/bin/env bash
# Installs the page's browser libraries from npm (exact versions of frontend/package-lock.json)
# and copies them into aura_dashboard/web/static/vendor/, which the package then ships.
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --prefix frontend --no-audit --no-fund --loglevel=error
node frontend/build.mjs
