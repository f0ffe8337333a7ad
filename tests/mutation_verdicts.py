"""pytest plugin for mutation runs only (`[tool.mutmut] pytest_add_cli_args` loads it with `-p`).

mutmut reads each mutant's verdict from pytest's exit code, and counts 3 (pytest's internal error)
as killed, like 1 (a test failed). An internal error comes from a conftest hook, a plugin or the
environment as easily as from the mutant, so here it becomes mutmut's "suspicious" (listed for
review, never killed); so does 2 (a collection error or an interruption, which mutmut would call
"interrupted by user"). Only a failing test kills a mutant. A usage error (4) cannot be remapped
here (pytest re-raises it); mutmut's clean run meets it before any mutant runs.

mutmut runs the tests in its copy of the repository, `<repo>/mutants/`: the shared data (README)
lies beside the repository, not beside the copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SUSPICIOUS = 35  # mutmut.stats.status_by_exit_code: "suspicious" (tests/unit/test_mutation_setup.py)
NOT_A_VERDICT = frozenset({pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR})

_copy = Path(__file__).resolve().parents[1]
if _copy.name == "mutants":
    os.environ.setdefault("FORECASTER_SHARED", str(_copy.parent.parent / "shared"))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if exitstatus in NOT_A_VERDICT:
        session.exitstatus = SUSPICIOUS
