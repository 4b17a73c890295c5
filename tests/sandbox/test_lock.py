"""Contract tests: CMK lock semantics (revocation locks, re-enable unlocks, locked environments deleted)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.keyvault.models import NetworkRuleSet, VaultPatchParameters, VaultPatchProperties

from ppcmk_sandbox.rbac.roles import KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER
from tests.support.scenario import FINANCE as ON_CMK
from tests.support.scenario import LINKED_POLICY_GRANT as POLICY_GRANT
from tests.support.scenario import LINKED_POLICY_SYSTEM_ID as SYSTEM_ID
from tests.support.scenario import SANDBOX as SANDBOX_ENV
from tests.support.sdk_clients import (
    BAP,
    arm_http,
    assign_role,
    authorization,
    bap,
    key_client,
    keyvault_mgmt,
)


def _vault_id(cloud: Any) -> str:
    return cloud.world.keyvault.get("kv-cmk-prod").arm_id


def _runtime(cloud: Any, env_id: str) -> Any:
    response = bap(cloud).get(f"{BAP}/scopes/admin/environments/{env_id}")
    if response.status_code == 404:
        return None
    return response.json()["properties"]["states"]["runtime"]


def _health(cloud: Any) -> str:
    policy = cloud.world.arm.find_policy_by_name("ep-existing")
    body = arm_http(cloud, "kv-admin").get(policy.arm_id, params={"api-version": "2020-10-30-preview"}).json()
    return body["properties"]["healthStatus"]


def _revoke_role(cloud: Any) -> None:
    authorization(cloud, "kv-admin").role_assignments.delete(_vault_id(cloud), POLICY_GRANT)


def _disable_key(cloud: Any) -> None:
    key_client(cloud, "kv-cmk-prod").update_key_properties("cmk-prod", enabled=False)


def _set_firewall(cloud: Any, public_network_access: str, bypass: str) -> None:
    """Deny by default through the ARM vault update (PATCH), as an administrator would."""
    rules = NetworkRuleSet(default_action="Deny", bypass=bypass)
    closed = VaultPatchProperties(public_network_access=public_network_access, network_acls=rules)
    keyvault_mgmt(cloud).vaults.update("rg-cmk", "kv-cmk-prod", VaultPatchParameters(properties=closed))


def _close_network(cloud: Any) -> None:
    _set_firewall(cloud, "Disabled", bypass="None")


@pytest.mark.parametrize("revoke", [_revoke_role, _disable_key, _close_network])
def test_losing_key_access_locks_linked_environments(cloud: Any, revoke: Any) -> None:
    assert _runtime(cloud, ON_CMK)["id"] == "Enabled" and _health(cloud) == "Healthy"
    revoke(cloud)
    runtime = _runtime(cloud, ON_CMK)
    assert (runtime["id"], runtime["runtimeReasonCode"]) == ("Disabled", "CustomerManagedKeyLocked")
    assert _health(cloud) == "Unhealthy"
    assert _runtime(cloud, SANDBOX_ENV)["id"] == "Enabled"  # not linked: unaffected


def test_a_closed_firewall_with_the_trusted_services_bypass_keeps_the_key_usable(cloud: Any) -> None:
    _set_firewall(cloud, "Enabled", bypass="AzureServices")
    with pytest.raises(HttpResponseError) as blocked:  # the firewall is really closed to everyone else
        key_client(cloud, "kv-cmk-prod").get_key("cmk-prod")
    assert blocked.value.error.innererror["code"] == "ForbiddenByFirewall"
    assert _runtime(cloud, ON_CMK)["id"] == "Enabled" and _health(cloud) == "Healthy"


def test_restore_then_reenable_unlocks(cloud: Any) -> None:
    _revoke_role(cloud)
    assert _runtime(cloud, ON_CMK)["id"] == "Disabled"
    principal = cloud.world.arm.find_policy_by_name("ep-existing").principal_id
    assign_role(
        cloud,
        _vault_id(cloud),
        KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER,
        principal,
        persona="kv-admin",
        name=POLICY_GRANT,
        principalType="ServicePrincipal",
    )
    cloud.advance(timedelta(seconds=cloud.world.settings.role_propagation_seconds))
    assert _runtime(cloud, ON_CMK)["id"] == "Disabled"  # restoring access alone does not unlock
    started = bap(cloud).post(
        f"{BAP}/scopes/admin/environments/{ON_CMK}/enable", params={"api-version": "2021-04-01"}
    )
    assert started.status_code == 202
    cloud.advance(timedelta(minutes=5))
    assert bap(cloud).get(started.headers["operation-location"]).json()["state"]["id"] == "Succeeded"
    assert _runtime(cloud, ON_CMK)["id"] == "Enabled"


def test_reenable_fails_while_access_is_still_revoked(cloud: Any) -> None:
    _revoke_role(cloud)
    started = bap(cloud).post(f"{BAP}/scopes/admin/environments/{ON_CMK}/enable")
    cloud.advance(timedelta(minutes=5))
    assert bap(cloud).get(started.headers["operation-location"]).json()["state"]["id"] == "Failed"
    assert _runtime(cloud, ON_CMK)["id"] == "Disabled"


def test_locked_environments_are_deleted_after_7_or_30_days(cloud: Any) -> None:
    link = bap(cloud).post(
        f"{BAP}/environments/{SANDBOX_ENV}/enterprisePolicies/Encryption/link", json={"SystemId": SYSTEM_ID}
    )
    assert link.status_code == 202
    cloud.advance(timedelta(seconds=cloud.world.settings.link_duration_seconds))
    _revoke_role(cloud)
    cloud.advance(timedelta(days=7))
    assert _runtime(cloud, SANDBOX_ENV) is None  # Sandbox type: deleted after 7 days
    assert _runtime(cloud, ON_CMK)["id"] == "Disabled"  # Production: still there
    cloud.advance(timedelta(days=23))
    assert _runtime(cloud, ON_CMK) is None


def test_a_lock_moves_the_environments_last_modified_time(cloud: Any) -> None:
    """The service's own clock dates the lock (inferred: the service changes the environment as it locks)."""
    def modified() -> str:
        return str(bap(cloud).get(f"{BAP}/scopes/admin/environments/{ON_CMK}").json()["properties"]
                   ["lastModifiedTime"])

    before = modified()
    cloud.advance(timedelta(hours=3))
    _revoke_role(cloud)
    cloud.advance(timedelta(hours=1))
    assert modified() != before
    assert modified() == (cloud.clock.now() - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
