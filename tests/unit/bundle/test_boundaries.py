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


def test_serving_never_loads_the_pyfunc():
    """No pickle or model code crosses into serving: the predictor, the transformer, the monitor and
    the storage initializer read the bundle's files; only training logs the pyfunc (bundle/pyfunc_model.py,
    which MLflow runs for `pyfunc.load_model` and `mlflow models serve`)."""
    import ast

    offenders = []
    for package in ("bundle", "predictor", "transformer", "monitor"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path == REPO / "bundle" / "pyfunc_model.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [f"{node.module}.{a.name}" for a in node.names]
                elif isinstance(node, ast.Attribute) and node.attr == "pyfunc":
                    names = ["<attribute>.pyfunc"]
                if any("pyfunc" in name for name in names):
                    offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
