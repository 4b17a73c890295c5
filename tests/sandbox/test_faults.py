"""Fault injection, latency and throttling, seen through the real SDK retry policy and the request log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError

from ppcmk_sandbox import Sandbox
from ppcmk_sandbox.clock import Clock
from ppcmk_sandbox.frontdoor import Throttle
from tests.support.arm import vault_id
from tests.support.sdk_clients import http, key_client, keyvault_mgmt

LATEST = r"^/keys/cmk-prod/$"


def test_two_429_then_success_is_retried_by_the_sdk(cloud: Sandbox) -> None:
    cloud.faults.add("GET", LATEST, status=429, times=2, retry_after="0.01")
    assert key_client(cloud, "kv-cmk-prod").get_key("cmk-prod").name == "cmk-prod"
    calls = [e.status for e in cloud.log.entries if e.origin == "kv-cmk-prod" and e.status != 401]
    assert calls == [429, 429, 200]
    assert cloud.log.count("GET", LATEST) >= 3


def test_post_429_without_retry_after_surfaces(cloud: Sandbox) -> None:
    cloud.faults.add("POST", r"/rotate$", status=429, times=1)
    with pytest.raises(HttpResponseError) as throttled:
        key_client(cloud, "kv-cmk-prod").rotate_key("cmk-prod")
    assert throttled.value.status_code == 429
    assert cloud.faults.rules() == []  # the rule was used up


def test_persistent_503_gives_up_and_clear_restores(cloud: Sandbox) -> None:
    cloud.faults.add("GET", LATEST, status=503, times=None)
    client = key_client(cloud, "kv-cmk-prod", retry_total=2)
    with pytest.raises(HttpResponseError) as unavailable:
        client.get_key("cmk-prod")
    assert unavailable.value.status_code == 503
    cloud.faults.clear()
    assert client.get_key("cmk-prod").name == "cmk-prod"


def test_dropped_connection_is_retried_and_logged(cloud: Sandbox) -> None:
    cloud.faults.add("GET", LATEST, status=None, drop=True, times=1)
    assert key_client(cloud, "kv-cmk-prod").get_key("cmk-prod").name == "cmk-prod"
    statuses = [e.status for e in cloud.log.entries if e.path == "/keys/cmk-prod/" and e.status != 401]
    assert statuses == [0, 200]


def test_fault_latency_and_global_latency_slow_requests(cloud: Sandbox) -> None:
    cloud.faults.add("GET", LATEST, status=None, latency=0.05, times=1)
    client = key_client(cloud, "kv-cmk-prod")
    client.get_key("cmk-prod")
    assert cloud.log.entries[-1].duration_ms >= 50
    with http(cloud) as admin:
        assert admin.post("/_sandbox/latency", json={"seconds": 0.03}).json() == {"seconds": 0.03}
    client.get_key("cmk-prod")
    assert cloud.log.entries[-1].duration_ms >= 30
    assert cloud.latency == 0.03


def test_probability_rules_are_seeded_and_partial(cloud: Sandbox) -> None:
    cloud.faults.add("GET", r"^/_never_matched_by_admin$", status=500, times=None, probability=0.5)
    hits = [cloud.faults.take("GET", "/_never_matched_by_admin") is not None for _ in range(40)]
    assert 0 < sum(hits) < 40
    cloud.faults.clear(seed=cloud.world.settings.fault_seed)
    cloud.faults.add("GET", r"^/_never_matched_by_admin$", status=500, times=None, probability=0.5)
    again = [cloud.faults.take("GET", "/_never_matched_by_admin") is not None for _ in range(40)]
    assert hits == again  # the same seed gives the same dice


def test_faults_over_http_are_validated_and_applied(cloud: Sandbox) -> None:
    with http(cloud) as admin:
        bad = admin.post("/_sandbox/faults", json={"path": "[", "status": 429})
        assert bad.status_code == 400 and "path" in bad.json()["error"]["message"]
        not_error = admin.post("/_sandbox/faults", json={"status": 200})
        assert not_error.status_code == 400 and "status" in not_error.json()["error"]["message"]
        rule = admin.post(
            "/_sandbox/faults", json={"method": "GET", "path": LATEST, "status": 500, "times": 1}
        )
        assert rule.status_code == 201
        assert [r["id"] for r in admin.get("/_sandbox/faults").json()["value"]] == [rule.json()["id"]]
    with pytest.raises(HttpResponseError) as failed:
        key_client(cloud, "kv-cmk-prod", retry_total=0).get_key("cmk-prod")
    assert failed.value.status_code == 500
    with http(cloud) as admin:
        admin.post("/_sandbox/faults", json={"status": 503, "times": None})
        assert admin.delete("/_sandbox/faults").status_code == 204
        assert admin.get("/_sandbox/faults").json()["value"] == []


def test_arm_throttling_per_caller_above_the_configured_rate(cloud: Sandbox) -> None:
    cloud.world.settings.throttle_arm_per_minute = 2
    vaults = keyvault_mgmt(cloud, "kv-admin")
    vaults.vaults.get("rg-cmk", "kv-cmk-prod")
    vaults.vaults.get("rg-cmk", "kv-cmk-prod")
    with http(cloud, "kv-admin") as client:
        sub = cloud.endpoints.subscription_id
        third = client.get(
            vault_id(cloud),
            params={"api-version": "2026-05-15"},
        )
    assert third.status_code == 429 and third.headers["Retry-After"] == "60"  # when the window frees
    with http(cloud, "runbook") as other:  # another caller has its own budget
        assert (
            other.get(
                f"/subscriptions/{sub}/providers/Microsoft.KeyVault/vaults",
                params={"api-version": "2026-05-15"},
            ).status_code
            == 200
        )
    assert (
        key_client(cloud, "kv-cmk-prod").get_key("cmk-prod").name == "cmk-prod"
    )  # Key Vault is not throttled


def test_throttling_window_slides_only_with_the_manual_clock(cloud: Sandbox) -> None:
    cloud.world.settings.throttle_bap_per_minute = 1
    environments = "/providers/Microsoft.BusinessAppPlatform/scopes/admin/environments"
    with http(cloud, "pp-admin", "https://service.powerapps.com") as client:
        assert client.get(environments).status_code == 200
        assert client.get(environments).status_code == 429  # however much real time passes
        cloud.advance(timedelta(seconds=59))
        assert client.get(environments).status_code == 429
        cloud.advance(timedelta(seconds=1))
        assert client.get(environments).status_code == 200


def test_a_running_clock_throttles_per_real_minute() -> None:
    clock = Clock(datetime(2026, 1, 1, tzinfo=UTC), speed=1000)  # 1 real ms is 1 virtual second
    throttle = Throttle()
    assert throttle.allow("arm", "caller", 1, clock)
    clock.advance(timedelta(minutes=5))  # five virtual minutes are a fraction of a real minute here
    assert not throttle.allow("arm", "caller", 1, clock)
    clock.advance(timedelta(seconds=60 * 1000))
    assert throttle.allow("arm", "caller", 1, clock)
