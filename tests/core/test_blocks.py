"""The Prefect blocks validate on load and round-trip through a Prefect API."""

from __future__ import annotations

import pytest

from ppcmk.errors import ConfigError
from ppcmk_blocks import CmkConnection, CmkTarget

TENANT = "11111111-2222-4333-8444-555555555555"
SUB = "00000000-0000-0000-0000-000000000000"
VAULT = f"/subscriptions/{SUB}/resourceGroups/rg-cmk/providers/Microsoft.KeyVault/vaults/kv-cmk"


def test_every_field_is_described() -> None:
    for block in (CmkConnection, CmkTarget):
        fields = block.model_fields
        missing = [name for name, info in fields.items()
                   if name != "block_type_slug" and not info.description]
        assert missing == [], f"{block.__name__} fields without a description: {missing}"
    assert CmkConnection.get_block_type_slug() == "ppcmk-connection"
    assert CmkTarget.get_block_type_slug() == "ppcmk-target"


def test_settings_validate_on_load() -> None:
    with pytest.raises(ConfigError) as caught:
        CmkTarget(vault_id=VAULT, key_name="cmk", policy_name="p", resource_group="rg", geo="mars").settings()
    assert caught.value.field == "geo"
    with pytest.raises(ConfigError) as caught:
        CmkConnection(cloud="public", tenant_id=TENANT, subscription_id=SUB, credential_mode="client_secret",
                      client_id=TENANT).settings()
    assert caught.value.field == "client_secret"


def test_blocks_round_trip_through_prefect(prefect_backend: None) -> None:
    CmkConnection(cloud="public", tenant_id=TENANT, subscription_id=SUB, credential_mode="client_secret",
                  client_id=TENANT, client_secret="hunter2-secret").save("core-test-conn", overwrite=True)
    CmkTarget(vault_id=VAULT, key_name="cmk", key_type="RSA-HSM", key_size=4096, policy_name="cmk-policy",
              resource_group="rg-cmk", geo="unitedstateseuap").save("core-test-target", overwrite=True)

    connection = CmkConnection.load("core-test-conn").settings()
    assert connection.client_secret is not None
    assert connection.client_secret.get_secret_value() == "hunter2-secret"
    assert connection.endpoints.bap == "https://api.bap.microsoft.com"
    target = CmkTarget.load("core-test-target").settings()
    assert (target.geo, target.key_type, target.key_size) == ("unitedstates", "RSA-HSM", 4096)
