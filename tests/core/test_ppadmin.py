"""The Power Platform admin client against the sandbox, in virtual time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ppcmk.errors import ConfigError, ServiceError
from ppcmk.models.arm_ids import vault_id
from ppcmk.models.environments import LifecycleOperation, OperationHandle
from ppcmk.services.factory import ClientFactory
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
    handle = client.link_policy(PRODUCTION, SYSTEM_ID)
    assert handle is not None and handle.kind == "link" and handle.retry_after == 60
    progress: list[LifecycleOperation] = []
    result = client.wait_operation(handle, timedelta(days=4), on_progress=progress.append)
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
    handle = client.link_policy(PRODUCTION, SYSTEM_ID)
    assert handle is not None
    result = client.wait_operation(handle, timedelta(days=1))
    assert result.status == "Succeeded"
    assert set(factory.sleeper.waits) == {240.0}  # type: ignore[attr-defined]


def test_start_waits_on_the_same_change_already_running(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    # The running two-hour operation is itself a Managed Environment change: the start waits on it.
    handle = client.enable_managed_environment(BUSY_SANDBOX)
    assert handle is not None and handle.url.split("?")[0].endswith("0e000000-0000-4000-8000-00000000000c")
    assert cloud.log.count(method="POST", path="governanceConfiguration") == 0
    assert client.wait_operation(handle, timedelta(hours=3)).status == "Succeeded"
    assert client.get_environment(BUSY_SANDBOX).managed


def test_start_backs_off_while_another_operation_runs(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    before = factory.now()
    # not managed yet: refused, but only once the busy one ends
    handle = client.link_policy(BUSY_SANDBOX, SYSTEM_ID)
    waited = (factory.now() - before).total_seconds()
    assert waited >= 7200 - 60  # it waited out the running two-hour operation
    assert cloud.log.count(method="POST", path="Encryption/link", status=409) >= 2
    assert handle is not None and handle.kind == "link"


def test_start_gives_up_with_the_409_after_start_timeout(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    client.start_timeout = timedelta(minutes=10)
    with pytest.raises(ServiceError) as caught:
        client.link_policy(BUSY_SANDBOX, SYSTEM_ID)
    assert caught.value.status == 409 and "wait" in (caught.value.hint or "")


def test_failed_operation_is_a_result(factory: ClientFactory) -> None:
    sub = factory.settings.subscription_id
    client = factory.pp_admin()
    handle = client.link_policy(PRODUCTION, SYSTEM_ID)
    assert handle is not None
    # The policy identity loses its key access while the link runs, so the link fails at completion.
    factory.authorization().role_assignments.delete_by_id(vault_id(sub, RESOURCE_GROUP, VAULT) + GRANT)
    result = client.wait_operation(handle, timedelta(days=4))
    assert result.status == "Failed" and result.operation is not None and result.operation.failed
    assert result.error_message
    assert client.get_environment(PRODUCTION).cmk is None


def test_deadline_returns_still_running_and_a_saved_handle_resumes(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    handle = client.link_policy(PRODUCTION, SYSTEM_ID)
    assert handle is not None
    first = client.wait_operation(handle, timedelta(minutes=10))
    assert first.status == "StillRunning" and first.operation is not None and not first.operation.terminal
    assert first.waited_seconds <= 600

    saved = handle.model_dump_json()  # what a flow persists before a restart
    restored = OperationHandle.model_validate_json(saved)
    fresh_client = ClientFactory(factory.settings, sleeper=factory.sleeper).pp_admin()
    second = fresh_client.wait_operation(restored, timedelta(days=4))
    assert second.status == "Succeeded"


def test_throttled_reads_are_retried_with_retry_after(factory: ClientFactory, cloud: Any) -> None:
    cloud.faults.add(method="GET", path=r"/scopes/admin/environments$", status=429, times=2, retry_after="3")
    assert factory.pp_admin().list_environments()
    assert factory.sleeper.waits == [3.0, 3.0]  # type: ignore[attr-defined]


def test_foreign_operation_urls_are_refused(factory: ClientFactory) -> None:
    with pytest.raises(ConfigError) as caught:
        factory.pp_admin().get_operation("https://attacker.example/lifecycleOperations/1")
    assert caught.value.field == "url"


def test_unlink_reverts_to_the_microsoft_key(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    handle = client.unlink_policy(FINANCE, SYSTEM_ID)
    assert handle is not None and handle.kind == "unlink"
    assert client.wait_operation(handle, timedelta(days=4)).status == "Succeeded"
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
    handle = client.reenable_environment(FINANCE)
    assert handle is not None and handle.kind == "reenable"
    assert client.wait_operation(handle, timedelta(hours=1)).status == "Succeeded"
    assert client.get_environment(FINANCE).enabled
