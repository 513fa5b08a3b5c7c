"""The command line both generators share: write a generated file, or with ``--check`` say if it is stale."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path


def write_or_check(doc: str, output: Path, render: Callable[[], str], argv: list[str] | None) -> int:
    """Parse ``--check``/``--output``; write ``render()`` to the file, or compare it (exit 1 if stale)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale; write nothing")
    parser.add_argument("--output", type=Path, default=output, help="file to write or check")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else None
        if current != text:
            script = Path(sys.argv[0]).name
            print(
                f"{args.output} is stale: run `python scripts/{script}` and commit the result.",
                file=sys.stderr,
            )
            return 1
        print(f"{args.output} is current.")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0
