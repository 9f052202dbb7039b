#!/usr/bin/env bash
# The whole pipeline on the bundled sample: install, `meltano run`, then what the engine found.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
STORE="duckdb:///$PWD/personalize.duckdb"
meltano install
meltano run tap-clickstream target-personalize
personalize summary --database-url "$STORE"
