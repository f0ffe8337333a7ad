"""The bundle contract stays light: importing it (source included) pulls neither torch nor mlflow."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_importing_the_contract_loads_no_torch_no_mlflow_no_kserve():
    code = (
        "import sys, bundle, bundle.source, bundle.outputs, bundle.conventions; "
        "print(sorted(m for m in ('torch', 'mlflow', 'kserve', 'lightning') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
