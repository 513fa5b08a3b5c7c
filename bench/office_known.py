"""Known content for ``bench.office_quality``: what a generated office file holds (its reference markdown,
tables and numbered items), the files of ``tests/support/office_files.py`` with references written here from
what those makers put in (checked against their ``Expected``), and helpers the other makers share.

References write a merged cell's text in every position it covers (as docling and Pagemill do); the table
check accepts an empty covered position too.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from tests.support import office_files


@dataclass
class KnownTable:
    """A table's cells by grid position; ``covered`` positions lie under a merged cell (their text is the
    merged cell's, or may be empty); the first ``title_rows`` rows (a sheet's merged title over its table)
    may also stand outside the table, as a paragraph above it."""

    rows: list[list[str]]
    covered: set[tuple[int, int]] = field(default_factory=set)
    title_rows: int = 0


@dataclass
class Generated:
    """A written file and what it holds."""

    path: Path
    reference: str
    pages: int
    tables: list[KnownTable] = field(default_factory=list)
    numbered: list[tuple[str, str]] = field(default_factory=list)
    """Ordered list items as (the number the document shows, the item's text)."""


def pipe(table: KnownTable) -> str:
    """The reference's pipe table (the first row as its header)."""
    lines = ["| " + " | ".join(row) + " |" for row in table.rows]
    lines.insert(1, "| " + " | ".join("-" for _ in table.rows[0]) + " |")
    return "\n".join(lines)


def _checked(made: Generated, expected: office_files.Expected) -> Generated:
    missing = [fragment for fragment in expected.in_order if fragment not in made.reference]
    if missing:
        raise RuntimeError(f"{made.path.name}: reference lacks {missing}: tests/support/office_files changed")
    return made


# --------------------------------------------------------------------------------------------------
# The test makers' files


def support_docx(folder: Path) -> Generated:
    path, expected = office_files.make_docx(folder / "support_report.docx")
    table = KnownTable(expected.table_cells, covered={(0, 2)})
    reference = "\n\n".join(
        [
            "# Quarterly Report",
            "Revenue grew in the northern region while costs stayed flat.",
            "## Action items",
            "1. Hire two engineers\n    a) Interview candidates\n    b) Sign offers\n"
            "2. Open the Berlin office\n- Buy more coffee",
            "## Figures",
            pipe(table),
            "The outlook for next year is positive.",
        ]
    )
    # The template's List Number 2 is a list of its own, lettered: "a)" (as Word and LibreOffice show it).
    numbered = [("1.", "Hire two engineers"), ("a)", "Interview candidates"), ("b)", "Sign offers"),
                ("2.", "Open the Berlin office")]  # fmt: skip
    return _checked(Generated(path, reference, 1, [table], numbered), expected)


def support_pptx(folder: Path) -> Generated:
    path, expected = office_files.make_pptx(folder / "support_deck.pptx")
    table = KnownTable(expected.table_cells)
    reference = "\n\n".join(
        [
            "# Launch plan",
            "- Ship the beta in March\n    - Invite fifty customers",
            "Mention the budget risk",
            "# Numbers",
            pipe(table),
        ]
    )
    return _checked(Generated(path, reference, expected.pages, [table]), expected)


def support_xlsx(folder: Path) -> Generated:
    path, expected = office_files.make_xlsx(folder / "support_book.xlsx")
    sales = KnownTable(expected.table_cells)
    costs = KnownTable([["Item", "Amount"], ["Rent", "1000"], ["Power", "250"]])
    reference = "\n\n".join(["## Sales", pipe(sales), "## Costs", pipe(costs)])
    return _checked(Generated(path, reference, expected.pages, [sales, costs]), expected)


# --------------------------------------------------------------------------------------------------
# Shared by the makers

WORDS = ["survey", "marker", "tripod", "level", "compass", "radio", "tent", "lamp", "rope", "map"]


def inventory_rows(count: int) -> list[list[object]]:
    """Rows of an inventory: code, description, quantity, unit price (quarters), date."""
    return [
        [
            f"INV-{i:03d}",
            f"{WORDS[i % 10]} {WORDS[(i * 3 + 1) % 10]} kit",
            (i * 7) % 50 + 1,
            ((i * 13) % 80 + 1) / 4,
            dt.date(2024, 1 + i % 12, 1 + i % 28),
        ]
        for i in range(1, count + 1)
    ]


def shown(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def put_rows(sheet: object, top: int, left: int, rows: list[list[object]]) -> KnownTable:
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            if value is not None:
                cell = sheet.cell(row=top + r, column=left + c, value=value)  # type: ignore[attr-defined]
                if isinstance(value, dt.date):
                    cell.number_format = "yyyy-mm-dd"
    return KnownTable([[shown(value) for value in row] for row in rows])
