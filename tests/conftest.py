"""Shared fixtures: one sandbox cloud and one Prefect test server per session, a loopback-only network."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

# Retry delays of Prefect tasks scale with this; tests keep the retries but never wait for them.
os.environ.setdefault("PPCMK_RETRY_DELAY_SCALE", "0")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    if self.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host = str(address[0])
        if not (host.startswith("127.") or host in ("::1", "localhost")):
            raise RuntimeError(f"test tried to reach {host}: tests stay on 127.0.0.1")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _loopback_only  # type: ignore[method-assign,assignment]


@pytest.fixture(scope="session")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The sandbox cloud, started once per session (in-process, HTTPS on 127.0.0.1, own CA)."""
    from sandbox import Sandbox

    with Sandbox(scenario="default") as server:
        yield server


@pytest.fixture
def cloud(sandbox_server: object) -> Iterator[object]:
    """The sandbox with its default scenario restored, faults and request log cleared."""
    sandbox_server.reset()  # type: ignore[attr-defined]
    yield sandbox_server


@pytest.fixture(scope="session")
def prefect_backend() -> Iterator[None]:
    """A throwaway Prefect API (SQLite) for tests that run tasks and flows."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield
