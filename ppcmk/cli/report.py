"""`ppcmk report`: run the read-only report runbook and print the CMK state of every environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ppcmk.cli.errors import expected_failures_untraced, reports_errors
from ppcmk.cli.exit_codes import CliError, ExitCode
from ppcmk.cli.prefect_api import using_prefect_api
from ppcmk.cli.profile import load_profile
from ppcmk.cli.sandbox_blocks import save_sandbox_connection
from ppcmk.cli.tables import rows_table
from ppcmk.plan import RunOutcome

# The sandbox persona that reads everything: Power Platform admin management app and Owner in Azure.
SANDBOX_READER = ("runbook", "sandbox-runbook")
TABLE_COLUMNS = ["name", "sku", "state", "policy", "key", "key_version", "key_expires", "link_status",
                 "key_managed_by", "note"]


def run_report(connection: str | None, out: Path | None) -> RunOutcome:
    """The report flow as a local run, on the Prefect API `ppcmk serve` published (or the configured one)."""
    from flows.report import report

    with using_prefect_api():
        if connection is None:
            persona, block_name = SANDBOX_READER
            connection = save_sandbox_connection(load_profile(), persona, block_name)
        with expected_failures_untraced():
            state = report(connection=connection, output_dir=str(out) if out else None, return_state=True)
    if not state.is_completed():
        raise CliError(f"the report run ended {state.name}: {state.message or ''}", ExitCode.FAILED)
    outcome: RunOutcome = state.result()
    return outcome


@reports_errors
def report(
    out: Annotated[Path | None, typer.Option(help="Directory for cmk-inventory.csv and .json (default: "
                                                  "$PPCMK_HOME/reports).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    connection: Annotated[str | None, typer.Option(help="CmkConnection block to read with (default: the "
                                                        "running sandbox's runbook identity).")] = None,
) -> None:
    """The CMK state of every environment: policy, vault, key, version, expiry, link status (read-only)."""
    outcome = run_report(connection, out)
    rows: list[dict[str, Any]] = outcome.rows
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = Console()  # made per call: it reads the terminal width (COLUMNS) of this invocation
    console.print(rows_table(f"CMK state of {len(rows)} environment(s)", rows, TABLE_COLUMNS))
    console.print(outcome.message, style="dim")
