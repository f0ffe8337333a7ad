"""`python -m transformer`: kserve's flags (--predictor_host, ...) plus ours, then kserve's ModelServer."""

from __future__ import annotations

import sys
import warnings


def main(argv: list[str] | None = None) -> None:
    from predictor.__main__ import prepare_metrics_dir

    prepare_metrics_dir()  # before prometheus_client is first imported (kserve imports it)
    warnings.filterwarnings("ignore", message=".*ORJSONResponse is deprecated.*")  # kserve's, not ours
    from transformer import kserve_seam

    kserve_seam.serve(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
