"""Core fixtures: a fresh client factory per test against the session sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ppcmk.clients import ClientFactory
from ppcmk.timing import SandboxSleeper
from tests.support.sandbox import connection


@pytest.fixture
def factory(cloud: Any) -> Iterator[ClientFactory]:
    """A factory of its own (not the shared cache) so its sleeper's recorded waits belong to this test."""
    built = ClientFactory(connection(cloud, retry_backoff_factor=0.5))
    yield built
    if isinstance(built.sleeper, SandboxSleeper):
        built.sleeper.close()
