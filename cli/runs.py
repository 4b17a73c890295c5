"""`ppcmk run FLOW`: run a runbook locally (this process) or through a served deployment; `ppcmk runs
list`: the latest runs and how each ended (a dry run says so); `ppcmk runs wake`: resume the deployment
runs parked during long link/unlink waits now (the `ppcmk-wake` deployment does it on its interval)."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, cast

import typer
from prefect.client.schemas.objects import FlowRun
from prefect.exceptions import ObjectNotFound, ParameterTypeError, PrefectHTTPStatusError
from prefect.states import State
from rich.console import Console

from ppcmk.errors import ConfigError
from ppcmk.safety.plan import RunOutcome, reading_order
from ppcmk.safety.validation import check_parameters
from ppcmk_cli.blocks import BLOCK_PARAMETERS, existing_block
from ppcmk_cli.errors import run_logs_untraced
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.local_runs import result_of
from ppcmk_cli.prefect_api import prefect_api, using_prefect_api
from ppcmk_cli.profile import load_profile
from ppcmk_cli.sandbox_blocks import register_sandbox_blocks
from ppcmk_cli.tables import rows_table
from ppcmk_deployments.catalog import RUNBOOKS, Runbook, sandbox_parameters
from ppcmk_deployments.serve import deployment_full_name

console = Console()
EXAMPLES = {"selector": '{"environment_ids": ["Contoso Production"]}',
            "waves": '{"wave_sizes": [5, 50]}', "pp_admins": '["pp-admin@contoso.example"]'}
runs_app = typer.Typer(help="Runbook runs: list the latest (a dry run says so), wake the ones parked "
                            "during long link/unlink waits.", no_args_is_help=True)
RUN_COLUMNS = ["runbook", "state", "started", "run", "message", "name"]


def parse_params(pairs: list[str], runbook: Runbook) -> dict[str, Any]:
    """`k=v` pairs; values are JSON when they parse (numbers, true, lists), else plain strings. A value
    that opens an object or a list must be JSON."""
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
        except ValueError as broken:
            if raw.lstrip()[:1] in ("{", "["):
                example = EXAMPLES.get(name, "{...}")
                raise CliError(f"--param {name}: not valid JSON ({broken}); quote the whole value for "
                               f"the shell, e.g. -p '{name}={example}'", ExitCode.USAGE) from None
            parameters[name] = raw
    return parameters


def lookup_runbook(name: str) -> Runbook:
    runbook = RUNBOOKS.get(name.replace("-", "_"))
    if runbook is None:
        raise CliError(f"FLOW: no runbook {name!r}; choose one of {', '.join(RUNBOOKS)}", ExitCode.USAGE)
    return runbook


# the named states a run ends in when its approval said no or nobody answered acceptably in time
ENDED_BY_APPROVAL = {"Rejected": ExitCode.REJECTED, "Expired": ExitCode.BLOCKED}
# a completed run's outcome status, when it is not plain success
OUTCOME_CODES = {"rejected": ExitCode.REJECTED, "expired": ExitCode.BLOCKED, "partial": ExitCode.FAILED}


def outcome_code(result: Any) -> ExitCode:
    """The exit code of a completed run's outcome: done, a dry run or nothing to do are 0."""
    status = getattr(result, "status", None) or (result.get("status") if isinstance(result, dict) else None)
    return OUTCOME_CODES.get(str(status).lower(), ExitCode.OK)


def sandbox_defaults(runbook: Runbook, given: dict[str, Any]) -> dict[str, Any]:
    """Without connection blocks: the running sandbox's blocks and the sandbox deployments' Quick-run values
    (people, environments), but a dry run only when asked for (--dry-run). With blocks: nothing is assumed
    and no sandbox block is written."""
    if {"connection", "kv_connection"} & given.keys():
        return {}
    blocks = register_sandbox_blocks(load_profile())
    return {name: value for name, value in sandbox_parameters(runbook, blocks).items() if name != "dry_run"}


def checked_values(parameters: dict[str, Any]) -> None:
    """What the flow would refuse at its start, refused before it is started: numbers out of range, a
    block name that names no block."""
    try:
        check_parameters(**parameters)
    except ConfigError as bad:
        raise CliError(f"--param {bad}", ExitCode.USAGE) from None
    for name, value in parameters.items():
        block_type = BLOCK_PARAMETERS.get(name)
        if block_type is not None and isinstance(value, str):
            existing_block(block_type, value, f"--param {name}")


