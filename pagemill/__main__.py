"""`python -m pagemill` runs the CLI."""

from pagemill.cli import main

# Guarded: `pagemill convert --parallel` starts its pool processes with spawn/forkserver, which import
# this module again (as __mp_main__) in each of them; they must not run the CLI.
if __name__ == "__main__":
    main()
