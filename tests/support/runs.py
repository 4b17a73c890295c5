"""Drive runbooks from tests the way an admin does: start the flow, wait for its approval request, answer
it through Prefect's resume API with a run input (what the UI "Resume" dialog posts); run one task in a
flow."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import Task, flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.flow_runs import resume_flow_run
from prefect.states import State

from ppcmk.approvals.forms import REQUEST
from ppcmk.identity.signin import SignIn
from ppcmk.safety import claims
from ppcmk.safety.claims import CLAIM_PREFIX
from ppcmk_cli.scripted_sign_in import scripted_proof
from ppcmk_flows._lock_record import lock_record_name
from ppcmk_flows.change_policy import change_policy
from ppcmk_flows.revert import revert
from tests.support.sandbox import sandbox_profile
from tests.support.scenario import PP_ADMIN, REQUESTER

APPROVAL_FLOW = "ppcmk-approval"
NEW_POLICY = "ep-new"  # what start_change moves to (neither exists in the default scenario)
NEW_KEY = "cmk-new"


@dataclass
class RunningFlow:
    """A flow started in a background thread; `state()` waits for its final state."""

    thread: threading.Thread
    box: dict[str, Any] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def state(self, timeout: float = 60) -> State:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise TimeoutError(f"the flow did not finish within {timeout} s")
        if "error" in self.box:
            raise self.box["error"]
        return self.box["state"]

    def result(self, timeout: float = 60) -> Any:
        return self.state(timeout).result()


def start(flow_fn: Callable[..., Any], **parameters: Any) -> RunningFlow:
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["state"] = flow_fn(return_state=True, **parameters)
        except BaseException as error:  # surfaced by RunningFlow.state()
            box["error"] = error

    thread = threading.Thread(target=target, daemon=True, name=f"flow-{getattr(flow_fn, 'name', 'run')}")
    thread.start()
    return RunningFlow(thread=thread, box=box)


def start_with_sandbox_blocks(
    flow_fn: Callable[..., Any], blocks: dict[str, str], **parameters: Any
) -> RunningFlow:
    """Start a two-connection runbook as the sandbox's admins do: the Key Vault admin's and the Power Platform
    admin's connection blocks, the sandbox target, REQUESTER asking, approvals polled every second."""
    return start(flow_fn, **{"kv_connection": blocks["kv-admin"], "pp_connection": blocks["pp-admin"],
                             "target": blocks["target"], "requester": REQUESTER, "approval_poll_s": 1,
                             **parameters})


def start_revert(blocks: dict[str, str], **parameters: Any) -> RunningFlow:
    """Start revert as the sandbox's runbook identity does (one connection), REQUESTER asking, approvals
    polled every second."""
    return start(revert, connection=blocks["runbook"], target=blocks["target"], requester=REQUESTER,
                 approval_poll_s=1, **parameters)


def start_change(blocks: dict[str, str], **parameters: Any) -> RunningFlow:
    """Start change_policy as the sandbox's admins do, moving the target's environments to a new key
    (NEW_KEY) and policy (NEW_POLICY), PP_ADMIN named to approve the Power Platform half."""
    return start_with_sandbox_blocks(change_policy, blocks, new_policy_name=NEW_POLICY, new_key_name=NEW_KEY,
                                     pp_admin=PP_ADMIN, **parameters)


def completed(running: RunningFlow, timeout: float = 60) -> Any:
    """The run's outcome, once it has ended with status "completed" (else the assertion shows its message)."""
    outcome = running.result(timeout)
    assert outcome.status == "completed", outcome.message
    return outcome


@dataclass(frozen=True)
class PendingApproval:
    flow_run_id: UUID
    key: str
    plan_hash: str
    description: str
    sign_in: SignIn  # where its answerer signs in for the proof


_answered: set[UUID] = set()


