"""The sandbox's Entra-shaped authority, driven by the unmodified azure-identity credentials and MSAL: every
way a principal proves itself, the tokens' claims, and Entra's refusals (AADSTS codes) when the proof is
wrong."""

from __future__ import annotations

import hashlib
import re
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import msal
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ManagedIdentityCredential, WorkloadIdentityCredential
from azure.keyvault.keys import KeyClient

from ppcmk_sandbox import Sandbox
from tests.support.arm import policy_id, vault_id
from tests.support.identity import (
    authority,
    certificate_credential,
    claims,
    device_code_credential,
    held,
    secret_credential,
    verification_page_sign_in,
)
from tests.support.scenario import PP_ADMIN, PP_ADMIN_ID, RUNBOOK_ID, VAULT

ARM = "https://management.azure.com/.default"
POWER_PLATFORM_ADMIN = "11648597-926c-4cf3-9c36-bcebb0ba8dcc"
AZURE_CLI = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def arm_read(cloud: Sandbox, token: str, resource: str | None = None) -> httpx.Response:
    """GET a resource (the vault unless named) through ARM with `token`."""
    with httpx.Client(base_url=cloud.endpoints.arm, verify=cloud.endpoints.ca) as client:
        return client.get(resource or vault_id(cloud), params={"api-version": "2023-07-01"},
                          headers={"Authorization": f"Bearer {token}"})


def test_discovery_names_the_tenants_endpoints_and_the_jwks_verifies_its_tokens(cloud: Sandbox) -> None:
    endpoints = cloud.endpoints
    tenant = endpoints.tenant_id
    with httpx.Client(verify=endpoints.ca) as client:
        v2 = client.get(f"{endpoints.authority}/organizations/v2.0/.well-known/openid-configuration").json()
        v1 = client.get(f"{endpoints.authority}/{tenant}/.well-known/openid-configuration").json()
    assert v2["token_endpoint"] == endpoints.token == f"{endpoints.authority}/{tenant}/oauth2/v2.0/token"
    assert v2["issuer"] == f"{endpoints.authority}/{tenant}/v2.0"
    assert v1["issuer"] == f"{endpoints.authority}/{tenant}/"
    assert v2["device_authorization_endpoint"].endswith("/oauth2/v2.0/devicecode")
    token = secret_credential(cloud, "runbook").get_token(ARM).token
    keys = jwt.PyJWKClient(v1["jwks_uri"], ssl_context=ssl.create_default_context(cafile=endpoints.ca))
    verified = jwt.decode(token, keys.get_signing_key_from_jwt(token).key, algorithms=["RS256"],
                          audience="https://management.azure.com", issuer=v1["issuer"])
    assert verified["oid"] == RUNBOOK_ID and verified["idtyp"] == "app" and verified["appidacr"] == "1"
    assert jwt.get_unverified_header(token)["x5t"] == jwt.get_unverified_header(token)["kid"]


def test_an_unknown_tenant_is_refused_as_entra_does(cloud: Sandbox) -> None:
    with httpx.Client(verify=cloud.endpoints.ca) as client:
        answer = client.get(f"{cloud.endpoints.authority}/fabrikam.example/v2.0/"
                            ".well-known/openid-configuration")
    assert answer.status_code == 400 and answer.json()["error_codes"] == [90002]


def test_client_secret_and_certificate_credentials_read_arm_and_key_vault(cloud: Sandbox) -> None:
    by_secret = secret_credential(cloud, "runbook")
    assert arm_read(cloud, by_secret.get_token(ARM).token).status_code == 200
    by_certificate = certificate_credential(cloud, "runbook")
    token = by_certificate.get_token("https://vault.azure.net/.default").token
    assert claims(token)["appidacr"] == "2" and claims(token)["oid"] == RUNBOOK_ID
    # the Key Vault client asks the certificate credential for the resource and tenant its 401 challenge names
    keys = KeyClient(cloud.endpoints.vaults[VAULT], by_certificate, verify_challenge_resource=False,
                     connection_verify=cloud.endpoints.ca)
    assert keys.get_key("cmk-prod").name == "cmk-prod"
    assert cloud.log.entries[-1].caller == "runbook" and cloud.log.entries[-1].status == 200


def test_a_wrong_secret_an_unknown_client_and_a_foreign_certificate_are_refused(cloud: Sandbox) -> None:
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215: Invalid client secret provided"):
        secret_credential(cloud, "runbook", secret="guessed").get_token(ARM)
    unknown = {**held(cloud, "runbook"), "client_id": "0e0e0000-0000-4000-8000-000000000000"}
    with httpx.Client(verify=cloud.endpoints.ca) as client:
        answer = client.post(cloud.endpoints.token, data={
            "grant_type": "client_credentials", "client_id": unknown["client_id"],
            "client_secret": unknown["client_secret"], "scope": ARM})
    assert answer.status_code == 400 and answer.json()["error"] == "unauthorized_client"
    assert answer.json()["error_description"].startswith("AADSTS700016: ")
    # the runbook's certificate does not prove the Key Vault admin's stand-in app
    stolen = {**held(cloud, "kv-admin"), "certificate": held(cloud, "runbook")["certificate"]}
    with pytest.raises(ClientAuthenticationError, match="AADSTS700027"):
        CertificateCredential(cloud.endpoints.tenant_id, stolen["client_id"],
                              certificate_path=stolen["certificate"], **authority(cloud)).get_token(ARM)


