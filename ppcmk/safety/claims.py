"""Claims: which flow run may change an environment (or a policy's key access) now, decided by Prefect.

A claim is the Prefect Variable `ppcmk-claim-<kind>-<id>` whose value names the flow run holding it. The
server creates a variable name once (a second create answers 409), so two workers claiming the same
environment at the same moment get one winner, and the loser reads who won. A claim outlives the claiming
process: it holds through approval suspensions and parking, when no process of the run exists, which is
why it is not a global concurrency slot (a lease ends with its holder's process). It ends when the run
ends: released at the end of the run, or found stale by the next claimant when the run it names is
Completed, Failed, Cancelled, Crashed or gone, and taken over. A takeover deletes the stale variable by
its id, so of two runs taking over the same stale claim only one deletes it and creates the new one.

A claim also says what its run does to the subject (`Holder.intent`, the plan's action). A crashed run's
claim is therefore the only record of what an operation it left running at the service is for (the service
does not say which policy a running link goes to): it stays until a run takes it over, and a re-run whose
plan does the same adopts that operation instead of starting a second one (`owner_of`).

A claim on an environment also keeps the lifecycle operation its run started there (`Holder.operation`):
written before the start is sent, completed with the operation's continuation token once the service
accepted it, cleared when the task settled it (`held`). A retried task, a retried flow run and a re-run that
takes the claim over (the record goes with it) therefore wait on that operation instead of starting another,
whichever process died between the start and the wait.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import VariableCreate
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from pydantic import BaseModel, Field

from ppcmk.models.environments import OperationKind
from ppcmk.models.findings import Finding, error
from ppcmk.safety.plan import Plan

CLAIM_PREFIX = "ppcmk-claim-"
CLAIM_TAG = "ppcmk-claim"
ENDED = {StateType.COMPLETED, StateType.FAILED, StateType.CANCELLED, StateType.CRASHED}
MAX_NAME = 255


class OperationRecord(BaseModel):
    """A lifecycle operation a run started on the environment it claims: written ahead of the start, so a
    process that dies after sending it leaves this behind (`token` None: look the operation up at the service,
    `PowerPlatformAdminClient.find_started`)."""

    kind: OperationKind
    target: str | None = None  # a link's policy systemId
    posted_at: datetime = Field(description="when the start was sent (the cloud's clock)")
    attempt: int = Field(default=1, ge=1, description="the step's operations started so far, this one too")
    token: str | None = Field(default=None, description="the poller's continuation token, once accepted")


class Holder(BaseModel):
    """The value of a claim variable."""

    flow_run_id: str
    flow_run_name: str
    procedure: str
    subject: str
    claimed_at: str
    intent: str = ""  # what the run does to the subject: its plan's action, e.g. "link to ep-cmk-europe"
    operation: OperationRecord | None = None  # the lifecycle operation the run started and has not settled


@dataclass(frozen=True)
class Subject:
    """What is claimed: an environment id, or a policy whose key access changes."""

    kind: str
    id: str
    label: str = ""
    intent: str = ""

    @property
    def variable(self) -> str:
        slug = re.sub(r"[^a-z0-9_-]+", "-", f"{self.kind}-{self.id}".lower()).strip("-")
        name = CLAIM_PREFIX + slug
        if len(name) <= MAX_NAME:
            return name
        return name[: MAX_NAME - 17] + "-" + hashlib.sha256(slug.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.kind} {self.label} ({self.id})" if self.label and self.label != self.id else \
            f"{self.kind} {self.id}"


@dataclass(frozen=True)
class Conflict:
    subject: Subject
    holder: Holder
    holder_state: str

    def finding(self) -> Finding:
        return error(
            "claim.held", self.subject.id,
            f"{self.subject.describe()} is claimed by {run_of(self.holder, self.holder_state)} since "
            f"{self.holder.claimed_at}",
            f"let run '{self.holder.flow_run_name}' finish (or cancel it), then run again")


def run_of(holder: Holder, state: str) -> str:
    """The holder's run as a person reads it: name first, then runbook, state and id."""
    return f"flow run '{holder.flow_run_name}' ({holder.procedure}, {state}, id {holder.flow_run_id})"


