"""Every sandbox service verifies every token as the real one does: a tampered, unsigned, expired, foreign or
other-audience token is refused with 401, the service's error code and its WWW-Authenticate challenge."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest

from ppcmk_sandbox import Sandbox
from tests.support.arm import vault_id
from tests.support.identity import claims, secret_credential
from tests.support.scenario import PP_ADMIN_ID, RUNBOOK_ID

BAP_ENVIRONMENTS = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments"
# plane: (audience, path on its origin, query)
SERVICES = {
    "arm": ("https://management.azure.com", None, {"api-version": "2023-07-01"}),
    "keyvault": ("https://vault.azure.net", "/keys/cmk-prod/", {"api-version": "7.5"}),
    "graph": ("https://graph.microsoft.com", f"/v1.0/servicePrincipals/{RUNBOOK_ID}", {}),
    "bap": ("https://service.powerapps.com", BAP_ENVIRONMENTS, {"api-version": "2021-04-01"}),
}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def call(cloud: Sandbox, plane: str, token: str | None) -> httpx.Response:
    _, path, query = SERVICES[plane]
    origin = cloud.endpoints.vaults["kv-cmk-prod"].rstrip("/") if plane == "keyvault" else cloud.endpoints.url
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(verify=cloud.endpoints.ca) as client:
        return client.get(f"{origin}{path or vault_id(cloud)}", params=query, headers=headers)


def good_token(cloud: Sandbox, plane: str) -> str:
    return secret_credential(cloud, "runbook").get_token(f"{SERVICES[plane][0]}/.default").token


@pytest.mark.parametrize("plane", list(SERVICES))
def test_a_good_token_is_accepted(cloud: Sandbox, plane: str) -> None:
    assert call(cloud, plane, good_token(cloud, plane)).status_code == 200


@pytest.mark.parametrize("plane", list(SERVICES))
def test_a_tampered_token_is_refused(cloud: Sandbox, plane: str) -> None:
    header, payload, signature = good_token(cloud, plane).split(".")
    promoted = {**claims(f"{header}.{payload}.{signature}"), "oid": PP_ADMIN_ID}
    answer = call(cloud, plane, f"{header}.{_b64(promoted)}.{signature}")
    expected = "Unauthorized" if plane == "keyvault" else "InvalidAuthenticationToken"
    assert answer.status_code == 401 and answer.json()["error"]["code"] == expected
    assert answer.headers["WWW-Authenticate"].startswith("Bearer ")


@pytest.mark.parametrize("plane", list(SERVICES))
def test_an_unsigned_token_is_refused(cloud: Sandbox, plane: str) -> None:
    wanted = claims(good_token(cloud, plane))
    unsigned = f"{_b64({'typ': 'JWT', 'alg': 'none'})}.{_b64(wanted)}."
    assert call(cloud, plane, unsigned).status_code == 401


@pytest.mark.parametrize("plane", list(SERVICES))
def test_an_expired_token_is_refused(cloud: Sandbox, plane: str) -> None:
    wanted = claims(good_token(cloud, plane))
    hours_ago = int(time.time()) - 7200
    expired = cloud.authority.sign({**wanted, "iat": hours_ago, "nbf": hours_ago, "exp": hours_ago + 3599})
    answer = call(cloud, plane, expired)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == {"arm": "ExpiredAuthenticationToken", "keyvault": "Unauthorized",
                                              "graph": "InvalidAuthenticationToken",
                                              "bap": "ExpiredAuthenticationToken"}[plane]


@pytest.mark.parametrize("plane", list(SERVICES))
def test_a_token_for_another_audience_is_refused(cloud: Sandbox, plane: str) -> None:
    other = "bap" if plane == "arm" else "arm"
    answer = call(cloud, plane, good_token(cloud, other))
    assert answer.status_code == 401
    if plane == "arm":
        assert answer.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    if plane == "keyvault":
        assert answer.json()["error"]["message"].startswith("AKV10022: Invalid audience.")


def test_a_token_of_another_issuer_is_refused(cloud: Sandbox) -> None:
    wanted = claims(good_token(cloud, "arm"))
    foreign = cloud.authority.sign({**wanted, "iss": "https://login.microsoftonline.com/"
                                                     f"{cloud.endpoints.tenant_id}/"})
    answer = call(cloud, "arm", foreign)
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"


def test_key_vaults_challenge_names_the_sandbox_authority_and_the_resource(cloud: Sandbox) -> None:
    challenge = call(cloud, "keyvault", None).headers["WWW-Authenticate"]
    assert challenge == (f'Bearer authorization="{cloud.endpoints.authority}/{cloud.endpoints.tenant_id}", '
                         'resource="https://vault.azure.net"')
    arm = call(cloud, "arm", None)
    assert arm.json()["error"]["code"] == "AuthenticationFailed"
    assert f'authorization_uri="{cloud.endpoints.authority}/' in arm.headers["WWW-Authenticate"]
