"""Issue 12's training target: a 10-ticker universe trained with the Indexed Job's per-index command,
run locally in sequence against one SQLite MLflow, must register one champion per ticker.

`python -m bench.train_universe [--max-epochs 5]`: each index runs exactly what one pod of the
bootstrap Indexed Job runs, `python -m training --universe T0,..,T9 --skip-if-champion
--require-promotion ...` with `JOB_COMPLETION_INDEX=i` in its environment, then the champions are
read back from the registry with MlflowClient.

The 10 series are NOT 10 markets: they are copies of the two real series available offline, the
packaged AAPL sample (hvsampledata) and ../shared/data/petr4_daily.csv, each cut at a different last
session (`--cut-step` sessions apart) so that every ticker trains and is tested on its own sessions,
saved as `<csv-dir>/<TICKER>.csv` under made-up tickers (AAPL-CUT0.., PETR4-CUT0..).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import PETR4_CSV, PY, REPO, save
from bundle.conventions import model_name_for
from marketdata.frames import normalize_columns, read_csv, read_sample


def write_universe(csv_dir: Path, per_series: int, cut_step: int, last: int | None = None) -> dict[str, int]:
    """`per_series` cut copies of each real series (its `last` sessions, default all) as
    <TICKER>.csv; returns ticker -> sessions, in order."""
    csv_dir.mkdir(parents=True, exist_ok=True)
    series = {"AAPL": normalize_columns(read_sample()), "PETR4": read_csv(PETR4_CSV)}
    series = {label: frame.iloc[-last:] if last else frame for label, frame in series.items()}
    tickers = {}
    for k in range(per_series):
        for label, frame in series.items():
            ticker = f"{label}-CUT{k}"
            cut = frame.iloc[: len(frame) - k * cut_step] if k else frame
            cut.to_csv(csv_dir / f"{ticker}.csv", index=False, date_format="%Y-%m-%d")
            tickers[ticker] = len(cut)
    return tickers


def per_index_command(universe: list[str], csv_dir: Path, work: Path, args) -> list[str]:
    """One pod's command (the bootstrap Indexed Job's), the index coming from JOB_COMPLETION_INDEX."""
    return [
        PY, "-m", "training", "--source", "csv", "--csv-dir", str(csv_dir),
        "--universe", ",".join(universe),
        "--tracking-uri", f"sqlite:///{work / 'mlflow.db'}", "--artifact-root", str(work / "artifacts"),
        "--output-dir", str(work / "out"), "--skip-if-champion", "--require-promotion",
        "--max-epochs", str(args.max_epochs), "--patience", str(args.patience),
    ]  # fmt: skip


def champions(universe: list[str], tracking_uri: str) -> dict[str, dict]:
    """Each ticker's champion as the registry has it (None where it has none)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    out = {}
    for ticker in universe:
        name = model_name_for(ticker)
        try:
            version = client.get_model_version_by_alias(name, "champion")
        except MlflowException:
            out[ticker] = None
            continue
        out[ticker] = {"model": name, "version": version.version, "mae_ratio": version.tags.get("mae_ratio")}
    return out


def child_cpu() -> float:
    """CPU seconds (user + system) of the finished children: robust where wall time is shared."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-series", type=int, default=5, help="cut copies of each real series")
    parser.add_argument("--cut-step", type=int, default=40, help="sessions between two copies' ends")
    parser.add_argument("--last", type=int, default=None, help="keep each real series' last N sessions")
    parser.add_argument("--max-epochs", type=int, default=5, help="epochs at most per ticker")
    parser.add_argument("--patience", type=int, default=2, help="early-stopping patience")
    parser.add_argument("--work", type=Path, default=None, help="MLflow and CSVs here (default: a temp dir)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="train-universe-"))
    csv_dir = work / "csv"
    sessions = write_universe(csv_dir, args.per_series, args.cut_step, args.last)
    universe = list(sessions)
    command = per_index_command(universe, csv_dir, work, args)
    runs, started = [], time.perf_counter()
    for index, ticker in enumerate(universe):
        env = {**os.environ, "JOB_COMPLETION_INDEX": str(index), "PYTHONPATH": str(REPO)}
        t0, cpu0 = time.perf_counter(), child_cpu()
        done = subprocess.run(command, check=False, env=env, capture_output=True, text=True, cwd=work)
        seconds, cpu = time.perf_counter() - t0, child_cpu() - cpu0
        runs.append({"index": index, "ticker": ticker, "exit": done.returncode, "seconds": round(seconds, 1),
                     "cpu_seconds": round(cpu, 1), "loadavg_1m": os.getloadavg()[0]})  # fmt: skip
        print(
            f"index {index} {ticker}: exit {done.returncode} in {seconds:.1f} s ({cpu:.1f} s CPU)", flush=True
        )
        if done.returncode:
            print(done.stdout[-2000:], done.stderr[-2000:])
    wall = time.perf_counter() - started
    registered = champions(universe, f"sqlite:///{work / 'mlflow.db'}")
    for ticker, champion in registered.items():
        print(f"{ticker}: {champion or 'NO CHAMPION'}")
    count = sum(c is not None for c in registered.values())
    print(f"{count}/{len(universe)} champions; wall {wall:.1f} s")
    path = save("train_universe", {
        "command": " ".join(command[1:]) + "  (JOB_COMPLETION_INDEX=0..N-1)",
        "series": "copies of two real series: the packaged AAPL sample and ../shared/data/petr4_daily.csv",
        "sessions": sessions,
        "max_epochs": args.max_epochs, "patience": args.patience, "wall_seconds": round(wall, 1),
        "runs": runs, "champions": registered, "champion_count": count,
    })  # fmt: skip
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
