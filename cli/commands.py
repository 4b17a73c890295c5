"""The `ppcmk` command: one typer app, each command group in its own module."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from ppcmk_cli.approvals import approvals, approve
from ppcmk_cli.audit_cmds import audit_app
from ppcmk_cli.demo import demo
from ppcmk_cli.doctor import doctor
from ppcmk_cli.errors import DEBUG_SETTING, OneLineErrors
from ppcmk_cli.evidence import evidence
from ppcmk_cli.exit_codes import EXIT_CODES_HELP
from ppcmk_cli.report import report
from ppcmk_cli.runs import run, runs_app
from ppcmk_cli.sandbox_cmds import sandbox_app
from ppcmk_cli.serve import serve
from ppcmk_cli.setup import setup_app
from ppcmk_cli.watch import converge, watch
from ppcmk_cli.workers import setup_blocks, setup_workers

app = typer.Typer(
    name="ppcmk",
    help="Prefect runbooks for Power Platform customer-managed keys, with an offline sandbox cloud.\n\n"
    + EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)


@app.callback()
def options(
    debug: Annotated[bool, typer.Option("--debug", help=f"Show the traceback with an error (also "
                                                        f"{DEBUG_SETTING}=1).")] = False,
) -> None:
    if debug:
        os.environ[DEBUG_SETTING] = "1"


app.add_typer(sandbox_app, name="sandbox")
app.add_typer(runs_app, name="runs")
app.add_typer(audit_app, name="audit")
app.add_typer(setup_app, name="setup")
setup_app.command("blocks")(setup_blocks)
setup_app.command("workers")(setup_workers)
for command in (approvals, approve, serve, run, doctor, demo, report, evidence, watch, converge):
    app.command(command.__name__)(command)


def main() -> None:
    app()
