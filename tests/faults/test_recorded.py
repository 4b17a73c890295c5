"""The Power Platform admin API's recorded behaviours (docs/SANDBOX.md names each source), played by the
sandbox, and how the admin client copes with each. Every test here fails against a client that treats the
recorded answer as an error or as success without looking."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from ppcmk.errors import ServiceError
from ppcmk.models.arm_ids import vault_id
from ppcmk.models.environments import Environment
from ppcmk.services.factory import ClientFactory
from ppcmk.services.ppadmin.client import MANAGED_ENVIRONMENT_SETTINGS
from ppcmk.services.ppadmin.pollers import ContinuationToken, OperationPoller
from tests.support.scenario import BUSY_SANDBOX as BUSY
from tests.support.scenario import FINANCE, LINKED_POLICY_GRANT, PRODUCTION, RESOURCE_GROUP, UNMANAGED, VAULT
from tests.support.scenario import LEGACY_BYOK as BYOK
from tests.support.scenario import LINKED_POLICY_SYSTEM_ID as SYSTEM_ID
from tests.support.sdk_clients import BAP, bap

LINK_PATH = r"/enterprisePolicies/Encryption/link"


def _operation_id(poller: OperationPoller) -> str:
    url = ContinuationToken.decode(poller.continuation_token()).url or ""
    return url.split("?")[0].rsplit("/", 1)[-1]


def _vault_grant(factory: ClientFactory) -> str:
    """The id of the policy identity's key role on the vault."""
    vault = vault_id(factory.settings.subscription_id, RESOURCE_GROUP, VAULT)
    return f"{vault}/providers/Microsoft.Authorization/roleAssignments/{LINKED_POLICY_GRANT}"