def test_workload_identity_federation_with_the_projected_token_file(cloud: Sandbox) -> None:
    proof = held(cloud, "runbook")
    credential = WorkloadIdentityCredential(tenant_id=cloud.endpoints.tenant_id, client_id=proof["client_id"],
                                            token_file_path=proof["federated_token_file"],
                                            authority=cloud.endpoints.authority,
                                            connection_verify=cloud.endpoints.ca)
    token = credential.get_token("https://graph.microsoft.com/.default").token
    with httpx.Client(base_url=cloud.endpoints.graph, verify=cloud.endpoints.ca) as graph:
        me = graph.get(f"/servicePrincipals/{RUNBOOK_ID}", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["appId"] == proof["client_id"]


def test_a_federated_token_of_another_service_account_matches_no_federated_credential(cloud: Sandbox) -> None:
    grant = {"grant_type": "client_credentials", "client_id": held(cloud, "runbook")["client_id"],
             "scope": ARM, "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    someone_else = cloud.authority.credentials.federated_token("pp-admin")
    stale = cloud.authority.credentials.federated_token("runbook", lifetime=-3600)
    with httpx.Client(verify=cloud.endpoints.ca) as client:
        answer = client.post(cloud.endpoints.token, data={**grant, "client_assertion": someone_else})
        expired = client.post(cloud.endpoints.token, data={**grant, "client_assertion": stale})
    assert answer.status_code == 400 and answer.json()["error_codes"] == [70021]
    assert expired.status_code == 401 and expired.json()["error_codes"] == [700024]


def test_managed_identity_endpoint_answers_only_the_hosts_own_header(cloud: Sandbox,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", cloud.endpoints.identity)
    monkeypatch.setenv("IDENTITY_HEADER", held(cloud, "runbook")["identity_header"])
    token = ManagedIdentityCredential(connection_verify=cloud.endpoints.ca).get_token(
        "https://service.powerapps.com/.default").token
    with httpx.Client(base_url=cloud.endpoints.bap, verify=cloud.endpoints.ca) as bap:
        listed = bap.get("/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments",
                         params={"api-version": "2021-04-01"}, headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and listed.json()["value"]
    monkeypatch.setenv("IDENTITY_HEADER", "runbook")  # a persona's name proves nothing
    with pytest.raises(ClientAuthenticationError):
        ManagedIdentityCredential(connection_verify=cloud.endpoints.ca).get_token(ARM)


def test_a_person_signs_in_with_a_device_code_and_the_token_says_who(cloud: Sandbox) -> None:
    credential = device_code_credential(cloud, verification_page_sign_in(cloud, "pp-admin"))
    token = credential.get_token(ARM).token
    person = claims(token)
    assert (person["oid"], person["upn"], person["idtyp"]) == (PP_ADMIN_ID, PP_ADMIN, "user")
    assert person["appid"] == AZURE_CLI
    assert POWER_PLATFORM_ADMIN in person["wids"] and person["scp"] == "user_impersonation"
    assert arm_read(cloud, token, policy_id(cloud)).status_code == 200  # Reader on the policy
    # the same sign-in reaches the Power Platform admin API through the refresh token, without a prompt
    admin_api = claims(credential.get_token("https://service.powerapps.com/.default").token)
    assert admin_api["aud"] == "https://service.powerapps.com" and admin_api["oid"] == PP_ADMIN_ID


def test_a_wrong_password_and_an_unknown_code_are_refused_at_the_verification_page(cloud: Sandbox) -> None:
    endpoints = cloud.endpoints
    with httpx.Client(verify=endpoints.ca) as client:
        started = client.post(f"{endpoints.authority}/organizations/oauth2/v2.0/devicecode",
                              data={"client_id": AZURE_CLI, "scope": ARM}).json()
        page = started["verification_uri"]
        unknown = client.post(page, data={"otc": "NOTACODE1"})
        wrong = client.post(f"{page}/signin", data={"otc": started["user_code"], "login": PP_ADMIN,
                                                    "passwd": "guessed"})
        pending = client.post(endpoints.token, data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": AZURE_CLI,
            "device_code": started["device_code"]})
    assert "Check the code and try again" in unknown.text and "AADSTS50126" in wrong.text
    assert pending.json()["error"] == "authorization_pending" and pending.json()["error_codes"] == [70016]


def test_an_expired_device_code_is_refused(cloud: Sandbox) -> None:
    cloud.world.settings.device_code_seconds = 0
    with httpx.Client(verify=cloud.endpoints.ca) as client:
        started = client.post(f"{cloud.endpoints.authority}/organizations/oauth2/v2.0/devicecode",
                              data={"client_id": AZURE_CLI, "scope": ARM}).json()
        polled = client.post(cloud.endpoints.token, data={
            "grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": AZURE_CLI,
            "device_code": started["device_code"]})
    assert polled.json()["error"] == "expired_token" and polled.json()["error_codes"] == [70019]


HIDDEN = re.compile(r"<input type='hidden' name='(?P<name>[^']+)' value='(?P<value>[^']*)'>")


def _sign_in_at_authorize(cloud: Sandbox, auth_uri: str, persona: str) -> dict[str, str]:
    """The browser's part: the sign-in page, the password, and the page that posts the code back to the
    redirect URI (response_mode=form_post)."""
    proof = held(cloud, persona)
    with httpx.Client(verify=cloud.endpoints.ca) as browser:
        page = browser.get(auth_uri)
        tenant = urlsplit(auth_uri).path.split("/")[1]
        posted = browser.post(f"{cloud.endpoints.authority}/{tenant}/login", data={
            **dict(HIDDEN.findall(page.text)), "login": proof["upn"], "passwd": proof["password"]})
    assert "action='http://localhost:8400'" in posted.text
    return dict(HIDDEN.findall(posted.text))


def _public_client(cloud: Sandbox) -> msal.PublicClientApplication:
    """Raw MSAL with its own requests session. The session's CA must not yield to REQUESTS_CA_BUNDLE (requests
    lets that variable override a session's `verify`), so the environment is not consulted."""
    session = requests.Session()
    session.trust_env = False
    session.verify = cloud.endpoints.ca
    return msal.PublicClientApplication(AZURE_CLI, authority=f"{cloud.endpoints.authority}/organizations",
                                        instance_discovery=False, http_client=session)


def test_authorization_code_with_pkce_signs_a_person_in_and_the_code_works_once(cloud: Sandbox) -> None:
    application = _public_client(cloud)
    flow = application.initiate_auth_code_flow([ARM], redirect_uri="http://localhost:8400",
                                               response_mode="form_post")
    answer = _sign_in_at_authorize(cloud, flow["auth_uri"], "kv-admin")
    result: dict[str, Any] = application.acquire_token_by_auth_code_flow(dict(flow), answer)
    assert claims(result["access_token"])["upn"] == "kv-admin@contoso.example"
    # MSAL sends the SHA-256 of its nonce and checks the ID token carries it back
    assert result["id_token_claims"]["nonce"] == hashlib.sha256(flow["nonce"].encode()).hexdigest()
    again = application.acquire_token_by_auth_code_flow(dict(flow), answer)
    assert again["error"] == "invalid_grant" and again["error_codes"] == [54005]


def test_a_code_verifier_that_does_not_match_the_challenge_is_refused(cloud: Sandbox) -> None:
    application = _public_client(cloud)
    flow = application.initiate_auth_code_flow([ARM], redirect_uri="http://localhost:8400",
                                               response_mode="form_post")
    answer = _sign_in_at_authorize(cloud, flow["auth_uri"], "pp-admin")
    result = application.acquire_token_by_auth_code_flow({**flow, "code_verifier": "x" * 43}, answer)
    assert result["error"] == "invalid_grant" and result["error_codes"] == [501481]


def test_a_redirect_uri_the_app_does_not_have_is_refused_at_the_authorize_endpoint(cloud: Sandbox) -> None:
    flow = _public_client(cloud).initiate_auth_code_flow([ARM], redirect_uri="https://evil.example/callback",
                                                         response_mode="form_post")
    with httpx.Client(verify=cloud.endpoints.ca) as browser:
        page = browser.get(flow["auth_uri"])
    assert page.status_code == 400 and "AADSTS50011" in page.text


def test_an_api_that_takes_v2_tokens_gets_the_v2_shape(cloud: Sandbox) -> None:
    credential = device_code_credential(cloud, verification_page_sign_in(cloud, "pp-admin-2"))
    token = claims(credential.get_token("api://contoso-approvals/Approve").token)
    assert token["ver"] == "2.0" and token["aud"] == "0d0d0001-0000-4000-8000-000000000001"
    assert token["iss"] == f"{cloud.endpoints.authority}/{cloud.endpoints.tenant_id}/v2.0"
    assert (token["azp"], token["scp"]) == (AZURE_CLI, "Approve")
    assert token["preferred_username"] == "pp-admin-2@contoso.example"
    assert "upn" not in token and "appid" not in token
