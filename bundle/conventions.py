"""Conventions every package shares (training, predictor, monitor, retrainer; all images ship bundle/).

One command-line convention: kebab-case flags, `--flag/--no-flag` booleans, help text from each
field's description, and an environment variable per flag under `FORECASTER_<PREFIX>_`.
"""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

CLI_CONVENTION = {"cli_kebab_case": True, "cli_implicit_flags": True}


def settings_config(package: str, env_prefix: str, extra: str = "forbid") -> SettingsConfigDict:
    """The `model_config` of a package's settings: `python -m <package>`, `FORECASTER_<env_prefix>_*`."""
    return SettingsConfigDict(
        env_prefix=f"FORECASTER_{env_prefix}_", cli_prog_name=f"python -m {package}", extra=extra,
        **CLI_CONVENTION,
    )  # fmt: skip
