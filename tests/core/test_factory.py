"""The client factory builds every client, and they work against the sandbox over verified TLS."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from azure.keyvault.keys.crypto import KeyWrapAlgorithm

from ppcmk import USER_AGENT
from ppcmk.cloud.request_log import request_ids
from ppcmk.models.arm_ids import policy_id, vault_id
from ppcmk.services.factory import ClientFactory
from tests.support.arm import managed_hsm_id
from tests.support.identity import held
from tests.support.sandbox import connection
from tests.support.scenario import KEY, VAULT
from tests.support.scenario import RESOURCE_GROUP as RG


def test_for_settings_caches_per_settings(sandbox_server: Any) -> None:
    settings = connection(sandbox_server)
    assert ClientFactory.for_settings(settings) is ClientFactory.for_settings(settings.model_copy())
    other = connection(sandbox_server, "pp-admin")
    assert ClientFactory.for_settings(other) is not ClientFactory.for_settings(settings)


def test_a_factory_builds_each_client_once(factory: ClientFactory, cloud: Any) -> None:
    """Every task call looks its factory up, so what the factory builds must be reused, not rebuilt."""
    hsm = factory.vault_url(managed_hsm_id(cloud))
    assert factory.hsm_access_control(hsm) is factory.hsm_access_control(f"{hsm}/")
    vault = factory.vault_url(vault_id(factory.settings.subscription_id, RG, VAULT))
    assert factory.key_client(vault) is factory.key_client(f"{vault}/")
    assert factory.keyvault_mgmt() is factory.keyvault_mgmt() and factory.graph() is factory.graph()
    assert factory.pp_admin() is factory.pp_admin()  # per thread


def test_sdk_clients_work_against_the_sandbox(factory: ClientFactory) -> None:
    sub = factory.settings.subscription_id
    vault = factory.keyvault_mgmt().vaults.get(RG, VAULT)
    assert vault.properties.enable_purge_protection is True
    url = factory.vault_url(vault_id(sub, RG, VAULT))
    assert url == str(vault.properties.vault_uri).rstrip("/")

    key = factory.key_client(url).get_key(KEY)
    assert key.name == KEY and key.key_type in ("RSA", "RSA-HSM")
    crypto = factory.crypto_client(str(key.id))
    wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)
    assert crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == b"k" * 32

    assert factory.resources().providers.get("Microsoft.KeyVault").registration_state == "Registered"
    policy = factory.powerplatform_mgmt().enterprise_policies.get("ep-existing", RG)
    assert policy.id is not None and policy.id.lower() == policy_id(sub, RG, "ep-existing").lower()
    assignments = list(factory.authorization().role_assignments.list_for_scope(vault_id(sub, RG, VAULT)))
    assert assignments


def test_sdk_retries_go_through_the_virtual_sleeper(factory: ClientFactory, cloud: Any) -> None:
    cloud.faults.add(method="GET", path=r"/providers/Microsoft\.KeyVault/vaults/kv-cmk-prod$", status=429,
                     times=2, retry_after="7")
    before = factory.now()
    assert factory.keyvault_mgmt().vaults.get(RG, VAULT).name == VAULT
    assert factory.sleeper.waits == [7.0, 7.0]  # type: ignore[attr-defined]
    assert (factory.now() - before).total_seconds() >= 14
    statuses = [e.status for e in cloud.log.entries if e.path.endswith("/vaults/kv-cmk-prod")]
    assert statuses == [429, 429, 200]


def test_user_agent_and_request_ids_are_recorded(factory: ClientFactory) -> None:
    sent: list[str] = []
    with request_ids() as records:
        factory.keyvault_mgmt().vaults.get(
            RG, VAULT, raw_response_hook=lambda r: sent.append(r.http_request.headers["User-Agent"]))
        environments = factory.pp_admin().list_environments()
        endpoints = factory.settings.endpoints
        with factory.http_client(endpoints.bap, endpoints.bap_scope) as http:
            sent.append(http.get(f"/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/"
                                 f"{environments[0].id}").request.headers["User-Agent"])
    assert len(sent) == 2 and all(agent.startswith(USER_AGENT) for agent in sent)
    assert [r.status for r in records] == [200, 200, 200]
    assert records[0].url.endswith("/vaults/kv-cmk-prod") and "?" not in records[0].url


def test_no_token_in_logs(factory: ClientFactory, cloud: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    factory.keyvault_mgmt().vaults.get(RG, VAULT)
    factory.key_client(factory.vault_url(vault_id(factory.settings.subscription_id, RG, VAULT))).get_key(KEY)
    factory.pp_admin().list_environments()
    endpoints = factory.settings.endpoints
    tokens = [factory.credential.get_token(scope).token
              for scope in (endpoints.arm_scope, endpoints.bap_scope, endpoints.keyvault_scope)]
    assert caplog.records, "debug logging should have produced records"
    for token in tokens:
        assert token not in caplog.text
        assert token.split(".")[1] not in caplog.text  # not even the claims part
    assert "ppcmk.http" in {r.name for r in caplog.records}


def test_the_credential_is_azure_identitys_and_caches_tokens(factory: ClientFactory, cloud: Any) -> None:
    assert type(factory.credential).__name__ == "ClientSecretCredential"
    scope = factory.settings.endpoints.bap_scope
    first = factory.credential.get_token(scope)
    assert factory.credential.get_token(scope).token == first.token
    assert cloud.log.count("POST", path=r"/oauth2/v2\.0/token$") == 1


def test_managed_identity_mode_uses_azure_identity(cloud: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # azure-identity's ManagedIdentityCredential, unmodified, against the sandbox's App Service endpoint.
    monkeypatch.setenv("IDENTITY_ENDPOINT", cloud.endpoints.identity)
    monkeypatch.setenv("IDENTITY_HEADER", cloud.authority.credentials.of("runbook").identity_header)
    factory = ClientFactory(connection(cloud, credential_mode="managed_identity"))
    assert type(factory.credential).__name__ == "ManagedIdentityCredential"
    assert factory.pp_admin().list_environments()
    assert cloud.log.count(path=r"/scopes/admin/environments", caller="runbook", status=200) == 1


def test_certificate_mode_signs_in_with_the_pem_on_the_worker(cloud: Any) -> None:
    # what a real tenant's runbook identity holds: its client id and the path of its key and certificate
    runbook = held(cloud, "runbook")
    factory = ClientFactory(connection(cloud, credential_mode="certificate", client_id=runbook["client_id"],
                                       client_secret=None, certificate_path=runbook["certificate"]))
    assert type(factory.credential).__name__ == "CertificateCredential"
    assert factory.pp_admin().list_environments()
    assert cloud.log.count(path=r"/scopes/admin/environments", caller="runbook", status=200) == 1


def test_workload_identity_mode_reads_the_federated_token_file(cloud: Any,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    runbook = held(cloud, "runbook")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", runbook["federated_token_file"])
    factory = ClientFactory(connection(cloud, credential_mode="workload_identity",
                                       client_id=runbook["client_id"], client_secret=None))
    assert type(factory.credential).__name__ == "WorkloadIdentityCredential"
    assert factory.keyvault_mgmt().vaults.get(RG, VAULT).name == VAULT
    assert cloud.log.count(path=r"/vaults/kv-cmk-prod$", caller="runbook", status=200) == 1
