"""docs/api.md's error tables agree with the code: every code a client can see is listed, with its status.

The codes are collected from the code itself (every class of the error tree in pagemill/errors.py, and the
codes api/errors.py gives framework errors), so a new error class fails this test until it is documented.
"""

from __future__ import annotations

import re
from pathlib import Path

from api import errors as api_errors
from pagemill import errors

REPO_ROOT = Path(__file__).resolve().parents[2]
API_MD = REPO_ROOT / "docs" / "api.md"
SOURCES = [REPO_ROOT / "pagemill", REPO_ROOT / "api", REPO_ROOT / "workers"]
CELL_SEPARATOR = re.compile(r"(?<!\\)\|")


def _tree(cls: type[errors.PagemillError] = errors.PagemillError) -> list[type[errors.PagemillError]]:
    return [cls] + [sub for child in cls.__subclasses__() for sub in _tree(child)]


def _source() -> str:
    return "\n".join(path.read_text() for root in SOURCES for path in sorted(root.rglob("*.py")))


def _raised(cls: type[errors.PagemillError], source: str) -> bool:
    """Whether the code makes an instance of exactly this class, or answers with its code by name."""
    made = re.search(rf"(?<![\w.]){cls.__name__}\(", source.replace(f"class {cls.__name__}(", ""))
    return made is not None or re.search(rf"(?<![\w.]){cls.__name__}\.code\b", source) is not None


def visible_codes() -> dict[str, set[int]]:
    """Every code a client can see, with the HTTP statuses it may come with (as a response or on a job)."""
    source = _source()
    codes: dict[str, set[int]] = {}
    for cls in _tree():
        # A category base (InputError, AccessError) that the code never raises itself is never seen.
        if cls.__subclasses__() and not _raised(cls, source):
            continue
        codes.setdefault(cls.code, set()).add(cls.http_status)
    for status, code in api_errors._HTTP_CODES.items():
        codes.setdefault(code, set()).add(status)
    codes.setdefault("HTTP_ERROR", set())
    codes.setdefault("INTERNAL_ERROR", set()).add(500)
    return codes


def documented_codes() -> tuple[dict[str, str], dict[str, str]]:
    """The two tables under "Error codes": code -> HTTP cell (responses), and code -> where (jobs, pages)."""
    text = API_MD.read_text(encoding="utf-8")
    section = text.split("### Error codes", 1)[1].split("\n## ", 1)[0]
    http: dict[str, str] = {}
    recorded: dict[str, str] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in CELL_SEPARATOR.split(line)[1:-1]]
        if len(cells) != 3 or not re.fullmatch(r"`[A-Z_]+`", cells[0]):
            continue
        code = cells[0].strip("`")
        table = http if cells[1].isdigit() or cells[1] == "other" else recorded
        assert code not in table, f"{code} is listed twice in one table"
        table[code] = cells[1]
    return http, recorded


def test_every_error_code_is_documented() -> None:
    http, recorded = documented_codes()
    missing = sorted(visible_codes().keys() - http.keys() - recorded.keys())
    assert missing == [], f"error codes missing from docs/api.md (Error codes): {missing}"


def test_no_documented_code_is_unknown_to_the_code() -> None:
    http, recorded = documented_codes()
    unknown = sorted((http.keys() | recorded.keys()) - visible_codes().keys())
    assert unknown == [], f"docs/api.md lists codes the code never produces: {unknown}"


def test_documented_statuses_are_the_ones_sent() -> None:
    codes = visible_codes()
    http, _ = documented_codes()
    wrong = {
        code: (cell, sorted(codes[code]))
        for code, cell in http.items()
        if cell != "other" and int(cell) not in codes.get(code, set())
    }
    assert not wrong, f"docs/api.md states an HTTP status the code does not send: {wrong}"


def test_the_collector_sees_the_whole_tree() -> None:
    # Guards the test itself: the collector must find codes of every kind, or the checks above prove little.
    codes = visible_codes()
    for code in ("EMPTY_FILE", "UNAUTHORIZED", "ENGINE_FAILED", "ENGINE_UNAVAILABLE", "SERVICE_UNAVAILABLE"):
        assert code in codes
    assert "INVALID_INPUT" not in codes and "ACCESS_DENIED" not in codes  # bases never raised
