"""Send the sample's window ending at an as-of date to a running predictor (v2 REST) and print the answer.

The packaged sample is fixed data (it ends on 2024-12-30), so the demo names the date it forecasts
from, as it does when it asks the transformer: a forecast "as of today" from it would be years stale.
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from datetime import date

from training.data import SAMPLE_DESCRIPTION, read_sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", default="http://127.0.0.1:8080")
    parser.add_argument("--model", default="aapl-forecaster")
    parser.add_argument(
        "--as-of", type=date.fromisoformat, default=None,
        help="the last session of the window (YYYY-MM-DD; default: the sample's last)",
    )  # fmt: skip
    args = parser.parse_args()
    frame = read_sample()
    meta = json.load(urllib.request.urlopen(f"{args.url}/v2/models/{args.model}", timeout=10))
    window = meta["inputs"][0]["shape"][1]
    if args.as_of is not None:
        frame = frame[frame["date"].dt.date <= args.as_of]
    if len(frame) < window:
        raise SystemExit(
            f"--as-of {args.as_of}: the sample has {len(frame)} sessions up to it, the model needs {window}"
        )
    closes = frame["close"].to_numpy()[-window:].tolist()
    body = {
        "id": "demo",
        "inputs": [{"name": "closes", "shape": [1, window], "datatype": "FP64", "data": closes}],
    }
    request = urllib.request.Request(
        f"{args.url}/v2/models/{args.model}/infer",
        json.dumps(body).encode(),
        {"Content-Type": "application/json"},
    )
    answer = json.load(urllib.request.urlopen(request, timeout=10))
    out = {o["name"]: o["data"][0] for o in answer["outputs"]}
    last = frame["date"].iloc[-1]
    print(
        f"model {args.model} version {meta['versions'][0]} ({meta['platform']}); input: {SAMPLE_DESCRIPTION}"
    )
    print(f"as of {last:%Y-%m-%d} (fixed sample data, not today's market): the {window} closes up to it")
    print(f"last close {last:%Y-%m-%d}: {closes[-1]:.2f} (the naive forecast for the next session)")
    print(f"D+1 forecast: {out['forecast']:.2f}")
    for pct in (80, 95):
        if f"lower_{pct}" in out:
            print(f"  {pct}% interval: [{out[f'lower_{pct}']:.2f}, {out[f'upper_{pct}']:.2f}]")
    calibration = answer.get("parameters") or {}
    if calibration:
        print("  intervals from the " + ", ".join(f"{k}={v}" for k, v in calibration.items()))
    shown = {**body, "inputs": [{**body["inputs"][0], "data": [f"...{window} closes..."]}]}
    print("request:", json.dumps(shown))
    print("response outputs:", json.dumps(answer["outputs"])[:400], "...")


if __name__ == "__main__":
    main()
