"""Asking one approval question and getting its answer back: a paused subflow for local runs and tests, a
suspension for top-level deployment runs (which re-run from the top on resume and read the stored answer
back), the form's deadline, and who resumed where the API says so."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateName
from prefect.client.schemas.objects import FlowRun
from prefect.context import FlowRunContext
from prefect.flow_runs import pause_flow_run, suspend_flow_run
from prefect.input import keyset_from_paused_state
from prefect.states import Cancelled, Paused, State, Suspended
from prefect.utilities.urls import url_for

from ppcmk.approvals.forms import REQUEST, FormKind, PlanApproval, form_for

SUSPEND_GRACE = timedelta(hours=1)  # the server's own expiry, after the waker's "Expired" (expire_overdue)


@dataclass(frozen=True)
class Question:
    """One round of asking: the form, its text and key, until when."""

    kind: FormKind
    key: str
    description: str
    plan_hash: str
    answer_by: datetime
    poll_interval_s: float
    request: dict[str, Any]  # what `ppcmk approvals` / `ppcmk approve` read (ppcmk.approvals.forms.REQUEST)


@dataclass(frozen=True)
class Answer:
    """An answer as submitted, and the flow run that waited for it (the approval subflow, or the run); one
    read back by a re-running run also says when it was stored."""

    values: dict[str, Any]
    waiting_run_id: UUID
    stored_at: datetime | None = None


@flow(name="ppcmk-approval", flow_run_name="approval-{key}", persist_result=False)
def await_approval(
    kind: FormKind,
    description: str,
    plan_hash: str,
    key: str,
    answer_by: datetime,
    poll_interval_s: float,
    request: dict[str, Any],
) -> dict:
    """Pauses until the form is answered; a timeout fails this subflow, which the caller reads as expired."""
    _log_waiting(key, request)
    form = form_for(kind, request).with_initial_data(description=description, plan_hash=plan_hash)
    timeout = max(1, int((answer_by - datetime.now(UTC)).total_seconds()))
    # The poll only feeds time.sleep, so sub-second intervals (tests) work despite the int annotation.
    answer = pause_flow_run(  # type: ignore[call-overload]
        wait_for_input=form, timeout=timeout, poll_interval=poll_interval_s, key=key
    )
    return cast(PlanApproval, answer).model_dump()


def can_suspend() -> bool:
    """Whether this flow run may suspend (free its process until resumed): only a top-level deployment run
    can, because only a deployment can start it again. Approvals and parked link/unlink waits both ask."""
    run = FlowRunContext.get()
    return (
        run is not None
        and run.flow_run is not None
        and bool(run.flow_run.deployment_id)
        and run.flow_run.parent_task_run_id is None
    )


def fired_keys() -> set[str]:
    run = FlowRunContext.get()
    if run is None or run.flow_run is None:
        return set()
    return set(run.flow_run.empirical_policy.pause_keys or ())


def ask_question(question: Question) -> Answer | None:
    """The answer to `question`, or None when the time ran out."""
    if not can_suspend():
        state = await_approval(
            question.kind,
            question.description,
            question.plan_hash,
            question.key,
            question.answer_by,
            question.poll_interval_s,
            question.request,
            return_state=True,
        )
        if not state.is_completed() or state.state_details.flow_run_id is None:
            return None
        return Answer(cast(dict[str, Any], state.result()), state.state_details.flow_run_id)
    run_id = cast(Any, FlowRunContext.get()).flow_run.id
    keyset = keyset_from_paused_state(Suspended(pause_key=question.key))
    if question.key in fired_keys():  # answered before this process: read back
        return _stored_answer(run_id, keyset["response"])
    _log_waiting(question.key, question.request)
    form = form_for(question.kind, question.request).with_initial_data(
        description=question.description, plan_hash=question.plan_hash
    )
    remaining = question.answer_by - datetime.now(UTC) + SUSPEND_GRACE
    answer = suspend_flow_run(wait_for_input=form, timeout=int(remaining.total_seconds()), key=question.key)
    return Answer(cast(PlanApproval, answer).model_dump(), run_id)


def _stored_answer(run_id: UUID, response_key: str) -> Answer:
    with get_client(sync_client=True) as client:
        stored = client.filter_flow_run_input(run_id, response_key, limit=1, exclude_keys=set())
    if not stored:  # removed since: read as an answer without a proof, which is refused and asked again
        return Answer({"decision": "approve", "plan_hash": "0" * 64, "proof": ""}, run_id)
    return Answer(json.loads(stored[0].value), run_id, stored[0].created)


def forget_proof(answer: Answer, key: str) -> None:
    """Remove the proof from a stored answer once its request is decided: it proved one answer and is kept
    nowhere after (a bearer token until it expires, though for an app that opens nothing)."""
    with get_client(sync_client=True) as client:
        paused: State  # a subflow paused, or the run suspended
        for paused in (Paused(pause_key=key), Suspended(pause_key=key)):
            response = keyset_from_paused_state(paused)["response"]
            try:
                stored = json.loads(client.read_flow_run_input(answer.waiting_run_id, response))
            except Exception:  # nothing stored under this key (any more)
                continue
            if isinstance(stored, dict) and stored.get("proof"):
                client.delete_flow_run_input(answer.waiting_run_id, response)
                client.create_flow_run_input(answer.waiting_run_id, response,
                                             json.dumps({**stored, "proof": ""}))


def record_verdict(answer: Answer, key: str, verdict: dict[str, Any]) -> None:
    """Store what the flow made of an answer on the run that waited for it, so `ppcmk approve` can report
    it (accepted, rejected, or refused and why). Written once: a re-run replaying the answer keeps it."""
    try:
        with get_client(sync_client=True) as client:
            client.create_flow_run_input(answer.waiting_run_id, verdict_key(key), json.dumps(verdict))
    except Exception:  # already written by the process that judged it first
        return


def verdict_key(key: str) -> str:
    return f"ppcmk-verdict-{key}"


def _log_waiting(key: str, request: dict[str, Any]) -> None:
    """The first line of the story: for what (plan, environments by name), for whom, until when, where."""
    run = FlowRunContext.get()
    run_id = run.flow_run.id if run and run.flow_run else "RUN_ID"
    link = url_for("flow-run", obj_id=run_id) if run and run.flow_run else None
    environments = ", ".join(request.get("environments", [])) or "no environment"
    get_run_logger().info(
        "Waiting for approval %s of %s plan %s (environments: %s). May approve: %s. Answer by %s UTC: "
        "Resume in the Prefect UI%s, or `ppcmk approve %s` (it signs you in)",
        key,
        request.get("procedure"),
        str(request.get("plan_hash", ""))[:12],
        environments,
        request.get("may_approve"),
        str(request.get("answer_by", "?"))[:16].replace("T", " "),
        f" at {link}" if link else "",
        run_id,
    )


def first_asked(prefix: str) -> datetime:
    """When the first round of this question was asked: now, or (a suspended run re-running) when its form
    was stored, so the deadline stays put across processes."""
    run = FlowRunContext.get()
    if prefix not in fired_keys() or run is None or run.flow_run is None:
        return datetime.now(UTC)
    keyset = keyset_from_paused_state(Suspended(pause_key=prefix))
    with get_client(sync_client=True) as client:
        stored = client.filter_flow_run_input(run.flow_run.id, keyset["schema"], limit=1, exclude_keys=set())
    return stored[0].created if stored and stored[0].created else datetime.now(UTC)


def resumed_by() -> str | None:
    """The Prefect actor that resumed this run, where the API reports one (Prefect Cloud attaches the actor to
    its events; a self-hosted server has no user identity and reports none)."""
    run = FlowRunContext.get()
    if run is None or run.flow_run is None:
        return None
    query = {"filter": {"any_resource": {"id": [f"prefect.flow-run.{run.flow_run.id}"]}}, "limit": 20}
    try:
        with get_client(sync_client=True) as client:
            events = client.request("POST", "/events/filter", json=query).json().get("events", [])
    except Exception:  # an extra record where available; the proof is the sign-in
        return None
    for event in reversed(events):
        for related in event.get("related", []):
            if related.get("prefect.resource.role") == "actor":
                return str(related.get("prefect.resource.name") or related.get("prefect.resource.id"))
    return None


def expire_overdue(client: SyncPrefectClient, now: datetime | None = None) -> list[UUID]:
    """End every suspended run whose approval deadline passed Cancelled "Expired" (a suspended run has no
    process to notice; the server's own expiry, SUSPEND_GRACE later, would only say Failed). The deadline is
    the `answer_by` of the request in the form's schema. Returns the runs ended."""
    moment = now or datetime.now(UTC)
    suspended = FlowRunFilter(state=FlowRunFilterState(name=FlowRunFilterStateName(any_=["Suspended"])))
    expired = []
    for run in client.read_flow_runs(flow_run_filter=suspended, limit=200):
        request = _request_of(client, run)
        answer_by = request.get("answer_by")
        if not answer_by or datetime.fromisoformat(answer_by) > moment:
            continue
        message = (
            f"{request.get('procedure', 'run')}: no acceptable answer to approval "
            f"{run.state.state_details.pause_key if run.state else ''} by {answer_by}; nothing after "
            "the plan was changed"
        )
        client.set_flow_run_state(run.id, Cancelled(name="Expired", message=message), force=True)
        expired.append(run.id)
    return expired


def _request_of(client: SyncPrefectClient, run: FlowRun) -> dict[str, Any]:
    keyset = (run.state.state_details.run_input_keyset or {}) if run.state else {}
    if "schema" not in keyset:
        return {}
    try:
        schema = json.loads(client.read_flow_run_input(run.id, keyset["schema"]))
    except Exception:  # not a ppcmk approval, or its form is not stored yet
        return {}
    request = schema.get(REQUEST) if isinstance(schema, dict) else None
    return request if isinstance(request, dict) else {}
