"""`python -m ppcmk_cli` (used by tests and by `ppcmk serve` to start children with the same interpreter)."""

from ppcmk_cli import main

main()
