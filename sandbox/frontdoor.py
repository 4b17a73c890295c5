"""The ASGI app behind every origin: record, authenticate, check the audience, faults, throttle, dispatch."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from ppcmk_sandbox.faults import DEFAULT_CODES, FaultRule
from ppcmk_sandbox.http import (
    AUDIENCES,
    ERROR_BUILDERS,
    MANAGED_HSM_AUDIENCE,
    Plane,
    Route,
    SandboxHttpError,
    SandboxRequest,
    SandboxResponse,
    arm_error,
    kv_error,
)
from ppcmk_sandbox.identity.principals import Principal
from ppcmk_sandbox.identity.verify import authenticate
from ppcmk_sandbox.requestlog import LogEntry

if TYPE_CHECKING:
    from ppcmk_sandbox.clock import Clock
    from ppcmk_sandbox.server import Sandbox
    from ppcmk_sandbox.world import World

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

logger = logging.getLogger("sandbox")
UNAUTHENTICATED_PLANES = ("admin", "token")
THROTTLED_PLANES = ("arm", "bap", "ppapi")
DROPPED = 0  # request-log status of a request whose connection a fault rule dropped


def guess_plane(path: str) -> Plane:
    """The API a path belongs to when no route matched (for the right 404 envelope)."""
    lowered = path.lower()
    if lowered.startswith("/v1.0/"):
        return "graph"
    if lowered.startswith("/providers/microsoft.businessappplatform"):
        return "bap"
    if lowered.startswith("/environmentmanagement/"):
        return "ppapi"
    if lowered.startswith("/_sandbox"):
        return "admin"
    return "arm"


class Throttle:
    """Per-caller, per-plane sliding one-minute window, measured on the sandbox clock.

    A manual clock (speed 0) makes throttling deterministic: the window slides only when the clock is
    advanced, e.g. by a client honouring Retry-After through the sandbox sleeper. A running clock (speed N)
    moves N virtual seconds per real second, so its window spans 60 x N virtual seconds: one real minute."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], deque[float]] = {}
        self._guard = threading.Lock()

    def allow(self, plane: str, caller: str, per_minute: int, clock: Clock) -> bool:
        if per_minute <= 0:
            return True
        now = clock.now().timestamp()
        window_seconds = _window_seconds(clock)
        with self._guard:
            window = self._calls.setdefault((plane, caller), deque())
            while window and now - window[0] >= window_seconds:
                window.popleft()
            if len(window) >= per_minute:
                return False
            window.append(now)
            return True

    def seconds_until_free(self, plane: str, caller: str, clock: Clock) -> int:
        """When the caller's oldest call leaves the window: the honest Retry-After of a 429, in the
        client's seconds (a running clock's window is one real minute)."""
        window_seconds = _window_seconds(clock)
        with self._guard:
            window = self._calls.get((plane, caller))
            if not window:
                return 0
            age = clock.now().timestamp() - window[0]
        return math.ceil(max(window_seconds - age, 0.0) / (clock.speed or 1.0))

    def clear(self) -> None:
        with self._guard:
            self._calls.clear()


def _window_seconds(clock: Clock) -> float:
    """One minute of the sandbox clock when it is manual; one real minute when it runs at speed N."""
    return 60 * clock.speed if clock.speed > 0 else 60


