"""Putting a results block together: its heading, run stamp and description, then tables of medians that show
their rounds.

The block is what a benchmark prints and what :func:`bench.common.write_section` records in
docs/benchmarks.md; these helpers only lay it out, each benchmark says what it measured.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from bench.common import fmt, median, run_stamp, table

RoundT = TypeVar("RoundT")

Measure = tuple[str, Callable[[RoundT], float], int]
"""A row of a per-configuration table: its label, what it reads from one round, its decimals."""


def per_round(values: Sequence[float], digits: int) -> str:
    """Every round's value, comma-separated."""
    return ", ".join(fmt(value, digits) for value in values)


def median_and_rounds(values: Sequence[float], digits: int) -> str:
    """``median (round, round, ...)``: a table cell."""
    return f"{fmt(median(values), digits)} ({per_round(values, digits)})"


def measure_rows(measures: Sequence[Measure[RoundT]], columns: Sequence[Sequence[RoundT]]) -> list[list[str]]:
    """One row per measure, one cell per column (a configuration's rounds): the median and the rounds."""
    return [
        [label] + [median_and_rounds([get(r) for r in rounds], digits) for rounds in columns]
        for label, get, digits in measures
    ]


def ratio_table(ratios: Sequence[tuple[str, Sequence[float], str]]) -> str:
    """The ratios of a service-vs-direct benchmark, each (label, its value per round, the target's text),
    as a table of median, rounds and target, to 3 decimals."""
    return table(
        ["ratio", "median", "per round", "target"],
        [[label, fmt(median(values), 3), per_round(values, 3), target] for label, values, target in ratios],
    )


def results_block(title: str, description: str, *sections: str) -> str:
    """A benchmark's block: its heading, the run stamp, the description, then each section after a blank
    line."""
    lines = [title, "", run_stamp(), description]
    for section in sections:
        lines += ["", section]
    return "\n".join(lines)
