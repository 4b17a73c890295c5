"""Contract tests: the Power Platform admin API (environments, Managed Environment, link/unlink, ops)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from ppcmk_sandbox.powerplatform.handlers import EXTENDED_SETTINGS
from ppcmk_sandbox.rbac.roles import KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, READER
from tests.support.arm import vault_id
from tests.support.scenario import BUSY_SANDBOX as BUSY
from tests.support.scenario import FINANCE as ON_CMK
from tests.support.scenario import LINKED_POLICY_SYSTEM_ID as EXISTING_SYSTEM_ID
from tests.support.scenario import PP_ADMIN_ID, PRODUCTION, TRIAL, UNMANAGED, US_PRODUCTION
from tests.support.sdk_clients import BAP, assign_role, bap, powerplatform, resources

PP_ADMIN = PP_ADMIN_ID


def _env(cloud: Any, env_id: str) -> dict[str, Any]:
    response = bap(cloud).get(f"{BAP}/scopes/admin/environments/{env_id}")
    assert response.status_code == 200, response.text
    return response.json()["properties"]


def _link(cloud: Any, env_id: str, system_id: str, key: str = "SystemId") -> Any:
    return bap(cloud).post(
        f"{BAP}/environments/{env_id}/enterprisePolicies/Encryption/link", json={key: system_id}
    )


def _poll(cloud: Any, url: str) -> dict[str, Any]:
    return bap(cloud).get(url).json()


def _new_policy(cloud: Any) -> tuple[str, str, str]:
    """A new policy on kv-cmk-prod, identity published, Reader granted to pp-admin: (id, systemId, oid)."""
    resources(cloud).providers.register("Microsoft.PowerPlatform")
    vault = vault_id(cloud)
    body = {
        "location": "europe",
        "kind": "Encryption",
        "identity": {"type": "SystemAssigned"},
        "properties": {
            "encryption": {"state": "Enabled", "keyVault": {"id": vault, "key": {"name": "cmk-prod"}}}
        },
    }
    policy = powerplatform(cloud).enterprise_policies.create_or_update("ep-new", "rg-cmk", body)
    cloud.advance(timedelta(seconds=cloud.world.settings.policy_identity_delay_seconds))
    assign_role(cloud, policy.id, READER, PP_ADMIN, principalType="User")
    stored = cloud.world.arm.find_policy_by_name("ep-new")
    return policy.id, stored.system_id, stored.principal_id


def test_list_and_get_environments(cloud: Any) -> None:
    admin = bap(cloud).get(f"{BAP}/scopes/admin/environments").json()["value"]
    skus = {e["properties"]["environmentSku"] for e in admin}
    assert skus == {"Production", "Sandbox", "Trial", "Teams", "Default", "Developer"}
    assert bap(cloud).get(f"{BAP}/environments/{PRODUCTION}").status_code == 200
    linked = _env(cloud, ON_CMK)
    assert linked["enterprisePolicies"]["customerManagedKeys"]["linkStatus"] == "Linked"
    assert linked["protectionStatus"]["keyManagedBy"] == "Customer"
    outsider = bap(cloud, "outsider").get(f"{BAP}/scopes/admin/environments/{PRODUCTION}")
    assert outsider.status_code == 404 and outsider.json()["error"]["code"] == "EnvironmentNotFound"


def test_link_under_scopes_admin_is_not_a_route(cloud: Any) -> None:
    url = f"{BAP}/scopes/admin/environments/{PRODUCTION}/enterprisePolicies/Encryption/link"
    assert bap(cloud).post(url, json={"SystemId": EXISTING_SYSTEM_ID}).status_code == 404


def test_link_fails_without_key_access_then_succeeds_after_grant(cloud: Any) -> None:
    policy_id, system_id, identity = _new_policy(cloud)
    cloud.advance(timedelta(seconds=cloud.world.settings.role_propagation_seconds))  # Reader propagates
    started = _link(cloud, PRODUCTION, system_id, key="systemId")
    assert started.status_code == 202 and started.content == b""
    assert started.headers["operation-location"] == started.headers["Location"]
    assert int(started.headers["Retry-After"]) > 0
    operation_url = started.headers["operation-location"]
    cloud.advance(timedelta(seconds=30))
    assert _poll(cloud, operation_url)["state"]["id"] == "Running"
    assert _env(cloud, PRODUCTION)["states"]["runtime"]["id"] == "Disabled"
    cloud.advance(timedelta(seconds=cloud.world.settings.link_duration_seconds))
    failed = _poll(cloud, operation_url)
    # the recorded shape: no `error` object, the stage "Run" failed, the later ones never began
    assert failed["state"]["id"] == "Failed" and "error" not in failed
    stages = {stage["id"]: stage for stage in failed["stages"]}
    assert [stages[s]["state"]["id"] for s in ("Validate", "Prepare", "Run", "Finalize")] == [
        "Succeeded", "Succeeded", "Failed", "NotStarted"]
    assert stages["Run"]["lastActionDateTime"] and "lastActionDateTime" not in stages["Finalize"]
    cloud.world.settings.failed_operation_error = "message"  # the other reading names the cause
    assert "Crypto Service Encryption User" in _poll(cloud, operation_url)["error"]["message"]
    after_failure = _env(cloud, PRODUCTION)
    assert after_failure["protectionStatus"]["keyManagedBy"] == "Microsoft"
    assert after_failure["states"]["runtime"]["id"] == "Enabled"

    vault = cloud.world.keyvault.get("kv-cmk-prod").arm_id
    assign_role(
        cloud, vault, KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, identity, principalType="ServicePrincipal"
    )
    cloud.advance(timedelta(seconds=cloud.world.settings.role_propagation_seconds))
    retry = _link(cloud, PRODUCTION, system_id)
    cloud.advance(timedelta(seconds=cloud.world.settings.link_duration_seconds))
    done = _poll(cloud, retry.headers["operation-location"])
    assert done["state"]["id"] == "Succeeded"
    assert [s["state"]["id"] for s in done["stages"]] == ["Succeeded"] * 4
    linked = _env(cloud, PRODUCTION)
    assert linked["enterprisePolicies"]["customerManagedKeys"]["id"].lower() == policy_id.lower()
    assert linked["states"]["runtime"]["id"] == "Enabled"


def test_busy_environment_answers_409(cloud: Any) -> None:
    response = _link(cloud, BUSY, EXISTING_SYSTEM_ID)
    assert response.status_code == 409
    assert f"active lifecycle operation on the environment '{BUSY}'" in response.json()["error"]["message"]
    assert "operation-location" in response.headers


def test_link_validation_rejections(cloud: Any) -> None:
    assert _link(cloud, TRIAL, EXISTING_SYSTEM_ID).status_code == 400
    assert _link(cloud, UNMANAGED, EXISTING_SYSTEM_ID).json()["error"]["code"] == "EnvironmentNotManaged"
    mismatch = _link(cloud, US_PRODUCTION, EXISTING_SYSTEM_ID)
    assert mismatch.status_code == 400 and "does not match" in mismatch.json()["error"]["message"]
    unknown = EXISTING_SYSTEM_ID[:-4] + "ffff"
    assert _link(cloud, PRODUCTION, unknown).status_code == 404
    no_reader = bap(cloud, "pp-admin-2").post(
        f"{BAP}/environments/{PRODUCTION}/enterprisePolicies/Encryption/link",
        json={"SystemId": EXISTING_SYSTEM_ID},
    )
    assert no_reader.status_code == 403
    assert cloud.world.powerplatform.active_operation(PRODUCTION) is None


def test_unlink_needs_the_linked_system_id_then_reverts(cloud: Any) -> None:
    url = f"{BAP}/environments/{ON_CMK}/enterprisePolicies/Encryption/unlink"
    wrong = bap(cloud).post(url, json={"SystemId": EXISTING_SYSTEM_ID[:-4] + "ffff"})
    assert wrong.status_code == 400
    started = bap(cloud).post(url, json={"systemid": EXISTING_SYSTEM_ID.upper()})
    assert started.status_code == 202
    cloud.advance(timedelta(seconds=cloud.world.settings.unlink_duration_seconds))
    assert _poll(cloud, started.headers["Location"])["state"]["id"] == "Succeeded"
    reverted = _env(cloud, ON_CMK)
    assert "customerManagedKeys" not in reverted["enterprisePolicies"]
    assert reverted["protectionStatus"]["keyManagedBy"] == "Microsoft"


def test_enable_managed_environment(cloud: Any) -> None:
    response = bap(cloud).post(
        f"{BAP}/environments/{UNMANAGED}/governanceConfiguration",
        params={"api-version": "2021-04-01"},
        json={"protectionLevel": "Standard",
              "settings": {"extendedSettings": dict.fromkeys(EXTENDED_SETTINGS, "")}},
    )
    assert response.status_code == 202
    assert _env(cloud, UNMANAGED)["governanceConfiguration"]["protectionLevel"] == "Basic"
    cloud.advance(timedelta(minutes=5))
    assert _poll(cloud, response.headers["operation-location"])["state"]["id"] == "Succeeded"
    assert _env(cloud, UNMANAGED)["governanceConfiguration"]["protectionLevel"] == "Standard"
