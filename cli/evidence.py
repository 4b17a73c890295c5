"""`ppcmk evidence`: run the evidence runbook and say where the pack is; `--verify DIR` checks a pack
against its manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ppcmk.evidence.files import MANIFEST, verify_pack
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.local_runs import run_read_only
from ppcmk_cli.tables import rows_table
from ppcmk_tasks.evidence import EvidenceResult

EVIDENCE_OPTIONS = {"days": "--days", "policy": "--policy", "environments": "--environment",
                    "output_dir": "--out"}


def verified(directory: Path) -> None:
    if not (directory / MANIFEST).is_file():
        raise CliError(f"--verify {directory}: no evidence pack there (no {MANIFEST}); name the "
                       "directory `ppcmk evidence` wrote", ExitCode.USAGE)
    problems = verify_pack(directory)
    if problems:
        for problem in problems:
            Console().print(f"[red]changed:[/] {problem}", highlight=False)
        raise CliError(f"the evidence pack in {directory} does not match its manifest", ExitCode.FAILED)
    Console().print(f"every file of the evidence pack in {directory} matches its manifest", highlight=False)


def evidence(
    days: Annotated[int, typer.Option(help="The period: this many days up to now (cloud clock).")] = 365,
    policy: Annotated[str | None, typer.Option(help="Only this enterprise policy (name).")] = None,
    environment: Annotated[list[str] | None, typer.Option(
        "--environment", help="Only these environments (id or name; repeatable).")] = None,
    out: Annotated[Path | None, typer.Option(help="Directory for the pack (default: "
                                                  "$PPCMK_HOME/evidence/<date>-<scope>).")] = None,
    connection: Annotated[str | None, typer.Option(help="CmkConnection block to read with (default: the "
                                                        "running sandbox's runbook identity).")] = None,
    verify: Annotated[Path | None, typer.Option(help="Check the pack in this directory against its manifest "
                                                     "instead (exit 1 naming each changed file).")] = None,
) -> None:
    """One evidence pack for auditors: HTML with timelines, JSON, PDF, manifest (read-only)."""
    if verify is not None:
        verified(verify)
        return
    result = run_read_only("evidence", connection, EvidenceResult, EVIDENCE_OPTIONS, days=days,
                           policy=policy, environments=environment or [],
                           output_dir=str(out) if out else None)
    Console().print(rows_table(f"evidence pack in {result.directory}", result.rows()))
    if not result.chain_intact:
        raise CliError("the audit chain failed verification; the pack says where", ExitCode.FAILED)
