#!/usr/bin/env bash
# Create .venv in the repository root and install the project with every extra, offline-safe:
# torch is installed first, pinned to the CPU build (an unpinned torch pulls a multi-GB CUDA build),
# then everything else held by constraints.txt. Re-running is cheap: a stamp skips a finished install.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-train,serve,dev,deploy}
stamp=".venv/.installed-$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)-${EXTRAS//,/-}"
if [ -f "$stamp" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
torch_pin=$(grep -E '^torch==' constraints.txt)
.venv/bin/python -m pip install --quiet "$torch_pin"
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[${EXTRAS}]"
rm -f .venv/.installed-*
touch "$stamp"
