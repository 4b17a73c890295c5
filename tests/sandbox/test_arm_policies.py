"""Contract tests: ARM providers and Microsoft.PowerPlatform/enterprisePolicies, with the real SDK clients."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from tests.support.arm import policy_id, vault_id
from tests.support.sdk_clients import arm_http, powerplatform, resources

RG = "rg-cmk"
API = {"api-version": "2020-10-30-preview"}


def _body(cloud: Any, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "location": "europe",
        "kind": "Encryption",
        "identity": {"type": "SystemAssigned"},
        "properties": {
            "encryption": {
                "state": "Enabled",
                "keyVault": {"id": vault_id(cloud), "key": {"name": "cmk-prod"}},
            }
        },
    }
    body.update(overrides)
    return body


def test_missing_api_version_is_rejected(cloud: Any) -> None:
    response = arm_http(cloud).get(policy_id(cloud, "ep-existing"))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "MissingApiVersionParameter"


def test_policy_put_needs_registered_provider_then_registers(cloud: Any) -> None:
    response = arm_http(cloud).put(policy_id(cloud, "ep-new"), params=API, json=_body(cloud))
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "MissingSubscriptionRegistration"
    assert "'Microsoft.PowerPlatform'" in error["message"]

    rmc = resources(cloud)
    provider = rmc.providers.get("Microsoft.PowerPlatform")
    assert provider.registration_state == "NotRegistered"
    (policies_type,) = [t for t in provider.resource_types if t.resource_type == "enterprisePolicies"]
    assert len(policies_type.locations) == 18 and "europe" in policies_type.locations
    assert rmc.providers.register("Microsoft.PowerPlatform").registration_state == "Registered"
    assert rmc.providers.get("Microsoft.PowerPlatform").registration_state == "Registered"


def test_registration_takes_the_configured_number_of_polls(cloud: Any) -> None:
    cloud.world.arm.registration_polls = 2
    rmc = resources(cloud)
    assert rmc.providers.register("Microsoft.PowerPlatform").registration_state == "Registering"
    states = [rmc.providers.get("Microsoft.PowerPlatform").registration_state for _ in range(3)]
    assert states == ["Registering", "Registering", "Registered"]


def test_feature_register_and_get(cloud: Any) -> None:
    url = (
        f"/subscriptions/{cloud.endpoints.subscription_id}/providers/Microsoft.Features/providers/"
        "Microsoft.PowerPlatform/features/enterprisePoliciesPreview"
    )
    client = arm_http(cloud)
    assert (
        client.get(url, params={"api-version": "2021-07-01"}).json()["properties"]["state"] == "NotRegistered"
    )
    registered = client.post(url + "/register", params={"api-version": "2021-07-01"})
    assert registered.status_code == 200 and registered.json()["properties"]["state"] == "Registered"


def test_create_policy_identity_appears_after_delay(cloud: Any) -> None:
    resources(cloud).providers.register("Microsoft.PowerPlatform")
    client = powerplatform(cloud)
    created = client.enterprise_policies.create_or_update("ep-new", RG, _body(cloud))
    assert created.kind == "Encryption"
    assert "principalId" not in created.identity
    assert "systemId" not in created.properties
    cloud.advance(timedelta(seconds=cloud.world.settings.policy_identity_delay_seconds))
    # ARM paths are case-insensitive.
    response = arm_http(cloud).get(policy_id(cloud, "EP-NEW").lower(), params=API)
    assert response.status_code == 200
    body = response.json()
    principal = body["identity"]["principalId"]
    assert cloud.world.identities.get(principal) is not None
    assert body["identity"]["tenantId"] == cloud.endpoints.tenant_id
    assert body["properties"]["systemId"].startswith("/regions/europe/providers/Microsoft.PowerPlatform/")
    # The identity holds no role on the vault yet.
    assert body["properties"]["healthStatus"] == "Unhealthy"
    # A second PUT updates (200), listing finds both policies.
    update = arm_http(cloud).put(policy_id(cloud, "ep-new"), params=API, json=_body(cloud, tags={"a": "b"}))
    assert update.status_code == 200 and update.json()["tags"] == {"a": "b"}
    names = {p.name for p in client.enterprise_policies.list_by_resource_group(RG)}
    assert names == {"ep-existing", "ep-new"}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"location": "westeurope"}, "location"),
        ({"kind": "Lockbox"}, "kind"),
        ({"identity": {"type": "None"}}, "identity.type"),
        ({"properties": {"encryption": {"state": "Enabled"}}}, "keyVault"),
        (
            {"properties": {"encryption": {"keyVault": {"id": "/not/a/vault", "key": {"name": "k"}}}}},
            "keyVault.id",
        ),
    ],
)
def test_bad_policy_body_is_input_validation_error(cloud: Any, change: dict[str, Any], fragment: str) -> None:
    resources(cloud).providers.register("Microsoft.PowerPlatform")
    response = arm_http(cloud).put(policy_id(cloud, "ep-bad"), params=API, json=_body(cloud, **change))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "InputValidationError" and fragment in error["message"]
    assert cloud.world.arm.find_policy_by_name("ep-bad") is None


def test_linked_policy_cannot_be_deleted_or_rekeyed(cloud: Any) -> None:
    resources(cloud).providers.register("Microsoft.PowerPlatform")
    client = powerplatform(cloud)
    with pytest.raises(HttpResponseError) as deleted:
        client.enterprise_policies.delete(RG, "ep-existing")  # delete takes the group first
    assert deleted.value.status_code == 400
    assert deleted.value.error.code == "EnterprisePolicyDeleteNotAllowed"
    other_key = _body(cloud)
    other_key["properties"]["encryption"]["keyVault"]["key"]["name"] = "another-key"
    response = arm_http(cloud).put(policy_id(cloud, "ep-existing"), params=API, json=other_key)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "EnterprisePolicyUpdateNotAllowed"
    assert cloud.world.arm.find_policy_by_name("ep-existing").key_name == "cmk-prod"


def test_unlinked_policy_deletes(cloud: Any) -> None:
    resources(cloud).providers.register("Microsoft.PowerPlatform")
    client = powerplatform(cloud)
    client.enterprise_policies.create_or_update("ep-temp", RG, _body(cloud))
    client.enterprise_policies.delete(RG, "ep-temp")
    assert arm_http(cloud).get(policy_id(cloud, "ep-temp"), params=API).status_code == 404


def test_caller_without_role_gets_authorization_failed(cloud: Any) -> None:
    response = arm_http(cloud, "outsider").get(policy_id(cloud, "ep-existing"), params=API)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "AuthorizationFailed"
