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
EXIT_REFUSED = 3  # --require-promotion: the gate kept the new version away from the alias


def run(settings: TrainSettings) -> int:
    """Train unless --skip-if-champion finds one; the exit code says whether the alias is served."""
    from training import pipeline, registry
    from training.report import summary

    name, alias = settings.registered_name, settings.alias
    if settings.universe is not None:  # one pod of an Indexed Job: its log says which ticker it owns
        print(f"universe index {settings.universe_index}: {settings.ticker} -> {name}")
    if settings.registry and settings.skip_if_champion:
        version = registry.alias_version(settings)
        if version is not None:
            print(f"{name}@{alias} is version {version}: nothing to bootstrap")
            return 0
    result = pipeline.run(settings)
    print(summary(result))
    if settings.registry and settings.require_promotion and not result.decision.promote:
        reasons = "; ".join(result.decision.reasons)
        print(
            f"error: the gate refused the new version of {name} ({result.decision.outcome}: {reasons}); "
            f"{name}@{alias} was not moved",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    return 0


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
    try:
        return run(settings)
    except DataError as exc:
        print(f"error: data: {exc}; nothing was registered", file=sys.stderr)
        return EXIT_DATA
    except TrainingError as exc:
        print(f"error: {type(exc).__name__}: {exc}; nothing was registered", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
