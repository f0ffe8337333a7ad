"""Conventions every package shares (training, predictor, monitor, retrainer; all images ship bundle/).

One command-line convention: kebab-case flags, `--flag/--no-flag` booleans, help text from each
field's description, and an environment variable per flag under `FORECASTER_<PREFIX>_`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CLI_CONVENTION = {"cli_kebab_case": True, "cli_implicit_flags": True}


def settings_config(package: str, env_prefix: str, extra: str = "forbid") -> SettingsConfigDict:
    """The `model_config` of a package's settings: `python -m <package>`, `FORECASTER_<env_prefix>_*`."""
    return SettingsConfigDict(
        env_prefix=f"FORECASTER_{env_prefix}_", cli_prog_name=f"python -m {package}", extra=extra,
        **CLI_CONVENTION,
    )  # fmt: skip


def model_name_for(ticker: str) -> str:
    """`PETR4.SA` -> `petr4-sa-forecaster`: the registered model, the served name and the monitor's
    `model` label of a ticker; one rule, so training and the monitor always agree."""
    return re.sub(r"[^a-z0-9]+", "-", ticker.lower()).strip("-") + "-forecaster"


# Yahoo's spellings (PETR4.SA, ^BVSP, BRL=X, BRK-B) and nothing that could leave a directory.
_TICKER = re.compile(r"[A-Za-z0-9^][A-Za-z0-9^=._-]*")


def parse_universe(text: str) -> tuple[str, ...]:
    """`PETR4.SA,VALE3.SA` -> the tickers in order (an Indexed Job's index is a position in it).

    Raises ValueError on an empty entry, a character outside Yahoo's spellings, or two tickers with
    one model name: two indexes would then train, register and promote the same model.
    """
    tickers = tuple(t.strip() for t in text.split(","))
    if not text.strip() or "" in tickers:
        raise ValueError(f"--universe {text!r} has an empty entry: give comma-separated tickers")
    names: dict[str, str] = {}
    for ticker in tickers:
        if not _TICKER.fullmatch(ticker) or not re.search(r"[A-Za-z0-9]", ticker):
            raise ValueError(f"--universe: {ticker!r} is not a ticker (letters, digits, ^ = . _ -)")
        other = names.setdefault(model_name_for(ticker), ticker)
        if other != ticker or tickers.count(ticker) > 1:
            raise ValueError(
                f"--universe lists {other!r} and {ticker!r}, which share the model name "
                f"{model_name_for(ticker)!r}: list each ticker once"
            )
    return tickers


class UniverseSettings(BaseSettings):
    """A ticker universe, one model per ticker (training's Indexed Job, the monitor's scoring), and
    its closes offline: the fields both packages read the same way."""

    universe: str | None = Field(
        None, description="comma-separated tickers, one model each (PETR4.SA -> petr4-sa-forecaster)"
    )
    csv_dir: Path | None = Field(
        None, description="directory of <TICKER>.csv closes (csv source): one per ticker of --universe"
    )

    @property
    def tickers(self) -> tuple[str, ...]:
        return parse_universe(self.universe) if self.universe else ()
