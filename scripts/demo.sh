#!/usr/bin/env bash
# The whole pipeline on the bundled sample: install, `meltano run`, then what the engine found.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
# The store: personalize.duckdb here, unless PERSONALIZE_DATABASE_URL names another.
export PERSONALIZE_DATABASE_URL="${PERSONALIZE_DATABASE_URL:-duckdb:///$PWD/personalize.duckdb}"
export TARGET_PERSONALIZE_DATABASE_URL="$PERSONALIZE_DATABASE_URL"
meltano install
meltano run tap-clickstream target-personalize
personalize summary
personalize funnel --conversion purchase
personalize report --conversion purchase --out report.html
personalize fit --conversion purchase
# A sample visitor from the bundled data: 7 product views, a cart and a purchase so far.
personalize recommend --session 192d6074-8b67-4127-92ee-7e8d336f941a -k 10
