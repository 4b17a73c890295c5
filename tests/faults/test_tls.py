"""A certificate that fails verification is never retried, and says "certificate" naming the host and the
fix; a dropped connection on an idempotent PATCH is retried.

Every connection to the sandbox goes through a counting TCP relay, so a handshake storm shows as a count.
The wrong CA is a real one (certifi's public roots, or a throwaway CA of the test's own), which does not
trust the sandbox's own CA; a relay on 127.0.0.2 is a host the sandbox's certificate does not name."""

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
import trustme
from prefect import flow

from ppcmk.cloud.credentials import build_credential
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import TransientError, UntrustedCertificate
from ppcmk.safety.retry import is_transient_error
from ppcmk.services.factory import ClientFactory
from ppcmk_tasks.environments import get_environments
from ppcmk_tasks.holds import hold_key_version
from tests.support.arm import vault_id
from tests.support.sandbox import connection
from tests.support.scenario import PP_ADMIN

pytestmark = pytest.mark.usefixtures("prefect_backend")


class CountingRelay:
    """Accepts on 127.0.0.1, counts connections, pipes bytes to the sandbox's main origin."""

    def __init__(self, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.connections = 0
        self._server = socket.create_server((host, 0))
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


def _run_failing(conn: ConnectionSettings) -> UntrustedCertificate:
    @flow(name="tls-wrong-ca")
    def read() -> None:
        get_environments(conn)

    with pytest.raises(UntrustedCertificate) as caught:
        read()
    return caught.value


def test_a_wrong_ca_fails_after_one_handshake(cloud: Any, relay: CountingRelay) -> None:
    failure = str(_run_failing(_wrong_ca(cloud, relay)))
    authority = f"TLS certificate of the sign-in authority 127.0.0.1:{relay.port}"
    assert f"{authority} is not trusted by the CA bundle {certifi.where()}" in failure
    assert "fix: set the connection's ca_bundle" in failure
    assert relay.connections == 1


def _graph_behind(cloud: Any, relay: CountingRelay, ca_bundle: str) -> ClientFactory:
    """A factory whose sign-in works (the authority is reached directly, with the sandbox's CA: a
    TLS-inspection proxy often lets sign-ins through) while Graph is reached through `relay`, trusting
    `ca_bundle`."""
    right = connection(cloud, "kv-admin")
    graph_side = right.model_copy(update={"sandbox_url": f"https://{relay.host}:{relay.port}",
                                          "ca_bundle": ca_bundle})
    return ClientFactory(graph_side, credential=build_credential(right))


def test_graph_behind_another_ca_says_certificate_and_is_not_transient(
    cloud: Any, relay: CountingRelay, tmp_path: Any
) -> None:
    proxy_ca = tmp_path / "proxy-ca.pem"  # a CA of the test's own: the sandbox's certificate is not its
    trustme.CA(organization_name="corporate TLS inspection").cert_pem.write_to_path(str(proxy_ca))
    with pytest.raises(UntrustedCertificate) as caught:
        _graph_behind(cloud, relay, str(proxy_ca)).graph().user(PP_ADMIN)
    message = str(caught.value)
    assert f"TLS certificate of 127.0.0.1:{relay.port} is not trusted by the CA bundle {proxy_ca}" \
        in message
    assert "fix:" in message and "ConnectError" not in message
    assert not isinstance(caught.value, TransientError) and not is_transient_error(caught.value)
    assert relay.connections == 1  # one handshake: nothing retried what cannot succeed


@pytest.fixture
def elsewhere(cloud: Any) -> Iterator[CountingRelay]:
    """A relay on 127.0.0.2: a loopback address the sandbox's certificate (127.0.0.1, localhost)
    lacks."""
    origin = urlsplit(cloud.endpoints.url)
    running = CountingRelay((origin.hostname or "127.0.0.1", origin.port or 443), host="127.0.0.2")
    yield running
    running.close()


def test_a_host_the_certificate_does_not_name_says_so(cloud: Any, elsewhere: CountingRelay) -> None:
    with pytest.raises(UntrustedCertificate) as caught:
        _graph_behind(cloud, elsewhere, cloud.endpoints.ca).graph().user(PP_ADMIN)
    message = str(caught.value)
    assert f"TLS certificate of 127.0.0.2:{elsewhere.port} does not name that host" in message
    assert "fix: connect by a host name the certificate names" in message
    assert not is_transient_error(caught.value) and elsewhere.connections == 1


def test_a_wrong_ca_under_managed_identity_is_not_a_retry_storm(
    cloud: Any, relay: CountingRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    identity = urlsplit(cloud.endpoints.identity)
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"https://127.0.0.1:{relay.port}{identity.path}")
    monkeypatch.setenv("IDENTITY_HEADER", cloud.authority.credentials.of("runbook").identity_header)
    failure = _run_failing(_wrong_ca(cloud, relay, credential_mode="managed_identity"))
    assert "TLS certificate of the sign-in authority" in str(failure)
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
