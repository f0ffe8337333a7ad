"""The mutation-testing set-up (`[tool.mutmut]`, docs/testing.md): it names modules that exist and
copies every product package, and only a failing test kills a mutant (real pytest sessions with
the plugin it loads, read through mutmut's own exit-code table)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from mutmut.stats import status_by_exit_code

from tests.conftest import REPO
from tests.mutation_verdicts import SUSPICIOUS

pytest_plugins = ("pytester",)

PLUGIN = ("-p", "tests.mutation_verdicts")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
MUTMUT = PYPROJECT["tool"]["mutmut"]


def test_every_module_to_mutate_exists_inside_a_copied_package():
    # A moved module would otherwise drop out of the run without a word.
    packages = {Path(p) for p in MUTMUT["source_paths"]}
    for module in MUTMUT["only_mutate"]:
        assert (REPO / module).is_file(), f"[tool.mutmut] only_mutate names {module}, which does not exist"
        assert Path(module).parents[-2] in packages, f"{module} is outside source_paths"


def test_every_product_package_is_copied():
    # A package left out would be imported from the installed (unmutated) tree, next to the copy.
    packages = {p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]}
    assert packages == set(MUTMUT["source_paths"])
    assert MUTMUT["pytest_add_cli_args_test_selection"] == ["tests/unit"]


def verdict(pytester: pytest.Pytester, *args: str) -> str:
    return status_by_exit_code[int(pytester.runpytest_inprocess(*PLUGIN, *args).ret)]


def test_mutmut_alone_reads_an_internal_error_as_a_kill():
    # Why the plugin exists; if mutmut stops doing this, the plugin can go.
    assert status_by_exit_code[pytest.ExitCode.INTERNAL_ERROR] == "killed"
    assert status_by_exit_code[pytest.ExitCode.TESTS_FAILED] == "killed"


def test_a_failing_test_kills_and_a_passing_run_survives(pytester):
    pytester.makepyfile(test_a="def test_a():\n    assert 1 == 2\n")
    assert verdict(pytester) == "killed"
    pytester.makepyfile(test_a="def test_a():\n    assert 1 == 1\n")
    assert verdict(pytester) == "survived"


def test_a_fixture_that_raises_kills(pytester):
    # mutmut switches mutants at call time, never at import: a fixture only fails where the clean
    # run passed by calling the mutated code.
    fixture = "import pytest\n\n@pytest.fixture\ndef f():\n    raise ValueError\n\n"
    pytester.makepyfile(test_a=fixture + "def test_a(f):\n    pass\n")
    assert verdict(pytester) == "killed"


def test_an_internal_error_is_suspicious_not_killed(pytester):
    pytester.makeconftest("def pytest_collection_modifyitems(items):\n    raise RuntimeError('hook')\n")
    pytester.makepyfile(test_a="def test_a():\n    pass\n")
    assert pytester.runpytest_inprocess().ret == pytest.ExitCode.INTERNAL_ERROR  # without the plugin
    assert verdict(pytester) == "suspicious"


def test_a_collection_error_is_suspicious_not_killed(pytester):
    pytester.makepyfile(test_a="import no_such_module_here\n\ndef test_a():\n    pass\n")
    assert pytester.runpytest_inprocess().ret == pytest.ExitCode.INTERRUPTED
    assert verdict(pytester) == "suspicious"


def test_timeouts_and_crashed_workers_are_never_kills():
    # A mutant over its time budget gets SIGXCPU; an exception in mutmut's fork-server worker
    # (a pytest usage error raises there) exits -1, i.e. 255. Neither is a kill.
    assert status_by_exit_code[SUSPICIOUS] == "suspicious"
    for code in (-24, 24, 152, 255):
        assert status_by_exit_code[code] == "timeout"
