"""A certificate that fails verification is never retried; a dropped connection on an idempotent PATCH is.

Every connection to the sandbox goes through a counting TCP relay, so a handshake storm shows as a count.
The wrong CA is a real one (certifi's public roots), which does not trust the sandbox's own CA.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import certifi
import pytest
from prefect import flow

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.safety.step_errors import StepFailed
from ppcmk.services.factory import ClientFactory
from ppcmk_tasks.environments import get_environments
from ppcmk_tasks.holds import hold_key_version
from tests.support.arm import vault_id
from tests.support.sandbox import connection

pytestmark = pytest.mark.usefixtures("prefect_backend")


class CountingRelay:
    """Accepts on 127.0.0.1, counts connections, pipes bytes to the sandbox's main origin."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.connections = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def relay(cloud: Any) -> Iterator[CountingRelay]:
    origin = urlsplit(cloud.endpoints.url)
    running = CountingRelay((origin.hostname or "127.0.0.1", origin.port or 443))
    yield running
    running.close()


def _wrong_ca(cloud: Any, relay: CountingRelay, **overrides: Any) -> ConnectionSettings:
    right = connection(cloud, "pp-admin")
    values = dict(right.model_dump(), sandbox_url=f"https://127.0.0.1:{relay.port}", **overrides)
    wrong = ConnectionSettings.model_validate(values)
    return wrong.model_copy(update={"ca_bundle": certifi.where()})


def _run_failing(conn: ConnectionSettings) -> StepFailed:
    @flow(name="tls-wrong-ca")
    def read() -> None:
        get_environments(conn)

    with pytest.raises(StepFailed) as caught:
        read()
    return caught.value


def test_a_wrong_ca_fails_after_one_handshake(cloud: Any, relay: CountingRelay) -> None:
    failure = _run_failing(_wrong_ca(cloud, relay))
    assert "certificate verification failed" in str(failure) and "ca_bundle" in str(failure)
    assert relay.connections == 1


def test_a_wrong_ca_under_managed_identity_is_not_a_retry_storm(
    cloud: Any, relay: CountingRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = urlsplit(cloud.endpoints.identity)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"https://127.0.0.1:{relay.port}{identity.path}")
    monkeypatch.setenv("IDENTITY_HEADER", cloud.authority.credentials.of("runbook").identity_header)
    failure = _run_failing(_wrong_ca(cloud, relay, credential_mode="managed_identity"))
    assert "certificate verification failed" in str(failure)
    assert relay.connections <= 2  # was 4 x 4 x 4 = 64 (identity, SDK and task retries multiplied)


def test_a_dropped_connection_on_a_hold_tag_patch_is_retried(cloud: Any) -> None:
    kv = connection(cloud, "kv-admin")
    factory = ClientFactory.for_settings(kv)
    vault = vault_id(cloud, "kv-cmk-prod")
    version = factory.key_client(factory.vault_url(vault)).get_key("cmk-prod").properties.version
    assert version
    cloud.faults.add("PATCH", r"/keys/cmk-prod/", drop=True, times=1)

    @flow(name="hold-after-drop")
    def hold() -> Any:
        return hold_key_version(kv, vault, "cmk-prod", version, timedelta(days=28), "t")

    placed = hold()
    assert placed.until > ClientFactory.for_settings(kv).now()
    assert cloud.log.count(method="PATCH", path="/keys/cmk-prod/", status=0) == 1
    assert cloud.log.count(method="PATCH", path="/keys/cmk-prod/", status=200) == 1
