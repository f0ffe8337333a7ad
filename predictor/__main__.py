"""`python -m predictor`: kserve's flags plus ours, then kserve's ModelServer (see kserve_seam)."""

from __future__ import annotations

import os
import sys
import tempfile
import warnings
from pathlib import Path


def prepare_metrics_dir() -> None:
    """Multiprocess metrics need their directory before prometheus_client is first imported (kserve
    imports it), and a restarted container must not add its counters to the previous run's."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="forecaster-metrics-")
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):
        stale.unlink()


def main(argv: list[str] | None = None) -> None:
    prepare_metrics_dir()  # in main, not on import: kserve's spawned workers re-import this module
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")  # kserve's, not ours
    from predictor import kserve_seam

    kserve_seam.serve(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