def checked_parameters(runbook: Runbook, parameters: dict[str, Any]) -> None:
    """Refuse parameters the flow would reject, before anything runs: one line naming each field."""
    checked_values(parameters)
    flow = runbook.load()
    flows_logger = logging.getLogger("prefect.flows")  # Prefect logs the same problem as an ERROR first
    previous, flows_logger.disabled = flows_logger.disabled, True
    try:
        flow.validate_parameters(parameters)
    except ParameterTypeError as invalid:
        problems = [line.strip(" -").replace("Value error, ", "")
                    for line in str(invalid).splitlines()[1:] if line.strip()]
        raise CliError(f"{runbook.name}: invalid parameter(s): {'; '.join(problems)}; fix them with "
                       "--param NAME=VALUE (JSON for objects and lists)", ExitCode.USAGE) from None
    finally:
        flows_logger.disabled = previous


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
            checked_values(parameters)
            start_deployment(runbook, parameters)
            return
        parameters = {**sandbox_defaults(runbook, parameters), **parameters}
        checked_parameters(runbook, parameters)
        with run_logs_untraced():
            state = cast(State[Any], runbook.load()(**parameters, return_state=True))
    if state.name in ENDED_BY_APPROVAL:
        console.print(f"{runbook.name} ended {state.name}: {state.message or ''}")
        raise typer.Exit(int(ENDED_BY_APPROVAL[state.name]))
    result = result_of(state, runbook.name, object)
    show(result)
    raise typer.Exit(int(outcome_code(result)))


def show(result: object) -> None:
    """How the run ended in words, and its result table."""
    if isinstance(result, RunOutcome):
        # the status line whole (scripts read it); the table for this invocation's terminal width
        console.print(f"{result.procedure} {result.status}: {result.message}", highlight=False,
                      soft_wrap=True)
        if result.rows:
            Console().print(rows_table(f"{result.procedure}: result", reading_order(result.rows)))
    else:
        summary = getattr(result, "summary", None)
        console.print(summary() if callable(summary) else result, highlight=False)


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
def wake() -> None:
    """Resume every run parked during a long link/unlink: each polls its operations once, then finishes or
    parks again."""
    from ppcmk_deployments.wake import wake_parked_runs

    with prefect_api() as client:
        woken = wake_parked_runs(client)
    for run_id in woken:
        console.print(f"resumed {run_id}")
    console.print(f"{len(woken)} parked run(s) resumed")


@runs_app.command("list")
def list_runs(
    limit: Annotated[int, typer.Option(min=1, max=200, help="How many of the latest runs.")] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """The latest runbook runs, newest first: which runbook, how it ended (a dry run ends "Dry run":
    nothing was changed) and why, when it started, and the first characters of its id (enough wherever a
    run id is asked for; --json has the whole id)."""
    with prefect_api() as client:
        rows = latest_runs(client, limit)
    if json_output:
        typer.echo(json.dumps(rows, indent=2))
        return
    Console().print(rows_table(f"the latest {len(rows)} run(s)", rows or [{"runbook": "no run yet"}],
                               RUN_COLUMNS))


def latest_runs(client: Any, limit: int) -> list[dict[str, str]]:
    """The latest top-level runs that started (not scheduled ones, not approval subflows), as rows."""
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterId,
        FlowRunFilter,
        FlowRunFilterParentTaskRunId,
        FlowRunFilterStartTime,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    started = FlowRunFilter(start_time=FlowRunFilterStartTime(is_null_=False),
                            parent_task_run_id=FlowRunFilterParentTaskRunId(is_null_=True))
    runs = client.read_flow_runs(flow_run_filter=started, sort=FlowRunSort.START_TIME_DESC, limit=limit)
    flow_ids = list({run.flow_id for run in runs})
    flows = {flow.id: flow.name for flow in client.read_flows(flow_filter=FlowFilter(id=FlowFilterId(
        any_=flow_ids)))} if flow_ids else {}
    return [{"runbook": flows.get(run.flow_id, "?"), "state": run.state.name if run.state else "?",
             "started": f"{run.start_time:%Y-%m-%d %H:%M}" if run.start_time else "",
             "run": str(run.id)[:8], "message": (run.state.message or "") if run.state else "",
             "name": run.name, "run_id": str(run.id)}
            for run in runs]
