"""Unsigned JWT-shaped bearer tokens (``header.payload.``) that carry who the caller is.

Expiry uses real time (not the virtual clock): clients cache tokens by wall-clock, and a test that jumps the
virtual clock by months must not invalidate every cached token.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any

from ppcmk_sandbox.identity.principals import Principal

TOKEN_LIFETIME_SECONDS = 3600


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue_token(principal: Principal, audience: str, tenant_id: str) -> tuple[str, int]:
    """A token for ``principal`` valid for ``audience``; returns (token, expires_on epoch seconds)."""
    expires_on = int(time.time()) + TOKEN_LIFETIME_SECONDS
    claims: dict[str, Any] = {
        "aud": audience.rstrip("/"),
        "iss": f"https://sts.windows.net/{tenant_id}/",
        "tid": tenant_id,
        "oid": principal.object_id,
        "name": principal.display_name,
        "wids": principal.wids,
        "exp": expires_on,
    }
    if principal.upn:
        claims["upn"] = principal.upn
    if principal.app_id:
        claims["appid"] = principal.app_id
    header = _b64url(json.dumps({"typ": "JWT", "alg": "none"}).encode())
    return f"{header}.{_b64url(json.dumps(claims).encode())}.", expires_on


def decode_token(token: str) -> dict[str, Any] | None:
    """The claims of a sandbox token, or None if it is not one (or has expired)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        return None
    if not isinstance(claims, dict) or int(claims.get("exp", 0)) < time.time():
        return None
    return claims


def audience_from_scope(scope: str) -> str:
    """``https://vault.azure.net/.default`` -> ``https://vault.azure.net``."""
    scope = scope.split()[0] if scope.split() else scope
    return scope.removesuffix("/.default").rstrip("/")
