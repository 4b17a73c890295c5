"""Contract tests: role definitions and role assignments with the real AuthorizationManagementClient."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from sandbox.rbac.roles import KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, READER
from tests.sandbox._pp_creds import authorization, role_definition_id

OUTSIDER = "0a0a0005-0000-4000-8000-000000000005"


def _vault(cloud: Any) -> str:
    group = f"/subscriptions/{cloud.endpoints.subscription_id}/resourceGroups/rg-cmk"
    return f"{group}/providers/Microsoft.KeyVault/vaults/kv-cmk-prod"


def _grant(cloud: Any, scope: str, role: str, principal: str, **extra: Any) -> Any:
    body = {
        "properties": {"roleDefinitionId": role_definition_id(cloud, role), "principalId": principal, **extra}
    }
    return authorization(cloud).role_assignments.create(scope, str(uuid.uuid4()), body)


def test_role_definition_filter_by_name(cloud: Any) -> None:
    roles = list(
        authorization(cloud).role_definitions.list(
            _vault(cloud), filter="roleName eq 'Key Vault Crypto Service Encryption User'"
        )
    )
    assert [r.name for r in roles] == [KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER]


def test_assignment_propagates_after_delay_and_inherits(cloud: Any) -> None:
    created = _grant(cloud, _vault(cloud), READER, OUTSIDER)
    assert created.scope == _vault(cloud)
    rbac, now = cloud.world.rbac, cloud.clock.now()
    key_scope = _vault(cloud) + "/keys/cmk-prod"
    assert not rbac.has_role(OUTSIDER, key_scope, {READER}, now)
    cloud.advance(timedelta(seconds=cloud.world.settings.role_propagation_seconds))
    assert rbac.has_role(OUTSIDER, key_scope.upper(), {READER}, cloud.clock.now())
    assert not rbac.has_role(
        OUTSIDER, f"/subscriptions/{cloud.endpoints.subscription_id}", {READER}, cloud.clock.now()
    )


def test_duplicate_assignment_under_another_name_conflicts(cloud: Any) -> None:
    _grant(cloud, _vault(cloud), READER, OUTSIDER)
    with pytest.raises(HttpResponseError) as duplicate:
        _grant(cloud, _vault(cloud), READER, OUTSIDER)
    assert duplicate.value.status_code == 409 and duplicate.value.error.code == "RoleAssignmentExists"


def test_unknown_principal_needs_principal_type(cloud: Any) -> None:
    stranger = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as missing:
        _grant(cloud, _vault(cloud), READER, stranger)
    assert missing.value.status_code == 400 and missing.value.error.code == "PrincipalNotFound"
    assert (
        _grant(cloud, _vault(cloud), READER, stranger, principalType="ServicePrincipal").principal_id
        == stranger
    )


def test_list_filters_and_delete(cloud: Any) -> None:
    client = authorization(cloud)
    created = _grant(cloud, _vault(cloud), READER, OUTSIDER)
    mine = list(client.role_assignments.list_for_scope(_vault(cloud), filter=f"principalId eq '{OUTSIDER}'"))
    assert [a.name for a in mine] == [created.name]
    subscription = f"/subscriptions/{cloud.endpoints.subscription_id}"
    at_sub = list(client.role_assignments.list_for_scope(subscription, filter="atScope()"))
    assert created.name not in {a.name for a in at_sub} and at_sub  # below the scope: left out by atScope()
    client.role_assignments.delete(_vault(cloud), created.name)
    assert not list(
        client.role_assignments.list_for_scope(_vault(cloud), filter=f"principalId eq '{OUTSIDER}'")
    )


def test_role_assignment_write_needs_owner_or_user_access_admin(cloud: Any) -> None:
    body = {"properties": {"roleDefinitionId": role_definition_id(cloud, READER), "principalId": OUTSIDER}}
    with pytest.raises(HttpResponseError) as denied:
        authorization(cloud, "pp-admin").role_assignments.create(_vault(cloud), str(uuid.uuid4()), body)
    assert denied.value.status_code == 403 and denied.value.error.code == "AuthorizationFailed"
