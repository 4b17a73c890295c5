"""A person's proof verified by ppcmk itself, with tokens the sandbox's identity provider really issues: a
Power Platform admin's sign-in for the approvals app proves who they are; an altered, unsigned, expired,
early, old, app-only, other-audience or other-tenant token, and one used twice, prove nothing."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest

from ppcmk.errors import ProofRefused
from ppcmk.identity.keys import TenantKeys
from ppcmk.identity.proof import LEEWAY_S, PROOF_MAX_AGE_S, Expected, verify
from ppcmk.identity.replay import use_once
from tests.support.identity import (
    claims,
    device_code_credential,
    secret_credential,
    verification_page_sign_in,
)
from tests.support.scenario import PP_ADMIN, PP_ADMIN_ID

APPROVALS_APP = "0d0d0001-0000-4000-8000-000000000001"
APPROVE = "api://contoso-approvals/Approve"
POWER_PLATFORM_ADMIN = "11648597-926c-4cf3-9c36-bcebb0ba8dcc"


@pytest.fixture(scope="module")
def signed_in(sandbox_server: Any) -> str:
    """The Power Platform admin's own sign-in (device code, at the verification page) for the approvals
    app."""
    credential = device_code_credential(sandbox_server, verification_page_sign_in(sandbox_server, "pp-admin"))
    return credential.get_token(APPROVE).token


def expected(cloud: Any, **changes: Any) -> Expected:
    values = {"tenant_id": cloud.endpoints.tenant_id, "audiences": (APPROVALS_APP, "api://contoso-approvals"),
              "scope": "Approve", "asked_at": time.time() - 60, **changes}
    return Expected(**values)


def keys(cloud: Any) -> TenantKeys:
    return TenantKeys(cloud.endpoints.authority, cloud.endpoints.tenant_id, cloud.endpoints.ca)


def test_a_person_signed_in_for_the_approvals_app_is_proven(sandbox_server: Any, signed_in: str) -> None:
    person = verify(signed_in, expected(sandbox_server), keys(sandbox_server))
    assert (person.object_id, person.name) == (PP_ADMIN_ID, PP_ADMIN)
    assert POWER_PLATFORM_ADMIN in person.roles and person.token_id == claims(signed_in)["uti"]


def refused(cloud: Any, token: str, **changes: Any) -> str:
    now = changes.pop("now", None)
    with pytest.raises(ProofRefused) as why:
        verify(token, expected(cloud, **changes), keys(cloud), now=now)
    return str(why.value)


def with_claims(token: str, **changes: Any) -> str:
    header, payload, signature = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    altered = base64.urlsafe_b64encode(json.dumps({**body, **changes}).encode()).rstrip(b"=").decode()
    return f"{header}.{altered}.{signature}"


def test_an_altered_or_unsigned_token_proves_nothing(sandbox_server: Any, signed_in: str) -> None:
    assert "altered or forged" in refused(sandbox_server, with_claims(signed_in, oid="someone-else"))
    unsigned_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    unsigned = ".".join([unsigned_header, *signed_in.split(".")[1:2], ""])
    assert "not signed by the identity provider" in refused(sandbox_server, unsigned)
    assert "not a token" in refused(sandbox_server, "hunter2")


def test_a_token_out_of_its_time_proves_nothing(sandbox_server: Any, signed_in: str) -> None:
    issued, expires = claims(signed_in)["iat"], claims(signed_in)["exp"]
    assert "expired" in refused(sandbox_server, signed_in, now=expires + LEEWAY_S + 1)
    assert "before the question was asked" in refused(sandbox_server, signed_in, asked_at=issued + 3600)
    too_late = issued + PROOF_MAX_AGE_S + LEEWAY_S + 1
    assert "older than 10 minutes" in refused(sandbox_server, signed_in, now=too_late)


def test_another_audience_tenant_or_an_apps_token_proves_nothing(sandbox_server: Any, signed_in: str) -> None:
    arm = secret_credential(sandbox_server, "runbook").get_token("https://management.azure.com/.default").token
    assert "another application" in refused(sandbox_server, arm)
    app_only = secret_credential(sandbox_server, "runbook").get_token("api://contoso-approvals/.default").token
    assert "application's token" in refused(sandbox_server, app_only)
    other_tenant = "99999999-9999-4999-8999-999999999999"
    assert "another tenant" in refused(sandbox_server, signed_in, tenant_id=other_tenant)


def test_a_proof_is_used_once(prefect_backend: None, sandbox_server: Any, signed_in: str) -> None:
    person = verify(signed_in, expected(sandbox_server), keys(sandbox_server))
    use_once(person, "onboard hand-off of run 1")
    with pytest.raises(ProofRefused, match="used before"):
        use_once(person, "lock approval of run 2")
