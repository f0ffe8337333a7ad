#!/usr/bin/env bash
# The test command (README, .ci/run): install everything from the project's own files, lint, test.
# Tests read ../shared/data (override with FORECASTER_SHARED) and never touch the internet.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup-checkov.sh   # checkov lives in .venv-checkov: its pins would downgrade .venv
bash scripts/system-deps.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
