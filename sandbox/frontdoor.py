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
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from sandbox.faults import DEFAULT_CODES
from sandbox.http import (
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
from sandbox.identity.principals import Principal
from sandbox.identity.tokens import decode_token
from sandbox.requestlog import LogEntry

if TYPE_CHECKING:
    from sandbox.clock import Clock
    from sandbox.server import Sandbox
    from sandbox.world import World

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


def kv_challenge(world: World, audience: str) -> dict[str, str]:
    return {
        "WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/{world.tenant_id}", '
        f'resource="{audience}"'
    }


def _audience(world: World, plane: Plane, vault_name: str | None) -> str:
    """The token audience this request must carry: a managed HSM origin has its own."""
    vault = world.keyvault.get(vault_name) if plane == "keyvault" and vault_name else None
    return MANAGED_HSM_AUDIENCE if vault is not None and vault.kind == "managedHSM" else AUDIENCES[plane]


class FrontDoor:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.throttle = Throttle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        sandbox = self.sandbox
        world = sandbox.world
        method, path = scope["method"].upper(), scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        server_host, server_port = scope["server"]
        base_url = f"https://{headers.get('host') or f'{server_host}:{server_port}'}"
        query = dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        vault_name = sandbox.origins.vault_for_port(server_port)
        arrived = world.clock.now().isoformat()
        caller: Principal | None = None
        routes = sandbox.routes_for(vault_origin=vault_name is not None)
        route, found = _find_route(routes, method, path)
        plane: Plane = route.plane if route else ("keyvault" if vault_name else guess_plane(path))
        error = ERROR_BUILDERS[plane]
        ids = request_id_headers(plane, headers)

        def record(status: int) -> None:
            sandbox.log.record(
                LogEntry(
                    method=method,
                    path=path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    caller=caller.name if caller else None,
                    origin=vault_name or "main",
                    at=arrived,
                    api_version=query.get("api-version"),
                    request_id=ids["x-ms-request-id"],
                    correlation_id=ids["x-ms-correlation-id"],
                )
            )

        async def answer(response: SandboxResponse) -> None:
            response.headers.update(ids)
            record(response.status)  # before sending: a client that got its answer finds the call logged
            await _send(send, response)

        if plane not in UNAUTHENTICATED_PLANES:
            caller, rejection = _authenticate(world, headers, plane, _audience(world, plane, vault_name))
            if rejection is not None:
                await answer(rejection)
                return
        body = await _read_body(receive)

        rule = sandbox.faults.take(method, path) if plane != "admin" else None
        if rule is not None:
            if rule.latency:
                await asyncio.sleep(rule.latency)
            if rule.drop:
                record(DROPPED)
                _drop_connection(send)
                return
            if rule.status is not None and not rule.drop_after:
                fault = error(rule.status, rule.code or _default_code(rule.status), "Injected fault.")
                if rule.empty_body:
                    fault.body = None
                if rule.retry_after is not None:
                    fault.headers["Retry-After"] = rule.retry_after
                await answer(fault)
                return
        if plane != "admin" and sandbox.latency:
            await asyncio.sleep(sandbox.latency)

        if caller is not None and plane in THROTTLED_PLANES:
            # The Power Platform API shares the admin API's rate unless settings.json names its own.
            limit = getattr(
                world.settings, f"throttle_{plane}_per_minute", world.settings.throttle_bap_per_minute
            )
            if not self.throttle.allow(plane, caller.object_id, limit, world.clock):
                throttled = error(
                    429, "TooManyRequests", f"Rate limit of {limit} requests per minute exceeded."
                )
                wait = self.throttle.seconds_until_free(plane, caller.object_id, world.clock)
                throttled.headers["Retry-After"] = str(max(world.settings.throttle_retry_after_seconds, wait))
                await answer(throttled)
                return

        if route is None or found is None:
            await answer(error(404, "NotFound", f"No {plane} API at {method} {path}."))
            return
        if plane == "arm" and not query.get("api-version"):
            await answer(
                arm_error(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
            )
            return
        if vault_name is not None and world.keyvault.get(vault_name) is None:
            await answer(kv_error(404, "VaultNotFound", f"Vault {vault_name} does not exist (deleted)."))
            return
        request = SandboxRequest(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            base_url=base_url,
            world=world,
            caller=caller,
            vault=world.keyvault.get(vault_name) if vault_name else None,
        )
        response = self._dispatch(route, found, request)
        if rule is not None and rule.drop_after:
            record(DROPPED)  # applied, never answered
            _drop_connection(send)
            return
        await answer(response)

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


def _find_route(routes: list[Route], method: str, path: str) -> tuple[Route | None, Any]:
    for route in routes:
        found = route.match(method, path)
        if found is not None:
            return route, found
    return None, None


def _authenticate(
    world: World, headers: dict[str, str], plane: Plane, audience: str
) -> tuple[Principal | None, SandboxResponse | None]:
    """The caller from the bearer token, or the plane's 401 (Key Vault: the challenge, body unread)."""
    authorization = headers.get("authorization", "")
    token = authorization[7:].strip() if authorization.lower().startswith("bearer ") else ""

    def reject(message: str) -> tuple[None, SandboxResponse]:
        if plane == "keyvault":
            response = kv_error(401, "Unauthorized", message)
            response.headers.update(kv_challenge(world, audience))
            return None, response
        return None, ERROR_BUILDERS[plane](401, "AuthenticationFailed", message)

    if not token:
        return reject("Authentication failed. The 'Authorization' header is missing.")
    claims = decode_token(token)
    if claims is None:
        return reject("Authentication failed. The access token is malformed or expired.")
    principal = world.identities.get(str(claims.get("oid", "")))
    if principal is None or claims.get("tid") != world.tenant_id:
        return reject("Authentication failed. The token's principal is not in this tenant.")
    if str(claims.get("aud", "")).rstrip("/") != audience:
        return reject(f"Invalid audience {claims.get('aud')!r}; this API expects {audience}.")
    return principal, None


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
        headers.append((b"content-type", b"application/json; charset=utf-8"))
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
