"""The libraries whose internals the servers subclass (kserve, uvicorn) are checked at start-up
(serving/cli.py)."""

from __future__ import annotations

import pytest

from serving import cli as versions
from tests.conftest import REPO


def test_another_kserve_version_refuses_to_start_naming_both_versions():
    versions.check_version("kserve", versions.KSERVE_VERSION)  # the installed one passes
    with pytest.raises(versions.VersionError, match=r"kserve 0\.22\.0 is installed.*0\.21\.0"):
        versions.check_version("kserve", "0.22.0")


def test_the_installed_kserve_is_the_one_the_seam_was_written_for():
    versions.check_version("kserve")


def test_another_uvicorn_version_refuses_to_start_naming_the_module_to_review():
    versions.check_version("uvicorn", versions.UVICORN_VERSION)
    written_for = r"uvicorn 0\.56\.0 is installed; serving/deadline\.py .*0\.55\.0"
    with pytest.raises(versions.VersionError, match=written_for):
        versions.check_version("uvicorn", "0.56.0")


def test_the_installed_uvicorn_is_the_one_the_deadline_protocol_was_written_for():
    versions.check_version("uvicorn")


def test_constraints_pin_the_checked_versions_and_httptools():
    lines = (REPO / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if "==" in line and not line.startswith("#"))
    assert pins["kserve"] == versions.KSERVE_VERSION and pins["uvicorn"] == versions.UVICORN_VERSION
    assert "httptools" in pins  # the parser of uvicorn's HttpToolsProtocol (serving/deadline.py)


@pytest.mark.parametrize("server", ["predictor", "transformer"])
@pytest.mark.parametrize("package", ["kserve", "uvicorn"])
def test_each_server_refuses_to_start_on_another_version(monkeypatch, server, package):
    """`python -m predictor` / `transformer` check both before anything else, naming what to review."""
    import importlib

    written_for, modules = versions.PINNED[package]
    monkeypatch.setitem(versions.PINNED, package, ("0.0.1", modules))  # the installed one is now "another"
    main = importlib.import_module(f"{server}.__main__")
    with pytest.raises(versions.VersionError, match=rf"{package} {written_for} is installed; .*0\.0\.1"):
        main.serve(["--model_name", "m", "--predictor_host", "127.0.0.1:9"])
