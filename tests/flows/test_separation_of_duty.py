"""The seed's malicious Key Vault admin, holding the Prefect API and the `ppcmk` command line but no other
person's password, against the real runbooks: whatever they submit, they cannot answer an onboard hand-off or
get a lock approved, and nothing is written to the cloud after the question was asked. A proof comes only from
a person's own sign-in: not from a block (no person's secret is in one), not replayed, altered, unsigned, for
another audience or an application's. A person holding the Key Vault admin's rights is refused at the
hand-off even with the Power Platform role; the honest path (each person signs in) completes."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure.identity import ClientSecretCredential
from prefect.client.orchestration import get_client

from ppcmk.audit.trail import AuditLog
from ppcmk.fleet.selection import FleetSelector
from ppcmk.services.role_grants import KEY_VAULT_ADMINISTRATOR
from ppcmk_flows.onboard import onboard
from tests.flows.approval_harness import POLICY, SECOND, run
from tests.support.arm import vault_id
from tests.support.identity import authority, held
from tests.support.lock import start_lock
from tests.support.runs import (
    PendingApproval,
    RunningFlow,
    answer,
    approve_next,
    proof_of,
    start_with_sandbox_blocks,
    wait_for_approval,
)
from tests.support.sandbox import changes_the_cloud, save_target
from tests.support.scenario import PP_ADMIN, PP_ADMIN_ID, PRODUCTION, REQUESTER
from tests.support.world import change

pytestmark = pytest.mark.usefixtures("prefect_backend")
APPROVALS = "api://contoso-approvals"
PEOPLE = ("kv-admin", "pp-admin", "pp-admin-2", "outsider")


def forged(token: str, **claims: Any) -> str:
    """The token with its claims changed and its signature kept."""
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps({**body, **claims}).encode()).rstrip(b"=").decode()
    return f"{header}.{changed}.{signature}"


def unsigned(token: str) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{header}.{token.split('.')[1]}."


def app_token(cloud: Any, persona: str, scope: str) -> str:
    """What a block's client secret gets: an application's token, never a person's."""
    secret = held(cloud, persona)
    return ClientSecretCredential(cloud.endpoints.tenant_id, secret["client_id"], secret["client_secret"],
                                  **authority(cloud)).get_token(scope).token


def refusals(audit: AuditLog) -> list[str]:
    return [e["event"]["reason"] for e in audit.entries() if e["event"]["event"] == "approval-refused"]


def attack(running: RunningFlow, pending: PendingApproval, proof: str, confirmation: str | None = None
           ) -> PendingApproval:
    """Submit `proof` as the answer, then the run's next question (it asks again after a refusal)."""
    answer(pending, approve=True, proof=proof, confirmation=confirmation)
    return wait_for_approval(running)


def used_elsewhere(blocks: dict[str, str]) -> str:
    """A real proof of the Power Platform admin, with which they answered another run."""
    elsewhere = run(blocks, targets=["env-9"])
    asked = wait_for_approval(elsewhere)
    proof = proof_of(asked, PP_ADMIN)
    answer(asked, approve=True, proof=proof)
    assert elsewhere.result()["approvers"] == [PP_ADMIN]
    return proof


@pytest.fixture
def onboarding(cloud: Any, sandbox_blocks: dict[str, str]) -> RunningFlow:
    target = save_target(cloud, "sod-onboard-target", key_name="cmk-sod", key_size=2048, policy_name="ep-sod")
    return start_with_sandbox_blocks(onboard, {**sandbox_blocks, "target": target}, pp_admin=PP_ADMIN,
                                     selector=FleetSelector(environment_ids=[PRODUCTION]))


def test_the_key_vault_admin_cannot_answer_the_onboard_handoff(
        cloud: Any, sandbox_blocks: dict[str, str], onboarding: RunningFlow, audit_home: AuditLog) -> None:
    pending = wait_for_approval(onboarding, timeout=60)
    used = used_elsewhere(sandbox_blocks)
    asked = len(cloud.log.entries)
    attempts = {
        "their own sign-in": (proof_of(pending, REQUESTER), "requested this run"),
        "the Power Platform admin's proof, read from another run's answer": (used, "used before"),
        "that proof altered to name the Power Platform admin": (
            forged(proof_of(pending, REQUESTER), oid=PP_ADMIN_ID), "altered or forged"),
        "an unsigned token": (unsigned(used), "not signed by the identity provider"),
        "their block's secret, for ARM": (
            app_token(cloud, "kv-admin", "https://management.azure.com/.default"), "another application"),
        "their block's secret, for the approvals app": (
            app_token(cloud, "kv-admin", f"{APPROVALS}/.default"), "application's token"),
    }
    for proof, _ in attempts.values():
        pending = attack(onboarding, pending, proof)
    reasons = refusals(audit_home)
    for attempt, (reason, (_, expected)) in zip(attempts, zip(reasons, attempts.values(), strict=True),
                                                strict=True):
        assert expected in reason, attempt
    answer(pending, approve=False, approver=PP_ADMIN, comment="not this one")
    assert onboarding.state().name == "Rejected"
    assert [e.path for e in cloud.log.entries[asked:] if changes_the_cloud(e.method, e.path)] == []


