"""A link (or unlink) found running when a runbook plans: adopted only when the claim left on the environment
is a crashed run's that meant the same step; a conflict (an error naming the holder, no approval asked,
nothing written) when another active run claims it, when the crashed run meant something else, or when no
claim accounts for it (the service does not say which policy a running link goes to)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Crashed, Running, State

from ppcmk.fleet.selection import FleetSelector
from ppcmk.safety import claims
from ppcmk.safety.plan import PlanHasErrors
from ppcmk.services.factory import ClientFactory
from ppcmk_flows._runbook import MICROSOFT_KEY
from ppcmk_flows.change_policy import change_policy
from ppcmk_flows.onboard import onboard
from ppcmk_flows.revert import revert
from tests.support.runs import approve_next, forget_run_state, start, start_with_sandbox_blocks
from tests.support.sandbox import changes_the_cloud, connection, save_target
from tests.support.scenario import (
    FINANCE,
    LINKED_POLICY,
    LINKED_POLICY_SYSTEM_ID,
    PP_ADMIN,
    PRODUCTION,
    REQUESTER,
)

pytestmark = pytest.mark.usefixtures("prefect_backend")

LINK_POSTS = rf"/{PRODUCTION}/enterprisePolicies/Encryption/link$"
OTHER_TARGET = "adoption-other-target"


@flow(name="adoption-predecessor")
def predecessor_flow() -> None:
    """Never run: it gives the predecessors' flow runs a flow."""


@pytest.fixture(autouse=True)
def no_claims() -> None:
    forget_run_state()


def predecessor(state: State, intent: str, procedure: str = "onboard", environment: str = PRODUCTION) -> str:
    """A flow run in `state` whose claim on `environment` says it does `intent`; returns its name."""
    name = f"predecessor-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(predecessor_flow, name=name, state=Running())
    subject = claims.Subject("environment", environment, intent=intent)
    assert claims.claim([subject], procedure, run=(str(run.id), name)) == []
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run.id, state, force=True)
    return name


def left_running(cloud: Any, operation: str = "link", environment: str = PRODUCTION) -> None:
    """The Power Platform admin's link to (or unlink from) ep-existing, started and not waited for."""
    admin = ClientFactory(connection(cloud, "pp-admin")).pp_admin()
    start_it = admin.begin_link if operation == "link" else admin.begin_unlink
    assert not start_it(environment, LINKED_POLICY_SYSTEM_ID).done()
    cloud.advance(timedelta(minutes=1))  # past NotStarted: the environment shows the operation running


def parameters(blocks: dict[str, str], target: str, environment: str = PRODUCTION) -> dict[str, Any]:
    return {"kv_connection": blocks["kv-admin"], "pp_connection": blocks["pp-admin"], "target": target,
            "pp_admin": PP_ADMIN, "requester": REQUESTER, "approval_poll_s": 1,
            "selector": FleetSelector(environment_ids=[environment])}


def refused(cloud: Any, blocks: dict[str, str], target: str, environment: str = PRODUCTION) -> str:
    """onboard's plan fails before anything is asked or written; returns the environment's finding."""
    cloud.log.clear()
    state = onboard(**parameters(blocks, target, environment), return_state=True)
    assert state.is_failed()
    with pytest.raises(PlanHasErrors) as failed:
        state.result()
    writes = [e for e in cloud.log.entries if changes_the_cloud(e.method, e.path)]
    assert writes == []
    [finding] = [f for f in failed.value.errors if f.subject == environment]
    assert finding.check == "env.busy"
    return finding.message