def current_run() -> tuple[str, str] | None:
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    return str(context.flow_run.id), context.flow_run.name


def claim(subjects: Iterable[Subject], procedure: str, run: tuple[str, str] | None = None) -> list[Conflict]:
    """Claim every subject for `run` (id, name; default the current flow run); the subjects other active
    runs hold come back as conflicts (and stay theirs). Outside a flow run nothing is claimed."""
    run = run or current_run()
    if run is None:
        return []
    conflicts = []
    with get_client(sync_client=True) as client:
        for subject in subjects:
            conflict = _claim_one(client, subject, Holder(
                flow_run_id=run[0], flow_run_name=run[1], procedure=procedure,
                subject=subject.describe(), claimed_at=datetime.now(UTC).isoformat(timespec="seconds"),
                intent=subject.intent))
            if conflict is not None:
                conflicts.append(conflict)
    return conflicts


def _claim_one(client: SyncPrefectClient, subject: Subject, me: Holder) -> Conflict | None:
    for _ in range(3):  # create, or take over a stale claim; another claimant may win each race
        try:
            client.create_variable(VariableCreate(name=subject.variable, value=me.model_dump(mode="json"),
                                                  tags=[CLAIM_TAG, _run_tag(me.flow_run_id)]))
            return None
        except ObjectAlreadyExists:
            pass
        existing = client.read_variable_by_name(subject.variable)
        if existing is None:
            continue  # released meanwhile
        holder = Holder.model_validate(existing.value)
        if holder.flow_run_id == me.flow_run_id:
            return None  # this run claimed it before its suspension or park
        state = _run_state(client, holder.flow_run_id)
        if state is not None and state[0] not in ENDED:
            return Conflict(subject, holder, state[1])
        if _delete(client, existing.id):  # stale: that run ended (or is gone)
            # what it started and never settled is this run's to wait on now
            me = me.model_copy(update={"operation": holder.operation})
    raise RuntimeError(f"{subject.describe()}: the claim changed hands three times while claiming; run again")


def _run_state(client: SyncPrefectClient, flow_run_id: str) -> tuple[StateType, str] | None:
    """The run's state type and name, None when the run no longer exists."""
    try:
        run = client.read_flow_run(UUID(flow_run_id))
    except ObjectNotFound:
        return None
    if run.state is None:
        return StateType.PENDING, "Pending"
    return run.state.type, run.state.name or run.state.type.value


def _run_tag(flow_run_id: str) -> str:
    return f"ppcmk-run-{flow_run_id}"


def _delete(client: SyncPrefectClient, variable_id: UUID) -> bool:
    """Delete that exact variable (not a newer one of the same name); False when it was gone already."""
    try:
        client.request("DELETE", "/variables/{id}", path_params={"id": variable_id}).raise_for_status()
    except httpx.HTTPStatusError as gone:
        if gone.response.status_code == 404:
            return False
        raise
    return True


def _claim_variables(client: SyncPrefectClient, tags: list[str]) -> list[Any]:
    from prefect.client.schemas.objects import Variable

    found: list[Variable] = []
    while True:
        response = client.request("POST", "/variables/filter", json={
            "variables": {"tags": {"all_": tags}}, "offset": len(found), "limit": 200})
        page = [Variable.model_validate(item) for item in response.json()]
        found += page
        if len(page) < 200:
            return found


def release(flow_run_id: str) -> list[str]:
    """Release every claim of the run (its end); returns the subjects released."""
    released = []
    with get_client(sync_client=True) as client:
        for variable in _claim_variables(client, [CLAIM_TAG, _run_tag(flow_run_id)]):
            holder = Holder.model_validate(variable.value)
            if holder.flow_run_id == flow_run_id and _delete(client, variable.id):
                released.append(holder.subject)
    return released


def release_stale() -> list[str]:
    """Release every claim whose run ended or is gone (the waker sweeps them); returns the subjects. A
    Crashed run's claims stay: they record what an operation the crash left running is for, which its
    re-run needs to adopt that operation (a stale claim never blocks anyone)."""
    released = []
    with get_client(sync_client=True) as client:
        for variable in _claim_variables(client, [CLAIM_TAG]):
            holder = Holder.model_validate(variable.value)
            state = _run_state(client, holder.flow_run_id)
            swept = state is None or (state[0] in ENDED and state[0] != StateType.CRASHED)
            if swept and _delete(client, variable.id):
                released.append(holder.subject)
    return released


