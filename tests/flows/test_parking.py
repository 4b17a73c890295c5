"""Parking: link/unlink with patience and resume against the sandbox, waves that stop at a parked member and
continue from its report, and the checkpoint's round trip through Prefect's result storage. (The park of a
real deployment run, its suspend and its wake are in tests/e2e/test_serve_onboard.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prefect import flow

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError
from ppcmk.fleet.parking import ParkedOperation
from ppcmk.fleet.selection import FleetMember
from ppcmk.fleet.waves import FleetReport, StepResult, WaveSpec, plan_waves, run_waves
from ppcmk.safety.plan import Plan
from ppcmk.services.ppadmin.pollers import ContinuationToken
from ppcmk_flows import _parking as parking
from ppcmk_flows._two_half import HandoffWork
from ppcmk_tasks import access, environments, policy
from tests.support.sandbox import connection, target
from tests.support.scenario import FINANCE, KEY, LINKED_POLICY, PP_ADMIN, PRODUCTION, REQUESTER

LINK = r"/enterprisePolicies/Encryption/link$"
UNLINK = r"/enterprisePolicies/Encryption/unlink$"
POLL = r"/lifecycleOperations/"


@pytest.fixture
def conn(cloud: Any) -> ConnectionSettings:
    return connection(cloud)


def _system_id(cloud: Any, conn: ConnectionSettings) -> str:
    existing = policy.get_policy.fn(conn, target(cloud, key=KEY, policy=LINKED_POLICY))
    return str(existing.system_id)


def _service_calls(cloud: Any) -> list[tuple[str, str]]:
    """Calls to the emulated APIs (the sandbox's own clock and admin routes left out)."""
    return [(e.method, e.path) for e in cloud.log.entries if not e.path.startswith("/_sandbox")]


def test_a_patient_link_returns_still_running_and_a_resume_polls_without_linking_again(
        cloud: Any, conn: ConnectionSettings) -> None:
    system_id = _system_id(cloud, conn)
    started = environments.link.fn(conn, PRODUCTION, system_id, patience=timedelta(minutes=10))
    token = started.continuation_token
    assert started.status == "StillRunning" and token is not None and started.attempts == 1
    assert cloud.log.count(method="POST", path=LINK) == 1

    cloud.log.clear()
    still = environments.link.fn(conn, PRODUCTION, system_id, patience=timedelta(0), continuation_token=token,
                                 attempts_so_far=1)
    assert still.status == "StillRunning" and still.continuation_token == token
    assert [method for method, _ in _service_calls(cloud)] == ["GET"]  # one poll per wake: nothing else

    cloud.clock.advance(timedelta(hours=1))
    done = environments.link.fn(conn, PRODUCTION, system_id, patience=timedelta(0), continuation_token=token,
                                attempts_so_far=1)
    assert done.status == "Succeeded" and done.environment is not None and done.environment.cmk.linked  # type: ignore[union-attr]
    assert cloud.log.count(method="POST", path=LINK) == 0  # the whole link was the first entry's one POST


def test_a_resumed_link_that_failed_is_started_again_within_max_attempts(
        cloud: Any, conn: ConnectionSettings) -> None:
    tgt = target(cloud, key=KEY, policy=LINKED_POLICY)
    existing = policy.get_policy.fn(conn, tgt)
    access.revoke_key_access.fn(conn, tgt, existing.principal_id)  # every link fails when it completes
    started = environments.link.fn(conn, PRODUCTION, str(existing.system_id), patience=timedelta(minutes=1))
    assert started.status == "StillRunning" and started.continuation_token is not None
    cloud.clock.advance(timedelta(hours=1))

    again = environments.link.fn(conn, PRODUCTION, str(existing.system_id), max_attempts=2,
                                 continuation_token=started.continuation_token, attempts_so_far=1)
    assert again.status == "Failed" and again.attempts == 2
    assert cloud.log.count(method="POST", path=LINK) == 2  # the failed one, then exactly one re-run
    spent = environments.link.fn(conn, PRODUCTION, str(existing.system_id), max_attempts=2,
                                 continuation_token=again.continuation_token, attempts_so_far=2)
    assert spent.status == "Failed" and cloud.log.count(method="POST", path=LINK) == 2  # no attempts left


def test_a_parked_unlink_is_resumed_not_sent_again(cloud: Any, conn: ConnectionSettings) -> None:
    started = environments.unlink.fn(conn, FINANCE, patience=timedelta(minutes=5))
    assert started.status == "StillRunning" and started.continuation_token is not None
    cloud.clock.advance(timedelta(hours=1))
    done = environments.unlink.fn(conn, FINANCE, continuation_token=started.continuation_token,
                                  attempts_so_far=1)
    assert done.status == "Succeeded" and done.environment is not None and done.environment.cmk is None
    assert cloud.log.count(method="POST", path=UNLINK) == 1


def test_bad_patience_values_name_the_field(cloud: Any, conn: ConnectionSettings) -> None:
    with pytest.raises(ConfigError, match=r"^patience:"):
        environments.link.fn(conn, PRODUCTION, "x", patience=timedelta(seconds=-1))
    with pytest.raises(ValueError, match=r"waves\.park_after_minutes: 0"):
        WaveSpec(park_after_minutes=0)
    assert WaveSpec().park_after_minutes == 30
    assert WaveSpec(park_after_minutes=None).park_after_minutes is None
    assert cloud.log.count(method="POST") == cloud.log.count(method="POST", path=r"^/_sandbox|token")


FLEET = [
    FleetMember(id=f"e{n}", name=f"env-{n}", sku="Sandbox" if n < 3 else "Production") for n in range(1, 6)
]


def _parked(environment_id: str) -> ParkedOperation:
    token = ContinuationToken(kind="link", environment_id=environment_id, url=f"https://bap/ops/{environment_id}",
                              started_at=datetime(2029, 12, 28, tzinfo=UTC))
    return ParkedOperation(kind="link", token=token.encode(), attempts=1,
                           deadline=datetime(2030, 1, 1, tzinfo=UTC))


def test_waves_stop_after_a_wave_with_a_parked_member_and_continue_from_its_report() -> None:
    spec = WaveSpec(wave_sizes=[2])
    waves = plan_waves(FLEET, spec)  # [e1, e2] canary, [e3, e4], [e5]
    calls: list[str] = []

    def first_entry(member: FleetMember) -> StepResult:
        calls.append(member.id)
        return StepResult(state="parked", parked=_parked(member.id)) if member.id == "e2" else StepResult(
            state="succeeded")

    parked = run_waves(waves, first_entry, spec)
    assert sorted(calls) == ["e1", "e2"]  # the wave's other member finished; the later waves waited
    assert parked.parked_in_wave == 1 and [r.environment_id for r in parked.parked] == ["e2"]
    assert parked.stopped_after_wave is None and not parked.not_started

    calls.clear()
    resumed = run_waves(waves, lambda m: calls.append(m.id) or StepResult(state="succeeded"), spec,
                        earlier=FleetReport.model_validate_json(parked.model_dump_json()))
    assert calls[0] == "e2" and sorted(calls) == ["e2", "e3", "e4", "e5"]  # e1 is not run twice
    assert resumed.parked_in_wave is None and not resumed.parked
    assert sorted((r.environment_id, r.wave, r.state) for r in resumed.results) == [
        ("e1", 1, "succeeded"), ("e2", 1, "succeeded"), ("e3", 2, "succeeded"), ("e4", 2, "succeeded"),
        ("e5", 3, "succeeded")]


def test_the_failure_gate_judges_a_wave_once_its_parked_members_are_done() -> None:
    spec = WaveSpec(canary_skus=[], wave_sizes=[2])
    waves = plan_waves(FLEET[:4], spec)

    def first_entry(member: FleetMember) -> StepResult:
        if member.id == "e1":
            raise RuntimeError("link Failed")
        return StepResult(state="parked", parked=_parked(member.id))

    parked = run_waves(waves, first_entry, spec)
    assert parked.parked_in_wave == 1 and parked.stopped_after_wave is None
    resumed = run_waves(waves, lambda m: StepResult(state="succeeded"), spec, earlier=parked)
    assert resumed.stopped_after_wave == 1  # e1's failure still counts for wave 1
    assert [r.environment_id for r in resumed.not_started] == ["e3", "e4"]


def test_a_local_run_never_parks(prefect_backend: None) -> None:
    @flow(name="parking-test-local")
    def local() -> parking.Waiting:
        return parking.waiting_for(WaveSpec(park_after_minutes=1))

    assert local().patience is None  # no deployment: a local run holds its process anyway
    assert parking.waiting_for(WaveSpec()).patience is None


def test_the_checkpoint_round_trips_through_result_storage_without_secrets(
        cloud: Any, prefect_backend: None) -> None:
    conn = connection(cloud)
    work = HandoffWork(
        plan=Plan(procedure="onboard", requester=REQUESTER, target_summary="t"),
        approvers=[PP_ADMIN], expected=["e1", "e2"], connection_block="sandbox-pp-admin",
        policy=policy.get_policy.fn(conn, target(cloud, key=KEY, policy=LINKED_POLICY)))
    report = run_waves([FLEET[:2]], lambda m: StepResult(state="parked", parked=_parked(m.id)), WaveSpec())

    @flow(name="parking-test-checkpoint")
    def round_trip() -> tuple[Any, bytes, Any]:
        run_id = parking.FlowRunContext.get().flow_run.id  # type: ignore[union-attr]
        checkpoint = parking.Checkpoint(procedure="onboard", work=work.model_dump(mode="json"),
                                        waves=[FLEET[:2]], report=report, parks=1)
        parking.save_checkpoint(run_id, checkpoint)
        stored = parking._storage().read_path(parking.checkpoint_path(run_id))
        loaded = parking.load_checkpoint(run_id)
        parking.clear_checkpoint(run_id)
        return loaded, stored, parking.load_checkpoint(run_id)

    loaded, stored, cleared = round_trip()
    assert HandoffWork.model_validate(loaded.work) == work and loaded.report == report and loaded.parks == 1
    assert [r.parked.token for r in loaded.report.parked] == [r.parked.token for r in report.parked]
    assert b'"connection_block":"sandbox-pp-admin"' in stored  # the block's name; its settings never
    assert b"client_secret" not in stored and b"ca_bundle" not in stored and b"eyJ" not in stored  # no JWT
    assert cleared is None
