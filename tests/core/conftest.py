"""Core fixtures: connection settings for the session sandbox and a fresh client factory per test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ppcmk.clients import ClientFactory
from ppcmk.settings import ConnectionSettings
from ppcmk.timing import SandboxSleeper


def sandbox_connection(server: Any, **overrides: Any) -> ConnectionSettings:
    endpoints = server.endpoints
    return ConnectionSettings(cloud="sandbox", tenant_id=endpoints.tenant_id,
                              subscription_id=endpoints.subscription_id, sandbox_url=endpoints.url,
                              ca_bundle=str(endpoints.ca), time_mode="virtual", retry_backoff_factor=0.5,
                              **overrides)


@pytest.fixture
def factory(cloud: Any) -> Iterator[ClientFactory]:
    """A factory of its own (not the shared cache) so its sleeper's recorded waits belong to this test."""
    built = ClientFactory(sandbox_connection(cloud))
    yield built
    if isinstance(built.sleeper, SandboxSleeper):
        built.sleeper.close()
