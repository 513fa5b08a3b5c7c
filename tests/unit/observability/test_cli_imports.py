"""`pagemill worker` must set PROMETHEUS_MULTIPROC_DIR before prometheus_client is imported (its value class
is chosen at import): a command module that imports metrics at the top would make every pool process count
alone, and the worker's /metrics would show only its main process."""

from __future__ import annotations

import subprocess
import sys

from tests.support.services import REPO_ROOT


def test_loading_the_cli_imports_no_metrics() -> None:
    probe = "import sys, pagemill.cli; print(sorted(m for m in sys.modules if m.startswith('prometheus')))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]", (
        "importing pagemill.cli loaded prometheus_client; import metrics inside the commands instead"
    )
