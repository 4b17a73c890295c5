"""Key Vault data plane, driven with the real KeyClient / CryptographyClient against the sandbox."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.keys import KeyRotationLifetimeAction, KeyRotationPolicy, KeyRotationPolicyAction
from azure.keyvault.keys._shared import http_challenge_cache
from azure.keyvault.keys.crypto import EncryptionAlgorithm, KeyWrapAlgorithm

from ppcmk_sandbox import Sandbox
from ppcmk_sandbox.rbac.roles import KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER
from tests.support.sdk_clients import assign_role, crypto_client, key_client


def test_create_get_and_list_keys_with_real_key_material(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-cmk-prod")
    created = client.create_rsa_key("cmk-new", size=2048, key_operations=["wrapKey", "unwrapKey"])
    assert created.id.startswith(cloud.endpoints.vaults["kv-cmk-prod"] + "keys/cmk-new/")
    assert created.key_type == "RSA" and len(created.key.n) == 256

    latest = client.get_key("cmk-new")  # the SDK asks for /keys/cmk-new/ (trailing slash)
    by_version = client.get_key("cmk-new", created.properties.version)
    assert latest.id == by_version.id == created.id
    assert cloud.log.count("GET", r"^/keys/cmk-new/$", status=200) == 1

    ec = client.create_ec_key("ec-accepted", curve="P-384")
    assert ec.key_type == "EC" and ec.key.crv == "P-384"
    names = {k.name for k in client.list_properties_of_keys()}
    assert {"cmk-prod", "cmk-new", "ec-accepted"} <= names


def test_rejects_unsupported_key_size_and_unknown_key(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-cmk-prod")
    with pytest.raises(HttpResponseError) as bad_size:
        client.create_rsa_key("odd", size=1024)
    assert bad_size.value.status_code == 400 and bad_size.value.error.code == "BadParameter"
    assert "key_size" in bad_size.value.message
    with pytest.raises(ResourceNotFoundError) as missing:
        client.get_key("no-such-key")
    assert missing.value.error.code == "KeyNotFound"


def test_versions_are_paged_with_next_links_from_the_host(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-nopurge")  # a 2048-bit key: new versions are generated quickly
    for _ in range(4):
        client.rotate_key("cmk-expiring")
    versions = list(client.list_properties_of_key_versions("cmk-expiring", max_page_size=2))
    assert len(versions) == 5
    assert cloud.log.count("GET", r"^/keys/cmk-expiring/versions$") == 3  # three pages of two
    assert all(v.id.startswith(cloud.endpoints.vaults["kv-nopurge"]) for v in versions)


def test_update_properties_disable_expire_and_tag(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-cmk-prod")
    expires = datetime(2027, 6, 1, tzinfo=UTC)
    updated = client.update_key_properties(
        "cmk-prod", enabled=False, expires_on=expires, tags={"owner": "ops"}
    )
    assert updated.properties.enabled is False
    assert updated.properties.expires_on == expires and updated.properties.tags == {"owner": "ops"}
    assert cloud.world.keyvault.get("kv-cmk-prod").key("cmk-prod").current.enabled is False


def test_wrap_unwrap_encrypt_decrypt_round_trip(cloud: Sandbox) -> None:
    key = key_client(cloud, "kv-cmk-prod").get_key("cmk-prod")
    crypto = crypto_client(cloud, key.id)
    secret = os.urandom(32)
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, secret)
    assert crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == secret
    encrypted = crypto.encrypt(EncryptionAlgorithm.rsa_oaep, b"hello")
    assert crypto.decrypt(EncryptionAlgorithm.rsa_oaep, encrypted.ciphertext).plaintext == b"hello"
    assert cloud.log.count("POST", r"/unwrapkey$", status=200) == 1  # private-key operations run in the vault


def test_disabled_key_refuses_unwrap(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-cmk-prod")
    key = client.get_key("cmk-prod")
    wrapped = crypto_client(cloud, key.id).wrap_key(KeyWrapAlgorithm.rsa_oaep, b"k" * 32)
    client.update_key_properties("cmk-prod", enabled=False)
    with pytest.raises(HttpResponseError) as refused:
        crypto_client(cloud, key.id).unwrap_key(KeyWrapAlgorithm.rsa_oaep, wrapped.encrypted_key)
    assert refused.value.status_code == 403 and "disabled" in refused.value.message


def test_rotation_policy_fires_when_the_clock_advances(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-cmk-prod")
    rotate = KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_after_create="P60D")
    policy = client.update_key_rotation_policy(
        "cmk-prod", KeyRotationPolicy(lifetime_actions=[rotate], expires_in="P90D")
    )
    assert policy.expires_in == "P90D"
    assert client.get_key_rotation_policy("cmk-prod").lifetime_actions[0].time_after_create == "P60D"
    before = client.get_key("cmk-prod")  # created 2026-11-01, 30 days before the scenario start

    cloud.clock.advance(timedelta(days=29))
    assert client.get_key("cmk-prod").properties.version == before.properties.version
    cloud.clock.advance(timedelta(days=2))
    rotated = client.get_key("cmk-prod")
    assert rotated.properties.version != before.properties.version
    assert rotated.properties.expires_on == rotated.properties.created_on + timedelta(days=90)


def test_rotation_policy_expiry_below_28_days_is_rejected(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-cmk-prod")
    with pytest.raises(HttpResponseError) as short:
        client.update_key_rotation_policy("cmk-prod", KeyRotationPolicy(expires_in="P10D"))
    assert short.value.status_code == 400 and "P28D" in short.value.message


def test_delete_recover_and_purge_protection(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-cmk-prod")
    client.begin_delete_key("cmk-prod").wait()
    assert [k.name for k in client.list_deleted_keys()] == ["cmk-prod"]
    with pytest.raises(ResourceNotFoundError):
        client.get_key("cmk-prod")
    with pytest.raises(HttpResponseError) as refused:
        client.purge_deleted_key("cmk-prod")
    assert refused.value.status_code == 403 and "purge protection" in refused.value.message
    recovered = client.begin_recover_deleted_key("cmk-prod").result()
    assert recovered.name == "cmk-prod" and client.get_key("cmk-prod").properties.enabled


def test_purge_allowed_without_purge_protection(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-nopurge")
    client.begin_delete_key("cmk-expiring").wait()
    client.purge_deleted_key("cmk-expiring")
    assert list(client.list_deleted_keys()) == []
    assert cloud.world.keyvault.get("kv-nopurge").key("cmk-expiring", include_deleted=True) is None


def test_first_request_gets_the_bearer_challenge(cloud: Sandbox) -> None:
    http_challenge_cache.clear()
    key_client(cloud, "kv-cmk-prod").get_key("cmk-prod")
    first, second = [e for e in cloud.log.entries if e.origin == "kv-cmk-prod"]
    assert (first.status, first.caller) == (401, None)
    assert (second.status, second.caller) == (200, "kv-admin")


def test_rbac_vault_forbids_a_caller_without_a_role(cloud: Sandbox) -> None:
    with pytest.raises(HttpResponseError) as forbidden:
        key_client(cloud, "kv-cmk-prod", persona="outsider").get_key("cmk-prod")
    assert forbidden.value.status_code == 403
    assert forbidden.value.error.innererror["code"] == "ForbiddenByRbac"


def test_service_encryption_role_may_wrap_but_not_create(cloud: Sandbox) -> None:
    vault = cloud.world.keyvault.get("kv-cmk-prod").arm_id
    outsider = cloud.world.identities.require("outsider").object_id
    assign_role(cloud, vault, KEY_VAULT_CRYPTO_SERVICE_ENCRYPTION_USER, outsider, persona="kv-admin")
    client = key_client(cloud, "kv-cmk-prod", persona="outsider")
    with pytest.raises(HttpResponseError) as not_yet:
        client.get_key("cmk-prod")  # the grant has not propagated yet
    assert not_yet.value.error.innererror["code"] == "ForbiddenByRbac"
    cloud.clock.advance(timedelta(seconds=cloud.world.settings.role_propagation_seconds))
    assert client.get_key("cmk-prod").name == "cmk-prod"
    with pytest.raises(HttpResponseError) as create:
        client.create_rsa_key("not-allowed")
    assert create.value.error.innererror["code"] == "ForbiddenByRbac"


def test_closed_firewall_forbids_even_an_administrator(cloud: Sandbox) -> None:
    with pytest.raises(HttpResponseError) as blocked:
        key_client(cloud, "kv-private").get_key("cmk-private")
    assert blocked.value.status_code == 403
    assert blocked.value.error.innererror["code"] == "ForbiddenByFirewall"


def test_access_policy_vault_checks_the_policies(cloud: Sandbox) -> None:
    runbook = key_client(cloud, "kv-nopurge", persona="runbook")
    assert runbook.get_key("cmk-expiring").key_type == "RSA"
    with pytest.raises(HttpResponseError) as denied:
        runbook.begin_delete_key("cmk-expiring")  # runbook's policy has no delete permission
    assert denied.value.error.innererror["code"] == "AccessDenied"
    with pytest.raises(HttpResponseError):
        key_client(cloud, "kv-nopurge", persona="outsider").get_key("cmk-expiring")


def test_import_key_then_unwrap_with_the_imported_material(cloud: Sandbox) -> None:
    from azure.keyvault.keys import JsonWebKey
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.private_numbers()

    def raw(value: int) -> bytes:
        return value.to_bytes((value.bit_length() + 7) // 8, "big")

    jwk = JsonWebKey(
        kty="RSA",
        n=raw(numbers.public_numbers.n),
        e=raw(numbers.public_numbers.e),
        d=raw(numbers.d),
        p=raw(numbers.p),
        q=raw(numbers.q),
        dp=raw(numbers.dmp1),
        dq=raw(numbers.dmq1),
        qi=raw(numbers.iqmp),
        key_ops=["wrapKey", "unwrapKey"],
    )
    imported = key_client(cloud, "kv-cmk-prod").import_key("byok", jwk)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    wrapped = private.public_key().encrypt(b"s" * 32, oaep)
    unwrapped = crypto_client(cloud, imported.id).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped)
    assert unwrapped.key == b"s" * 32


def test_managed_hsm_serves_the_same_keys_api_on_its_own_origin(cloud: Sandbox) -> None:
    # the scenario gives kv-admin the administrator role and the runbook the crypto officer role on the HSM
    client = key_client(cloud, "hsm-cmk")
    assert client.get_key("cmk-hsm").key_type == "RSA-HSM"
    created = client.create_rsa_key("hsm-new", size=2048, hardware_protected=True)
    assert created.key_type == "RSA-HSM"
    assert key_client(cloud, "hsm-cmk", persona="runbook").rotate_key("hsm-new").key_type == "RSA-HSM"
    with pytest.raises(HttpResponseError) as outsider:
        key_client(cloud, "hsm-cmk", persona="outsider").get_key("cmk-hsm")
    assert outsider.value.error.innererror["code"] == "ForbiddenByRbac"
    assert cloud.endpoints.vaults["hsm-cmk"] != cloud.endpoints.vaults["kv-cmk-prod"]


def test_rotation_before_expiry_and_purge_after_retention_follow_the_clock(cloud: Sandbox) -> None:
    client = key_client(cloud, "kv-nopurge")
    rotate = KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_before_expiry="P7D")
    client.update_key_rotation_policy(
        "cmk-expiring", KeyRotationPolicy(lifetime_actions=[rotate], expires_in="P60D")
    )
    cloud.clock.advance(timedelta(days=11))  # expiry 2026-12-20 minus 7 days is 2026-12-13
    assert len(list(client.list_properties_of_key_versions("cmk-expiring"))) == 1
    cloud.clock.advance(timedelta(days=1))
    rotated = client.get_key("cmk-expiring")
    assert rotated.properties.created_on == datetime(2026, 12, 13, 9, tzinfo=UTC)
    assert rotated.properties.expires_on == datetime(2027, 2, 11, 9, tzinfo=UTC)

    client.begin_delete_key("legacy-ec").wait()
    cloud.clock.advance(timedelta(days=6))
    assert [k.name for k in client.list_deleted_keys()] == ["legacy-ec"]
    cloud.clock.advance(timedelta(days=1))  # the vault keeps deleted keys 7 days
    assert list(client.list_deleted_keys()) == []
