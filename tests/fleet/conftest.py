"""A sandbox with a generated fleet (`fleet:12`), shared by the module, and a Power Platform admin."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.models.azure import PolicyInfo
from tests.support.sandbox import connection, target
from tests.support.scenario import FLEET_SIZE, KEY, LINKED_POLICY


@pytest.fixture(scope="module")
def fleet_server() -> Iterator[Any]:
    """Its own small sandbox: the default scenario plus a fleet (starts in well under a second)."""
    from ppcmk_sandbox import Sandbox

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
    return connection(fleet, "pp-admin")


@pytest.fixture
def policy(fleet: Any, pp_admin: ConnectionSettings) -> PolicyInfo:
    """ep-existing, the europe policy every fleet environment is linked to."""
    from bench.link_fleet import read_linkable_policy

    return read_linkable_policy(pp_admin, target(fleet, key=KEY, policy=LINKED_POLICY))
