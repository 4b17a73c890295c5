"""Sign-ins in progress and what they leave behind: device codes waiting for a person, authorization
requests waiting at the sign-in page, authorization codes and refresh tokens. In memory (a restart asks people
to sign in again), timed on the wall clock like the tokens."""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

# Entra's user codes are short, upper-case and unambiguous to type.
USER_CODE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
USER_CODE_LENGTH = 9
AUTH_CODE_SECONDS = 600  # authorization codes live about ten minutes
REFRESH_TOKEN_SECONDS = 90 * 24 * 3600  # inactivity lifetime of a refresh token


@dataclass
class DeviceFlow:
    client_id: str
    scopes: list[str]
    user_code: str
    expires_at: float
    signed_in: str | None = None  # the person's object id once they signed in at the verification page
    redeemed: bool = False


@dataclass
class Authorization:
    """An authorization request (the authorize endpoint's query) and, once a person signs in, its code."""

    client_id: str
    redirect_uri: str
    scopes: list[str]
    state: str | None
    nonce: str | None
    code_challenge: str | None
    response_mode: str
    signed_in: str | None = None
    expires_at: float = field(default_factory=lambda: time.time() + AUTH_CODE_SECONDS)
    redeemed: bool = False


@dataclass(frozen=True)
class RefreshGrant:
    object_id: str
    client_id: str
    expires_at: float


class SignIns:
    def __init__(self) -> None:
        self._devices: dict[str, DeviceFlow] = {}
        self._authorizations: dict[str, Authorization] = {}  # by request id, then also by code
        self._refresh: dict[str, RefreshGrant] = {}
        self._guard = threading.Lock()

    def start_device_flow(self, client_id: str, scopes: list[str], lifetime: float) -> tuple[str, DeviceFlow]:
        user_code = "".join(secrets.choice(USER_CODE_LETTERS) for _ in range(USER_CODE_LENGTH))
        flow = DeviceFlow(client_id, scopes, user_code, time.time() + lifetime)
        device_code = secrets.token_urlsafe(48)
        with self._guard:
            self._devices[device_code] = flow
        return device_code, flow

    def device_flow(self, device_code: str) -> DeviceFlow | None:
        with self._guard:
            return self._devices.get(device_code)

    def device_flow_by_user_code(self, user_code: str) -> DeviceFlow | None:
        wanted = user_code.strip().upper()
        with self._guard:
            return next(
                (
                    f
                    for f in self._devices.values()
                    if f.user_code == wanted and not f.redeemed and f.expires_at > time.time()
                ),
                None,
            )

    def start_authorization(self, authorization: Authorization) -> str:
        request_id = secrets.token_urlsafe(24)
        with self._guard:
            self._authorizations[request_id] = authorization
        return request_id

    def authorization(self, key: str) -> Authorization | None:
        with self._guard:
            return self._authorizations.get(key)

    def issue_code(self, request_id: str, object_id: str) -> str:
        """The authorization code for a request whose person signed in (single use, ten minutes)."""
        code = secrets.token_urlsafe(48)
        with self._guard:
            authorization = self._authorizations.pop(request_id)
            authorization.signed_in = object_id
            authorization.expires_at = time.time() + AUTH_CODE_SECONDS
            self._authorizations[code] = authorization
        return code

    def new_refresh_token(self, object_id: str, client_id: str) -> str:
        token = secrets.token_urlsafe(64)
        with self._guard:
            self._refresh[token] = RefreshGrant(object_id, client_id, time.time() + REFRESH_TOKEN_SECONDS)
        return token

    def refresh_grant(self, token: str) -> RefreshGrant | None:
        """The grant behind a live refresh token, or None. A used refresh token stays valid (Entra's refresh
        tokens are not single use), so clients refreshing two scopes at once both succeed."""
        with self._guard:
            grant = self._refresh.get(token)
        return grant if grant is not None and grant.expires_at > time.time() else None
