"""The demo's scripted admins: run a runbook and answer its approval pauses through Prefect's resume API,
exactly what an admin's click on "Resume" in the Prefect UI (or `ppcmk approve`) sends, each with the proof
of their own sign-in at the sandbox's authority."""

from __future__ import annotations

import contextvars
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import ArtifactCollectionFilter, ArtifactCollectionFilterKey
from prefect.states import State

from ppcmk.safety.plan import artifact_key
from ppcmk_cli.approval_checks import sign_in_of
from ppcmk_cli.approvals import decision_for
from ppcmk_cli.prefect_api import WaitingRun, resume_with_input, waiting_runs
from ppcmk_cli.profile import SandboxProfile
from ppcmk_cli.scripted_sign_in import scripted_proof

POLL_SECONDS = 0.2


@dataclass(frozen=True)
class ScriptedAnswer:
    """Who answers the runbook's approvals, and how."""

    approver: str  # UPN of the answering admin (never the requester)
    role: str  # shown in the output, e.g. "Power Platform admin"
    persona: str  # the sandbox person who signs in, e.g. pp-admin
    confirmation: str | None = None  # when the plan asks to type the policy name


@dataclass
class AnsweredApproval:
    run: WaitingRun
    plan_hash: str
    plan_rows: list[dict[str, Any]]


@dataclass
class FlowInThread:
    """A flow run started in a background thread; the caller keeps the terminal (progress, answers)."""

    thread: threading.Thread
    box: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def start(cls, flow_fn: Flow[..., Any], parameters: dict[str, Any]) -> FlowInThread:
        box: dict[str, Any] = {}

        def target() -> None:
            try:
                box["state"] = flow_fn(return_state=True, **parameters)
            except BaseException as error:  # re-raised in the caller's thread by final_state()
                box["error"] = error

        # Prefect settings (which API) live in context variables, which a new thread does not inherit.
        context = contextvars.copy_context()
        thread = threading.Thread(target=context.run, args=(target,), daemon=True,
                                  name=f"demo-{getattr(flow_fn, 'name', 'flow')}")
        thread.start()
        return cls(thread=thread, box=box)

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def final_state(self) -> State[Any]:
        self.thread.join()
        if "error" in self.box:
            raise self.box["error"]
        state: State[Any] = self.box["state"]
        return state


def plan_table_rows(client: SyncPrefectClient, procedure: str) -> list[dict[str, Any]]:
    """The newest published plan table of `procedure` (what the approver sees next to the form)."""
    key = artifact_key(procedure, "plan")
    newest = ArtifactCollectionFilter(key=ArtifactCollectionFilterKey(any_=[key]))
    found = client.read_latest_artifacts(artifact_filter=newest)
    data = found[0].data if found else None
    if isinstance(data, str):
        data = json.loads(data)
    return list(data) if isinstance(data, list) else []


def answer_pending(client: SyncPrefectClient, flow_name: str, procedure: str, answer: ScriptedAnswer,
                   answered: set[UUID], since: datetime, profile: SandboxProfile) -> list[AnsweredApproval]:
    """Approve every approval of the flow `flow_name` asked since `since` that this admin has not answered
    yet (other runs waiting on the same Prefect server are left alone); `procedure` names its plan."""
    done = []
    for waiting in waiting_runs(client):
        ready = waiting.schema.get("properties", {}).get("plan_hash", {}).get("default")
        created = waiting.run.created
        ours = waiting.flow_name == flow_name and created is not None and created >= since
        if waiting.run.id in answered or not ours or not ready:  # the form is written just after the pause
            continue
        proof = scripted_proof(sign_in_of(waiting), profile, answer.persona)
        run_input = decision_for(waiting, reject=False, comment="demo", proof=proof,
                                 confirmation=answer.confirmation)
        rows = plan_table_rows(client, procedure)
        resume_with_input(client, waiting.run.id, run_input)
        answered.add(waiting.run.id)
        done.append(AnsweredApproval(waiting, run_input["plan_hash"], rows))
    return done


def drive(flow_fn: Flow[..., Any], parameters: dict[str, Any], procedure: str,
          answer: ScriptedAnswer | None, on_approval: Callable[[AnsweredApproval], None],
          on_tick: Callable[[], None], profile: SandboxProfile) -> State[Any]:
    """Run the flow to its end, answering its approvals as `answer` says (its person signs in at the sandbox
    `profile` names); `on_tick` refreshes progress."""
    answered: set[UUID] = set()
    since = datetime.now(UTC)
    running = FlowInThread.start(flow_fn, parameters)
    with get_client(sync_client=True) as client:
        while running.running:
            if answer is not None:
                for approval in answer_pending(client, flow_fn.name, procedure, answer, answered, since,
                                               profile):
                    on_approval(approval)
            on_tick()
            time.sleep(POLL_SECONDS)
    return running.final_state()
