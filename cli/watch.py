"""`ppcmk watch` (every drift of the estate, exit 1 on critical/error findings) and `ppcmk converge FILE`
(the runbook runs that reach a desired state: printed with --dry-run, else started as deployment runs, each
waiting for its own approval)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from ppcmk.cloud.settings import ConnectionSettings, load_settings
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.local_runs import SANDBOX_READER, run_read_only
from ppcmk_cli.profile import load_profile
from ppcmk_cli.sandbox_blocks import sandbox_connection_data
from ppcmk_cli.tables import rows_table

if TYPE_CHECKING:
    from ppcmk.watch.converge import PlannedRun

WATCH_OPTIONS = {"desired_state": "--desired", "pp_admins": "--pp-admin",
                 "rotation_cadence_days": "--rotation-cadence-days"}
WATCH_COLUMNS = ["severity", "tier", "kind", "object", "since", "finding", "fix"]
# what is left out first in a narrow terminal; without the first four a finding is printed as lines
WATCH_PRIORITY = ["severity", "object", "finding", "fix", "since", "kind", "tier"]


def watch(
    connection: Annotated[str | None, typer.Option(help="CmkConnection block to read with (default: the "
                                                        "running sandbox's runbook identity).")] = None,
    desired: Annotated[str | None, typer.Option(help="Desired-state YAML file or `ppcmk desired state` "
                                                     "block name: report every difference from it.")] = None,
    pp_admin: Annotated[list[str] | None, typer.Option(help="Check this admin's Reader role on every policy "
                                                            "(repeatable; default: the desired state's).")]
    = None,
    rotation_cadence_days: Annotated[int | None, typer.Option(
        min=1, help="Rotation is overdue after this many days (default: the rotation policy).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the findings as JSON.")] = False,
) -> None:
    """Every drift of the CMK estate with severity, since when and the fix (exit 1 on critical/error)."""
    from ppcmk_flows.watch import WatchResult

    result = run_read_only("watch", connection, WatchResult, WATCH_OPTIONS, desired_state=desired,
                           pp_admins=pp_admin, rotation_cadence_days=rotation_cadence_days)
    if json_output:
        typer.echo(result.model_dump_json(indent=2))
    else:
        from ppcmk_flows._watch_state import health_rows

        console = Console()
        console.print(rows_table(f"ppcmk watch at {result.checked_at:%Y-%m-%d %H:%M} (cloud clock)",
                                 health_rows(result.drifts) or [{"finding": "no drift"}], WATCH_COLUMNS,
                                 WATCH_PRIORITY, essential=4))
        console.print(result.summary(), style="dim")
    raise typer.Exit(int(ExitCode.FAILED if result.has_errors else ExitCode.OK))


def converge_connection(connection: str | None) -> tuple[ConnectionSettings, str]:
    """The settings to read the estate with, and the deployment name the runs go to."""
    if connection is None:
        persona, _ = SANDBOX_READER
        return load_settings(ConnectionSettings, sandbox_connection_data(load_profile(), persona)), "sandbox"
    from ppcmk_blocks import CmkConnection
    from ppcmk_cli.blocks import existing_block
    from ppcmk_cli.prefect_api import prefect_api

    with prefect_api():
        return existing_block(CmkConnection, connection, "--connection").settings(), "production"


def start_runs(runs: list[PlannedRun], deployment: str) -> list[tuple[PlannedRun, str]]:
    """Each run as a deployment run (not waited for: each plans, then waits for its approval)."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from ppcmk_cli.prefect_api import prefect_api

    started = []
    with prefect_api():
        for run in runs:
            try:
                flow_run = run_deployment(name=run.deployment(deployment), parameters=run.run_parameters(),
                                          timeout=0)
            except ObjectNotFound as missing:
                raise CliError(f"no deployment {run.deployment(deployment)} on this Prefect server; start "
                               "`ppcmk serve` (sandbox) or deploy prefect.yaml, or pass --deployment",
                               ExitCode.UNAVAILABLE) from missing
            started.append((run, f"{flow_run.name} ({flow_run.id})"))  # type: ignore[union-attr]
    return started


def runs_table(runs: list[PlannedRun], deployment: str, started: dict[int, str] | None = None) -> Any:
    rows = [{"runbook": run.deployment(deployment), "why": run.reason,
             "parameters": json.dumps(run.run_parameters(), separators=(", ", ": "))}
            | ({"flow run": started.get(index, "")} if started is not None else {})
            for index, run in enumerate(runs)]
    return rows_table(f"{len(runs)} runbook run(s) to reach the desired state", rows)


def converge(
    file: Annotated[Path, typer.Argument(help="Desired-state YAML file (docs/WATCH.md).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print the runs that would be started.")]
    = False,
    connection: Annotated[str | None, typer.Option(help="CmkConnection block to read the estate with "
                                                        "(default: the running sandbox's runbook "
                                                        "identity).")] = None,
    deployment: Annotated[str | None, typer.Option(help="Which deployments start the runs, <runbook>-<this> "
                                                        "(default: sandbox for the sandbox, production with "
                                                        "--connection).")]
    = None,
) -> None:
    """The onboard / change_policy / revert / rotate runs that reach the desired state; started as deployment
    runs unless --dry-run. Each run plans and waits for its own approval: nothing changes unapproved."""
    from ppcmk.watch.converge import plan_runs
    from ppcmk.watch.desired import load_desired_state_file
    from ppcmk.watch.reading import read_estate

    desired = load_desired_state_file(file)
    settings, default_deployment = converge_connection(connection)
    deployment = deployment or default_deployment
    runs = plan_runs(read_estate(settings, desired.pp_admins), desired)
    console = Console()
    if not runs:
        console.print("the estate is already in the desired state: nothing to run")
        return
    if dry_run:
        console.print(runs_table(runs, deployment))
        console.print("dry run: nothing was started", style="dim")
        return
    started = start_runs(runs, deployment)
    console.print(runs_table(runs, deployment, {i: name for i, (_, name) in enumerate(started)}))
    console.print("each run plans and waits for its approval: `ppcmk approvals` lists them", style="dim")
