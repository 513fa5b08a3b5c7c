"""`python -m pagemill` runs the CLI."""

from pagemill.cli import main

main()
