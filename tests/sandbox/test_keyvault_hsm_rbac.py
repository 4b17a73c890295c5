"""Managed HSM local RBAC in the sandbox, driven with the real KeyVaultAccessControlClient and KeyClient."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError
from azure.keyvault.administration import KeyVaultAccessControlClient, KeyVaultRoleScope
from azure.keyvault.keys.crypto import KeyWrapAlgorithm

from ppcmk_sandbox import Sandbox
from ppcmk_sandbox.keyvault.hsm_roles import DEFINITION_PREFIX, HSM_CRYPTO_SERVICE_ENCRYPTION_USER
from tests.support.sdk_clients import credential, crypto_client, key_client

SERVICE_ENCRYPTION_USER = DEFINITION_PREFIX + HSM_CRYPTO_SERVICE_ENCRYPTION_USER


def access_client(cloud: Sandbox, persona: str = "kv-admin", **kwargs: Any) -> KeyVaultAccessControlClient:
    return KeyVaultAccessControlClient(
        cloud.endpoints.vaults["hsm-cmk"],
        credential(cloud, persona),
        verify_challenge_resource=False,
        connection_verify=cloud.endpoints.ca,
        retry_backoff_factor=0,
        **kwargs,
    )


def policy_identity(cloud: Sandbox) -> str:
    with cloud.world.lock:
        return cloud.world.identities.add_service_principal("ep-hsm-test").object_id


def test_lists_the_builtin_local_roles_and_the_scenario_assignments(cloud: Sandbox) -> None:
    client = access_client(cloud)
    names = {d.role_name: d.id for d in client.list_role_definitions(KeyVaultRoleScope.GLOBAL)}
    assert names["Managed HSM Crypto Service Encryption User"] == SERVICE_ENCRYPTION_USER
    assert "Managed HSM Crypto User" in names and "Managed HSM Administrator" in names
    assignments = list(client.list_role_assignments(KeyVaultRoleScope.GLOBAL))
    kv_admin = cloud.world.identities.require("kv-admin").object_id
    assert {(a.properties.scope, a.properties.principal_id) for a in assignments} >= {
        ("/", kv_admin),
        ("/keys", kv_admin),
    }
    assert cloud.log.count("GET", r"roleAssignments$", status=200) == 1


def test_key_scoped_assignment_lets_the_identity_wrap_and_its_removal_forbids_it(cloud: Sandbox) -> None:
    principal = policy_identity(cloud)
    key_id = key_client(cloud, "hsm-cmk").get_key("cmk-hsm").id
    wrap = crypto_client(cloud, key_id, persona=principal)
    with pytest.raises(HttpResponseError) as refused:
        wrap.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)
    assert refused.value.status_code == 403 and refused.value.error.innererror["code"] == "ForbiddenByRbac"

    client = access_client(cloud)
    name = uuid.uuid4()
    created = client.create_role_assignment("/keys/cmk-hsm", SERVICE_ENCRYPTION_USER, principal, name=name)
    assert created.properties.scope == "/keys/cmk-hsm" and created.name == str(name)
    assert wrap.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32).encrypted_key

    # the same role to the same principal at the same scope under another name is refused, as ARM does
    with pytest.raises(ResourceExistsError) as duplicate:
        client.create_role_assignment("/keys/cmk-hsm", SERVICE_ENCRYPTION_USER, principal)
    assert duplicate.value.error.code == "RoleAssignmentExists"
    # ... but PUTting the same assignment again is harmless
    client.create_role_assignment("/keys/cmk-hsm", SERVICE_ENCRYPTION_USER, principal, name=name)
    assert len(cloud.world.keyvault.get("hsm-cmk").role_assignments) == 5

    # an assignment on another key does not cover this one
    client.delete_role_assignment("/keys/cmk-hsm", name)
    client.create_role_assignment("/keys/other", SERVICE_ENCRYPTION_USER, principal)
    with pytest.raises(HttpResponseError):
        wrap.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)


def test_role_management_needs_a_local_role_and_bad_input_is_refused(cloud: Sandbox) -> None:
    principal = policy_identity(cloud)
    with pytest.raises(HttpResponseError) as outsider:
        list(access_client(cloud, "outsider").list_role_assignments("/"))
    assert outsider.value.status_code == 403
    assert "roleAssignments/read" in outsider.value.message
    with pytest.raises(HttpResponseError) as unknown_role:
        access_client(cloud).create_role_assignment(
            "/keys/cmk-hsm", DEFINITION_PREFIX + str(uuid.uuid4()), principal
        )
    assert unknown_role.value.status_code == 400 and "roleDefinitionId" in unknown_role.value.message
    # a vault keeps its role assignments in ARM: there is no such data-plane API on a vault origin
    vault_client = KeyVaultAccessControlClient(
        cloud.endpoints.vaults["kv-cmk-prod"],
        credential(cloud, "kv-admin"),
        verify_challenge_resource=False,
        connection_verify=cloud.endpoints.ca,
    )
    with pytest.raises(HttpResponseError) as on_vault:
        list(vault_client.list_role_assignments("/"))
    assert on_vault.value.status_code == 404


def test_local_assignments_survive_a_restart_from_the_state_file(tmp_path: Any) -> None:
    state = tmp_path / "state.json"
    with Sandbox(scenario="default", state_file=str(state)) as first:
        principal = policy_identity(first)
        access_client(first).create_role_assignment("/keys/cmk-hsm", SERVICE_ENCRYPTION_USER, principal)
    with Sandbox(scenario="default", state_file=str(state)) as second:
        scopes = {
            a.properties.scope
            for a in access_client(second).list_role_assignments("/")
            if a.properties.principal_id == principal
        }
    assert scopes == {"/keys/cmk-hsm"}


def test_an_hsm_origin_challenges_for_its_own_audience_and_refuses_a_vault_token(cloud: Sandbox) -> None:
    url = cloud.endpoints.vaults["hsm-cmk"].rstrip("/")
    persona = credential(cloud, "kv-admin")
    with httpx.Client(verify=cloud.endpoints.ca) as http:
        challenged = http.get(f"{url}/keys/cmk-hsm/", params={"api-version": "7.5"})
        vault_token = persona.get_token_info("https://vault.azure.net/.default").token
        refused = http.get(f"{url}/keys/cmk-hsm/", params={"api-version": "7.5"},
                           headers={"Authorization": f"Bearer {vault_token}"})
        hsm_token = persona.get_token_info("https://managedhsm.azure.net/.default").token
        read = http.get(f"{url}/keys/cmk-hsm/", params={"api-version": "7.5"},
                        headers={"Authorization": f"Bearer {hsm_token}"})
    assert challenged.status_code == 401
    assert 'resource="https://managedhsm.azure.net"' in challenged.headers["WWW-Authenticate"]
    assert refused.status_code == 401 and "managedhsm" in refused.text
    assert read.status_code == 200, read.text
    assert read.json()["key"]["kid"].startswith(url)
