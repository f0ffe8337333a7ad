#!/usr/bin/env bash
# The main job, offline: install, start an MLflow server (SQLite), train on the packaged sample,
# register and promote, compute the champion's online calibration state with the monitor, serve the
# champion with the KServe predictor (which serves that state), answer one v2 request, then the next
# session's forecast in one call through the KServe transformer (closes from the sample), stop.
# The sample is fixed data (it ends 2024-12-30): both requests name the date they forecast from
# (AS_OF); asked "as of today", the transformer refuses data that old (503, --max-age-s).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=.venv/bin/python
MLFLOW_PORT=${MLFLOW_PORT:-5000}
HTTP_PORT=${HTTP_PORT:-8080}
GRPC_PORT=${GRPC_PORT:-8081}
TRANSFORMER_PORT=${TRANSFORMER_PORT:-8082}
AS_OF=${AS_OF:-2024-12-27}  # inside the packaged sample (2019-01-02..2024-12-30): fixed data, not today's
STATE=${STATE:-.demo}
mkdir -p "$STATE"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

wait_http() { # url what seconds
  for _ in $(seq "$3"); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 1; done
  echo "timed out waiting for $2 ($1)" >&2; return 1
}

echo "== 1/6 MLflow tracking server on 127.0.0.1:$MLFLOW_PORT (SQLite, artifacts served; logs in $STATE/)"
MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false .venv/bin/mlflow server --host 127.0.0.1 --port "$MLFLOW_PORT" \
  --backend-store-uri "sqlite:///$PWD/$STATE/mlflow.db" --artifacts-destination "$PWD/$STATE/artifacts" \
  --workers 1 >"$STATE/mlflow.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$MLFLOW_PORT/health" "MLflow" 120

echo "== 2/6 training on the packaged sample (train -> evaluate -> ONNX -> register -> gate)"
$PY -m training --source sample --tracking-uri "http://127.0.0.1:$MLFLOW_PORT" \
  --output-dir "$STATE/out" 2> >(grep -vE "Tip:|GPU available|TPU available|pre-processing|Quantization param" >&2)

echo "== 3/6 the monitor, once: realized accuracy and the champion's online calibration state"
echo "   (from the sample's closes, open, high and low; written to $STATE/calibration/aapl-forecaster.json)"
$PY -c "from marketdata.frames import read_sample; read_sample().to_csv('$STATE/sample.csv', index=False)"
$PY -m monitor --once --model-source "models:/aapl-forecaster@champion" --model-name aapl-forecaster \
  --tracking-uri "http://127.0.0.1:$MLFLOW_PORT" --source csv --csv "$STATE/sample.csv" --calendar XNYS \
  --calibration-dir "$STATE/calibration" 2> >(grep -E "monitor|calibration" >&2)

echo "== 4/6 KServe predictor serving models:/aapl-forecaster@champion on 127.0.0.1:$HTTP_PORT"
echo "   (with the online calibration state while it is fresh: answers say so in \"parameters\")"
$PY -m predictor --model_name aapl-forecaster --model-source "models:/aapl-forecaster@champion" \
  --tracking-uri "http://127.0.0.1:$MLFLOW_PORT" --http_port "$HTTP_PORT" --grpc_port "$GRPC_PORT" \
  --calibration-dir "$STATE/calibration" >"$STATE/predictor.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$HTTP_PORT/v2/health/ready" "predictor readiness" 120

echo "== 5/6 one Open Inference Protocol v2 request: the sample's 60 closes up to $AS_OF"
$PY scripts/request.py --url "http://127.0.0.1:$HTTP_PORT" --model aapl-forecaster --as-of "$AS_OF"

echo "== 6/6 the next session's forecast in one call: the KServe transformer on 127.0.0.1:$TRANSFORMER_PORT"
echo "   (kserve --predictor_host; closes from the packaged sample, offline. The sample is fixed data:"
echo "   the call names its as-of date, $AS_OF, and is judged fresh against that session)"
$PY -m transformer --model_name aapl-forecaster --predictor_host "127.0.0.1:$HTTP_PORT" \
  --http_port "$TRANSFORMER_PORT" --ticker AAPL --source sample --calendar XNYS \
  >"$STATE/transformer.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$TRANSFORMER_PORT/v2/health/ready" "transformer readiness" 60
echo "\$ curl -s -X POST localhost:$TRANSFORMER_PORT/v1/models/aapl-forecaster:predict -d '{\"instances\": [{\"as_of\": \"$AS_OF\"}]}'"
curl -fsS -X POST "http://127.0.0.1:$TRANSFORMER_PORT/v1/models/aapl-forecaster:predict" \
  -d "{\"instances\": [{\"as_of\": \"$AS_OF\"}]}" | $PY -m json.tool
echo "done: stopping the transformer, the predictor and MLflow"
