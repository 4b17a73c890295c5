"""`ppcmk run FLOW`: run a runbook locally (this process) or through a served deployment; `ppcmk runs wake`:
resume the deployment runs parked during long link/unlink waits now (the `ppcmk-wake` deployment does it on
its interval)."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, cast

import typer
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound, ParameterTypeError, PrefectHTTPStatusError
from prefect.states import State
from rich.console import Console

from ppcmk_cli.errors import exit_code_for, expected_failures_untraced, reports_errors
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.prefect_api import prefect_api, using_prefect_api
from ppcmk_cli.profile import load_profile
from ppcmk_cli.sandbox_blocks import register_sandbox_blocks
from ppcmk_deployments.catalog import RUNBOOKS, Runbook, sandbox_parameters
from ppcmk_deployments.serve import deployment_full_name

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


def sandbox_defaults(runbook: Runbook, given: dict[str, Any]) -> dict[str, Any]:
    """Without connection blocks: the running sandbox's blocks and the sandbox deployments' Quick-run values
    (people, environments), but a dry run only when asked for (--dry-run). With blocks: nothing is assumed
    and no sandbox block is written."""
    if {"connection", "kv_connection"} & given.keys():
        return {}
    blocks = register_sandbox_blocks(load_profile())
    return {name: value for name, value in sandbox_parameters(runbook, blocks).items() if name != "dry_run"}


def checked_parameters(runbook: Runbook, parameters: dict[str, Any]) -> None:
    """Refuse parameters the flow would reject, before anything runs: one line naming each field."""
    flow = runbook.load()
    flows_logger = logging.getLogger("prefect.flows")  # Prefect logs the same problem as an ERROR first
    previous, flows_logger.disabled = flows_logger.disabled, True
    try:
        flow.validate_parameters(parameters)
    except ParameterTypeError as invalid:
        problems = [line.strip(" -") for line in str(invalid).splitlines()[1:] if line.strip()]
        raise CliError(f"{runbook.name}: invalid parameter(s): {'; '.join(problems)}; fix them with "
                       "--param NAME=VALUE (JSON for objects and lists)", ExitCode.USAGE) from None
    finally:
        flows_logger.disabled = previous


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
    with using_prefect_api():
        if deployment:
            start_deployment(runbook, parameters)
            return
        parameters = {**sandbox_defaults(runbook, parameters), **parameters}
        checked_parameters(runbook, parameters)
        with expected_failures_untraced():
            state = cast(State[Any], runbook.load()(**parameters, return_state=True))
    if state.name in ENDED_BY_APPROVAL:
        console.print(f"{runbook.name} ended {state.name}: {state.message or ''}")
        raise typer.Exit(int(ENDED_BY_APPROVAL[state.name]))
    if not state.is_completed():
        failure = failure_of(state)
        if failure is not None:
            raise failure
        raise CliError(f"{runbook.name} ended {state.name}: {state.message or ''}", ExitCode.FAILED)
    result = state.result()
    console.print(result)
    raise typer.Exit(int(outcome_code(result)))


def failure_of(state: State[Any]) -> Exception | None:
    """The exception a failed run raised, when it is one the CLI reports as a line with its own exit code."""
    try:
        state.result(raise_on_failure=True)
    except Exception as error:  # whatever the flow raised: only the expected ones are returned
        return error if exit_code_for(error) is not None else None
    return None


def start_deployment(runbook: Runbook, parameters: dict[str, Any]) -> None:
    from prefect.deployments import run_deployment

    name = deployment_full_name(runbook.load().name)
    try:
        flow_run = cast(FlowRun, run_deployment(name, parameters=parameters, timeout=0))
    except ObjectNotFound:
        raise CliError(f"FLOW: no deployment {name} on this Prefect server; start `ppcmk serve` (it serves "
                       "every runbook) or run it here without --deployment", ExitCode.UNAVAILABLE) from None
    except PrefectHTTPStatusError as refused:
        if refused.response.status_code not in (409, 422):
            raise
        raise CliError(f"{name}: the server refused the parameters: {refusal_reason(refused)}; fix them with "
                       "--param NAME=VALUE (JSON for objects and lists)", ExitCode.USAGE) from None
    console.print(f"Started {name}: flow run {flow_run.id} ({flow_run.name}). When it waits for approval: "
                  f"`ppcmk approvals`, then `ppcmk approve {flow_run.id} --connection YOUR_BLOCK`.")


def refusal_reason(refused: PrefectHTTPStatusError) -> str:
    try:
        detail = refused.response.json().get("detail", "")
    except ValueError:
        detail = refused.response.text
    return " ".join(str(detail).split())[:400]


@runs_app.command("wake")
@reports_errors
def wake() -> None:
    """Resume every run parked during a long link/unlink: each polls its operations once, then finishes or
    parks again."""
    from ppcmk_deployments.wake import wake_parked_runs

    with prefect_api() as client:
        woken = wake_parked_runs(client)
    for run_id in woken:
        console.print(f"resumed {run_id}")
    console.print(f"{len(woken)} parked run(s) resumed")
