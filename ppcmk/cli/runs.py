"""`ppcmk run FLOW`: run a runbook locally (this process) or through a served deployment; `ppcmk runs wake`:
resume the deployment runs parked during long link/unlink waits now (the `ppcmk-wake` deployment does it on
its interval)."""

from __future__ import annotations

import json
from typing import Annotated, Any, cast

import typer
from prefect.client.schemas.objects import FlowRun
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import State
from rich.console import Console

from deployments.catalog import RUNBOOKS, Runbook, default_parameters
from ppcmk.cli.errors import reports_errors
from ppcmk.cli.exit_codes import CliError, ExitCode
from ppcmk.cli.prefect_api import prefect_api
from ppcmk.cli.profile import find_profile, load_profile
from ppcmk.cli.sandbox_blocks import register_sandbox_blocks

console = Console()
runs_app = typer.Typer(help="Deployment runs: wake the ones parked during long link/unlink waits.",
                       no_args_is_help=True)


def parse_params(pairs: list[str], runbook: Runbook) -> dict[str, Any]:
    """`k=v` pairs; values are JSON when they parse (numbers, true, lists), else plain strings."""
    known = runbook.parameter_names()
    parameters: dict[str, Any] = {}
    for pair in pairs:
        name, separator, raw = pair.partition("=")
        if not separator or not name:
            raise CliError(f"--param {pair!r}: write it as name=value", ExitCode.USAGE)
        if name not in known:
            raise CliError(f"--param {name}: {runbook.name} has no such parameter; it takes "
                           f"{', '.join(known)}", ExitCode.USAGE)
        try:
            parameters[name] = json.loads(raw)
        except ValueError:
            parameters[name] = raw
    return parameters


def lookup_runbook(name: str) -> Runbook:
    runbook = RUNBOOKS.get(name.replace("-", "_"))
    if runbook is None:
        raise CliError(f"FLOW: no runbook {name!r}; choose one of {', '.join(RUNBOOKS)}", ExitCode.USAGE)
    return runbook


# the named states a run ends in when its approval said no or nobody answered acceptably in time
ENDED_BY_APPROVAL = {"Rejected": ExitCode.REJECTED, "Expired": ExitCode.BLOCKED}


def outcome_code(result: Any) -> ExitCode:
    """Flows end Completed with status 'rejected' when an approval said no: scripts see exit code 3."""
    status = getattr(result, "status", None) or (result.get("status") if isinstance(result, dict) else None)
    return ExitCode.BLOCKED if str(status).lower() in ("rejected", "blocked") else ExitCode.OK


@reports_errors
def run(
    flow: Annotated[str, typer.Argument(help=f"Runbook: {', '.join(RUNBOOKS)}.")],
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value (repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Plan and print; change nothing.")] = False,
    deployment: Annotated[bool, typer.Option(help="Start the served deployment through the Prefect API "
                                                  "instead of running here.")] = False,
) -> None:
    """Run a runbook. Without block parameters it targets the running sandbox (`ppcmk sandbox up`/`serve`)."""
    runbook = lookup_runbook(flow)
    parameters = parse_params(param or [], runbook)
    if dry_run:
        if "dry_run" not in runbook.parameter_names():
            raise CliError(f"--dry-run: {runbook.name} has no dry-run mode (it is read-only or asks for "
                           "approval before any change)", ExitCode.USAGE)
        parameters["dry_run"] = True
    served = find_profile()
    api = {PREFECT_API_URL: served.prefect_api_url} if served and served.prefect_api_url else {}
    with temporary_settings(updates=api):
        if deployment:
            start_deployment(runbook, parameters)
            return
        if not {"connection", "target"} & parameters.keys():
            blocks = register_sandbox_blocks(load_profile())
            parameters = {**default_parameters(runbook, blocks), **parameters}
        state = cast(State[Any], runbook.load()(**parameters, return_state=True))
    if state.name in ENDED_BY_APPROVAL:
        console.print(f"{runbook.name} ended {state.name}: {state.message or ''}")
        raise typer.Exit(int(ENDED_BY_APPROVAL[state.name]))
    if not state.is_completed():
        raise CliError(f"{runbook.name} ended {state.name}: {state.message or ''}", ExitCode.FAILED)
    result = state.result()
    console.print(result)
    raise typer.Exit(int(outcome_code(result)))


def start_deployment(runbook: Runbook, parameters: dict[str, Any]) -> None:
    from prefect.deployments import run_deployment

    from deployments.serve import DEPLOYMENT_NAME

    name = f"{runbook.load().name}/{DEPLOYMENT_NAME}"
    flow_run = cast(FlowRun, run_deployment(name, parameters=parameters, timeout=0))
    console.print(f"Started {name}: flow run {flow_run.id} ({flow_run.name}). When it waits for approval: "
                  f"`ppcmk approvals`, then `ppcmk approve {flow_run.id} --as PRINCIPAL`.")


@runs_app.command("wake")
@reports_errors
def wake() -> None:
    """Resume every run parked during a long link/unlink: each polls its operations once, then finishes or
    parks again."""
    from deployments.wake import wake_parked_runs

    with prefect_api() as client:
        woken = wake_parked_runs(client)
    for run_id in woken:
        console.print(f"resumed {run_id}")
    console.print(f"{len(woken)} parked run(s) resumed")
