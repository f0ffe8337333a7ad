"""`python -m retrainer --help`: serve the Alertmanager webhook (flags or FORECASTER_RETRAINER_*)."""

from __future__ import annotations

import logging
import sys

import uvicorn
from pydantic_settings import CliApp

from retrainer.app import create_app
from retrainer.settings import RetrainerSettings


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = CliApp.run(RetrainerSettings, cli_args=sys.argv[1:] if argv is None else argv)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=False)


if __name__ == "__main__":
    main()
