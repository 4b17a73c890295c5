"""Request ids on every answer (like the real services), in the request log and in ppcmk's audit."""

from __future__ import annotations

import uuid

from azure.core.pipeline import PipelineResponse

from ppcmk.cloud.request_log import request_ids
from ppcmk.services.factory import ClientFactory
from ppcmk_sandbox import Sandbox
from tests.support.arm import vault_id
from tests.support.sandbox import connection
from tests.support.sdk_clients import http, key_client

BAP_AUDIENCE = "https://service.powerapps.com"
ENVIRONMENTS = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments?api-version=2021-04-01"


def _is_guid(value: str) -> bool:
    return str(uuid.UUID(value)) == value


def test_every_answer_has_a_fresh_request_id_that_the_log_records(cloud: Sandbox) -> None:
    vault = vault_id(cloud)
    with http(cloud, "runbook") as client:
        answers = [
            client.get(vault, params={"api-version": "2023-07-01"}),
            client.get(vault),  # 400 MissingApiVersionParameter
        ]
    with http(cloud) as anonymous:
        answers.append(anonymous.get(ENVIRONMENTS))  # 401
    ids = [answer.headers["x-ms-request-id"] for answer in answers]
    assert [answer.status_code for answer in answers] == [200, 400, 401]
    assert all(_is_guid(i) for i in ids) and len(set(ids)) == 3
    assert [e.request_id for e in cloud.log.entries if "/oauth2/" not in e.path] == ids


def test_correlation_id_is_echoed_or_created_and_client_request_id_echoed(cloud: Sandbox) -> None:
    with http(cloud, "pp-admin", BAP_AUDIENCE) as client:
        sent = client.get(
            ENVIRONMENTS, headers={"x-ms-correlation-id": "corr-1", "x-ms-client-request-id": "mine-1"}
        )
        fresh = client.get(ENVIRONMENTS)
    assert sent.headers["x-ms-correlation-id"] == "corr-1"
    assert sent.headers["x-ms-client-request-id"] == "mine-1"
    assert _is_guid(fresh.headers["x-ms-correlation-id"])
    assert "x-ms-client-request-id" not in fresh.headers
    environments = [e for e in cloud.log.entries if "environments" in e.path]
    assert [e.correlation_id for e in environments] == ["corr-1", fresh.headers["x-ms-correlation-id"]]
    with http(cloud, "runbook") as client:
        arm = client.get(
            f"{vault_id(cloud)}?api-version=2023-07-01",
            headers={"x-ms-correlation-request-id": "arm-corr"},
        )
    assert arm.headers["x-ms-correlation-request-id"] == arm.headers["x-ms-correlation-id"] == "arm-corr"


def test_injected_faults_carry_request_ids_too(cloud: Sandbox) -> None:
    cloud.faults.add(method="GET", path=r"/keys/cmk-prod/?$", status=429, retry_after="0", times=1)
    seen: list[PipelineResponse] = []
    client = key_client(cloud, "kv-cmk-prod", raw_response_hook=seen.append)
    client.get_key("cmk-prod")  # the SDK retries the 429 once
    # (the 401 challenge comes only on a process's first call to the vault: the SDK caches it)
    vault_calls = [e for e in cloud.log.entries if e.origin == "kv-cmk-prod" and e.status != 401]
    assert [e.status for e in vault_calls] == [429, 200]
    assert len({e.request_id for e in vault_calls}) == 2
    # the SDK sends its own x-ms-client-request-id on every attempt; the vault echoes it back
    final = seen[-1].http_response
    assert final.headers["x-ms-client-request-id"] == seen[-1].http_request.headers["x-ms-client-request-id"]
    assert final.headers["x-ms-request-id"] == cloud.log.entries[-1].request_id


def test_ppcmk_audit_collects_the_sandbox_request_ids(cloud: Sandbox) -> None:
    factory = ClientFactory(
        connection(cloud, time_mode="real")
    )
    with request_ids() as records:
        factory.keyvault_mgmt().vaults.get("rg-cmk", "kv-cmk-prod")
        factory.pp_admin().list_environments()
    logged = {e.request_id for e in cloud.log.entries}
    assert len(records) == 2
    for record in records:
        assert record.ids["x-ms-request-id"] in logged
        assert _is_guid(record.ids["x-ms-correlation-id"])