def new_id() -> str:
    """A fresh random UUID (v4) for a request or correlation id. From the `random` generator, not the OS:
    ids need to be unique, not secret, and `uuid4` costs a system call per id, twice per request."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def request_id_headers(plane: Plane, headers: dict[str, str]) -> dict[str, str]:
    """What the real services put on every answer: a fresh ``x-ms-request-id``, the caller's correlation id
    echoed (or a new one), and the client's own request id echoed. ARM names its correlation header
    ``x-ms-correlation-request-id``; the Power Platform admin API ``x-ms-correlation-id``."""
    correlation = headers.get("x-ms-correlation-request-id") or headers.get("x-ms-correlation-id") or new_id()
    ids = {"x-ms-request-id": new_id(), "x-ms-correlation-id": correlation}
    if plane == "arm":
        ids["x-ms-correlation-request-id"] = correlation
    if headers.get("x-ms-client-request-id"):
        ids["x-ms-client-request-id"] = headers["x-ms-client-request-id"]
    return ids


def _audience(world: World, plane: Plane, vault_name: str | None) -> str:
    """The token audience this request must carry: a managed HSM origin has its own."""
    vault = world.keyvault.get(vault_name) if plane == "keyvault" and vault_name else None
    return MANAGED_HSM_AUDIENCE if vault is not None and vault.kind == "managedHSM" else AUDIENCES[plane]


@dataclass
class _Exchange:
    """One request crossing the front door: what it asks, of which plane, who sent it, and how it is logged
    and answered (with the request ids the services put on every answer)."""

    sandbox: Sandbox
    send: Send
    started: float
    arrived: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    base_url: str
    vault_name: str | None
    route: Route | None
    found: Any
    plane: Plane
    ids: dict[str, str]
    caller: Principal | None = None

    @classmethod
    def arriving(cls, sandbox: Sandbox, scope: Scope, send: Send) -> _Exchange:
        started = time.perf_counter()
        method, path = scope["method"].upper(), scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        server_host, server_port = scope["server"]
        vault_name = sandbox.origins.vault_for_port(server_port)
        route, found = _find_route(sandbox.routes_for(vault_origin=vault_name is not None), method, path)
        plane: Plane = route.plane if route else ("keyvault" if vault_name else guess_plane(path))
        return cls(
            sandbox, send, started, sandbox.world.clock.now().isoformat(), method, path,
            query=dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
            headers=headers, base_url=f"https://{headers.get('host') or f'{server_host}:{server_port}'}",
            vault_name=vault_name, route=route, found=found, plane=plane,
            ids=request_id_headers(plane, headers),
        )

    def error(self, status: int, code: str, message: str) -> SandboxResponse:
        """An error in this plane's envelope."""
        return ERROR_BUILDERS[self.plane](status, code, message)

    def record(self, status: int) -> None:
        self.sandbox.log.record(
            LogEntry(
                method=self.method,
                path=self.path,
                status=status,
                duration_ms=round((time.perf_counter() - self.started) * 1000, 3),
                caller=self.caller.name if self.caller else None,
                origin=self.vault_name or "main",
                at=self.arrived,
                api_version=self.query.get("api-version"),
                request_id=self.ids["x-ms-request-id"],
                correlation_id=self.ids["x-ms-correlation-id"],
            )
        )

    async def answer(self, response: SandboxResponse) -> None:
        response.headers.update(self.ids)
        self.record(response.status)  # before sending: a client that got its answer finds the call logged
        await _send(self.send, response)

    def drop(self) -> None:
        self.record(DROPPED)
        _drop_connection(self.send)

    def request(self, body: bytes) -> SandboxRequest:
        world = self.sandbox.world
        vault = world.keyvault.get(self.vault_name) if self.vault_name else None
        return SandboxRequest(self.method, self.path, self.query, self.headers, body, self.base_url, world,
                              caller=self.caller, vault=vault, authority=self.sandbox.authority)


