"""Case-insensitive parsing of the service's varying JSON casing.

The httpx MockTransport here stands in for the *service* only, to serve PascalCase payloads the sandbox
does not produce; the client code under test is the real PowerPlatformAdminClient.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from ppcmk.models.azure import parse_iso_duration
from ppcmk.models.environments import Environment, LifecycleOperation, pick
from ppcmk.services.ppadmin import PowerPlatformAdminClient

BAP = "https://api.bap.microsoft.com"
SYSTEM_ID = ("/regions/europe/providers/Microsoft.PowerPlatform/enterprisePolicies/"
             "0f0e0d0c-1111-2222-3333-444455556666")
POLICY = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
          "Microsoft.PowerPlatform/enterprisePolicies/cmk")

PASCAL_ENVIRONMENT = {
    "Id": "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments/env-1",
    "Name": "env-1",
    "Location": "europe",
    "Properties": {
        "DisplayName": "Finance",
        "EnvironmentSku": "Production",
        "GovernanceConfiguration": {"ProtectionLevel": "Standard"},
        "States": {"Runtime": {"Id": "Enabled", "RuntimeReasonCode": "NotSpecified"}},
        "ProtectionStatus": {"KeyManagedBy": "Customer"},
        "EnterprisePolicies": {"CustomerManagedKeys": {"Id": POLICY, "SystemId": SYSTEM_ID,
                                                       "LinkStatus": "Linked", "Location": "europe"}},
        "LifecycleOperationsEnforcement": {"DisallowedOperations": [
            {"Type": {"Id": "RevertToMicrosoftKey"}, "Reason": {"Message": "not now"}}]},
    },
}


def test_pick_is_case_insensitive_and_defaults() -> None:
    assert pick({"State": {"Id": "Running"}}, "state", "id") == "Running"
    assert pick({"state": None}, "state", "id", default="?") == "?"
    assert pick({"a": 1}, "a", "b", default=0) == 0


def test_environment_from_pascal_case() -> None:
    env = Environment.from_api(PASCAL_ENVIRONMENT)
    assert (env.id, env.display_name, env.geo, env.sku) == ("env-1", "Finance", "europe", "Production")
    assert env.managed and env.enabled and env.key_managed_by == "Customer"
    assert env.cmk is not None and env.cmk.linked and env.cmk.system_id == SYSTEM_ID
    assert env.disallows("reverttomicrosoftkey") is not None
    assert env.disallows("NewCustomerManagedKey") is None


def test_operation_from_pascal_case() -> None:
    operation = LifecycleOperation.from_api({
        "Id": "op-1", "State": {"Id": "Failed"}, "Error": {"Message": "key unreachable"},
        "Stages": [{"Id": "Validate", "State": {"Id": "Succeeded"}},
                   {"Name": "Run", "State": {"Id": "Failed"}}],
    })
    assert operation.failed and operation.terminal and operation.error_message == "key unreachable"
    assert [s.id for s in operation.stages] == ["Validate", "Run"]


class _RecordingClock:
    """The client's time source: records waits instead of sleeping, so the test never waits for real."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self._now = datetime(2026, 11, 28, tzinfo=UTC)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self._now += timedelta(seconds=seconds)

    def now(self) -> datetime:
        return self._now


def test_client_reads_pascal_case_service_payloads() -> None:
    seen: list[tuple[str, str, dict[str, object] | None]] = []

    def service(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        seen.append((request.method, request.url.path, body))
        if request.url.path.endswith("/environments") and "skip" not in request.url.query.decode():
            return httpx.Response(200, json={"Value": [PASCAL_ENVIRONMENT],
                                             "NextLink": f"{BAP}/providers/Microsoft.BusinessAppPlatform/"
                                                         "scopes/admin/environments?skip=1"})
        if request.url.path.endswith("/environments"):
            return httpx.Response(200, json={"Value": []})
        if request.url.path.endswith("/link"):
            return httpx.Response(202, headers={
                "Location": "https://europe.api.bap.microsoft.com/providers/Microsoft.BusinessAppPlatform/"
                            "lifecycleOperations/op-7?api-version=2023-06-01", "Retry-After": "20"})
        return httpx.Response(200, json={"Id": "op-7", "State": {"Id": "Succeeded"}})

    http = httpx.Client(base_url=BAP, transport=httpx.MockTransport(service))
    clock = _RecordingClock()
    client = PowerPlatformAdminClient(http, clock)
    environments = client.list_environments()
    assert [e.id for e in environments] == ["env-1"] and environments[0].cmk is not None

    poller = client.begin_link("env-1", SYSTEM_ID)
    assert poller.kind == "link" and not poller.done()
    assert seen[-1] == ("POST", "/providers/Microsoft.BusinessAppPlatform/environments/env-1/"
                                "enterprisePolicies/Encryption/link", {"SystemId": SYSTEM_ID})
    result = poller.wait(timedelta(days=4))
    # the first poll waits for the Retry-After the service asked for, then one poll finds it done
    assert result.status == "Succeeded" and result.polls == 1 and clock.slept == [20]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("P90D", timedelta(days=90)), ("P1Y", timedelta(days=365)), ("p2m", timedelta(days=60)),
     ("PT12H", timedelta(hours=12)), ("P1Y2M3DT4H", timedelta(days=428, hours=4))],
)
def test_rotation_policy_durations_read_as_key_vault_counts_them(text: str, expected: timedelta) -> None:
    assert parse_iso_duration(text) == expected


def test_a_duration_that_is_not_iso_8601_is_refused() -> None:
    with pytest.raises(ValueError, match="timedelta"):
        parse_iso_duration("PT")
