"""`ppcmk approvals` and `ppcmk approve`: the second admin's side of a hand-off, from the terminal.

`ppcmk approve` checks what the run will check before it resumes it (exit 3 and the reason, nothing
submitted), then waits for the run's verdict on the answer and reports it: accepted (exit 0), rejected
(exit 5), refused and waiting again (exit 3), no verdict in time (exit 1).
"""

from __future__ import annotations

import json
import time
from typing import Annotated, Any
from urllib.parse import urlsplit

import typer
from prefect.client.orchestration import SyncPrefectClient
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape

from ppcmk.approvals.pause import verdict_key
from ppcmk.identity.signin import SignIn
from ppcmk_cli.approval_checks import check_answer, check_plan, proof_for, request_of, sign_in_of, who_proved
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.prefect_api import WaitingRun, prefect_api, read_waiting_run, resume_with_input, waiting_runs
from ppcmk_cli.tables import FittedTable

console = Console()
VERDICT_POLL_SECONDS = 0.5


WAITING_COLUMNS = ["run id", "runbook", "environments", "requested by", "may approve", "answer by", "plan"]


def waiting_runs_table(runs: list[WaitingRun]) -> FittedTable:
    """One row a waiting run; at any width no id or word is broken (a narrow terminal leaves out who may
    approve first, then who asked, naming them in the caption; --json and --full show everything)."""
    rows = []
    for waiting in runs:
        request = request_of(waiting)
        rows.append([escape(cell) for cell in (
            str(waiting.run.id), waiting.flow_name, ", ".join(request.get("environments", [])) or "-",
            request.get("requester", "?"), request.get("may_approve", "?"),
            str(request.get("answer_by", "?"))[:16].replace("T", " "),
            str(request.get("plan_hash", "?"))[:12])])
    priority = ["run id", "runbook", "answer by", "plan", "environments", "requested by", "may approve"]
    return FittedTable("Runs waiting for approval", WAITING_COLUMNS, rows, priority,
                       no_wrap=frozenset({"run id", "plan"}), essential=2)


def approvals(
    json_output: Annotated[bool, typer.Option("--json", help="Print the waiting runs as JSON.")] = False,
    full: Annotated[bool, typer.Option(help="Print each run's complete plan summary.")] = False,
) -> None:
    """List the runs waiting for approval: environments by name, who asked, who may approve, until when."""
    with prefect_api() as client:
        runs = waiting_runs(client)
    if json_output:
        typer.echo(
            json.dumps(
                [
                    {
                        "run_id": str(w.run.id),
                        "flow": w.flow_name,
                        "name": w.run.name,
                        "state": w.run.state.name if w.run.state else None,
                        "waiting_since": w.waiting_since.isoformat() if w.waiting_since else None,
                        "request": request_of(w),
                        "description": w.description,
                    }
                    for w in runs
                ],
                indent=2,
            )
        )
        return
    if not runs:
        console.print("No run is waiting for approval.")
        return
    console.print(waiting_runs_table(runs))
    if full:
        for waiting in runs:
            console.rule(f"{waiting.flow_name} · {waiting.run.id}")
            console.print(Markdown(waiting.description or "(no description)"))
    console.print(
        "Answer one with: ppcmk approve RUN_ID [--reject] [--comment TEXT] [--confirm POLICY] "
        "(it signs you in: a device code, or --azure-cli)"
    )


def decision_for(
    waiting: WaitingRun, *, reject: bool, comment: str, proof: str, confirmation: str | None
) -> dict[str, Any]:
    """The run input answering `waiting`, bound to the plan hash the flow pre-filled in its form."""
    plan_hash = waiting.schema.get("properties", {}).get("plan_hash", {}).get("default")
    if not plan_hash or not request_of(waiting):
        raise CliError(
            f"run {waiting.run.id} is paused but not at a ppcmk approval (its form has no plan "
            "hash); answer it in the Prefect UI",
            ExitCode.USAGE,
        )
    run_input: dict[str, Any] = {
        "decision": "reject" if reject else "approve",
        "proof": proof,
        "comment": comment,
        "plan_hash": plan_hash,
    }
    if "confirmation" in waiting.schema.get("properties", {}):
        run_input["confirmation"] = confirmation or ""
    return run_input


