"""`ppcmk audit verify` and `ppcmk audit show [--run ID]`: the shared audit chain, read from any machine that
reaches its store (PPCMK_AUDIT_STORAGE, else $PPCMK_HOME/audit)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ppcmk.audit.store import AUDIT_STORAGE_SETTING, describe
from ppcmk.audit.trail import AuditLog
from ppcmk_cli.exit_codes import CliError, ExitCode

console = Console()
audit_app = typer.Typer(help="The shared audit trail: verify its hash chain, show its entries.",
                        no_args_is_help=True)


def _api() -> AbstractContextManager[Any]:
    """The Prefect API the audit store block (and the cross-worker lock) live in, when one is named."""
    import os

    if not os.environ.get(AUDIT_STORAGE_SETTING):
        return nullcontext()
    from ppcmk_cli.prefect_api import prefect_api

    return prefect_api()


@audit_app.command("verify")
def verify() -> None:
    """Check that no entry was edited, removed or reordered (exit 1 naming each problem)."""
    with _api():
        log = AuditLog()
        problems = log.verify_chain()
        count = int((log.head() or {}).get("seq", 0))
    where = describe(log.store.storage)
    if problems:
        for problem in problems:
            console.print(f"[red]broken:[/] {problem}", highlight=False)
        raise CliError(f"the audit chain in {where} is broken ({len(problems)} problem(s))", ExitCode.FAILED)
    console.print(f"audit chain intact: {count} entries in {where}", highlight=False)


@audit_app.command("show")
def show(
    run: Annotated[str | None, typer.Option("--run", help="only the entries of this flow run (its id or "
                                                          "its first characters)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="the entries as JSON")] = False,
) -> None:
    """The entries in chain order: when, which run and host, and what happened."""
    from ppcmk_cli.prefect_api import one_run, run_id_or_prefix

    prefix = run_id_or_prefix(run, "--run") if run else None
    with _api():
        log = AuditLog()
        entries = log.of_run(prefix) if prefix else log.entries()
    if prefix:  # a prefix of two runs' ids is ambiguous
        audited = [str(e.get("by", {}).get("flow_run_id")) for e in entries]
        one_run(prefix, audited, "--run", "audited run")
    if as_json:
        typer.echo(json.dumps(entries, indent=2, sort_keys=True))
        return
    table = Table("#", "at", "event", "run", "host")
    for entry in entries:
        by = entry.get("by", {})
        event = entry.get("event", {})
        table.add_row(str(entry.get("seq")), str(entry.get("at", ""))[:19], str(event.get("event", "")),
                      str(by.get("flow_run_name", "-")), str(by.get("host", "")))
    console.print(table)
    console.print(f"{len(entries)} entries in {describe(log.store.storage)}", highlight=False)
