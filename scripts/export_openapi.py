"""Write docs/openapi.json from the FastAPI app, so the committed schema never drifts from the code.

python scripts/export_openapi.py           # (re)write docs/openapi.json
python scripts/export_openapi.py --check   # exit 1 if docs/openapi.json is not current
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from generated_file import write_or_check  # scripts/ is on sys.path when run as a file

REPO_ROOT = Path(__file__).resolve().parents[1]
OUTPUT = REPO_ROOT / "docs" / "openapi.json"


def build_schema() -> dict[str, Any]:
    """The app's OpenAPI document, built with a throwaway data dir (nothing is written to the real one)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    with tempfile.TemporaryDirectory(prefix="pagemill-openapi-") as data_dir:
        previous = os.environ.get("PAGEMILL_DATA_DIR")
        os.environ["PAGEMILL_DATA_DIR"] = data_dir
        try:
            from pagemill.settings import get_settings

            get_settings.cache_clear()
            from api.app import create_app

            return create_app().openapi()
        finally:
            get_settings.cache_clear()
            if previous is None:
                os.environ.pop("PAGEMILL_DATA_DIR", None)
            else:
                os.environ["PAGEMILL_DATA_DIR"] = previous


def render(schema: dict[str, Any]) -> str:
    """The schema as committed: two-space indent, keys in the app's order, a final newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the file, or with ``--check`` report whether it is current."""
    return write_or_check(__doc__ or "", OUTPUT, lambda: render(build_schema()), argv)


if __name__ == "__main__":
    sys.exit(main())