def wait_for_approval(running: RunningFlow | None = None, timeout: float = 30) -> PendingApproval:
    """The next unanswered approval request (a Paused `ppcmk-approval` run), with its pre-filled plan hash."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[APPROVAL_FLOW])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))
                ),
            )
            for run in runs:
                if run.id in _answered or run.state is None or not run.state.is_paused():
                    continue
                if running is not None and run.created is not None and run.created < running.started:
                    continue  # asked by a run an earlier test left waiting
                key = run.name.removeprefix("approval-")
                try:
                    schema = json.loads(client.read_flow_run_input(run.id, f"paused-{key}-schema"))
                    description = json.loads(client.read_flow_run_input(run.id, f"paused-{key}-description"))
                except Exception:  # the inputs are written just after the state change; look again
                    continue
                plan_hash = schema["properties"]["plan_hash"]["default"]
                sign_in = SignIn.model_validate(schema[REQUEST]["sign_in"])
                return PendingApproval(run.id, key, plan_hash, description, sign_in)
            if running is not None and not running.thread.is_alive():
                raise AssertionError(f"the flow ended without asking for approval: {running.state(0)}")
            time.sleep(0.1)
    raise TimeoutError(f"no approval request appeared within {timeout} s")


def persona_of(approver: str) -> str:
    """The sandbox person with this UPN: pp-admin@contoso.example → pp-admin."""
    return approver.split("@")[0].lower()


def proof_of(pending: PendingApproval, approver: str) -> str:
    """`approver`'s own fresh sign-in for the question (device code at the sandbox's verification page)."""
    profile = sandbox_profile(pending.sign_in.authority)
    return scripted_proof(pending.sign_in, profile, persona_of(approver))


def answer(pending: PendingApproval, *, approve: bool, approver: str | None = None, comment: str = "CHG-1",
           plan_hash: str | None = None, proof: str | None = None,
           confirmation: str | None = None) -> None:
    """Answer as the form does: the decision and the proof (by default `approver` signs in for it), the
    pre-filled plan hash unless another is given."""
    proven = proof if proof is not None else proof_of(pending, approver or "")
    run_input: dict[str, Any] = {"decision": "approve" if approve else "reject", "proof": proven,
                                 "comment": comment, "plan_hash": plan_hash or pending.plan_hash}
    if confirmation is not None:
        run_input["confirmation"] = confirmation
    resume_flow_run(pending.flow_run_id, run_input=run_input)
    _answered.add(pending.flow_run_id)


def approve_next(running: RunningFlow, approver: str | None = None, **kwargs: Any) -> PendingApproval:
    pending = wait_for_approval(running)
    answer(pending, approve=kwargs.pop("approve", True), approver=approver, **kwargs)
    return pending


def run_in_flow(task: Task[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one task inside a tiny flow, so Prefect's retry machinery (not just the body) is exercised."""

    @flow(name=f"tasks-test-{task.name}")
    def one_task() -> Any:
        return task(*args, **kwargs)

    return one_task()


def run_claiming(environment_id: str, task: Task[..., Any], *args: Any, **kwargs: Any) -> State:
    """Run one environment task inside a tiny flow that first claims the environment, as a runbook claims
    what its plan changes (the claim keeps the operation the task starts; a claim a Crashed run left is taken
    over with it). Returns the run's final state; the flow releases no claim at its end."""

    @flow(name=f"tasks-test-claiming-{task.name}")
    def claiming() -> Any:
        assert claims.claim([claims.Subject("environment", environment_id)], "tasks-test") == []
        return task(*args, **kwargs)

    return claiming(return_state=True)


def approver_read_policy_before_linking(cloud: Any, policy_name: str, approver: str = "pp-admin") -> bool:
    """Whether the approver read the policy (waiting for their Reader to apply) before their first link, and
    the last such read was allowed."""
    entries = cloud.log.entries
    first_link = next(i for i, e in enumerate(entries) if e.method == "POST" and e.path.endswith("/link"))
    reads = [e for e in entries[:first_link] if e.method == "GET" and e.caller == approver
             and e.path.lower().endswith(f"/enterprisepolicies/{policy_name.lower()}")]
    return bool(reads) and reads[-1].status == 200


def audited(audit_log: Any) -> dict[str, dict[str, Any]]:
    """The audit log's entries by event name (the last of each)."""
    return {e["event"]["event"]: e["event"] for e in audit_log.entries()}


def halves_audited_as(audit_log: Any, procedure: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Key Vault half's and the Power Platform half's audit events of a procedure built on onboard's
    steps, once both are audited under its own name and nothing as onboard."""
    events = audited(audit_log)
    assert not any(name.startswith("onboard") for name in events), sorted(events)
    key_vault_half = events[f"{procedure}-key-vault-half"]
    power_platform_half = events[f"{procedure}-power-platform-half"]
    assert key_vault_half["procedure"] == procedure and power_platform_half["procedure"] == procedure
    return key_vault_half, power_platform_half


def forget_run_state() -> None:
    """Drop every claim and lock record on the test server: the sandbox world is reset per test, but runs
    earlier tests left waiting on the same (session) Prefect server would still hold claims on the reset
    environments, and their locks' records would still name the reset policies."""
    with get_client(sync_client=True) as client:
        for prefix in (CLAIM_PREFIX, lock_record_name("")):
            named = {"variables": {"name": {"like_": f"{prefix}%"}}, "limit": 200}
            while found := client.request("POST", "/variables/filter", json=named).json():
                for variable in found:
                    client.delete_variable_by_name(variable["name"])
