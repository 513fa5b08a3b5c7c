"""A sheet's cells split into its separate tables, as a reader of the sheet sees them.

A table is a group of non-empty cells joined side by side or one above the other; a merged range whose first
cell holds a value fills every position it covers. A cell on a table's rows or on the row just below them,
within the table's columns, belongs to it too, even when it touches the table's cells only at a corner (an
empty cell in a table's last row must not split off the value beside it: "West | (empty) | 2" under a
three-column table). A cell touching a table only at a corner outside the table's columns starts a table of
its own (docling's reading, and what a reader sees as two tables placed corner to corner). Each table is the
rectangle around its group, first row as header, merged ranges as spans.

Groups are found row by row with union-find: each row's runs of consecutive cells join the tables of the row
above whose column span they overlap (which includes every table with a cell right above one of theirs). The
work stays linear in the number of cells, plus sorting each row's tables.
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
    groups = _Groups()
    above: list[tuple[int, int, int]] = []  # (first column, last column, group) of the row above's tables
    previous_number = -2
    for row in sorted(values.keys() | merged.keys()):
        columns = values.get(row, {}).keys()
        extra = merged.get(row)
        current = []
        for first, last in _runs(sorted(columns | extra if extra else columns)):
            current.append(groups.add(len(runs), first, last))
            runs.append((row, first, last))
        if row == previous_number + 1:
            _join_below(runs, groups, above, current)
        above, previous_number = _row_spans(groups, current), row
    members: dict[int, list[int]] = defaultdict(list)
    for index in range(len(runs)):
        members[groups.find(index)].append(index)
    tables = [_table([runs[i] for i in group], values, spans, covered) for group in members.values()]
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


class _Groups:
    """Union-find over runs, each group knowing the columns it spans (kept at its root)."""

    def __init__(self) -> None:
        self._parent: list[int] = []
        self._first: list[int] = []
        self._last: list[int] = []

    def add(self, index: int, first: int, last: int) -> int:
        """A new group of one run spanning ``first``..``last``; returns its index."""
        self._parent.append(index)
        self._first.append(first)
        self._last.append(last)
        return index

    def find(self, index: int) -> int:
        """The root of ``index``'s group."""
        root = index
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[index] != root:
            self._parent[index], index = root, self._parent[index]
        return root

    def span(self, index: int) -> tuple[int, int]:
        """(first column, last column) of ``index``'s group."""
        root = self.find(index)
        return self._first[root], self._last[root]

    def union(self, a: int, b: int) -> int:
        """Join the groups of ``a`` and ``b``; returns the root of the joined group."""
        root_a, root_b = self.find(a), self.find(b)
        if root_a == root_b:
            return root_a
        root, other = min(root_a, root_b), max(root_a, root_b)
        self._parent[other] = root
        self._first[root] = min(self._first[root], self._first[other])
        self._last[root] = max(self._last[root], self._last[other])
        return root


def _join_below(
    runs: list[tuple[int, int, int]], groups: _Groups, above: list[tuple[int, int, int]], here: list[int]
) -> None:
    """Join each run of a row (``here``, left to right) to the tables of the row above whose column span it
    overlaps (``above``: disjoint spans, left to right): those with a cell right above one of its cells,
    and those it meets only at a corner but under their columns."""
    i = j = 0
    while i < len(above) and j < len(here):
        first_a, last_a, group = above[i]
        _, first_b, last_b = runs[here[j]]
        if first_a <= last_b and first_b <= last_a:
            groups.union(group, here[j])
        if last_a < last_b:
            i += 1
        else:
            j += 1


def _row_spans(groups: _Groups, row: list[int]) -> list[tuple[int, int, int]]:
    """The column spans of the tables with a run on ``row``, left to right and disjoint, as
    :func:`_join_below` needs them. Joining row by row already leaves the tables of one row apart; should
    two spans overlap all the same, their tables are joined (each has a cell within the other's rows and
    columns)."""
    spans = sorted({(*groups.span(index), groups.find(index)) for index in row})
    out: list[tuple[int, int, int]] = []
    for first, last, group in spans:
        if out and first <= out[-1][1]:
            root = groups.union(out[-1][2], group)
            out[-1] = (*groups.span(root), root)
        else:
            out.append((first, last, group))
    return out


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
