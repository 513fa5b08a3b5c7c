"""A sheet's cells split into its separate tables, as a reader of the sheet sees them.

A table is a group of non-empty cells joined side by side or one above the other (a cell touching another
only at a corner starts a table of its own); a merged range whose first cell holds a value fills every
position it covers. Each table is the rectangle around its group, first row as header, merged ranges as
spans. Groups are found by joining each row's runs of consecutive cells with the overlapping runs of the
row above (union-find), which stays linear in the number of cells.
"""

from __future__ import annotations

from collections import defaultdict

from pagemill.documents.office.blocks import Cell, Table
from pagemill.documents.office.xlsx_scan import CellRange

# A table placed on its sheet: (first row, first column) of its rectangle, 0-based.
PlacedTable = tuple[tuple[int, int], Table]


def sheet_tables(
    values: dict[int, dict[int, str]], merges: list[CellRange], max_cells: int
) -> list[PlacedTable]:
    """The tables of a sheet whose non-empty cell texts are ``values`` (row -> column -> text, 0-based),
    top to bottom then left to right. Merged ranges covering more than ``max_cells`` positions together
    overlap, which a spreadsheet never writes: they are then ignored. ``values`` is consumed: each row's
    dict is freed once its texts are in cells, so a big sheet does not hold both at their peak."""
    spans, covered = _merges(values, merges, max_cells)
    merged: dict[int, set[int]] = defaultdict(set)  # positions merged ranges fill, by row
    for (row, col), (row_span, col_span) in spans.items():
        for r in range(row, row + row_span):
            merged[r].update(range(col, col + col_span))
    runs: list[tuple[int, int, int]] = []  # (row, first column, last column)
    parent: list[int] = []
    previous_row: list[int] = []  # indices into runs of the row above
    previous_number = -2
    for row in sorted(values.keys() | merged.keys()):
        columns = values.get(row, {}).keys()
        extra = merged.get(row)
        current = []
        for first, last in _runs(sorted(columns | extra if extra else columns)):
            index = len(runs)
            runs.append((row, first, last))
            parent.append(index)
            current.append(index)
        if row == previous_number + 1:
            _join_overlapping(runs, parent, previous_row, current)
        previous_row, previous_number = current, row
    groups: dict[int, list[int]] = defaultdict(list)
    for index in range(len(runs)):
        groups[_find(parent, index)].append(index)
    tables = [_table([runs[i] for i in members], values, spans, covered) for members in groups.values()]
    tables.sort(key=lambda placed: placed[0])
    return tables


def _merges(
    values: dict[int, dict[int, str]], merges: list[CellRange], max_cells: int
) -> tuple[dict[tuple[int, int], tuple[int, int]], set[tuple[int, int]]]:
    """Spans of the merged ranges whose first cell holds a value, and the positions they cover (their
    first cells excepted)."""
    kept = [m for m in merges if m[1] in values.get(m[0], {}) and (m[2] > m[0] or m[3] > m[1])]
    if sum((m[2] - m[0] + 1) * (m[3] - m[1] + 1) for m in kept) > max_cells:
        return {}, set()
    spans: dict[tuple[int, int], tuple[int, int]] = {}
    covered: set[tuple[int, int]] = set()
    for r1, c1, r2, c2 in kept:
        spans[(r1, c1)] = (r2 - r1 + 1, c2 - c1 + 1)
        covered.update((r, c) for r in range(r1, r2 + 1) for c in range(c1, c2 + 1) if (r, c) != (r1, c1))
    # A range whose first cell another range covers is an overlap: the first range read wins.
    for position in [p for p in spans if p in covered]:
        del spans[position]
    return spans, covered


def _runs(columns: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for col in columns:
        if runs and runs[-1][1] == col - 1:
            runs[-1] = (runs[-1][0], col)
        else:
            runs.append((col, col))
    return runs


def _join_overlapping(
    runs: list[tuple[int, int, int]], parent: list[int], above: list[int], here: list[int]
) -> None:
    i = j = 0
    while i < len(above) and j < len(here):
        _, first_a, last_a = runs[above[i]]
        _, first_b, last_b = runs[here[j]]
        if first_a <= last_b and first_b <= last_a:
            _union(parent, above[i], here[j])
        if last_a < last_b:
            i += 1
        else:
            j += 1


def _find(parent: list[int], index: int) -> int:
    root = index
    while parent[root] != root:
        root = parent[root]
    while parent[index] != root:
        parent[index], index = root, parent[index]
    return root


def _union(parent: list[int], a: int, b: int) -> None:
    root_a, root_b = _find(parent, a), _find(parent, b)
    if root_a != root_b:
        parent[max(root_a, root_b)] = min(root_a, root_b)


def _table(
    runs: list[tuple[int, int, int]],
    values: dict[int, dict[int, str]],
    spans: dict[tuple[int, int], tuple[int, int]],
    covered: set[tuple[int, int]],
) -> PlacedTable:
    top = min(run[0] for run in runs)
    bottom = max(run[0] for run in runs)
    left = min(run[1] for run in runs)
    right = max(run[2] for run in runs)
    cells: list[Cell] = []
    for row, first, last in runs:
        row_values = values.get(row, {})
        table_row, header = row - top, row == top  # one int per row, not one per cell
        for col in range(first, last + 1):
            text = row_values.pop(col, "")
            if (row, col) in covered:
                continue
            row_span, col_span = spans.get((row, col), (1, 1))
            cells.append(Cell(text, table_row, col - left, row_span, col_span, header=header))
        if not row_values and row in values:
            del values[row]  # its texts now live in cells: the row's dict is freed as the tables grow
    table = Table(cells=cells, n_rows=bottom - top + 1, n_cols=right - left + 1, header_rows=1)
    return (top, left), table
