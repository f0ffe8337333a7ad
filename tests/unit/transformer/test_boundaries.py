"""The transformer runs from the serving image: importing it pulls neither torch nor training, and
nothing of the predictor (what the two share is the `serving` package)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_the_transformer_and_market_data_import_no_torch_no_training():
    code = (
        "import sys; sys.argv = ['transformer']; "
        "import transformer.__main__, transformer.kserve_seam, transformer.fastpath, transformer.model, "
        "marketdata.cache, marketdata.sources; "
        "banned = ('torch', 'lightning', 'training', 'mlflow', 'predictor'); "
        "print(sorted(m for m in banned if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
