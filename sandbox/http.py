"""HTTP plumbing shared by every emulated service: request/response values, routes and error envelopes.

Handlers are plain synchronous functions ``handler(req, match) -> SandboxResponse``; the server (front door)
does authentication, faults, logging and locking around them, so a handler only implements the API.
"""

from __future__ import annotations

import json as jsonlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ppcmk_sandbox.identity.authority import Authority
    from ppcmk_sandbox.identity.principals import Principal
    from ppcmk_sandbox.keyvault.state import Vault
    from ppcmk_sandbox.world import World

# Which API a route belongs to: decides the token audience checked and the error envelope used.
Plane = Literal["arm", "bap", "ppapi", "graph", "keyvault", "admin", "token"]

AUDIENCES: dict[str, str] = {
    "arm": "https://management.azure.com",
    "bap": "https://service.powerapps.com",
    "ppapi": "https://api.powerplatform.com",  # the Power Platform API (environment lifecycle operations)
    "keyvault": "https://vault.azure.net",
    "graph": "https://graph.microsoft.com",
}
# A managed HSM origin serves the Key Vault API but asks (401 challenge) for and checks its own audience.
MANAGED_HSM_AUDIENCE = "https://managedhsm.azure.net"


@dataclass
class SandboxRequest:
    """One authenticated request as handlers see it. ``headers`` keys are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str  # scheme://host[:port] from the request's Host header, for every URL we hand back
    world: World
    caller: Principal | None = None
    vault: Vault | None = None  # the vault / managed HSM this origin serves (None on the main origin)
    settled: bool = False  # the world was brought up to the clock for this request (lifecycle.settle_once)
    authority: Authority | None = None  # the sandbox's identity provider (token endpoints and sign-in pages)

    def json(self) -> Any:
        """The body as JSON; an empty body is None. Malformed JSON is the caller's error (400)."""
        if not self.body:
            return None
        try:
            return jsonlib.loads(self.body)
        except ValueError as exc:
            raise SandboxHttpError(
                SandboxResponse(400, {"error": {"code": "BadRequest", "message": f"Body is not JSON: {exc}"}})
            ) from exc

    def json_object(self, error: Callable[[str], SandboxResponse]) -> dict[str, Any]:
        """The body as a JSON object, or the plane's 400 built by ``error(message)``."""
        body = self.json()
        if not isinstance(body, dict):
            raise SandboxHttpError(error("The request body must be a JSON object."))
        return body


@dataclass
class SandboxResponse:
    """What a handler returns: status, a JSON-serialisable body (None = empty) and extra headers; a page
    (the authority's sign-in pages) carries its HTML in `body` with its own content type."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json; charset=utf-8"

    @classmethod
    def page(cls, status: int, html: str) -> SandboxResponse:
        return cls(status, html, {"Cache-Control": "no-store"}, "text/html; charset=utf-8")

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        text = self.body if self.content_type.startswith("text/") else jsonlib.dumps(self.body)
        return str(text).encode()


class SandboxHttpError(Exception):
    """Raised by a handler (or a state method it calls) to answer with an error response right away."""

    def __init__(self, response: SandboxResponse) -> None:
        super().__init__(f"{response.status}: {response.body}")
        self.response = response


Handler = Callable[[SandboxRequest, "re.Match[str]"], SandboxResponse]


@dataclass
class Route:
    """``pattern`` is matched against the whole path, case-insensitively (ARM paths are case-insensitive)."""

    method: str
    pattern: str
    handler: Handler
    plane: Plane
    mutating: bool = False
    regex: re.Pattern[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self.regex = re.compile(self.pattern, re.IGNORECASE)

    def match(self, method: str, path: str) -> re.Match[str] | None:
        if method.upper() != self.method:
            return None
        return self.regex.fullmatch(path)


def arm_error(status: int, code: str, message: str, **extra: Any) -> SandboxResponse:
    """ARM ``ErrorResponse`` envelope; ``extra`` adds fields such as ``target`` or ``namespace``."""
    return SandboxResponse(status, {"error": {"code": code, "message": message, **extra}})


def bap_error(status: int, code: str, message: str) -> SandboxResponse:
    """Power Platform admin API (BAP) error envelope."""
    return SandboxResponse(
        status, {"error": {"code": code, "message": message, "detailUrlType": "NotSpecified"}}
    )


def ppapi_error(status: int, code: str, message: str) -> SandboxResponse:
    """Power Platform API error body (its ValidationResponse shape is not in our sources: inferred)."""
    return SandboxResponse(status, {"error": {"code": code, "message": message}})


def kv_error(status: int, code: str, message: str, inner: str | None = None) -> SandboxResponse:
    """Key Vault data-plane error envelope; ``inner`` is the innererror code (ForbiddenByRbac, ...)."""
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return SandboxResponse(status, {"error": error})


def graph_error(status: int, code: str, message: str) -> SandboxResponse:
    """Microsoft Graph error envelope."""
    return SandboxResponse(status, {"error": {"code": code, "message": message, "innerError": {}}})


ERROR_BUILDERS: dict[str, Callable[[int, str, str], SandboxResponse]] = {
    "arm": arm_error,
    "bap": bap_error,
    "ppapi": ppapi_error,
    "keyvault": kv_error,
    "graph": graph_error,
    "admin": arm_error,
    "token": arm_error,
}
