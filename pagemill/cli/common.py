"""What every command shares: one-line errors, the database guard and tables that fit a terminal."""

from __future__ import annotations

from datetime import datetime

import typer
from rich.columns import Columns
from rich.console import Console
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from pagemill.errors import PagemillError


def fail(exc: PagemillError) -> typer.Exit:
    """Print ``error: CODE: message`` on one line and return the Exit (code 2) to raise."""
    typer.echo(f"error: {exc.code}: {exc.message}", err=True)
    return typer.Exit(code=2)


def require_database() -> None:
    """Stop a command that reads or writes the database unless it exists and is migrated.

    Without this, a command run from another folder would create an empty SQLite data dir there and
    print a traceback about a missing table.
    """
    from pagemill.db import get_engine
    from pagemill.migrate import missing_database, require_migrated
    from pagemill.settings import get_settings

    settings = get_settings()
    missing = missing_database(settings)
    if missing is not None:
        raise fail(missing)
    try:
        require_migrated(settings, get_engine())
    except PagemillError as exc:
        raise fail(exc) from None


def when(value: datetime | None) -> str:
    """A timestamp as the tables show it (UTC), or ``-``."""
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value else "-"


def print_rows(headers: list[str], rows: list[list[str]], *, whole: int) -> None:
    """Print rows as a table when it fits the terminal (piped: 80 columns unless COLUMNS says otherwise),
    else as one block per row: the first ``whole`` columns (ids people copy) on one line, never cut, and
    the other columns as ``name value`` pairs wrapped below. Values are text, never rich markup."""
    console = Console()
    grid = Table(box=None, pad_edge=False, header_style="bold")
    for index, title in enumerate(headers):
        grid.add_column(title, no_wrap=index < whole, overflow="fold")
    for row in rows:
        grid.add_row(*(Text(value) for value in row))
    # The table's natural width: measured as if the terminal were unlimited (a measure is capped by it).
    natural = Measurement.get(console, console.options.update_width(100_000), grid).maximum
    if natural <= console.width:
        console.print(grid)
        return
    for row in rows:
        key = Text("  ").join(
            Text(value if index == 0 else f"{headers[index]} {value}")
            for index, value in enumerate(row[:whole])
        )
        console.print(key, no_wrap=True, crop=False, overflow="ignore")
        details = [
            Text(f"{title} {value}", no_wrap=True)
            for title, value in zip(headers[whole:], row[whole:], strict=True)
        ]
        console.print(Padding(Columns(details, padding=(0, 3)), (0, 0, 0, 2)))
