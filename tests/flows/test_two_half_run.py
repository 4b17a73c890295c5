"""The two-half run is whole when built: `TwoHalfRun.start` gives a fresh run and a parked run re-entering
everything their next steps need, in whatever order they are called, as a frozen value; the linking
runbooks (onboard, migrate_byok) are one flow with one parameter list, named and documented by their
procedure."""

from __future__ import annotations

import inspect
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
from prefect import flow
from prefect.context import FlowRunContext
from prefect.flows import load_flow_from_entrypoint

from ppcmk.approvals.request import Approving
from ppcmk.fleet.parking import PARK_KEY_PREFIX
from ppcmk.fleet.selection import FleetMember, FleetSelector
from ppcmk.fleet.waves import FleetReport, StepResult
from ppcmk.safety.plan import Plan
from ppcmk_flows._parking import Checkpoint, save_checkpoint
from ppcmk_flows._runbook import load_connection
from ppcmk_flows._two_half import HandoffWork, TwoHalfRequest, TwoHalfRun
from ppcmk_flows.migrate_byok import MigrateByok, migrate_byok
from ppcmk_flows.onboard import Onboard, onboard
from ppcmk_tasks.policy import get_policy
from tests.support.sandbox import connection, target
from tests.support.scenario import FINANCE, KEY, LINKED_POLICY, PP_ADMIN, REQUESTER, REQUESTER_ID

pytestmark = pytest.mark.usefixtures("prefect_backend")

ROOT = Path(__file__).resolve().parents[2]


def onboarding(cloud: Any) -> Onboard:
    """Onboarding Finance, which the scenario already encrypts through the linked policy."""
    finance = FleetSelector(environment_ids=[FINANCE])
    return Onboard(target(cloud, key=KEY, policy=LINKED_POLICY), finance, enable_managed=True)


def asked(blocks: dict[str, str], requester: str | None = None) -> TwoHalfRequest:
    return TwoHalfRequest(kv_connection=blocks["kv-admin"], pp_connection=blocks["pp-admin"],
                          pp_admin=PP_ADMIN, requester=requester, waves=None, dry_run=True,
                          approving=Approving(60, 0))


def test_a_fresh_run_has_what_its_steps_need_in_either_order(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    @flow(name="two-half-fresh")
    def fresh() -> str:
        run = TwoHalfRun.start(onboarding(cloud), asked(sandbox_blocks), HandoffWork)
        assert run.parked is None
        assert run.requester == REQUESTER_ID  # no requester given: the Key Vault connection's principal
        outcome = run.until_approved()  # the plan first ...
        waiting = run.waiting()  # ... and the waves' options after it, as before it
        assert waiting.patience is None and not waiting.parked  # a local run never parks
        with pytest.raises(FrozenInstanceError):
            run.requester = "someone else"
        return str(getattr(outcome, "status", outcome))

    assert fresh() == "dry-run"


def test_a_parked_run_reentering_has_its_saved_work_and_the_approvers_connection(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    policy = get_policy.fn(connection(cloud, "kv-admin"), target(cloud, key=KEY, policy=LINKED_POLICY))
    saved = HandoffWork(plan=Plan(procedure="onboard", requester=REQUESTER, target_summary="Finance"),
                        approvers=[PP_ADMIN], expected=[FINANCE], connection_block=sandbox_blocks["pp-admin"],
                        policy=policy)
    steps: list[str] = []

    @flow(name="two-half-parked")
    def reentering() -> str:
        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        save_checkpoint(context.flow_run.id, Checkpoint(
            procedure="onboard", work=saved.model_dump(mode="json"), report=FleetReport(), parks=1,
            waves=[[FleetMember(id=FINANCE, name="Finance on CMK")]]))
        # what the server reports for this flow run once it has parked and been resumed
        context.flow_run.empirical_policy.pause_keys = {f"{PARK_KEY_PREFIX}1"}
        cloud.log.clear()
        run = TwoHalfRun.start(onboarding(cloud), asked(sandbox_blocks, "someone-new"), HandoffWork)
        # built without a call to the cloud's services (the sandbox's clock is read to stamp the audit):
        # a wake's calls are its polls
        assert [e.path for e in cloud.log.entries if not e.path.startswith("/_sandbox/")] == []
        assert run.parked is not None and run.parked.work == saved
        assert run.parked.approver == load_connection(sandbox_blocks["pp-admin"])
        assert run.requester == REQUESTER  # who requested the approved plan, not who starts the run now
        report = run.waves(run.parked, lambda m: steps.append(m.id) or StepResult(state="succeeded"))
        verified, rows = run.verify(run.parked, report)
        return run.finish(run.parked, verified, rows, "environment(s) encrypted").message

    assert reentering() == "1 of 1 environment(s) encrypted"
    assert steps == [FINANCE]  # the saved waves, continued without planning or asking again


def test_the_linking_runbooks_are_one_flow_named_and_documented_by_their_procedure() -> None:
    for runbook, procedure in ((onboard, Onboard), (migrate_byok, MigrateByok)):
        assert runbook.name == procedure.name and runbook.fn.__module__ == procedure.__module__
        assert runbook.description == inspect.getdoc(runbook.fn)
        summary = inspect.cleandoc(procedure.__doc__ or "").split("\n\nArgs:")[0]
        assert (runbook.description or "").startswith(summary)
        assert load_flow_from_entrypoint(f"ppcmk_flows.{procedure.name}:{procedure.name}") is runbook
        from_file = load_flow_from_entrypoint(f"{ROOT / 'flows' / procedure.name}.py:{procedure.name}")
        assert from_file.name == procedure.name
    assert inspect.signature(onboard.fn) == inspect.signature(migrate_byok.fn)
