"""`python -m cli` (used by tests and by `ppcmk serve` to start children with the same interpreter)."""

from cli import main

main()
