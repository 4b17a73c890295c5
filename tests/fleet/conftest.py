"""A sandbox with a generated fleet (`fleet:12`), shared by the module, and a Power Platform admin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ppcmk.azure_resources import PolicyInfo
from ppcmk.settings import ConnectionSettings, TargetSettings

FLEET_SIZE = 12  # environments 0, 5 and 10 are Sandbox type (the canary), the other nine Production
FLEET_PATTERN = "Fleet europe *"
BUSY_SANDBOX = "e1000000-0000-4000-8000-00000000000c"  # default scenario: a governance operation holds it


@pytest.fixture(scope="module")
def fleet_server() -> Iterator[Any]:
    """Its own small sandbox: the default scenario plus a fleet (starts in well under a second)."""
    from sandbox import Sandbox

    with Sandbox(scenario=f"fleet:{FLEET_SIZE}") as server:
        yield server


@pytest.fixture
def fleet(fleet_server: Any, prefect_backend: None) -> Any:
    """The fleet sandbox restored to its scenario: no faults, empty request log, nothing throttled."""
    fleet_server.reset()
    # Poll a one-hour link every five minutes (the service's Retry-After), not every minute: fewer calls.
    fleet_server.world.settings.lifecycle_retry_after_seconds = 300
    return fleet_server


@pytest.fixture
def pp_admin(fleet: Any) -> ConnectionSettings:
    """The Power Platform administrator (Reader on ep-existing), on the sandbox's virtual clock."""
    endpoints = fleet.endpoints
    return ConnectionSettings(cloud="sandbox", tenant_id=endpoints.tenant_id,
                              subscription_id=endpoints.subscription_id, sandbox_url=endpoints.url,
                              sandbox_principal="pp-admin", ca_bundle=str(endpoints.ca), time_mode="virtual")


@pytest.fixture
def policy(fleet: Any, pp_admin: ConnectionSettings) -> PolicyInfo:
    """ep-existing, the europe policy every fleet environment is linked to."""
    from bench.link_fleet import read_linkable_policy

    endpoints = fleet.endpoints
    vault = (f"/subscriptions/{endpoints.subscription_id}/resourceGroups/rg-cmk/providers/"
             "Microsoft.KeyVault/vaults/kv-cmk-prod")
    target = TargetSettings(vault_id=vault, key_name="cmk-prod", policy_name="ep-existing",
                            resource_group="rg-cmk", geo="europe")
    return read_linkable_policy(pp_admin, target)
