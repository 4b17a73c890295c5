"""The `ppcmk` command line (entry point `cli:main`)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["app", "main"]


def main() -> None:
    if sys.argv[1:2] == ["sandbox"]:
        # The sandbox commands need neither Prefect nor the runbooks: importing those first would take
        # `ppcmk sandbox up` past the two seconds it promises to start in.
        from ppcmk_cli.sandbox_cmds import sandbox_app

        sandbox_app(args=sys.argv[2:], prog_name="ppcmk sandbox")
        return
    from ppcmk_cli.commands import main as run_full_cli

    run_full_cli()


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole typer app, imported on first use (tests, `python -m ppcmk_cli`)
        from ppcmk_cli.commands import app

        return app
    raise AttributeError(name)
