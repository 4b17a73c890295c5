"""Settings validation names the field and the fix; endpoints per cloud."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ppcmk.cloud.endpoints import endpoints_for
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings, load_settings
from ppcmk.errors import ConfigError

TENANT = "11111111-2222-4333-8444-555555555555"
SUB = "00000000-0000-0000-0000-000000000000"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-cmk/providers/Microsoft.KeyVault/vaults/kv-cmk"


def connection(**overrides: Any) -> dict[str, Any]:
    return {"cloud": "public", "tenant_id": TENANT, "subscription_id": SUB, **overrides}


def target(**overrides: Any) -> dict[str, Any]:
    return {"vault_id": VAULT, "key_name": "cmk", "policy_name": "cmk-policy", "resource_group": "rg-cmk",
            "geo": "europe", **overrides}


@pytest.mark.parametrize(("overrides", "field"), [
    ({"tenant_id": "contoso"}, "tenant_id"),
    ({"subscription_id": "not-a-guid"}, "subscription_id"),
    ({"time_mode": "virtual"}, "time_mode"),
    ({"credential_mode": "client_secret"}, "client_id"),
    ({"credential_mode": "client_secret", "client_id": TENANT}, "client_secret"),
    ({"credential_mode": "sandbox"}, "credential_mode"),
    ({"credential_mode": "certificate", "client_id": TENANT}, "certificate_path"),
    ({"credential_mode": "certificate", "client_id": TENANT, "certificate_path": "runbook.pem"},
     "certificate_path"),
    ({"cloud": "sandbox"}, "sandbox_url"),
    ({"cloud": "sandbox", "sandbox_url": "https://127.0.0.1:1", "ca_bundle": "/no/ca.pem"}, "ca_bundle"),
    ({"cloud": "mars"}, "cloud"),
    ({"operation_poll_floor": 600, "operation_poll_ceiling": 60}, "operation_poll_floor"),
])
def test_connection_errors_name_the_field_and_fix(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(ConnectionSettings, connection(**overrides))
    assert caught.value.field == field
    assert caught.value.fix and "Fix:" in str(caught.value)


def test_connection_defaults_per_cloud(tmp_path: Path) -> None:
    public = load_settings(ConnectionSettings, connection())
    assert public.credential_mode == "default" and public.time_mode == "real"
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    sandbox = {"cloud": "sandbox", "sandbox_url": "https://127.0.0.1:8443", "ca_bundle": str(ca),
               "time_mode": "virtual"}
    with pytest.raises(ConfigError) as no_default:  # the sandbox is reached like a tenant, with a principal
        load_settings(ConnectionSettings, connection(**sandbox))
    assert no_default.value.field == "credential_mode"
    service = load_settings(ConnectionSettings, connection(
        **sandbox, credential_mode="client_secret", client_id=TENANT, client_secret="s3cr3t-value"))
    assert service.virtual_time and service.endpoints.authority == "https://127.0.0.1:8443"
    assert not service.endpoints.instance_discovery


def test_secret_is_hidden_but_tells_connections_apart() -> None:
    one = load_settings(ConnectionSettings, connection(credential_mode="client_secret", client_id=TENANT,
                                                       client_secret="s3cr3t-value"))
    two = one.model_copy(update={"client_secret": type(one.client_secret)("other")})
    assert "s3cr3t-value" not in repr(one) and "s3cr3t-value" not in one.model_dump_json()
    again = load_settings(ConnectionSettings, connection(
        credential_mode="client_secret", client_id=TENANT, client_secret="s3cr3t-value"))
    # what ClientFactory.for_settings keys its factories by: one per connection, the secret included
    assert one != two and hash(one) != hash(two)
    assert one == again and hash(one) == hash(again)


@pytest.mark.parametrize(("cloud", "bap", "bap_scope", "arm"), [
    ("public", "https://api.bap.microsoft.com", "https://service.powerapps.com/.default",
     "https://management.azure.com"),
    ("usgov", "https://gov.api.bap.microsoft.us", "https://gov.service.powerapps.us/.default",
     "https://management.azure.com"),
    ("usgovhigh", "https://high.api.bap.microsoft.us", "https://high.service.powerapps.us/.default",
     "https://management.usgovcloudapi.net"),
    ("dod", "https://api.bap.appsplatform.us", "https://service.apps.appsplatform.us/.default",
     "https://management.usgovcloudapi.net"),
    ("china", "https://api.bap.partner.microsoftonline.cn", "https://service.powerapps.cn/.default",
     "https://management.chinacloudapi.cn"),
])
def test_endpoints_per_cloud(cloud: str, bap: str, bap_scope: str, arm: str) -> None:
    endpoints = endpoints_for(cloud)  # type: ignore[arg-type]
    assert (endpoints.bap, endpoints.bap_scope, endpoints.arm) == (bap, bap_scope, arm)
    assert endpoints.arm_scope == f"{arm}/.default"
    assert endpoints.keyvault_suffix and endpoints.instance_discovery


def test_sandbox_serves_every_plane_with_public_scopes() -> None:
    endpoints = endpoints_for("sandbox", "https://127.0.0.1:9443/")
    assert {endpoints.arm, endpoints.bap, endpoints.graph} == {"https://127.0.0.1:9443"}
    assert endpoints.bap_scope == "https://service.powerapps.com/.default"
    assert endpoints.arm_scope == "https://management.azure.com/.default"


@pytest.mark.parametrize(("overrides", "field"), [
    ({"geo": "atlantis"}, "geo"),
    ({"key_size": 4096}, "key_size"),
    ({"key_type": "RSA-HSM", "key_size": 1024}, "key_size"),
    ({"vault_id": "kv-cmk"}, "vault_id"),
    ({"vault_id": VAULT.replace("Microsoft.KeyVault/vaults", "Microsoft.Storage/accounts")}, "vault_id"),
    ({"key_name": "bad_name!"}, "key_name"),
    ({"policy_name": ""}, "policy_name"),
    ({"resource_group": "rg."}, "resource_group"),
    ({"key_type": "EC"}, "key_type"),
])
def test_target_errors_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(TargetSettings, target(**overrides))
    assert caught.value.field == field


def test_target_accepts_documented_keys_and_geo_aliases() -> None:
    hsm = load_settings(TargetSettings, target(key_type="RSA-HSM", key_size=4096, geo="UnitedKingdom"))
    assert hsm.geo == "uk"
    assert hsm.vault.name == "kv-cmk"
    assert hsm.policy_id(SUB).endswith("/providers/Microsoft.PowerPlatform/enterprisePolicies/cmk-policy")
    assert load_settings(TargetSettings, target(key_size=3072)).key_size == 3072