class FrontDoor:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.throttle = Throttle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        sandbox, world = self.sandbox, self.sandbox.world
        exchange = _Exchange.arriving(sandbox, scope, send)
        plane = exchange.plane
        if plane not in UNAUTHENTICATED_PLANES:
            audience = _audience(world, plane, exchange.vault_name)
            exchange.caller, rejection = authenticate(sandbox.authority, world, exchange.headers, plane,
                                                      audience)
            if rejection is not None:
                await exchange.answer(rejection)
                return
        body = await _read_body(receive)
        rule = sandbox.faults.take(exchange.method, exchange.path) if plane != "admin" else None
        if rule is not None and await _injected(exchange, rule):
            return
        if plane != "admin" and sandbox.latency:
            await asyncio.sleep(sandbox.latency)
        refusal = self._throttled(exchange) or _unanswerable(exchange)
        if refusal is not None:
            await exchange.answer(refusal)
            return
        assert exchange.route is not None  # else _unanswerable answered 404
        response = self._dispatch(exchange.route, exchange.found, exchange.request(body))
        if rule is not None and rule.drop_after:
            exchange.drop()  # applied, never answered
            return
        await exchange.answer(response)

    def _throttled(self, exchange: _Exchange) -> SandboxResponse | None:
        """The 429 of a caller over its plane's rate (with an honest Retry-After), or None."""
        caller, plane, world = exchange.caller, exchange.plane, self.sandbox.world
        if caller is None or plane not in THROTTLED_PLANES:
            return None
        # The Power Platform API shares the admin API's rate unless settings.json names its own.
        settings = world.settings
        limit = getattr(settings, f"throttle_{plane}_per_minute", settings.throttle_bap_per_minute)
        if self.throttle.allow(plane, caller.object_id, limit, world.clock):
            return None
        throttled = exchange.error(429, "TooManyRequests",
                                   f"Rate limit of {limit} requests per minute exceeded.")
        wait = self.throttle.seconds_until_free(plane, caller.object_id, world.clock)
        throttled.headers["Retry-After"] = str(max(settings.throttle_retry_after_seconds, wait))
        return throttled

    def _dispatch(self, route: Route, found: Any, request: SandboxRequest) -> SandboxResponse:
        world = request.world
        with world.lock:
            if world.clock.speed > 0:
                world.after_change()  # real time moved the clock: let rotation and locks catch up first
                request.settled = True
            try:
                response = route.handler(request, found)
            except SandboxHttpError as exc:
                response = exc.response
            except Exception:
                logger.exception("sandbox handler failed: %s %s", request.method, request.path)
                response = ERROR_BUILDERS[route.plane](
                    500, "InternalServerError", "The sandbox handler failed."
                )
            if route.mutating and response.status < 400:
                world.after_change()
                self.sandbox.persist()
        return response


async def _injected(exchange: _Exchange, rule: FaultRule) -> bool:
    """A fault rule's latency, then its dropped connection or its error answer; True when the request is
    done with (dropped or answered). A `drop_after` rule lets the request through (it drops the answer)."""
    if rule.latency:
        await asyncio.sleep(rule.latency)
    if rule.drop:
        exchange.drop()
        return True
    if rule.status is None or rule.drop_after:
        return False
    fault = exchange.error(rule.status, rule.code or _default_code(rule.status), "Injected fault.")
    if rule.empty_body:
        fault.body = None
    if rule.retry_after is not None:
        fault.headers["Retry-After"] = rule.retry_after
    await exchange.answer(fault)
    return True


def _unanswerable(exchange: _Exchange) -> SandboxResponse | None:
    """The answer to a request no handler takes: no route, no ARM api-version, a deleted vault's origin."""
    if exchange.route is None or exchange.found is None:
        what = f"{exchange.plane} API at {exchange.method} {exchange.path}"
        return exchange.error(404, "NotFound", f"No {what}.")
    if exchange.plane == "arm" and not exchange.query.get("api-version"):
        return arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if exchange.vault_name is not None and exchange.sandbox.world.keyvault.get(exchange.vault_name) is None:
        return kv_error(404, "VaultNotFound", f"Vault {exchange.vault_name} does not exist (deleted).")
    return None


def _find_route(routes: list[Route], method: str, path: str) -> tuple[Route | None, Any]:
    for route in routes:
        found = route.match(method, path)
        if found is not None:
            return route, found
    return None, None


def _default_code(status: int) -> str:
    return DEFAULT_CODES.get(status, "InjectedFault")


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _send(send: Send, response: SandboxResponse) -> None:
    payload = response.encoded()
    headers = [(b"content-length", str(len(payload)).encode())]
    if payload:
        headers.append((b"content-type", response.content_type.encode()))
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _drop_connection(send: Send) -> None:
    """Close the TCP connection without answering (uvicorn's ASGI ``send`` is bound to the request cycle)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionAbortedError("injected dropped connection")
    transport.close()
