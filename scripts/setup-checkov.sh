#!/usr/bin/env bash
# checkov in a venv of its own (.venv-checkov): its dependency pins (packaging 23, networkx 2,
# importlib-metadata 7, cachetools 5, ...) would downgrade packages of the project's .venv.
# Pinned by constraints.txt like everything else. Re-running is cheap: a stamp skips a finished install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
pin=$(grep -E '^checkov==' constraints.txt)
stamp=".venv-checkov/.installed-${pin#checkov==}"
if [ -f "$stamp" ]; then exit 0; fi
[ -x .venv-checkov/bin/python ] || "$PYTHON" -m venv .venv-checkov
.venv-checkov/bin/python -m pip install --quiet --upgrade pip
.venv-checkov/bin/python -m pip install --quiet -c constraints.txt "$pin"
rm -f .venv-checkov/.installed-*
touch "$stamp"
