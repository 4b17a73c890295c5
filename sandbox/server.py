"""``Sandbox``: the HTTPS server (uvicorn in daemon threads), one origin per vault, persistence and resets."""

from __future__ import annotations

import importlib
import json
import logging
import socket
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from ppcmk_sandbox.admin import admin_routes
from ppcmk_sandbox.clock import Clock
from ppcmk_sandbox.faults import Faults
from ppcmk_sandbox.frontdoor import FrontDoor
from ppcmk_sandbox.http import AUDIENCES, Route
from ppcmk_sandbox.identity.authority import Authority
from ppcmk_sandbox.identity.routes import IDENTITY_PATH
from ppcmk_sandbox.keyvault.state import origin_url
from ppcmk_sandbox.requestlog import RequestLog
from ppcmk_sandbox.scenarios import load_scenario
from ppcmk_sandbox.tls import TlsFiles, make_tls_files
from ppcmk_sandbox.world import World

# Each service exposes ROUTES in its routes.py; first match wins, in this order; a missing service is skipped.
ROUTE_MODULES = (
    "ppcmk_sandbox.identity.routes",
    "ppcmk_sandbox.keyvault.routes",
    "ppcmk_sandbox.graph.routes",
    "ppcmk_sandbox.rbac.routes",
    "ppcmk_sandbox.powerplatform.routes",
    "ppcmk_sandbox.arm.routes",
)
HOST = "127.0.0.1"


def collect_routes() -> list[Route]:
    routes: list[Route] = []
    for module_name in ROUTE_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        routes.extend(module.ROUTES)
    return routes


