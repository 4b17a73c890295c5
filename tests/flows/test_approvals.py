"""Approvals answered through Prefect's resume API: the approver proven by their own sign-in, refused answers
asked again, rejection and expiry as outcomes, the form's schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from prefect.client.orchestration import get_client
from prefect.flow_runs import resume_flow_run
from prefect.input.run_input import keyset_from_paused_state
from prefect.states import Suspended

from ppcmk.approvals.forms import form_for
from ppcmk.approvals.pause import expire_overdue
from ppcmk.audit.trail import AuditLog
from tests.flows.approval_harness import POLICY, SECOND, harness, plan_for, run
from tests.support.runs import answer, approve_next, wait_for_approval
from tests.support.scenario import PP_ADMIN, PP_ADMIN_ID, REQUESTER, REQUESTER_ID

pytestmark = pytest.mark.usefixtures("prefect_backend")


@pytest.fixture(scope="module", autouse=True)
def blocks(sandbox_blocks: dict[str, str]) -> dict[str, str]:
    return sandbox_blocks


def test_an_approval_names_the_proven_approver_and_is_audited(
    blocks: dict[str, str], audit_home: AuditLog
) -> None:
    running = run(blocks)
    pending = approve_next(running, PP_ADMIN)
    assert pending.plan_hash == plan_for().hash
    for shown in (
        f"Key Vault Admin ({REQUESTER})",
        "**Contoso Sales** (`env-1`)",
        "Outage #1 of 1: link to ep-x",
        "any administrator but the requester",
    ):
        assert shown in pending.description
    result = running.result()
    assert result["approvers"] == [PP_ADMIN] and result["approver_ids"] == [PP_ADMIN_ID]
    events = [e["event"]["event"] for e in audit_home.entries()]
    assert events == ["approval-answered", "approval-granted"] and not audit_home.verify_chain()


def test_the_form_asks_a_decision_and_a_proof_and_says_where_to_sign_in(blocks: dict[str, str]) -> None:
    running = run(blocks)
    pending = wait_for_approval(running)
    with get_client(sync_client=True) as client:
        schema = json.loads(client.read_flow_run_input(pending.flow_run_id, f"paused-{pending.key}-schema"))
    assert {"decision", "proof"} <= set(schema["required"])
    assert schema["properties"]["decision"]["enum"] == ["approve", "reject"]
    assert "default" not in schema["properties"]["decision"]
    assert "proof" in schema["properties"] and "connection_block" not in schema["properties"]
    assert "`ppcmk approve RUN_ID` signs you in" in pending.description
    assert "confirmation" not in schema["properties"]
    request = schema["x-ppcmk-request"]
    assert request["environments"] == ["Contoso Sales"] and request["requester"].startswith("Key Vault Admin")
    assert request["requester_id"] == REQUESTER_ID and request["answer_by"]
    assert request["sign_in"]["scope"] == "api://contoso-approvals/Approve"
    answer(pending, approve=True, approver=PP_ADMIN)
    assert running.result()["status"] == "approved"


def test_a_rejection_names_who_rejected(blocks: dict[str, str], audit_home: AuditLog) -> None:
    running = run(blocks)
    approve_next(running, PP_ADMIN, approve=False, comment="not during quarter close")
    result = running.result()
    assert result["status"] == "ApprovalRejected"
    assert (
        result["reason"]
        == f"rejected by Power Platform Admin ({PP_ADMIN}): not during quarter close"
    )
    assert "approval-rejected" in [e["event"]["event"] for e in audit_home.entries()]


REFUSALS = {
    "self-approval": ({"approver": REQUESTER}, "requested this run and cannot approve it"),
    "no proof": ({"proof": ""}, "carries no proof"),
    "not a token": ({"proof": "hunter2"}, "not a token"),
    "stale plan hash": ({"approver": PP_ADMIN, "plan_hash": "0" * 64}, "but the plan to run is"),
}


@pytest.mark.parametrize("kind", REFUSALS)
def test_a_refused_answer_keeps_the_run_waiting(
    kind: str, blocks: dict[str, str], audit_home: AuditLog
) -> None:
    wrong, reason = REFUSALS[kind]
    running = run(blocks)
    first = wait_for_approval(running)
    answer(first, approve=True, **wrong)
    again = approve_next(running, PP_ADMIN)
    assert again.key == f"{first.key}-r2"
    assert running.result()["status"] == "approved"
    refused = [e["event"] for e in audit_home.entries() if e["event"]["event"] == "approval-refused"]
    assert len(refused) == 1 and reason in refused[0]["reason"]


def test_lock_needs_two_different_approvers_and_the_typed_policy_name(blocks: dict[str, str]) -> None:
    running = run(blocks, approvers_needed=2, confirm_text=POLICY)
    approve_next(running, PP_ADMIN, confirmation=POLICY)
    approve_next(running, PP_ADMIN, confirmation=POLICY)  # the same person again: refused
    approve_next(running, SECOND, confirmation="ep-exist1ng")  # a typo: refused
    approve_next(running, SECOND, confirmation=POLICY)
    assert running.result()["approvers"] == [PP_ADMIN, SECOND]


def test_an_unanswered_request_expires(blocks: dict[str, str], audit_home: AuditLog) -> None:
    state = harness(targets=["env-1"], kv_block=blocks["kv-admin"], timeout_s=1, return_state=True)
    assert (
        state.result()["status"] == "ApprovalExpired" and "no acceptable answer" in state.result()["reason"]
    )
    assert [e["event"]["event"] for e in audit_home.entries()] == ["approval-expired"]


def test_a_changed_plan_is_asked_again_under_a_new_key(blocks: dict[str, str]) -> None:
    running = run(blocks, targets=["env-1", "env-2"])
    first = approve_next(running, PP_ADMIN)
    second = approve_next(running, PP_ADMIN)
    assert second.key != first.key and second.plan_hash == plan_for("env-2").hash
    assert running.result()["plan_hash"] == plan_for("env-2").hash


def test_malformed_input_is_refused_by_the_server_and_the_run_keeps_waiting(blocks: dict[str, str]) -> None:
    running = run(blocks)
    pending = wait_for_approval(running)
    with pytest.raises(RuntimeError, match="decision"):
        resume_flow_run(
            pending.flow_run_id,
            run_input={"proof": "", "plan_hash": pending.plan_hash},
        )
    answer(pending, approve=True, approver=PP_ADMIN)
    assert running.result()["status"] == "approved"


def test_the_waker_ends_a_suspended_approval_past_its_deadline_expired(blocks: dict[str, str]) -> None:
    """A suspended run has no process to notice its deadline: `expire_overdue` (the waker) ends it."""
    answer_by = datetime(2026, 1, 2, tzinfo=UTC)
    suspended = Suspended(timeout_seconds=3600, pause_key="harness-1")
    keyset = keyset_from_paused_state(suspended)
    suspended.state_details.run_input_keyset = keyset
    form = form_for("plan", {"procedure": "test-approval", "answer_by": answer_by.isoformat()})
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(
            harness, parameters={"targets": ["env-1"], "kv_block": blocks["kv-admin"]}
        )
        client.set_flow_run_state(run.id, suspended, force=True)
        client.create_flow_run_input(run.id, keyset["schema"], json.dumps(form.model_json_schema()))
        assert run.id not in expire_overdue(client, now=answer_by - timedelta(minutes=1))
        assert run.id in expire_overdue(client, now=answer_by + timedelta(minutes=1))
        state = client.read_flow_run(run.id).state
    assert state is not None and state.is_cancelled() and state.name == "Expired"
    assert "no acceptable answer" in (state.message or "")
