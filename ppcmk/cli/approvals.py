"""`ppcmk approvals` and `ppcmk approve`: the second admin's side of a hand-off, from the terminal."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.table import Table

from ppcmk.cli.errors import reports_errors
from ppcmk.cli.exit_codes import CliError, ExitCode
from ppcmk.cli.prefect_api import WaitingRun, prefect_api, read_waiting_run, resume_with_input, waiting_runs

console = Console()


def waiting_runs_table(runs: list[WaitingRun]) -> Table:
    table = Table(title="Runs waiting for approval")
    for column in ("run id", "flow", "run name", "state", "waiting since", "plan"):
        table.add_column(column, overflow="fold")
    for waiting in runs:
        since = waiting.waiting_since.isoformat(timespec="seconds") if waiting.waiting_since else "?"
        state = waiting.run.state.name if waiting.run.state else "?"
        table.add_row(str(waiting.run.id), waiting.flow_name, waiting.run.name, state, since, waiting.summary)
    return table


@reports_errors
def approvals(
    json_output: Annotated[bool, typer.Option("--json", help="Print the waiting runs as JSON.")] = False,
    full: Annotated[bool, typer.Option(help="Print each run's complete plan summary.")] = False,
) -> None:
    """List the runs waiting for approval, with their plan summary."""
    with prefect_api() as client:
        runs = waiting_runs(client)
    if json_output:
        typer.echo(json.dumps([
            {"run_id": str(w.run.id), "flow": w.flow_name, "name": w.run.name,
             "state": w.run.state.name if w.run.state else None,
             "waiting_since": w.waiting_since.isoformat() if w.waiting_since else None,
             "description": w.description}
            for w in runs
        ], indent=2))
        return
    if not runs:
        console.print("No run is waiting for approval.")
        return
    console.print(waiting_runs_table(runs))
    if full:
        for waiting in runs:
            console.rule(f"{waiting.flow_name} · {waiting.run.id}")
            console.print(Markdown(waiting.description or "(no description)"))
    console.print("Answer one with: ppcmk approve RUN_ID --as PRINCIPAL [--reject] [--comment TEXT]")


def decision_for(waiting: WaitingRun, *, approver: str, reject: bool, comment: str,
                 connection_block: str | None, confirmation: str | None) -> dict[str, Any]:
    """The run input answering `waiting`, bound to the plan hash the flow pre-filled in its form."""
    from ppcmk.approvals import ApprovalDecision

    plan_hash = waiting.schema.get("properties", {}).get("plan_hash", {}).get("default")
    if not plan_hash:
        raise CliError(f"run {waiting.run.id} is paused but not at a ppcmk approval (its form has no plan "
                       "hash); answer it in the Prefect UI", ExitCode.USAGE)
    decision = ApprovalDecision(approve=not reject, approver=approver, comment=comment, plan_hash=plan_hash,
                                connection_block=connection_block, confirmation=confirmation)
    return decision.model_dump(mode="json")


@reports_errors
def approve(
    run_id: Annotated[str, typer.Argument(help="The waiting flow run (see `ppcmk approvals`).")],
    approver: Annotated[str, typer.Option("--as", help="Your Entra object id or UPN (not the requester's).")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject the plan instead of approving it.")]
    = False,
    comment: Annotated[str, typer.Option(help="Comment or change ticket, e.g. CHG-1234.")] = "",
    connection: Annotated[
        str | None,
        typer.Option(help="Power Platform hand-off: the name of YOUR CmkConnection block; the run continues "
                          "with it."),
    ] = None,
    confirm: Annotated[str | None, typer.Option(help="When the plan asks for it: the policy name.")] = None,
) -> None:
    """Approve or reject a run waiting for approval (resumes it through the Prefect API)."""
    with prefect_api() as client:
        waiting = read_waiting_run(client, run_id)
        run_input = decision_for(waiting, approver=approver, reject=reject, comment=comment,
                                 connection_block=connection, confirmation=confirm)
        resume_with_input(client, waiting.run.id, run_input)
    verb = "Rejected" if reject else "Approved"
    console.print(f"{verb} plan {run_input['plan_hash'][:12]} of {waiting.flow_name} run {waiting.run.id} "
                  f"as {approver}; the run continues.")
