# helm test of one predictor (standard library only): ready within the timeout, then one v2
# inference whose forecast is finite and inside its own 80% interval. Exit 1 with the reason.
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request

url, model = os.environ["FORECASTER_TEST_URL"].rstrip("/"), os.environ["FORECASTER_TEST_MODEL"]
window = int(os.environ["FORECASTER_TEST_WINDOW"])
deadline = time.monotonic() + float(os.environ["FORECASTER_TEST_TIMEOUT_S"])
headers = {"content-type": "application/json"}
if os.environ.get("FORECASTER_TEST_TOKEN"):
    headers["authorization"] = "Bearer " + os.environ["FORECASTER_TEST_TOKEN"]


def call(path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, json.loads(response.read() or b"{}")


while True:
    try:
        if call(f"/v2/models/{model}/ready")[0] == 200:
            break
    except (OSError, ValueError) as error:
        last = error
    else:
        last = "not ready"
    if time.monotonic() > deadline:
        sys.exit(f"FAIL {model} at {url}: not ready in time ({last})")
    time.sleep(5)

closes = [30.0 * math.exp(0.002 * i + 0.01 * math.sin(i)) for i in range(window)]
body = {"inputs": [{"name": "closes", "shape": [1, window], "datatype": "FP64", "data": closes}]}
try:
    status, answer = call(f"/v2/models/{model}/infer", body)
except urllib.error.HTTPError as error:
    sys.exit(f"FAIL {model}: inference answered {error.code}: {error.read()[:300]!r}")
outputs = {o["name"]: o["data"][0] for o in answer.get("outputs", [])}
forecast, low, high = outputs.get("forecast"), outputs.get("lower_80"), outputs.get("upper_80")
if forecast is None or not math.isfinite(forecast) or not (low <= forecast <= high):
    sys.exit(f"FAIL {model}: unexpected answer {answer}")
print(f"OK {model}: forecast {forecast:.4f} in [{low:.4f}, {high:.4f}] from {url}")
