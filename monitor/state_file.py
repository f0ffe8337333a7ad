"""The calibration state as a file: `<dir>/<model name>.json`, written atomically (a reader sees the
old state or the new one, never half of one). Outside a cluster (tests, the demo) the predictor's
`--calibration-dir` is this directory; in a cluster the ConfigMap store is used instead."""

from __future__ import annotations

import logging
from pathlib import Path

from pydantic import ValidationError

from bundle.online import OnlineState, load, save

log = logging.getLogger(__name__)


class FileStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def where(self, model: str) -> str:
        return str(self.directory / f"{model}.json")

    def read(self, model: str) -> OnlineState | None:
        """The stored state, or None (none yet, or one that fails validation: it is replaced)."""
        path = self.directory / f"{model}.json"
        if not path.is_file():
            return None
        try:
            return load(path)
        except ValidationError as exc:
            log.warning("%s is not a valid state and will be replaced: %s", path, " ".join(str(exc).split()))
            return None

    def write(self, model: str, state: OnlineState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        save(state, self.directory / f"{model}.json")
