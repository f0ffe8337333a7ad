"""`python -m retrainer`: serve the Alertmanager webhook (settings from FORECASTER_RETRAINER_*)."""

from __future__ import annotations

import logging

import uvicorn

from retrainer.app import create_app
from retrainer.settings import RetrainerSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = RetrainerSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=False)


if __name__ == "__main__":
    main()
