"""Shared fixtures: one sandbox cloud and one Prefect test server per session, a loopback-only network."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator

import pytest

# Retry delays of Prefect tasks scale with this; tests keep the retries but never wait for them.
os.environ.setdefault("PPCMK_RETRY_DELAY_SCALE", "0")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
# Audit logs, profiles and Prefect's home of a test process never touch the user's own (one per xdist worker).
os.environ["PPCMK_HOME"] = tempfile.mkdtemp(prefix="ppcmk-test-home-")
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="ppcmk-test-prefect-")

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
    from ppcmk_sandbox import Sandbox

    with Sandbox(scenario="default") as server:
        yield server


@pytest.fixture
def cloud(sandbox_server: object) -> Iterator[object]:
    """The sandbox with its default scenario restored, faults and request log cleared."""
    sandbox_server.reset()  # type: ignore[attr-defined]
    yield sandbox_server


@pytest.fixture
def factory(cloud: object) -> Iterator[object]:
    """A client factory of its own (not the shared cache): its sleeper's recorded waits are this test's."""
    # imported here: the environment above must be set before ppcmk reads it
    from ppcmk.cloud.clock import SandboxSleeper
    from ppcmk.services.factory import ClientFactory
    from tests.support.sandbox import connection

    built = ClientFactory(connection(cloud, retry_backoff_factor=0.5))
    yield built
    if isinstance(built.sleeper, SandboxSleeper):
        built.sleeper.close()


@pytest.fixture(scope="session")
def prefect_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A throwaway Prefect API server for tests that run tasks and flows. It is the demo's backend: a copy of
    a migrated SQLite template: migrating a fresh database costs ~40 s of CPU in every test session."""
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from ppcmk_cli.demo_backend import throwaway_prefect

    with throwaway_prefect(tmp_path_factory.mktemp("prefect")) as ready:
        api_url = ready()
        settings = {PREFECT_API_URL: api_url, PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
        # flows run in threads the tests start: they read the process-global settings, as with Prefect's own
        # test harness
        with temporary_settings(updates=settings), _temporary_global_settings_context(get_settings_context()):
            yield


@pytest.fixture(scope="session")
def sandbox_blocks(sandbox_server: object, prefect_backend: None) -> dict[str, str]:
    """The sandbox blocks `ppcmk serve` saves: a CmkConnection `sandbox-<persona>` per persona (virtual
    time) and the CmkTargets. Returns persona → block name, and "target" → the target on the default
    scenario's compliant vault, key and linked policy ep-existing."""
    from tests.support.sandbox import register_blocks

    return register_blocks(sandbox_server)


def pytest_configure(config: pytest.Config) -> None:
    """The fault tests' counts folder, named before any worker starts so they all share it."""
    from tests.faults import tally

    tally.folder()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.faults import tally

    if (line := tally.summary()) is not None:
        terminalreporter.write_line(f"fault tests: {line}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The served end-to-end tests first: they mostly wait on their subprocesses, so started early they
    overlap the CPU-bound tests on the other workers instead of ending the run alone."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
