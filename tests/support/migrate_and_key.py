"""``python -m tests.support.migrate_and_key KEYS-CREATE-ARGS...``: `pagemill migrate`, then `pagemill keys
create KEYS-CREATE-ARGS`, in one interpreter: the first steps of every test stack.

Each ``python -m pagemill`` pays a few seconds of CPU for its imports, and the suite starts dozens of stacks
on 2 cores. The commands run are the CLI's own (its Typer app, as ``python -m pagemill`` runs it).
"""

from __future__ import annotations

import sys

import typer

from pagemill.cli import cli


def main(key_args: list[str]) -> None:
    """Run both commands; a failing one ends the process with its exit code."""
    command = typer.main.get_command(cli)
    for args in (["migrate"], ["keys", "create", *key_args]):
        command.main(args, prog_name="pagemill", standalone_mode=False)


if __name__ == "__main__":
    main(sys.argv[1:])