@dataclass(frozen=True)
class SandboxEndpoints:
    url: str
    arm: str
    bap: str
    graph: str
    authority: str  # the Entra-shaped authority host (azure-identity's `authority`)
    token: str
    identity: str
    vaults: dict[str, str]
    ca: str
    credentials: str  # the file with every principal's secret, certificate and password (mode 0600)
    tenant_id: str
    subscription_id: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _IdleShutdownFilter(logging.Filter):
    """Clients (SDK connection pools) keep idle keep-alive connections open; uvicorn reports cutting them at
    shutdown as an error, which is noise for a sandbox being stopped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "graceful shutdown exceeded" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_IdleShutdownFilter())


class _Listener:
    """One uvicorn server on one pre-bound socket, in a daemon thread."""

    def __init__(self, app: FrontDoor, tls: TlsFiles, port: int) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted connections inherit this; without it Nagle + delayed ACK add ~40 ms to every response
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket.bind((HOST, port))
        self.port: int = self.socket.getsockname()[1]
        config = uvicorn.Config(
            app,
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            ssl_certfile=str(tls.cert_chain),
            ssl_keyfile=str(tls.key),
            # Longer than any client's idle expiry (httpx: 5 s): otherwise the server closes a connection just
            # as a client reuses it ("Server disconnected without sending a response"), and a client does
            # not resend a POST.
            timeout_keep_alive=120,
            # idle keep-alive connections of clients never closed must not hold up stop()
            timeout_graceful_shutdown=0.2,  # type: ignore[arg-type]  # a float works; typed as int
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run,
            kwargs={"sockets": [self.socket]},
            name=f"sandbox-{self.port}",
            daemon=True,
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox listener on port {self.port} did not start")
            time.sleep(0.002)

    def signal_exit(self) -> None:
        self.server.should_exit = True

    def join(self) -> None:
        self.thread.join(timeout=5)
        self.socket.close()


class _VaultOrigins:
    """Vault name -> its own listener. Ports survive resets (and restarts, through the state file)."""

    def __init__(self, sandbox: Sandbox, ports: dict[str, int]) -> None:
        self._sandbox = sandbox
        self._wanted_ports = {name.lower(): port for name, port in ports.items()}
        self._listeners: dict[str, _Listener] = {}
        self._by_port: dict[int, str] = {}
        self._guard = threading.Lock()

    def ensure(self, vault_name: str) -> int | None:
        name = vault_name.lower()
        with self._guard:
            if name not in self._listeners:
                listener = _Listener(self._sandbox.app, self._sandbox.tls, self._wanted_ports.get(name, 0))
                listener.start()
                self._listeners[name] = listener
                self._by_port[listener.port] = name
            return self._listeners[name].port

    def port_of(self, vault_name: str) -> int | None:
        listener = self._listeners.get(vault_name.lower())
        return listener.port if listener else None

    def vault_for_port(self, port: int) -> str | None:
        return self._by_port.get(port)

    def ports(self) -> dict[str, int]:
        return {name: listener.port for name, listener in self._listeners.items()}

    def detach(self) -> list[_Listener]:
        """Forget every listener and hand them over for shutdown."""
        with self._guard:
            listeners = list(self._listeners.values())
            self._listeners.clear()
            self._by_port.clear()
            return listeners


class Sandbox:
    authority: Authority  # made at start, once the port (its issuer's origin) is known

    def __init__(
        self,
        scenario: str | Path = "default",
        state_file: str | Path | None = None,
        port: int = 0,
        clock_speed: float = 0.0,
    ) -> None:
        self.scenario = scenario
        self.state_file = Path(state_file) if state_file else None
        self.port = port
        self.clock_speed = clock_speed
        self.latency = 0.0
        self.log = RequestLog()
        self._scenario_data = load_scenario(scenario)
        self.world = World(self._scenario_data, clock_speed)
        self.faults = Faults(self.world.settings.fault_seed)
        self.app = FrontDoor(self)
        self._routes = collect_routes() + admin_routes(self)
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._main: _Listener | None = None
        self.origins = _VaultOrigins(self, {})
        self._persist_guard = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> Sandbox:
        vault_ports: dict[str, int] = {}
        if self.state_file and self.state_file.exists():
            saved = json.loads(self.state_file.read_text())
            self.world = World.from_dict(saved["world"], self.clock_speed)
            vault_ports = saved.get("vault_ports", {})
            self.port = self.port or int(saved.get("port", 0))
        if self.state_file:
            tls_dir = self.state_file.parent / f"{self.state_file.stem}-tls"
        else:
            self._tempdir = tempfile.TemporaryDirectory(prefix="ppcmk-sandbox-")
            tls_dir = Path(self._tempdir.name)
        self.tls = make_tls_files(tls_dir)
        self.origins = _VaultOrigins(self, vault_ports)
        self._main = _Listener(self.app, self.tls, self.port)
        self.port = self._main.port
        self.authority = Authority(tls_dir, f"https://{HOST}:{self.port}")
        self.authority.credentials.provide(self.world.identities.all(), {
            "authority": self.authority.origin, "tenant_id": self.world.tenant_id})
        self._tokens: dict[tuple[str, str], str] = {}
        self._main.start()
        self._attach_world()
        self.persist()
        return self

    def stop(self) -> None:
        listeners = self.origins.detach() + ([self._main] if self._main else [])
        for listener in listeners:  # all at once: each may wait a moment for idle connections
            listener.signal_exit()
        for listener in listeners:
            listener.join()
        self._main = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def reset(self) -> None:
        """Back to the scenario: fresh world, no faults, empty log, no latency; vault ports are kept."""
        with self.world.lock:
            self.world = World(self._scenario_data, self.clock_speed)
            self._attach_world()
        self.faults.clear(self.world.settings.fault_seed)
        self.log.clear()
        self.app.throttle.clear()
        self.latency = 0.0
        self.persist()

    def _attach_world(self) -> None:
        self.world.keyvault.origins = self.origins
        for vault in list(self.world.keyvault.vaults.values()):
            self.origins.ensure(vault.name)

    # -- state -----------------------------------------------------------------------------------------------
    def persist(self) -> None:
        """Write the whole world to the state file (atomically), if there is one."""
        if self.state_file is None:
            return
        with self._persist_guard:
            data = {"port": self.port, "vault_ports": self.origins.ports(), "world": self.world.to_dict()}
            scratch = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
            scratch.write_text(json.dumps(data, indent=1))
            scratch.replace(self.state_file)

    # -- what tests and the CLI use --------------------------------------------------------------------------
    @property
    def clock(self) -> Clock:
        return self.world.clock

    def advance(self, delta: timedelta) -> None:
        """Move the virtual clock and persist the reconciled world."""
        with self.world.lock:
            self.world.clock.advance(delta)
            self.persist()

    def routes_for(self, vault_origin: bool) -> list[Route]:
        return [r for r in self._routes if (r.plane == "keyvault") == vault_origin]

    @property
    def endpoints(self) -> SandboxEndpoints:
        return self.endpoints_for(f"https://{HOST}:{self.port}")

    def endpoints_for(self, base_url: str) -> SandboxEndpoints:
        ports = self.origins.ports()
        vaults = {
            v.name: origin_url(base_url, ports.get(v.name.lower()))
            for v in self.world.keyvault.vaults.values()
            if not v.deleted
        }
        return SandboxEndpoints(
            url=base_url,
            arm=base_url,
            bap=base_url,
            graph=f"{base_url}/v1.0",
            authority=self.authority.origin,
            token=self.authority.token_endpoint(self.world.tenant_id),
            identity=f"{base_url}{IDENTITY_PATH}",
            vaults=vaults,
            ca=str(self.tls.ca),
            credentials=str(self.authority.credentials.path),
            tenant_id=self.world.tenant_id,
            subscription_id=self.world.subscription_id,
        )

    def token_for(self, persona: str, audience: str = AUDIENCES["arm"]) -> str:
        """An access token for `persona` (a service principal, or a person's stand-in app) from the
        authority's
        client-credentials grant over HTTPS, proven with the persona's client secret; kept while it lives."""
        key = (persona, audience.removesuffix("/.default"))
        if key not in self._tokens:
            principal = self.world.identities.require(persona)
            with httpx.Client(verify=str(self.tls.ca)) as http:
                sign_in = (self._managed_identity_token if principal.trusted_service
                           else self._client_credentials_token)
                answer = sign_in(http, principal.name, key[1])
            answer.raise_for_status()
            self._tokens[key] = answer.json()["access_token"]
        return self._tokens[key]

    def _client_credentials_token(self, http: httpx.Client, name: str, resource: str) -> httpx.Response:
        held = self.authority.credentials.of(name)
        grant = {"grant_type": "client_credentials", "client_id": held.client_id,
                 "client_secret": held.client_secret, "scope": f"{resource}/.default"}
        return http.post(self.authority.token_endpoint(self.world.tenant_id), data=grant)

    def _managed_identity_token(self, http: httpx.Client, name: str, resource: str) -> httpx.Response:
        """A Microsoft service's identity (an enterprise policy's) signs in at the managed-identity endpoint,
        as the service hosting it would."""
        header = self.authority.credentials.managed_identity_header(name)
        return http.get(f"{self.authority.origin}{IDENTITY_PATH}", headers={"X-IDENTITY-HEADER": header},
                        params={"api-version": "2019-08-01", "resource": resource})
