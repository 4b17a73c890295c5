"""The Power Platform API client (environment lifecycle operations) against the sandbox, and the endpoints
per cloud of that API and of managed HSM data planes."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from ppcmk.cloud.endpoints import endpoints_for
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings, load_settings
from ppcmk.errors import ConfigError, ServiceError
from ppcmk.models.environments import EnvironmentOperation
from ppcmk.services.factory import ClientFactory
from ppcmk.services.ppadmin import PowerPlatformApiClient
from ppcmk_sandbox.powerplatform.lifecycle import start_operation
from ppcmk_sandbox.powerplatform.records import OperationType
from tests.support.arm import managed_hsm_id
from tests.support.sandbox import connection
from tests.support.scenario import BUSY_SANDBOX, PP_ADMIN_ID, UNKNOWN_ENVIRONMENT, UNMANAGED

OPERATIONS = r"/environmentmanagement/environments/.*/operations"


def test_the_busy_environment_lists_its_running_governance_operation(
        factory: ClientFactory, cloud: Any) -> None:
    (queued,) = factory.pp_api().environment_operations(BUSY_SANDBOX)
    assert (queued.name, queued.status, queued.active) == ("UpdateGovernanceConfiguration", "Queued", True)
    assert queued.requested_by is not None and queued.requested_by.user_id == PP_ADMIN_ID
    cloud.advance(timedelta(minutes=5))
    (running,) = factory.pp_api().active_operations(BUSY_SANDBOX)
    assert running.status == "InProgress" and running.start_time is not None
    assert any(job.status == "InProgress" for job in running.jobs)
    cloud.advance(timedelta(hours=2))
    (done,) = factory.pp_api().environment_operations(BUSY_SANDBOX)
    assert done.status == "Succeeded" and not done.active and done.end_time is not None
    assert factory.pp_api().active_operations(BUSY_SANDBOX) == []
    entry = cloud.log.entries[-1]
    assert entry.api_version == "2022-03-01-preview" and entry.caller == "runbook"


def test_every_page_is_followed(cloud: Any) -> None:
    with cloud.world.lock:
        environment = cloud.world.powerplatform.environment(UNMANAGED)
        for kind in (OperationType.LINK, OperationType.UNLINK, OperationType.LINK):
            start_operation(cloud.world, environment, kind, 60, None)
            cloud.world.clock.advance(timedelta(minutes=2))
    factory = ClientFactory(connection(cloud))
    endpoints = factory.settings.endpoints
    client = PowerPlatformApiClient(factory.http_client(endpoints.ppapi, endpoints.ppapi_scope),
                                    page_size=2)
    operations = client.environment_operations(UNMANAGED)
    assert [op.name for op in operations] == ["NewCustomerManagedKey", "RevertToMicrosoftKey",
                                              "NewCustomerManagedKey"]  # newest first
    # no policy behind them: each failed when it ended, and says so
    assert {(op.status, op.error_code, op.active) for op in operations} == {
        ("Failed", "LifecycleOperationFailed", False)}
    assert cloud.log.count(method="GET", path=OPERATIONS) == 2


def test_a_token_for_the_admin_api_audience_is_refused(cloud: Any) -> None:
    url = f"{cloud.endpoints.url}/environmentmanagement/environments/{BUSY_SANDBOX}/operations"

    def read_with_token_for(audience: str) -> httpx.Response:
        token = cloud.token_for("runbook", audience)
        return http.get(url, params={"api-version": "2022-03-01-preview"},
                        headers={"Authorization": f"Bearer {token}"})

    with httpx.Client(verify=str(cloud.endpoints.ca)) as http:
        wrong = read_with_token_for("https://service.powerapps.com")
        right = read_with_token_for("https://api.powerplatform.com")
    assert wrong.status_code == 401 and "api.powerplatform.com" in wrong.json()["error"]["message"]
    assert right.status_code == 200 and right.json()["value"]


def test_a_caller_without_the_admin_role_is_refused_and_an_unknown_environment_is_404(cloud: Any) -> None:
    outsider = ClientFactory(connection(cloud, "outsider"))
    with pytest.raises(ServiceError) as refused:
        outsider.pp_api().environment_operations(BUSY_SANDBOX)
    assert refused.value.status == 403
    admin = ClientFactory(connection(cloud, "pp-admin"))
    with pytest.raises(ServiceError) as missing:
        admin.pp_api().environment_operations(UNKNOWN_ENVIRONMENT)
    assert missing.value.status == 404 and missing.value.code == "EnvironmentNotFound"


def test_fields_are_read_case_insensitively() -> None:
    operation = EnvironmentOperation.from_api({
        "OperationId": "op-1", "Name": "UpdateGovernanceConfiguration", "STATUS": "inprogress",
        "StartTime": "2026-12-01T09:00:10Z", "RequestedBy": {"DisplayName": "Admin", "UserId": "u-1"},
        "JobStatuses": [{"Name": "Run", "Status": "InProgress"}], "ErrorDetail": {"Code": "None"},
    })
    assert operation.active and operation.operation_id == "op-1" and operation.start_time is not None
    assert operation.requested_by is not None and operation.requested_by.display_name == "Admin"
    assert operation.jobs[0].name == "Run" and operation.error_code == "None"
    assert EnvironmentOperation.from_api({"status": "Validated"}).active  # checked, not run yet
    assert not EnvironmentOperation.from_api({"status": "ValidationError"}).active


def test_an_odata_next_link_is_followed_only_on_the_api_host() -> None:
    """MockTransport stands in for the service: the sandbox pages with continuationToken only."""
    host = "https://api.powerplatform.com"
    pages = {
        "first": {"value": [{"operationId": "a", "status": "Succeeded"}],
                  "@odata.nextLink": f"{host}/environmentmanagement/environments/e/operations?page=2"},
        "second": {"value": [{"operationId": "b", "status": "Queued"}]},
    }

    def service(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages["second" if b"page=2" in request.url.query else "first"])

    client = PowerPlatformApiClient(httpx.Client(base_url=host, transport=httpx.MockTransport(service)))
    assert [op.operation_id for op in client.environment_operations("e")] == ["a", "b"]
    pages["first"]["@odata.nextLink"] = "https://elsewhere.example/steal?page=2"
    with pytest.raises(ConfigError):
        client.environment_operations("e")


@pytest.mark.parametrize(("cloud_name", "ppapi", "hsm"), [
    ("public", "https://api.powerplatform.com", "https://hsm1.managedhsm.azure.net"),
    ("usgov", "https://api.gov.powerplatform.microsoft.us", "https://hsm1.managedhsm.azure.net"),
    ("usgovhigh", "https://api.high.powerplatform.microsoft.us", "https://hsm1.managedhsm.usgovcloudapi.net"),
    ("dod", "https://api.appsplatform.us", "https://hsm1.managedhsm.usgovcloudapi.net"),
    ("china", "https://api.powerplatform.partner.microsoftonline.cn", "https://hsm1.managedhsm.azure.cn"),
])
def test_endpoints_per_cloud(cloud_name: Any, ppapi: str, hsm: str) -> None:
    endpoints = endpoints_for(cloud_name)
    assert endpoints.ppapi == ppapi and endpoints.ppapi_scope == f"{ppapi}/.default"
    assert endpoints.managed_hsm_url("HSM1") == hsm


def test_a_managed_hsm_data_plane_url_needs_no_request_in_a_real_cloud() -> None:
    settings = ConnectionSettings(cloud="usgovhigh", tenant_id="11111111-2222-4333-8444-555555555555",
                                  subscription_id="00000000-0000-0000-0000-000000000000",
                                  credential_mode="client_secret",
                                  client_id="0b0b0004-0000-4000-8000-000000000004", client_secret="s3cret")
    factory = ClientFactory(settings)  # nothing is sent: the test network reaches 127.0.0.1 only
    hsm = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
           "Microsoft.KeyVault/managedHSMs/Contoso-HSM")
    assert factory.vault_url(hsm) == "https://contoso-hsm.managedhsm.usgovcloudapi.net"


def test_the_sandbox_resolves_a_managed_hsm_through_arm_and_the_target_accepts_it(
        factory: ClientFactory, cloud: Any) -> None:
    hsm = managed_hsm_id(cloud)
    assert endpoints_for("sandbox", factory.settings.sandbox_url).managed_hsm_url("hsm-cmk") is None
    key = factory.key_client(factory.vault_url(hsm)).get_key("cmk-hsm")
    assert key.key_type == "RSA-HSM" and key.key is not None and len(key.key.n or b"") * 8 == 3072
    target = load_settings(TargetSettings, {"vault_id": hsm, "key_name": "cmk-hsm", "key_type": "RSA-HSM",
                                            "key_size": 3072, "policy_name": "ep-hsm",
                                            "resource_group": "rg-cmk", "geo": "europe"})
    assert target.vault.name == "hsm-cmk"
