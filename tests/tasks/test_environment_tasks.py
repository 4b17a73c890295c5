"""Environment tasks against the sandbox: selection, Managed Environment, link/unlink, re-enable, waits, and
the operation a retry or a re-run finds in the environment's claim."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.states import Crashed

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError, ServiceError
from ppcmk.fleet.selection import FleetSelector
from ppcmk.safety import claims
from ppcmk.services.factory import ClientFactory
from ppcmk_tasks import access, environments, policy
from tests.support.runs import forget_run_state, run_claiming, run_in_flow
from tests.support.sandbox import target
from tests.support.scenario import FINANCE, PRODUCTION, UNMANAGED

LINK = r"/enterprisePolicies/Encryption/link$"


def _existing_policy(cloud: Any, conn: ConnectionSettings) -> Any:
    return policy.get_policy.fn(conn, target(cloud, key="cmk-prod", policy="ep-existing"))


def test_selectors_combine_and_unknown_ids_are_an_error(cloud: Any, conn: ConnectionSettings) -> None:
    managed_prod = environments.get_environments.fn(
        conn, FleetSelector(geo="europe", skus=["Production"], name_pattern="contoso*")
    )
    assert [env.id for env in managed_prod] == [PRODUCTION]
    uk = environments.get_environments.fn(conn, FleetSelector(geo="unitedkingdom"))
    assert [env.display_name for env in uk] == ["UK Sandbox"]
    assert len(environments.get_environments.fn(conn)) == 12
    with pytest.raises(ValueError, match="e9999999-0000-4000-8000-000000000000 not found"):
        environments.get_environments.fn(
            conn, FleetSelector(environment_ids=["e9999999-0000-4000-8000-000000000000"])
        )


def test_managed_environment_is_enabled_once(cloud: Any, conn: ConnectionSettings) -> None:
    first = environments.enable_managed_environment.fn(conn, UNMANAGED)
    second = environments.enable_managed_environment.fn(conn, UNMANAGED)
    assert first.status == "Succeeded" and first.environment is not None and first.environment.managed
    assert second.status == "Unchanged" and second.attempts == 0
    assert cloud.log.count(method="POST", path="/governanceConfiguration$") == 1


@pytest.fixture
def no_claims(prefect_backend: None) -> None:
    forget_run_state()  # runs of other tests on this session server may still claim the reset environments


def _claimed_operation(environment_id: str) -> Any:
    with get_client(sync_client=True) as client:
        variable = client.read_variable_by_name(claims.Subject("environment", environment_id).variable)
    assert variable is not None
    return claims.Holder.model_validate(variable.value).operation


def test_a_retried_managed_environment_task_reports_the_change_its_first_try_made(
    cloud: Any, conn: ConnectionSettings, no_claims: None
) -> None:
    cloud.world.settings.governance_duration_seconds = 1  # done before the first poll
    cloud.faults.add(method="GET", path="/lifecycleOperations/", status=503, times=conn.retry_total + 1)
    managed = run_claiming(UNMANAGED, environments.enable_managed_environment, conn, UNMANAGED).result()
    assert managed.status == "Succeeded" and managed.attempts == 1 and managed.environment.managed
    assert cloud.log.count(method="POST", path="/governanceConfiguration$") == 1
    assert _claimed_operation(UNMANAGED) is None  # settled: nothing left for a re-run to wait on


def test_link_waits_inside_one_task_and_is_idempotent(
    cloud: Any, conn: ConnectionSettings, prefect_backend: None
) -> None:
    existing = _existing_policy(cloud, conn)
    cloud.faults.add(method="POST", path=LINK, status=429, times=2)
    linked = run_in_flow(environments.link, conn, PRODUCTION, existing.system_id)
    assert linked.status == "Succeeded" and linked.attempts == 1
    assert linked.environment.cmk.linked and linked.environment.enabled
    assert cloud.log.count(method="POST", path=LINK, status=202) == 1
    polls = cloud.log.count(method="GET", path="/lifecycleOperations/")
    assert 1 < polls < 200  # one task polled, honouring Retry-After, through a one-hour encryption
    again = environments.link.fn(conn, PRODUCTION, existing.system_id)
    assert again.status == "Unchanged" and cloud.log.count(method="POST", path=LINK, status=202) == 1


def test_a_retried_link_task_reports_the_link_its_first_try_made(
    cloud: Any, conn: ConnectionSettings, no_claims: None
) -> None:
    existing = _existing_policy(cloud, conn)
    cloud.world.settings.link_duration_seconds = 1  # done before the first poll
    # that poll fails past the client's own retries, so Prefect retries the task run after the link is done
    cloud.faults.add(method="GET", path="/lifecycleOperations/", status=503, times=conn.retry_total + 1)
    linked = run_claiming(PRODUCTION, environments.link, conn, PRODUCTION, existing.system_id).result()
    assert linked.status == "Succeeded" and linked.attempts == 1  # its own link, not found "Unchanged"
    assert cloud.log.count(method="POST", path=LINK) == 1
    assert _claimed_operation(PRODUCTION) is None


@pytest.mark.parametrize("finished", [False, True], ids=["still-running", "finished-meanwhile"])
def test_a_rerun_takes_over_the_link_a_crashed_run_sent_without_hearing_back(
    cloud: Any, conn: ConnectionSettings, no_claims: None, finished: bool
) -> None:
    existing = _existing_policy(cloud, conn)
    cloud.faults.crash_after("POST", LINK)  # the link is applied, then its sender hears nothing any more
    crashed = run_claiming(PRODUCTION, environments.link, conn, PRODUCTION, existing.system_id)
    assert crashed.is_failed()
    record = _claimed_operation(PRODUCTION)
    assert record is not None and record.kind == "link" and record.token is None  # written ahead, no answer
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(crashed.state_details.flow_run_id, Crashed(), force=True)
    cloud.faults.clear()
    if finished:  # the service finished it while no run was there: only the claim says whose it was
        cloud.advance(timedelta(seconds=cloud.world.settings.link_duration_seconds))

    rerun = run_claiming(PRODUCTION, environments.link, conn, PRODUCTION, existing.system_id).result()
    assert rerun.status == "Succeeded" and rerun.attempts == 1  # the crashed run's link, as the re-run's own
    assert cloud.log.count(method="POST", path=LINK) == 1
    assert rerun.environment.encrypted_by(existing.system_id)
    assert _claimed_operation(PRODUCTION) is None


def test_a_start_that_never_reached_the_service_is_sent_by_the_rerun(
    cloud: Any, conn: ConnectionSettings, no_claims: None
) -> None:
    existing = _existing_policy(cloud, conn)
    cloud.faults.add("POST", LINK, drop=True, times=None)  # the connection drops before the service reads it
    assert run_claiming(PRODUCTION, environments.link, conn, PRODUCTION, existing.system_id).is_failed()
    assert _claimed_operation(PRODUCTION).token is None
    cloud.faults.clear()

    rerun = run_claiming(PRODUCTION, environments.link, conn, PRODUCTION, existing.system_id).result()
    assert rerun.status == "Succeeded" and rerun.attempts == 1
    assert cloud.log.count(method="POST", path=LINK, status=202) == 1


def test_a_failed_link_is_rerun_a_bounded_number_of_times(cloud: Any, conn: ConnectionSettings) -> None:
    tgt = target(cloud, key="cmk-prod", policy="ep-existing")
    existing = _existing_policy(cloud, conn)
    access.revoke_key_access.fn(
        conn, tgt, existing.principal_id
    )  # the link fails when the operation completes
    failed = environments.link.fn(conn, PRODUCTION, existing.system_id, max_attempts=2)
    assert failed.status == "Failed" and failed.attempts == 2 and failed.error_message
    assert cloud.log.count(method="POST", path=LINK, status=202) == 2
    assert failed.environment is not None and failed.environment.cmk is None  # still on the Microsoft key


def test_unlink_reverts_and_a_wrong_system_id_is_refused(cloud: Any, conn: ConnectionSettings) -> None:
    with pytest.raises(ConfigError, match=r"^system_id:"):
        environments.unlink.fn(conn, FINANCE, "/regions/europe/providers/x/enterprisePolicies/other")
    reverted = environments.unlink.fn(conn, FINANCE)
    assert reverted.status == "Succeeded" and reverted.environment.cmk is None  # type: ignore[union-attr]
    assert environments.unlink.fn(conn, FINANCE).status == "Unchanged"


def test_an_unlink_left_running_by_a_crashed_run_is_waited_for_not_refused(
        cloud: Any, conn: ConnectionSettings) -> None:
    crashed_runs_unlink = ClientFactory.for_settings(conn).pp_admin().begin_unlink(
        FINANCE, _existing_policy(cloud, conn).system_id)
    assert not crashed_runs_unlink.done()  # still running when the re-run starts
    rerun = environments.unlink.fn(conn, FINANCE)
    assert rerun.status == "Succeeded" and rerun.environment.cmk is None  # type: ignore[union-attr]


def test_a_wait_resumes_from_a_continuation_token(cloud: Any, conn: ConnectionSettings) -> None:
    existing = _existing_policy(cloud, conn)
    short = environments.link.fn(conn, PRODUCTION, existing.system_id, deadline=timedelta(minutes=5))
    assert short.status == "StillRunning" and short.continuation_token is not None
    resumed = environments.link.fn(conn, PRODUCTION, existing.system_id, deadline=timedelta(days=1),
                                   continuation_token=short.continuation_token, attempts_so_far=1)
    assert resumed.status == "Succeeded" and resumed.environment.cmk.linked  # type: ignore[union-attr]
    assert cloud.log.count(method="POST", path=LINK) == 1


def test_a_locked_environment_is_reenabled_after_access_returns(cloud: Any, conn: ConnectionSettings) -> None:
    tgt = target(cloud, key="cmk-prod", policy="ep-existing")
    existing = _existing_policy(cloud, conn)
    assert environments.reenable_environment.fn(conn, FINANCE).status == "Unchanged"
    revoked = access.revoke_key_access.fn(conn, tgt, existing.principal_id)
    access.restore_key_access.fn(conn, revoked)
    access.wait_for_propagation.fn(conn, tgt, existing.principal_id)
    reenabled = environments.reenable_environment.fn(conn, FINANCE)
    assert reenabled.status == "Succeeded" and reenabled.environment.enabled  # type: ignore[union-attr]


def test_a_rejected_link_is_not_retried(cloud: Any, conn: ConnectionSettings, prefect_backend: None) -> None:
    existing = _existing_policy(cloud, conn)
    cloud.faults.add(method="POST", path=LINK, status=400, times=1, code="InvalidSystemId")
    with pytest.raises(ServiceError, match="HTTP 400 InvalidSystemId"):
        run_in_flow(environments.link, conn, PRODUCTION, existing.system_id)
    assert cloud.log.count(method="POST", path=LINK) == 1
