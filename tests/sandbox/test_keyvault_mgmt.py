"""ARM management of vaults and managed HSMs, driven with the real KeyVaultManagementClient."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.keyvault.models import (
    AccessPolicyEntry,
    Permissions,
    Sku,
    VaultAccessPolicyParameters,
    VaultAccessPolicyProperties,
    VaultCreateOrUpdateParameters,
    VaultPatchParameters,
    VaultPatchProperties,
    VaultProperties,
)

from ppcmk_sandbox import Sandbox
from tests.support.sdk_clients import key_client, keyvault_mgmt

RG = "rg-cmk"


def test_create_vault_opens_its_own_origin_for_the_key_client(cloud: Sandbox) -> None:
    admin = cloud.world.identities.require("kv-admin")
    parameters = VaultCreateOrUpdateParameters(
        location="eastus",
        properties=VaultProperties(
            tenant_id=cloud.world.tenant_id,
            sku=Sku(family="A", name="standard"),
            enable_soft_delete=True,
            enable_purge_protection=True,
            access_policies=[
                AccessPolicyEntry(
                    tenant_id=cloud.world.tenant_id,
                    object_id=admin.object_id,
                    permissions=Permissions(keys_property=["all"]),
                )
            ],
        ),
    )
    vault = keyvault_mgmt(cloud).vaults.begin_create_or_update(RG, "kv-fresh", parameters).result()
    assert vault.properties.enable_purge_protection is True
    assert vault.properties.vault_uri == cloud.endpoints.vaults["kv-fresh"]
    assert vault.properties.vault_uri not in {u for n, u in cloud.endpoints.vaults.items() if n != "kv-fresh"}
    key = key_client(cloud, "kv-fresh").create_rsa_key("cmk", size=3072)
    assert key.id.startswith(vault.properties.vault_uri)


def test_purge_protection_cannot_be_turned_off(cloud: Sandbox) -> None:
    vaults = keyvault_mgmt(cloud).vaults
    turned_on = vaults.update(
        RG, "kv-nopurge", VaultPatchParameters(properties=VaultPatchProperties(enable_purge_protection=True))
    )
    assert turned_on.properties.enable_purge_protection is True
    with pytest.raises(HttpResponseError) as refused:
        vaults.update(
            RG,
            "kv-nopurge",
            VaultPatchParameters(properties=VaultPatchProperties(enable_purge_protection=False)),
        )
    assert refused.value.status_code == 400 and "irreversible" in refused.value.message
    assert cloud.world.keyvault.get("kv-nopurge").purge_protection is True


def test_soft_delete_retention_is_validated_naming_the_field(cloud: Sandbox) -> None:
    with pytest.raises(HttpResponseError) as invalid:
        keyvault_mgmt(cloud).vaults.update(
            RG,
            "kv-cmk-prod",
            VaultPatchParameters(properties=VaultPatchProperties(soft_delete_retention_in_days=3)),
        )
    assert invalid.value.status_code == 400 and "softDeleteRetentionInDays" in invalid.value.message


def test_access_policy_add_and_remove_change_data_plane_access(cloud: Sandbox) -> None:
    outsider = cloud.world.identities.require("outsider")
    entry = AccessPolicyEntry(
        tenant_id=cloud.world.tenant_id,
        object_id=outsider.object_id,
        permissions=Permissions(keys_property=["get"]),
    )
    change = VaultAccessPolicyParameters(properties=VaultAccessPolicyProperties(access_policies=[entry]))
    vaults = keyvault_mgmt(cloud).vaults
    client = key_client(cloud, "kv-nopurge", persona="outsider")
    with pytest.raises(HttpResponseError):
        client.get_key("cmk-expiring")
    vaults.update_access_policy(RG, "kv-nopurge", "add", change)
    assert client.get_key("cmk-expiring").name == "cmk-expiring"
    vaults.update_access_policy(RG, "kv-nopurge", "remove", change)
    with pytest.raises(HttpResponseError) as denied:
        client.get_key("cmk-expiring")
    assert denied.value.error.innererror["code"] == "AccessDenied"


def test_closing_the_firewall_through_arm_blocks_the_data_plane(cloud: Sandbox) -> None:
    keyvault_mgmt(cloud).vaults.update(
        RG,
        "kv-cmk-prod",
        VaultPatchParameters(properties=VaultPatchProperties(public_network_access="Disabled")),
    )
    with pytest.raises(HttpResponseError) as blocked:
        key_client(cloud, "kv-cmk-prod").get_key("cmk-prod")
    assert blocked.value.error.innererror["code"] == "ForbiddenByFirewall"


def test_arm_view_of_keys_and_versions(cloud: Sandbox) -> None:
    key_client(cloud, "kv-nopurge").rotate_key("cmk-expiring")
    keys = keyvault_mgmt(cloud).keys
    assert sorted(k.name for k in keys.list(RG, "kv-nopurge")) == ["cmk-expiring", "legacy-ec"]
    prod = keys.get(RG, "kv-cmk-prod", "cmk-prod")
    assert prod.properties.kty == "RSA" and prod.properties.key_size == 3072
    assert prod.properties.key_uri == cloud.endpoints.vaults["kv-cmk-prod"] + "keys/cmk-prod"
    key = keys.get(RG, "kv-nopurge", "cmk-expiring")
    versions = list(keys.list_versions(RG, "kv-nopurge", "cmk-expiring"))
    assert len(versions) == 2
    assert key.properties.key_uri_with_version.endswith(versions[-1].name)
    assert keys.get_version(RG, "kv-nopurge", "cmk-expiring", versions[0].name).properties.attributes.expires


def test_delete_vault_soft_deletes_and_purge_is_refused_with_purge_protection(cloud: Sandbox) -> None:
    vaults = keyvault_mgmt(cloud).vaults
    data_plane = key_client(cloud, "kv-cmk-prod")
    vaults.delete(RG, "kv-cmk-prod")
    with pytest.raises(ResourceNotFoundError):
        vaults.get(RG, "kv-cmk-prod")
    deleted = vaults.get_deleted("kv-cmk-prod", "eastus")
    assert deleted.properties.purge_protection_enabled is True
    with pytest.raises(HttpResponseError) as refused:
        vaults.begin_purge_deleted("kv-cmk-prod", "eastus").result()
    assert refused.value.status_code == 409
    with pytest.raises(ResourceNotFoundError):
        data_plane.get_key("cmk-prod")
    assert "kv-cmk-prod" not in cloud.endpoints.vaults
    assert cloud.world.keyvault.find_vault(deleted.properties.vault_id) is None


def test_a_deleted_vault_is_recovered_as_it_was(cloud: Sandbox) -> None:
    vaults = keyvault_mgmt(cloud).vaults
    vaults.delete(RG, "kv-cmk-prod")
    recovering = VaultCreateOrUpdateParameters(location="eastus", properties=VaultProperties(
        tenant_id=cloud.world.tenant_id, sku=Sku(family="A", name="standard"), create_mode="recover"))
    vaults.begin_create_or_update(RG, "kv-cmk-prod", recovering).result()
    assert vaults.get(RG, "kv-cmk-prod").properties.enable_rbac_authorization is True  # not the request's
    assert key_client(cloud, "kv-cmk-prod").get_key("cmk-prod").key_type == "RSA"


def test_managed_hsm_through_arm(cloud: Sandbox) -> None:
    hsm = keyvault_mgmt(cloud).managed_hsms.get(RG, "hsm-cmk")
    assert hsm.properties.enable_purge_protection is True
    assert hsm.properties.hsm_uri == cloud.endpoints.vaults["hsm-cmk"]
    assert hsm.sku.name == "Standard_B1"


def test_caller_without_a_role_gets_authorization_failed(cloud: Sandbox) -> None:
    with pytest.raises(HttpResponseError) as forbidden:
        keyvault_mgmt(cloud, "outsider").vaults.get(RG, "kv-cmk-prod")
    assert forbidden.value.status_code == 403 and forbidden.value.error.code == "AuthorizationFailed"