def test_a_crashed_runs_link_to_the_same_policy_is_adopted(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    left_running(cloud)
    crashed = predecessor(Crashed(), f"link to {LINKED_POLICY}")
    running = start(onboard, **parameters(sandbox_blocks, sandbox_blocks["target"]))
    pending = approve_next(running, PP_ADMIN, connection_block=sandbox_blocks["pp-admin"])
    assert "env.adopt" in pending.description and crashed in pending.description
    outcome = running.result(timeout=120)
    assert outcome.status == "completed", outcome.message
    assert cloud.log.count(method="POST", path=LINK_POSTS) == 1  # the crashed run's: none of its own
    env = cloud.world.powerplatform.environment(PRODUCTION)
    assert env.cmk is not None and env.cmk.policy_id.endswith(f"/{LINKED_POLICY}")
    assert env.key_managed_by == "Customer"


def test_a_crashed_runs_link_to_another_policy_is_a_conflict(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    save_target(cloud, OTHER_TARGET, key_name="cmk-adoption", key_size=2048, policy_name="ep-adoption")
    left_running(cloud)
    crashed = predecessor(Crashed(), f"link to {LINKED_POLICY}")
    message = refused(cloud, sandbox_blocks, OTHER_TARGET)
    assert crashed in message and f"meant to link to {LINKED_POLICY}" in message
    assert "would link to ep-adoption" in message


def test_a_link_an_active_run_claims_is_a_conflict_naming_that_run(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    left_running(cloud)
    holder = predecessor(Running(), f"link to {LINKED_POLICY}")
    message = refused(cloud, sandbox_blocks, sandbox_blocks["target"])
    assert f"flow run '{holder}' (onboard, Running" in message and "which claims the environment" in message


def test_a_link_no_claim_accounts_for_is_not_adopted(cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    left_running(cloud)
    message = refused(cloud, sandbox_blocks, sandbox_blocks["target"])
    assert "no ppcmk run claims" in message


def test_a_crashed_reverts_unlink_is_adopted_by_its_rerun(cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    left_running(cloud, "unlink", FINANCE)
    step = f"unlink from {LINKED_POLICY}: back to {MICROSOFT_KEY}"
    crashed = predecessor(Crashed(), step, "revert", FINANCE)
    running = start(revert, connection=sandbox_blocks["runbook"], target=sandbox_blocks["target"],
                    requester=REQUESTER, approval_poll_s=1)
    pending = approve_next(running, PP_ADMIN)
    assert "env.adopt" in pending.description and crashed in pending.description
    outcome = running.result(timeout=120)
    assert outcome.status == "completed", outcome.message
    assert cloud.log.count(method="POST", path=rf"/{FINANCE}/enterprisePolicies/Encryption/unlink$") == 1
    assert cloud.world.powerplatform.environment(FINANCE).cmk is None


def test_a_crashed_reverts_unlink_is_a_conflict_for_onboard(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    left_running(cloud, "unlink", FINANCE)
    unlink = f"unlink from {LINKED_POLICY}: back to {MICROSOFT_KEY}"
    crashed = predecessor(Crashed(), unlink, "revert", FINANCE)
    message = refused(cloud, sandbox_blocks, sandbox_blocks["target"], FINANCE)
    assert crashed in message and f"this run would link to {LINKED_POLICY}" in message


def test_a_crashed_change_policys_unlink_is_adopted_and_the_move_goes_on(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    left_running(cloud, "unlink", FINANCE)
    crashed = predecessor(Crashed(), f"unlink from {LINKED_POLICY}, then link to ep-new", "change_policy",
                          FINANCE)
    running = start_with_sandbox_blocks(change_policy, sandbox_blocks, new_policy_name="ep-new",
                                        new_key_name="cmk-new", pp_admin=PP_ADMIN)
    pending = approve_next(running, PP_ADMIN, connection_block=sandbox_blocks["pp-admin"])
    assert "env.adopt" in pending.description and crashed in pending.description
    outcome = running.result(timeout=120)
    assert outcome.status == "completed", outcome.message
    posts = {op: cloud.log.count(method="POST", path=rf"/{FINANCE}/enterprisePolicies/Encryption/{op}$")
             for op in ("unlink", "link")}
    assert posts == {"unlink": 1, "link": 1}  # the crashed run's unlink, then this run's link
    env = cloud.world.powerplatform.environment(FINANCE)
    assert env.cmk is not None and env.cmk.policy_id.endswith("/ep-new")