def test_a_409_while_polling_keeps_waiting(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    poller = client.begin_link(PRODUCTION, SYSTEM_ID)
    cloud.faults.poll_conflicts(times=3)
    result = poller.wait(timedelta(days=4))
    assert result.status == "Succeeded"
    assert cloud.log.count(method="GET", path="lifecycleOperations", status=409) == 3


def test_a_409_on_every_poll_ends_still_running_at_the_deadline(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    poller = client.begin_link(PRODUCTION, SYSTEM_ID)
    cloud.faults.poll_conflicts(times=None)
    result = poller.wait(timedelta(minutes=30))
    assert result.status == "StillRunning" and result.operation is None


def test_governance_on_a_managed_environment_answers_an_empty_409_and_counts_as_done(
    factory: ClientFactory, cloud: Any
) -> None:
    poller = factory.pp_admin().begin_enable_managed(PRODUCTION)
    assert poller.done() and poller.status() == "Succeeded" and poller.wait(timedelta(0)).polls == 0
    refused = [e for e in cloud.log.entries if e.method == "POST" and "governanceConfiguration" in e.path]
    assert [e.status for e in refused] == [409]  # one POST, then the re-read said "already managed"
    assert cloud.log.count(method="GET", path=f"environments/{PRODUCTION}$") == 1


@pytest.mark.parametrize("fault", [{"empty_body": True}, {"code": "OperationNotStartable"}],
                         ids=["empty-body", "OperationNotStartable"])
def test_a_busy_409_on_a_start_rereads_then_retries(
    factory: ClientFactory, cloud: Any, fault: dict[str, Any]
) -> None:
    cloud.faults.add("POST", LINK_PATH, status=409, times=2, **fault)
    assert not factory.pp_admin().begin_link(PRODUCTION, SYSTEM_ID).done()
    assert cloud.log.count(method="POST", path=LINK_PATH, status=409) == 2
    assert cloud.log.count(method="POST", path=LINK_PATH, status=202) == 1
    assert cloud.log.count(method="GET", path=f"environments/{PRODUCTION}$") == 2  # a re-read per 409


def test_the_busy_code_is_operation_not_startable(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    client.start_timeout = timedelta(minutes=5)
    with pytest.raises(ServiceError) as caught:
        client.begin_link(BUSY, SYSTEM_ID)
    assert caught.value.status == 409 and caught.value.code == "OperationNotStartable"
    assert "active lifecycle operation" in str(caught.value)


def test_a_404_poll_after_an_unlink_is_judged_by_the_environment(factory: ClientFactory, cloud: Any) -> None:
    cloud.world.settings.finished_operation_poll = "404"
    client = factory.pp_admin()
    result = client.begin_unlink(FINANCE, SYSTEM_ID).wait(timedelta(days=4))
    assert result.status == "Succeeded" and client.get_environment(FINANCE).cmk is None
    assert cloud.log.count(method="GET", path="lifecycleOperations", status=404) == 1


def test_a_404_poll_is_no_success_when_the_environment_says_otherwise(
    factory: ClientFactory, cloud: Any
) -> None:
    cloud.world.settings.finished_operation_poll = "404"
    client = factory.pp_admin()
    poller = client.begin_link(PRODUCTION, SYSTEM_ID)
    factory.authorization().role_assignments.delete_by_id(_vault_grant(factory))
    with pytest.raises(ServiceError) as caught:  # the link failed; the forgotten operation is not success
        poller.wait(timedelta(days=4))
    assert caught.value.status == 404


def test_a_start_waits_on_the_same_operation_already_running(factory: ClientFactory, cloud: Any) -> None:
    client = factory.pp_admin()
    first = client.begin_link(PRODUCTION, SYSTEM_ID)
    again = client.begin_link(PRODUCTION, SYSTEM_ID)  # a re-run after a crash right after the POST
    assert _operation_id(first) == _operation_id(again)
    assert cloud.log.count(method="POST", path=LINK_PATH) == 1
    assert again.wait(timedelta(days=4)).status == "Succeeded"


def test_a_failed_operation_without_error_names_its_failed_stage(factory: ClientFactory) -> None:
    client = factory.pp_admin()
    poller = client.begin_link(PRODUCTION, SYSTEM_ID)
    factory.authorization().role_assignments.delete_by_id(_vault_grant(factory))
    result = poller.wait(timedelta(days=4))
    assert result.status == "Failed" and result.operation is not None
    assert result.operation.error_message is None and result.operation.failed_stage == "Run"
    assert result.error_message and "Run" in result.error_message
    assert all(stage.last_action for stage in result.operation.stages if stage.state != "NotStarted")


@pytest.mark.parametrize(("settings", "named"), [
    ({}, "settings.extendedSettings lacks"),
    ({**MANAGED_ENVIRONMENT_SETTINGS, "maxLimitUserSharing": -1}, "must be strings: maxLimitUserSharing"),
], ids=["empty", "number"])
def test_a_governance_body_unlike_the_recorded_one_is_refused(
    cloud: Any, settings: dict[str, object], named: str
) -> None:
    body = {"protectionLevel": "Standard", "settings": {"extendedSettings": settings}}
    response = bap(cloud).post(f"{BAP}/environments/{UNMANAGED}/governanceConfiguration",
                               params={"api-version": "2021-04-01"}, json=body)
    assert response.status_code == 400 and named in response.json()["error"]["message"]
    assert cloud.world.powerplatform.environment(UNMANAGED).protection_level == "Basic"


def test_managed_environment_is_enabled_with_the_recorded_settings_and_operation_type(
    factory: ClientFactory, cloud: Any
) -> None:
    client = factory.pp_admin()
    poller = client.begin_enable_managed(UNMANAGED)  # the sandbox refuses a partial settings map
    result = poller.wait(timedelta(hours=1))
    assert result.operation is not None and result.operation.type == "EnableGovernanceConfiguration"
    assert cloud.world.powerplatform.environment(UNMANAGED).protection_level == "Standard"


def test_an_environment_without_cmk_disallows_rotate_and_revert(factory: ClientFactory) -> None:
    env = factory.pp_admin().get_environment(PRODUCTION)
    for operation in ("RotateCustomerManagedKey", "RevertToMicrosoftKey"):
        disallowed = env.disallows(operation)
        assert disallowed is not None and disallowed.reason == "EnvironmentCmkLinked"
    assert env.disallows("NewCustomerManagedKey") is None  # linking is what it may do


@pytest.mark.parametrize("reading", ["CustomerViaMicrosoft", "Customer"])
def test_a_migrated_byok_environment_is_encrypted_by_its_policy(
    factory: ClientFactory, cloud: Any, reading: str
) -> None:
    cloud.world.settings.byok_migrated_key_managed_by = reading
    client = factory.pp_admin()
    before = client.get_environment(BYOK)
    assert before.on_byok and not before.encrypted_by(SYSTEM_ID)
    assert client.begin_link(BYOK, SYSTEM_ID).wait(timedelta(days=4)).status == "Succeeded"
    after = client.get_environment(BYOK)
    assert after.key_managed_by == reading
    assert after.encrypted_by(SYSTEM_ID) and not after.on_byok


def test_key_managed_by_judgement() -> None:
    def env(managed_by: str | None, linked: bool) -> Environment:
        cmk = {"enterprisePolicies": {"customerManagedKeys": {"systemId": SYSTEM_ID, "linkStatus": "Linked"}}}
        return Environment.from_api({"name": "e", "properties": {
            "protectionStatus": {"keyManagedBy": managed_by}, **(cmk if linked else {})}})

    assert env("CustomerViaMicrosoft", linked=True).encrypted_by(SYSTEM_ID)
    assert env("Customer", linked=True).encrypted_by(SYSTEM_ID)
    assert not env("Microsoft", linked=True).encrypted_by(SYSTEM_ID)
    assert not env("Customer", linked=True).encrypted_by("/regions/europe/other")
    assert env("CustomerViaMicrosoft", linked=False).on_byok
    assert not env("CustomerViaMicrosoft", linked=True).on_byok
    assert not env("Customer", linked=False).on_byok