def wait_for_verdict(client: SyncPrefectClient, waiting: WaitingRun, seconds: float) -> dict[str, Any] | None:
    """What the run made of the answer (ppcmk.approvals.pause.record_verdict), or None within `seconds`."""
    key = verdict_key(waiting.run.state.state_details.pause_key or "" if waiting.run.state else "")
    deadline = time.monotonic() + seconds
    while True:
        try:
            return dict(json.loads(client.read_flow_run_input(waiting.run.id, key)))
        except Exception:  # not judged yet (404)
            if time.monotonic() >= deadline:
                return None
        time.sleep(VERDICT_POLL_SECONDS)


def report(waiting: WaitingRun, verdict: dict[str, Any] | None, seconds: float) -> ExitCode:
    run = f"{waiting.flow_name} run {waiting.run.id}"
    if verdict is None:
        console.print(
            f"Resumed {run}; it has not judged the answer within {seconds:g} s. `ppcmk approvals` "
            "shows whether it waits again."
        )
        return ExitCode.FAILED
    if verdict["verdict"] == "rejected":
        console.print(
            f"Rejected: {run} ends Rejected ({verdict['reason']}); nothing after the plan was changed."
        )
        return ExitCode.REJECTED
    if verdict["verdict"] == "refused":
        console.print(
            f"Refused by {run}: {verdict['reason']}. It waits again for an acceptable answer until "
            f"{str(verdict.get('answer_by', '?'))[:16].replace('T', ' ')} UTC."
        )
        return ExitCode.BLOCKED
    more = verdict.get("remaining", 0)
    then = f"; it now waits for {more} more approver(s)" if more else "; the run continues"
    console.print(f"Accepted: {verdict['approver']} approved {run}{then}.")
    return ExitCode.OK


def approve(
    run_id: Annotated[str, typer.Argument(help="The waiting flow run: its id or its first characters (see "
                                               "`ppcmk approvals`).")],
    reject: Annotated[bool, typer.Option("--reject", help="Reject the plan: the run ends Rejected.")] = False,
    comment: Annotated[str, typer.Option(help="Comment or change ticket, e.g. CHG-1234.")] = "",
    confirm: Annotated[str | None, typer.Option(help="Lock only: the enterprise policy name.")] = None,
    plan: Annotated[
        str | None,
        typer.Option(
            help="The plan hash (or its first characters) you reviewed; "
            "refused if the run asks about another plan."
        ),
    ] = None,
    azure_cli: Annotated[bool, typer.Option("--azure-cli", help="Prove who you are with your Azure CLI "
                                            "login (`az login`) instead of a device code.")] = False,
    wait: Annotated[float, typer.Option(min=0, help="Seconds to wait for the run's verdict on the answer.")]
    = 120,
) -> None:
    """Approve or reject a run waiting for approval as yourself: you sign in at your tenant's identity
    provider (a device code, or --azure-cli), the answer is checked, the run resumed with your proof, and its
    verdict reported. Exit 0 accepted, 5 rejected, 3 refused (before resuming, or by the run)."""
    with prefect_api() as client:
        waiting = read_waiting_run(client, run_id)
        check_plan(waiting, plan)
        signin = sign_in_of(waiting)
        ca_bundle = sandbox_trust(signin)
        proof = proof_for(signin, azure_cli, ca_bundle)
        run_input = decision_for(waiting, reject=reject, comment=comment, proof=proof, confirmation=confirm)
        who = check_answer(waiting, run_input, who_proved(signin, proof, ca_bundle))
        resume_with_input(client, waiting.run.id, run_input)
        console.print(
            f"Answered {run_input['decision']} as {who} for plan {run_input['plan_hash'][:12]}; "
            "waiting for the run's verdict …"
        )
        verdict = wait_for_verdict(client, waiting, wait)
    raise typer.Exit(int(report(waiting, verdict, wait)))


def sandbox_trust(signin: SignIn) -> str | None:
    """The sandbox's CA when the run's authority is the running sandbox's; None: the system's trust, as for
    a real tenant."""
    from ppcmk_cli.profile import find_profile

    profile = find_profile()
    origin = urlsplit(signin.authority if "://" in signin.authority else f"https://{signin.authority}")
    return profile.ca if profile is not None and urlsplit(profile.url).netloc == origin.netloc else None
