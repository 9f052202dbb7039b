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
# An A/B test of the engine against popularity: define it, serve the sample's visitors through
# `personalize serve` (each is assigned, answered with its variant's list and a rec_id, and
# recorded), then read it out.
experiment="demo-$(date +%Y%m%d-%H%M%S)"
personalize experiment create "$experiment" --variant control=popularity \
  --variant engine=objectives:conversion=1,margin=0.5 --traffic 50,50 --conversion purchase
python scripts/demo_experiment.py "$experiment" 300
personalize experiment report --experiment "$experiment"
