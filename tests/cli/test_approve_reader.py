"""`ppcmk approve` at a hand-off: the answerer must hold Reader on the policy. The run records who holds it as
the Key Vault admin sees it when it asks, so an admin whose fresh Reader their own reads would not show yet
is accepted; one who does not hold it is refused before resuming, the policy named."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from ppcmk_cli import app
from ppcmk_cli.exit_codes import ExitCode
from tests.flows.approval_harness import run
from tests.support.approving import over_https, ppcmk_approve
from tests.support.arm import policy_id, subscription
from tests.support.runs import PendingApproval, RunningFlow, answer, wait_for_approval
from tests.support.scenario import PP_ADMIN, PP_ADMIN_2, PP_ADMIN_2_ID, RESOURCE_GROUP
from tests.support.world import change

pytestmark = pytest.mark.usefixtures("prefect_backend")

READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
KEY_VAULT_READER = "21090545-7ca7-4776-b22c-e363652d74d2"  # ARM reads, but no policy role


@pytest.fixture(scope="module")
def blocks(sandbox_blocks: dict[str, str]) -> dict[str, str]:
    return sandbox_blocks


@pytest.fixture
def handoffs(blocks: dict[str, str], ppcmk_home: Path) -> Iterator[list[RunningFlow]]:
    """The hand-off runs a test starts; any left waiting is rejected, so none waits into the next test."""
    started: list[RunningFlow] = []
    yield started
    for running in started:
        if running.thread.is_alive():
            answer(wait_for_approval(running), approve=False, approver=PP_ADMIN)
            running.state()


def ask(blocks: dict[str, str], handoffs: list[RunningFlow], **parameters: Any) -> RunningFlow:
    running = run(blocks, handoff_target=blocks["target"], **parameters)
    handoffs.append(running)
    return running


def give_second_admin(cloud: Any, role: str, scope: str, fresh: bool) -> None:
    """A role for PP_ADMIN_2 (a copy of the scenario's pp-admin Reader): `fresh` is granted now, so it has not
    applied to its holder's own reads yet; otherwise it was granted long ago."""

    def grant(world: Any) -> None:
        template = next(iter(world.rbac.assignments.values()))
        world.rbac.add(replace(
            template, name=str(uuid.uuid4()), scope=scope, role_guid=role, principal_id=PP_ADMIN_2_ID,
            principal_type="User",
            created_at=world.clock.now() if fresh else world.clock.now() - timedelta(days=1),
        ))

    change(cloud, grant)


def request_of(runner: CliRunner, pending: PendingApproval) -> dict[str, Any]:
    """The request as `ppcmk approvals --json` reads it from the waiting run."""
    listed = {item["run_id"]: item for item in json.loads(runner.invoke(app, ["approvals", "--json"]).output)}
    return dict(listed[str(pending.flow_run_id)]["request"])


def approve(cloud: Any, home: Path, pending: PendingApproval, persona: str) -> tuple[int, str]:
    """`ppcmk approve` with `persona` signing in at the device code it shows."""
    result = ppcmk_approve(cloud, home, over_https(cloud, persona), str(pending.flow_run_id))
    return result.exit_code, result.output


def still_waiting(pending: PendingApproval) -> bool:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(pending.flow_run_id).state
    return state is not None and state.is_paused()


def test_a_second_admin_with_a_fresh_reader_is_accepted_on_the_key_vault_admins_view(
    runner: CliRunner, cloud: Any, blocks: dict[str, str], handoffs: list[RunningFlow], ppcmk_home: Path
) -> None:
    give_second_admin(cloud, READER, policy_id(cloud), fresh=True)
    running = ask(blocks, handoffs)
    pending = wait_for_approval(running)
    assert PP_ADMIN_2_ID in request_of(runner, pending)["reader_ids"]
    code, said = approve(cloud, ppcmk_home, pending, "pp-admin-2")
    assert code == ExitCode.OK, said
    assert f"Accepted: Power Platform Admin 2 ({PP_ADMIN_2}) approved" in said
    assert running.result()["approvers"] == [PP_ADMIN_2]


def test_an_admin_without_reader_is_refused_before_resuming_naming_the_policy(
    runner: CliRunner, cloud: Any, blocks: dict[str, str], handoffs: list[RunningFlow], ppcmk_home: Path
) -> None:
    # an old role on the resource group: their own read succeeds, and shows no role that reads the policy
    resource_group = f"/subscriptions/{subscription(cloud)}/resourceGroups/{RESOURCE_GROUP}"
    give_second_admin(cloud, KEY_VAULT_READER, resource_group, fresh=False)
    running = ask(blocks, handoffs)
    pending = wait_for_approval(running)
    assert PP_ADMIN_2_ID not in request_of(runner, pending)["reader_ids"]
    code, said = approve(cloud, ppcmk_home, pending, "pp-admin-2")
    assert code == ExitCode.BLOCKED, said
    assert ("not resumed: Power Platform Admin 2 (pp-admin-2@contoso.example) has no Reader role on the "
            "enterprise policy ep-existing") in said
    assert still_waiting(pending)  # nothing was submitted


def test_each_ask_reads_the_readers_again(
    runner: CliRunner, cloud: Any, blocks: dict[str, str], handoffs: list[RunningFlow], ppcmk_home: Path
) -> None:
    """A re-plan asks again, the readers read again: a grant made after the first ask is in the second."""
    running = ask(blocks, handoffs, targets=["env-1", "env-2"])
    first = wait_for_approval(running)
    give_second_admin(cloud, READER, policy_id(cloud), fresh=True)
    assert PP_ADMIN_2_ID not in request_of(runner, first)["reader_ids"]
    assert approve(cloud, ppcmk_home, first, "pp-admin")[0] == ExitCode.OK
    second = wait_for_approval(running)
    assert second.plan_hash != first.plan_hash and PP_ADMIN_2_ID in request_of(runner, second)["reader_ids"]
    code, said = approve(cloud, ppcmk_home, second, "pp-admin-2")
    assert code == ExitCode.OK, said
    assert running.result()["approvers"] == [PP_ADMIN_2]
