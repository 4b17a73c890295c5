"""`ppcmk report`: run the read-only report runbook and print the CMK state of every environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from ppcmk.safety.plan import RunOutcome
from ppcmk_cli.local_runs import run_read_only
from ppcmk_cli.tables import rows_table

TABLE_COLUMNS = ["name", "sku", "state", "policy", "key", "key_version", "key_expires", "link_status",
                 "key_managed_by", "note"]


def report(
    out: Annotated[Path | None, typer.Option(help="Directory for cmk-inventory.csv and .json (default: "
                                                  "$PPCMK_HOME/reports).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the rows as JSON.")] = False,
    connection: Annotated[str | None, typer.Option(help="CmkConnection block to read with (default: the "
                                                        "running sandbox's runbook identity).")] = None,
) -> None:
    """The CMK state of every environment: policy, vault, key, version, expiry, link status (read-only)."""
    outcome = run_read_only("report", connection, RunOutcome, {"output_dir": "--out"},
                            output_dir=str(out) if out else None)
    rows: list[dict[str, Any]] = outcome.rows
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    console = Console()  # made per call: it reads the terminal width (COLUMNS) of this invocation
    console.print(rows_table(f"CMK state of {len(rows)} environment(s)", rows, TABLE_COLUMNS))
    console.print(outcome.message, style="dim", soft_wrap=True)  # paths whole, for copying
