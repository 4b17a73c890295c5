"""The Power Platform admin client against the sandbox, in virtual time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ppcmk.errors import ConfigError, ServiceError
from ppcmk.models.arm_ids import vault_id
from ppcmk.models.environments import LifecycleOperation
from ppcmk.services.factory import ClientFactory
from ppcmk.services.ppadmin.pollers import ContinuationToken
from tests.support.scenario import (
    BUSY_SANDBOX,
    FINANCE,
    LINKED_POLICY_GRANT,
    PRODUCTION,
    RESOURCE_GROUP,
    UNKNOWN_ENVIRONMENT,
    VAULT,
)
from tests.support.scenario import (
    LINKED_POLICY_SYSTEM_ID as SYSTEM_ID,
)

# ep-existing's key access on the vault
GRANT = f"/providers/Microsoft.Authorization/roleAssignments/{LINKED_POLICY_GRANT}"


def test_list_and_get_environments(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    environments = {e.id: e for e in client.list_environments()}
    assert PRODUCTION in environments and len(environments) >= 10
    finance = client.get_environment(FINANCE)
    assert finance.cmk is not None and finance.cmk.linked and finance.cmk.system_id == SYSTEM_ID
    production = environments[PRODUCTION]
    assert production.managed and production.geo == "europe" and production.cmk is None


def test_unknown_environment_names_the_likely_cause(factory: ClientFactory) -> None:
    with pytest.raises(ServiceError) as caught:
        factory.pp_admin().get_environment(UNKNOWN_ENVIRONMENT)
    assert caught.value.status == 404 and caught.value.code == "EnvironmentNotFound"
    assert "Power Platform Administrator" in (caught.value.hint or "")


def test_link_and_wait_honours_retry_after(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    poller = client.begin_link(PRODUCTION, SYSTEM_ID)
    assert poller.kind == "link" and poller.status() == "InProgress" and not poller.done()
    assert ContinuationToken.decode(poller.continuation_token()).retry_after == 60
    progress: list[LifecycleOperation] = []
    result = poller.wait(timedelta(days=4), on_progress=progress.append)
    assert poller.done() and poller.status() == "Succeeded"
    assert result.status == "Succeeded", result
    waits = factory.sleeper.waits  # type: ignore[attr-defined]
    assert waits[:2] == [60.0, 60.0]  # the service's Retry-After (above the 15 s floor) ...
    assert min(waits) >= 60 and max(waits) == 300  # ... then our back-off, up to the 300 s ceiling
    assert waits == sorted(waits) and len(waits) < 3600 / 60
    assert result.polls == len(progress) == len(waits)  # even the first poll waits for the Retry-After
    assert 3600 <= result.waited_seconds <= 3600 + 300
    linked = client.get_environment(PRODUCTION)
    assert linked.cmk is not None and linked.cmk.linked and linked.enabled


def test_poll_floor_applies_when_retry_after_is_shorter(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    client.poll_floor = client.poll_ceiling = 240.0
    result = client.begin_link(PRODUCTION, SYSTEM_ID).wait(timedelta(days=1))
    assert result.status == "Succeeded"
    assert set(factory.sleeper.waits) == {240.0}  # type: ignore[attr-defined]


def test_start_waits_on_the_same_change_already_running(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    # The running two-hour operation is itself a Managed Environment change: the start waits on it.
    poller = client.begin_enable_managed(BUSY_SANDBOX)
    url = ContinuationToken.decode(poller.continuation_token()).url or ""
    assert url.split("?")[0].endswith("0e000000-0000-4000-8000-00000000000c")
    assert cloud.log.count(method="POST", path="governanceConfiguration") == 0
    assert poller.wait(timedelta(hours=3)).status == "Succeeded"
    assert client.get_environment(BUSY_SANDBOX).managed


def test_start_backs_off_while_another_operation_runs(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    before = factory.now()
    # not managed yet: refused, but only once the busy one ends
    poller = client.begin_link(BUSY_SANDBOX, SYSTEM_ID)
    waited = (factory.now() - before).total_seconds()
    assert waited >= 7200 - 60  # it waited out the running two-hour operation
    assert cloud.log.count(method="POST", path="Encryption/link", status=409) >= 2
    assert poller.kind == "link"


def test_start_gives_up_with_the_409_after_start_timeout(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    client.start_timeout = timedelta(minutes=10)
    with pytest.raises(ServiceError) as caught:
        client.begin_link(BUSY_SANDBOX, SYSTEM_ID)
    assert caught.value.status == 409 and "wait" in (caught.value.hint or "")


def test_failed_operation_is_a_result(factory: ClientFactory) -> None:
    sub = factory.settings.subscription_id
    client = factory.pp_admin()
    poller = client.begin_link(PRODUCTION, SYSTEM_ID)
    # The policy identity loses its key access while the link runs, so the link fails at completion.
    factory.authorization().role_assignments.delete_by_id(vault_id(sub, RESOURCE_GROUP, VAULT) + GRANT)
    result = poller.wait(timedelta(days=4))
    assert poller.status() == "Failed"
    assert result.status == "Failed" and result.operation is not None and result.operation.failed
    assert result.error_message
    assert client.get_environment(PRODUCTION).cmk is None


def test_deadline_returns_still_running_and_a_continuation_token_resumes(
        factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    poller = client.begin_link(PRODUCTION, SYSTEM_ID)
    first = poller.wait(timedelta(minutes=10))
    assert first.status == "StillRunning" and first.operation is not None and not first.operation.terminal
    assert first.waited_seconds <= 600 and poller.status() == "InProgress"

    saved = poller.continuation_token()  # what a flow persists before a restart
    fresh_client = ClientFactory(factory.settings, sleeper=factory.sleeper).pp_admin()
    resumed = fresh_client.begin_link(PRODUCTION, SYSTEM_ID, continuation_token=saved)
    assert resumed.kind == "link" and not resumed.done()
    assert resumed.wait(timedelta(days=4)).status == "Succeeded"
    assert cloud.log.count(method="POST", path="Encryption/link") == 1  # resumed, never started again


def test_a_continuation_token_resumes_only_its_own_kind_and_environment(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    saved = client.begin_link(PRODUCTION, SYSTEM_ID).continuation_token()
    with pytest.raises(ConfigError, match="resumes a link operation, not a unlink"):
        client.begin_unlink(PRODUCTION, SYSTEM_ID, continuation_token=saved)
    with pytest.raises(ConfigError, match=f"not on {FINANCE}"):
        client.begin_link(FINANCE, SYSTEM_ID, continuation_token=saved)
    with pytest.raises(ConfigError, match="is not the continuation token"):
        client.begin_link(PRODUCTION, SYSTEM_ID, continuation_token="{}")


def test_throttled_reads_are_retried_with_retry_after(factory: ClientFactory, cloud: Any) -> None:
    cloud.faults.add(method="GET", path=r"/scopes/admin/environments$", status=429, times=2, retry_after="3")
    assert factory.pp_admin().list_environments()
    assert factory.sleeper.waits == [3.0, 3.0]  # type: ignore[attr-defined]


def test_foreign_operation_urls_are_refused(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    forged = ContinuationToken(kind="link", environment_id=PRODUCTION, started_at=factory.now(),
                               url="https://attacker.example/lifecycleOperations/1").encode()
    with pytest.raises(ConfigError) as caught:
        client.begin_link(PRODUCTION, SYSTEM_ID, continuation_token=forged).wait(timedelta(days=1))
    assert caught.value.field == "url"
    assert cloud.log.count(method="GET", path="lifecycleOperations") == 0


def test_unlink_reverts_to_the_microsoft_key(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    poller = client.begin_unlink(FINANCE, SYSTEM_ID)
    assert poller.kind == "unlink"
    assert poller.wait(timedelta(days=4)).status == "Succeeded"
    assert client.get_environment(FINANCE).cmk is None


def test_locked_environment_is_reenabled_after_access_returns(factory: ClientFactory) -> None:
    sub = factory.settings.subscription_id
    client = factory.pp_admin()
    grants = factory.authorization().role_assignments
    revoked = grants.delete_by_id(vault_id(sub, RESOURCE_GROUP, VAULT) + GRANT)
    factory.sleeper.sleep(60)  # the lock follows the revocation
    assert not client.get_environment(FINANCE).enabled

    grants.create_by_id(vault_id(sub, RESOURCE_GROUP, VAULT) + GRANT, {"properties": {
        "roleDefinitionId": revoked.role_definition_id, "principalId": revoked.principal_id,
        "principalType": "ServicePrincipal"}})
    factory.sleeper.sleep(300)  # role propagation
    poller = client.begin_reenable(FINANCE)
    assert poller.kind == "reenable"
    assert poller.wait(timedelta(hours=1)).status == "Succeeded"
    assert client.get_environment(FINANCE).enabled


LIST = r"/environmentmanagement/environments/[^/]+/operations$"


def test_a_start_whose_answer_was_lost_is_found_running(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    posted_at = factory.now()
    assert client.find_started("link", PRODUCTION, posted_at, SYSTEM_ID) is None  # nothing was sent yet
    client.begin_link(PRODUCTION, SYSTEM_ID)  # its poller lost with the process that sent it
    found = client.find_started("link", PRODUCTION, posted_at, SYSTEM_ID)
    assert found is not None and not found.done()
    assert found.wait(timedelta(days=4)).status == "Succeeded"
    assert cloud.log.count(method="POST", path="Encryption/link") == 1


def test_a_lost_start_the_service_finished_meanwhile_is_done(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    posted_at = factory.now()
    client.begin_link(PRODUCTION, SYSTEM_ID)
    factory.sleeper.sleep(cloud.world.settings.link_duration_seconds)
    cloud.log.clear()
    found = client.find_started("link", PRODUCTION, posted_at, SYSTEM_ID)
    assert found is not None and found.done() and found.status() == "Succeeded"
    assert cloud.log.count(path=LIST) == 0  # the environment already shows the link


def test_an_operation_that_ended_before_the_lost_start_was_sent_is_not_it(
        factory: ClientFactory, cloud: Any) -> None:
    sub = factory.settings.subscription_id
    client = factory.pp_admin()
    factory.authorization().role_assignments.delete_by_id(vault_id(sub, RESOURCE_GROUP, VAULT) + GRANT)
    assert client.begin_link(PRODUCTION, SYSTEM_ID).wait(timedelta(days=4)).status == "Failed"
    posted_at = factory.now()
    assert client.find_started("link", PRODUCTION, posted_at, SYSTEM_ID) is None  # an earlier attempt's
    client.begin_link(PRODUCTION, SYSTEM_ID)
    factory.sleeper.sleep(cloud.world.settings.link_duration_seconds)  # it fails too, before anyone looks
    found = client.find_started("link", PRODUCTION, posted_at, SYSTEM_ID)
    assert found is not None and found.wait(timedelta(days=4)).status == "Failed"


def test_a_lost_start_is_not_guessed_when_the_operations_cannot_be_listed(
        factory: ClientFactory, cloud: Any) -> None:
    cloud.faults.add("GET", LIST, status=403, times=None)
    with pytest.raises(ServiceError) as caught:
        factory.pp_admin().find_started("link", PRODUCTION, factory.now(), SYSTEM_ID)
    assert caught.value.status == 403
