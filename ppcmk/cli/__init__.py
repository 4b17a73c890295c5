"""The `ppcmk` command line (entry point `ppcmk.cli:main`)."""

from ppcmk.cli.app import app, main

__all__ = ["app", "main"]