def holders() -> list[Holder]:
    """Every claim held now (for operators: who holds what)."""
    with get_client(sync_client=True) as client:
        return [Holder.model_validate(v.value) for v in _claim_variables(client, [CLAIM_TAG])]


def release_at_end(flow: object, flow_run: Any, state: object) -> None:
    """A flow hook (on_completion, on_failure, on_cancellation, on_crashed): the run's claims end with it."""
    release(str(flow_run.id))


@dataclass(frozen=True)
class Owner:
    """Who claims a subject now: the holder, its run's state, and whether that run is the current one."""

    holder: Holder
    state: str  # the run's state name; "gone" when the run no longer exists
    ended: bool
    mine: bool

    def describe(self) -> str:
        return run_of(self.holder, self.state)


def owner_of(subject: Subject) -> Owner | None:
    """The claim on `subject` now, with its run's state; None when nothing claims it."""
    run = current_run()
    with get_client(sync_client=True) as client:
        existing = client.read_variable_by_name(subject.variable)
        if existing is None:
            return None
        holder = Holder.model_validate(existing.value)
        state = _run_state(client, holder.flow_run_id)
    ended = state is None or state[0] in ENDED
    return Owner(holder, state[1] if state else "gone", ended,
                 mine=run is not None and run[0] == holder.flow_run_id)


class HeldClaim:
    """The claim the current flow run holds on a subject, as the place to keep the operation it starts there.
    Only the holder writes it, and a run changes each environment from one step at a time, so the value read
    when it was found is the one written over. Written by its id: a claim another run took over meanwhile
    is refused (404), never overwritten."""

    def __init__(self, variable_id: UUID, holder: Holder) -> None:
        self._variable_id = variable_id
        self._holder = holder

    @property
    def operation(self) -> OperationRecord | None:
        return self._holder.operation

    def note(self, operation: OperationRecord | None) -> None:
        """Keep `operation` in the claim (None: the run settled what it started)."""
        if operation == self._holder.operation:
            return
        holder = self._holder.model_copy(update={"operation": operation})
        with get_client(sync_client=True) as client:
            client.request("PATCH", "/variables/{id}", path_params={"id": self._variable_id},
                           json={"value": holder.model_dump(mode="json")})
        self._holder = holder


def held(subject: Subject) -> HeldClaim | None:
    """The claim the current flow run holds on `subject`; None outside a flow run (no call is made) or when
    the run holds none (nothing it starts there outlives its process then)."""
    run = current_run()
    if run is None:
        return None
    with get_client(sync_client=True) as client:
        existing = client.read_variable_by_name(subject.variable)
    if existing is None:
        return None
    holder = Holder.model_validate(existing.value)
    return HeldClaim(existing.id, holder) if holder.flow_run_id == run[0] else None


def plan_subjects(plan: Plan) -> list[Subject]:
    """What a plan changes that no two runs may change at once: its environments and, for key access, the
    policy or scope its role assignments serve; each with what the plan does to it."""
    kinds = {"environment": "environment", "policy": "policy", "role-assignment": "key-access"}
    subjects = {(kinds[item.kind], item.target): Subject(kinds[item.kind], item.target, intent=item.action)
                for item in plan.changes if item.kind in kinds}
    return list(subjects.values())


def claim_plan(plan: Plan) -> None:
    """Claim what `plan` changes for this run, before its approval is asked for. A subject another active
    run holds becomes an error finding naming that run, and the plan (published again) fails."""
    conflicts = claim(plan_subjects(plan), plan.procedure)
    if conflicts:
        plan.add_findings(conflict.finding() for conflict in conflicts)
        plan.publish()
        plan.raise_for_errors()


RELEASE_HOOKS: dict[str, Any] = {hook: [release_at_end] for hook in
                                 ("on_completion", "on_failure", "on_cancellation", "on_crashed")}
