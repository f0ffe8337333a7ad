#!/usr/bin/env bash
# Every benchmark, then BENCHMARKS.md. Not part of the tests; bounded, loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS=${EXTRAS:-train,serve,dev,bench} bash scripts/setup.sh
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get update -qq; $sudo apt-get install -y -qq wrk >/dev/null; }
PY=.venv/bin/python
$PY -m bench.accuracy
$PY -m bench.intervals
$PY -m bench.inference
$PY -m bench.serving
$PY -m bench.coldstart
$PY -m bench.one_call
$PY -m bench.universe --mlflow
$PY -m bench.train_universe --last 1500 --max-epochs 2 --patience 1
$PY -m bench.report
