"""Task-test fixtures: a connection for a sandbox persona, targets in the default scenario, a 1-task flow."""

from __future__ import annotations

from typing import Any

import pytest
from prefect import Task, flow

from ppcmk.settings import ConnectionSettings, TargetSettings

EUROPE_PROD = "e1000000-0000-4000-8000-000000000001"
EUROPE_SANDBOX = "e1000000-0000-4000-8000-000000000002"
EUROPE_UNMANAGED = "e1000000-0000-4000-8000-000000000009"
FINANCE_ON_CMK = "e1000000-0000-4000-8000-00000000000b"
BUSY_SANDBOX = "e1000000-0000-4000-8000-00000000000c"


def connection(cloud: Any, persona: str = "runbook") -> ConnectionSettings:
    endpoints = cloud.endpoints
    return ConnectionSettings(
        cloud="sandbox",
        tenant_id=endpoints.tenant_id,
        subscription_id=endpoints.subscription_id,
        sandbox_url=endpoints.url,
        sandbox_principal=persona,
        ca_bundle=str(endpoints.ca),
        time_mode="virtual",
        retry_backoff_factor=0,
    )


def vault_id(cloud: Any, name: str) -> str:
    return (
        f"/subscriptions/{cloud.endpoints.subscription_id}/resourceGroups/rg-cmk/providers/"
        f"Microsoft.KeyVault/vaults/{name}"
    )


def target(
    cloud: Any, vault: str = "kv-cmk-prod", key: str = "cmk-test", policy: str = "ep-test", **overrides: Any
) -> TargetSettings:
    values: dict[str, Any] = {
        "vault_id": vault_id(cloud, vault),
        "key_name": key,
        "key_size": 3072,
        "policy_name": policy,
        "resource_group": "rg-cmk",
        "geo": "europe",
    }
    return TargetSettings(**{**values, **overrides})


@pytest.fixture
def conn(cloud: Any) -> ConnectionSettings:
    return connection(cloud)


def run_in_flow(task: Task[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run one task inside a tiny flow, so Prefect's retry machinery (not just the body) is exercised."""

    @flow(name=f"tasks-test-{task.name}")
    def one_task() -> Any:
        return task(*args, **kwargs)

    return one_task()
