"""`python -m ppcmk.cli` (used by tests and by `ppcmk serve` to start children with the same interpreter)."""

from ppcmk.cli import main

main()
