"""`python -m training --help`: train, evaluate, export, register."""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError
from pydantic_settings import CliApp

from training.errors import DataError, TrainingError
from training.settings import TrainSettings

EXIT_DATA = 2  # bad data or settings: fix the input
EXIT_FAILED = 1  # training could not produce a checked bundle (or a bug: Python's own traceback)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for noisy in (
        "mlflow",
        "alembic",
        "urllib3",
        "yfinance",
        "lightning.pytorch",
        "lightning.fabric",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        settings = CliApp.run(TrainSettings, cli_args=sys.argv[1:] if argv is None else argv)
    except ValidationError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return EXIT_DATA
    from training import pipeline
    from training.report import summary

    try:
        result = pipeline.run(settings)
    except DataError as exc:
        print(f"error: data: {exc}; nothing was registered", file=sys.stderr)
        return EXIT_DATA
    except TrainingError as exc:
        print(f"error: {type(exc).__name__}: {exc}; nothing was registered", file=sys.stderr)
        return EXIT_FAILED
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
