"""Claims in the Prefect server: one winner per environment across runs, a conflict names the holder, a
claim of an ended run is taken over, and a run releases only its own claims."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.states import Completed, Crashed, Running, Suspended

from ppcmk.safety import claims
from ppcmk.safety.claims import Subject
from ppcmk.safety.plan import Plan, PlanHasErrors, PlanItem


@flow(name="claims-holder")
def holder_flow() -> None:
    """Never run: it gives the test's flow runs a flow."""


@pytest.fixture
def env_subject() -> Subject:
    return Subject("environment", f"e-{uuid.uuid4()}", "Finance (test)")


MakeRun = Callable[..., tuple[str, str]]


@pytest.fixture
def make_run(prefect_backend: None) -> Iterator[MakeRun]:
    """Flow runs in a given state (Running by default), as (id, name)."""

    def make(name: str, state: object = None) -> tuple[str, str]:
        with get_client(sync_client=True) as client:
            run = client.create_flow_run(holder_flow, name=name, state=state or Running())
        return str(run.id), name

    yield make


def set_state(run: tuple[str, str], state: object) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(uuid.UUID(run[0]), state, force=True)  # type: ignore[arg-type]


def test_a_second_run_is_refused_naming_the_holder(make_run: MakeRun, env_subject: Subject) -> None:
    first, second = make_run("revert-first"), make_run("change-policy-second")
    assert claims.claim([env_subject], "revert", run=first) == []
    assert claims.claim([env_subject], "revert", run=first) == []  # its own claim again (after a suspension)
    set_state(first, Suspended(timeout_seconds=600))
    [conflict] = claims.claim([env_subject], "change_policy", run=second)
    finding = conflict.finding()
    assert finding.severity == "error" and finding.check == "claim.held"
    assert all(part in finding.message for part in ("revert-first", "Suspended", first[0]))


@pytest.mark.parametrize("end", [Completed, Crashed])
def test_a_claim_of_an_ended_run_is_taken_over(make_run: MakeRun, env_subject: Subject, end: type) -> None:
    first, second = make_run("crashed-first"), make_run("rerun")
    claims.claim([env_subject], "onboard", run=first)
    set_state(first, end())
    assert claims.claim([env_subject], "onboard", run=second) == []
    [held] = [h for h in claims.holders() if h.subject == env_subject.describe()]
    assert held.flow_run_id == second[0]


def test_racing_runs_get_exactly_one_winner(make_run: MakeRun, env_subject: Subject) -> None:
    runs = [make_run(f"racer-{n}") for n in range(6)]
    outcomes: dict[str, list[claims.Conflict]] = {}
    threads = [threading.Thread(target=lambda r=run: outcomes.setdefault(r[0], claims.claim(
        [env_subject], "onboard", run=r))) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    winners = [run_id for run_id, conflicts in outcomes.items() if not conflicts]
    assert len(outcomes) == 6 and len(winners) == 1
    assert all(c[0].holder.flow_run_id == winners[0] for c in outcomes.values() if c)


def test_a_run_releases_only_its_own_claims(make_run: MakeRun) -> None:
    mine, other = make_run("mine"), make_run("other")
    subjects = [Subject("environment", f"e-{uuid.uuid4()}") for _ in range(2)]
    theirs = Subject("environment", f"e-{uuid.uuid4()}")
    claims.claim(subjects, "onboard", run=mine)
    claims.claim([theirs], "revert", run=other)
    assert sorted(claims.release(mine[0])) == sorted(s.describe() for s in subjects)
    assert claims.claim(subjects, "revert", run=other) == []
    assert claims.release(mine[0]) == []


def test_a_plan_touching_a_claimed_environment_fails_before_its_approval(
        make_run: MakeRun, env_subject: Subject) -> None:
    holder = make_run("onboard-holder")
    claims.claim([env_subject], "onboard", run=holder)

    @flow(name="claims-planner")
    def planner() -> None:
        plan = Plan(procedure="revert", requester="a@contoso.example", target_summary="t", items=[
            PlanItem(target=env_subject.id, kind="environment", action="unlink")])
        claims.claim_plan(plan)

    with pytest.raises(PlanHasErrors, match="onboard-holder"):
        planner()


def test_long_ids_still_make_valid_variable_names() -> None:
    name = Subject("key-access", "/subscriptions/X/resourceGroups/RG/" + "p" * 300).variable
    assert len(name) <= 255 and name.startswith("ppcmk-claim-key-access-") and name == name.lower()


def test_the_waker_keeps_a_crashed_runs_claim_and_what_it_meant(make_run: MakeRun) -> None:
    """A crashed run's claim is the only record of what an operation it left running is for."""
    crashed, completed = make_run("crashed"), make_run("completed")
    kept = Subject("environment", f"e-{uuid.uuid4()}", intent="link to ep-cmk-europe")
    swept = Subject("environment", f"e-{uuid.uuid4()}")
    claims.claim([kept], "onboard", run=crashed)
    claims.claim([swept], "revert", run=completed)
    set_state(crashed, Crashed())
    set_state(completed, Completed())
    released = claims.release_stale()
    assert swept.describe() in released and kept.describe() not in released
    owner = claims.owner_of(kept)
    assert owner is not None and owner.ended and not owner.mine
    assert owner.holder.intent == "link to ep-cmk-europe" and owner.state == "Crashed"
    assert claims.owner_of(swept) is None