def test_an_expired_proof_is_refused(cloud: Any, sandbox_blocks: dict[str, str], audit_home: AuditLog
                                     ) -> None:
    """The Power Platform admin's own sign-in, from an identity provider whose tokens expired an hour ago."""
    running = run(sandbox_blocks, timeout_s=60)
    asked = wait_for_approval(running)
    change(cloud, lambda world: setattr(world.settings, "token_clock_offset_seconds", -7200))
    stale = proof_of(asked, PP_ADMIN)
    change(cloud, lambda world: setattr(world.settings, "token_clock_offset_seconds", 0))
    again = attack(running, asked, stale)
    assert "the proof has expired" in refusals(audit_home)[-1]
    answer(again, approve=True, approver=PP_ADMIN)
    assert running.result()["approvers"] == [PP_ADMIN]


def test_a_proof_answers_one_question_only(sandbox_blocks: dict[str, str], audit_home: AuditLog) -> None:
    """The Power Platform admin's real answer to one run, replayed by someone else into another run that was
    already waiting (so the proof is fresh there): refused as used before."""
    victim = run(sandbox_blocks, timeout_s=60)
    waiting_first = wait_for_approval(victim)
    honest = run(sandbox_blocks, targets=["env-2"], timeout_s=60)
    asked = wait_for_approval(honest)
    proof = proof_of(asked, PP_ADMIN)
    answer(asked, approve=True, proof=proof)
    assert honest.result()["approvers"] == [PP_ADMIN]
    again = attack(victim, waiting_first, proof)
    assert "used before" in refusals(audit_home)[-1]
    answer(again, approve=False, approver=PP_ADMIN)
    assert victim.result()["status"] == "ApprovalRejected"


def test_one_person_cannot_give_both_lock_approvals(
        cloud: Any, sandbox_blocks: dict[str, str], audit_home: AuditLog) -> None:
    running = start_lock(sandbox_blocks)
    pending = wait_for_approval(running, timeout=60)
    asked = len(cloud.log.entries)
    pending = attack(running, pending, proof_of(pending, REQUESTER), POLICY)  # the requester: refused
    answer(pending, approve=True, approver=PP_ADMIN, confirmation=POLICY)  # a Power Platform admin: accepted
    pending = wait_for_approval(running)
    pending = attack(running, pending, proof_of(pending, PP_ADMIN), POLICY)  # the same person: refused
    pending = attack(running, pending, proof_of(pending, "outsider@contoso.example"), POLICY)  # no role
    reasons = refusals(audit_home)
    assert "requested this run" in reasons[0] and "already approved" in reasons[1]
    assert "holds neither" in reasons[2]
    assert [e.path for e in cloud.log.entries[asked:] if changes_the_cloud(e.method, e.path)] == []
    answer(pending, approve=True, approver=SECOND, confirmation=POLICY)  # a second person: the lock goes on
    assert running.state().is_completed()


def test_a_person_with_the_key_vault_admins_rights_is_refused_at_the_handoff(
        cloud: Any, sandbox_blocks: dict[str, str], audit_home: AuditLog) -> None:
    def also_key_vault_administrator(world: Any) -> None:
        template = next(iter(world.rbac.assignments.values()))
        world.rbac.add(replace(template, name=str(uuid.uuid4()), scope=vault_id(cloud),
                               role_guid=KEY_VAULT_ADMINISTRATOR, principal_id=PP_ADMIN_ID,
                               principal_type="User"))

    change(cloud, also_key_vault_administrator)
    running = run(sandbox_blocks, handoff_target=sandbox_blocks["target"], timeout_s=60)
    asked = wait_for_approval(running)
    pending = attack(running, asked, proof_of(asked, PP_ADMIN))
    assert "also holds Key Vault Administrator on the key's vault" in refusals(audit_home)[-1]
    answer(pending, approve=False, approver=PP_ADMIN)
    assert running.result()["status"] == "ApprovalRejected"


def test_no_persons_secret_is_in_a_block(cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    """Everyone with the Prefect API can read every block with its secrets: none holds a person's password,
    and the secrets they do hold (applications') get no person's token."""
    with get_client(sync_client=True) as client:
        documents = client.read_block_documents(include_secrets=True)
    everything = json.dumps([d.model_dump(mode="json") for d in documents])
    assert sandbox_blocks["kv-admin"] in everything  # the blocks are there, with their secrets
    for person in PEOPLE:
        assert held(cloud, person)["password"] not in everything, person


def test_the_proof_leaves_the_stored_answer(sandbox_blocks: dict[str, str], tmp_path: Path) -> None:
    running = run(sandbox_blocks)
    pending = approve_next(running, PP_ADMIN)
    assert running.result()["status"] == "approved"
    with get_client(sync_client=True) as client:
        stored = json.loads(client.read_flow_run_input(pending.flow_run_id, f"paused-{pending.key}-response"))
    assert stored["decision"] == "approve" and stored["proof"] == ""


def test_the_requester_cannot_be_named_the_power_platform_admin_by_another_name(
        cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    """The requester defaults to whom the Key Vault connection signs in as (an object id); naming the same
    person as pp_admin by their UPN is refused before anything is written."""
    target = save_target(cloud, "sod-self-target", key_name="cmk-self", key_size=2048, policy_name="ep-self")
    running = start_with_sandbox_blocks(onboard, {**sandbox_blocks, "target": target}, pp_admin=REQUESTER,
                                        requester=None, selector=FleetSelector(environment_ids=[PRODUCTION]))
    state = running.state()
    assert state.is_failed() and "pp_admin" in (state.message or "") and "requester" in (state.message or "")
    assert [e.path for e in cloud.log.entries if changes_the_cloud(e.method, e.path)] == []
