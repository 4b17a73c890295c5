"""Contract tests: role definitions and role assignments with the real AuthorizationManagementClient."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from ppcmk_sandbox.rbac.roles import KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, READER
from tests.support.arm import vault_id
from tests.support.scenario import OUTSIDER_ID
from tests.support.sdk_clients import assign_role, authorization

OUTSIDER = OUTSIDER_ID


def test_role_definition_filter_by_name(cloud: Any) -> None:
    roles = list(
        authorization(cloud).role_definitions.list(
            vault_id(cloud), filter="roleName eq 'Key Vault Crypto Service Encryption User'"
        )
    )
    assert [r.name for r in roles] == [KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER]


def test_assignment_propagates_after_delay_and_inherits(cloud: Any) -> None:
    created = assign_role(cloud, vault_id(cloud), READER, OUTSIDER)
    assert created.scope == vault_id(cloud)
    rbac, now = cloud.world.rbac, cloud.clock.now()
    key_scope = vault_id(cloud) + "/keys/cmk-prod"
    assert not rbac.has_role(OUTSIDER, key_scope, {READER}, now)
    cloud.advance(timedelta(seconds=cloud.world.settings.role_propagation_seconds))
    assert rbac.has_role(OUTSIDER, key_scope.upper(), {READER}, cloud.clock.now())
    assert not rbac.has_role(
        OUTSIDER, f"/subscriptions/{cloud.endpoints.subscription_id}", {READER}, cloud.clock.now()
    )


def test_duplicate_assignment_under_another_name_conflicts(cloud: Any) -> None:
    assign_role(cloud, vault_id(cloud), READER, OUTSIDER)
    with pytest.raises(HttpResponseError) as duplicate:
        assign_role(cloud, vault_id(cloud), READER, OUTSIDER)
    assert duplicate.value.status_code == 409 and duplicate.value.error.code == "RoleAssignmentExists"


def test_unknown_principal_needs_principal_type(cloud: Any) -> None:
    stranger = str(uuid.uuid4())
    with pytest.raises(HttpResponseError) as missing:
        assign_role(cloud, vault_id(cloud), READER, stranger)
    assert missing.value.status_code == 400 and missing.value.error.code == "PrincipalNotFound"
    assert (
        assign_role(cloud, vault_id(cloud), READER, stranger, principalType="ServicePrincipal").principal_id
        == stranger
    )


def test_list_filters_and_delete(cloud: Any) -> None:
    client = authorization(cloud)
    created = assign_role(cloud, vault_id(cloud), READER, OUTSIDER)
    vault = vault_id(cloud)
    mine = list(client.role_assignments.list_for_scope(vault, filter=f"principalId eq '{OUTSIDER}'"))
    assert [a.name for a in mine] == [created.name]
    subscription = f"/subscriptions/{cloud.endpoints.subscription_id}"
    at_sub = list(client.role_assignments.list_for_scope(subscription, filter="atScope()"))
    assert created.name not in {a.name for a in at_sub} and at_sub  # below the scope: left out by atScope()
    client.role_assignments.delete(vault_id(cloud), created.name)
    assert not list(
        client.role_assignments.list_for_scope(vault_id(cloud), filter=f"principalId eq '{OUTSIDER}'")
    )


def test_role_assignment_write_needs_owner_or_user_access_admin(cloud: Any) -> None:
    with pytest.raises(HttpResponseError) as denied:
        assign_role(cloud, vault_id(cloud), READER, OUTSIDER, persona="pp-admin")
    assert denied.value.status_code == 403 and denied.value.error.code == "AuthorizationFailed"
