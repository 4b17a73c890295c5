"""How ppcmk talks HTTP, below the client factory: bearer auth, the retrying httpx transport and the SDK
transport whose waits go through a sleeper, Retry-After, request-id logging, and the mapping of what the
services answer (an httpx response, an SDK error) onto ppcmk's errors.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, NoReturn

import httpx
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.core.pipeline.transport import RequestsTransport

from ppcmk.cloud.certificates import certificate_error, untrusted
from ppcmk.cloud.clock import Sleeper
from ppcmk.cloud.request_log import note_response
from ppcmk.errors import ServiceError, service_error
from ppcmk.models.environments import pick

log = logging.getLogger("ppcmk.http")

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
BACKOFF_MAX = 60.0


def _log_ids(method: str, url: str, status: int, headers: Any) -> None:
    ids = note_response(method, url, status, headers)
    # Only the path and the service's ids: never headers wholesale (Authorization) nor bodies (key material).
    log.debug("%s %s -> %s %s", method, url.split("?", 1)[0], status,
              " ".join(f"{name}={value}" for name, value in ids.items()))


class RequestIdPolicy(SansIOHTTPPolicy):
    """Logs and records the service's request/correlation ids of every attempt of every SDK call."""

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        http = response.http_response
        _log_ids(request.http_request.method, request.http_request.url, http.status_code, http.headers)


class SleeperTransport(RequestsTransport):
    """The SDK transport whose waits (retry back-off, LRO polling) go through the factory's sleeper."""

    def __init__(self, sleeper: Sleeper, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sleeper = sleeper

    def sleep(self, duration: float) -> None:
        self._sleeper.sleep(duration)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None if absent or garbled."""
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    reference = now or datetime.now(when.tzinfo)
    return max((when - reference).total_seconds(), 0.0)


class RetryingTransport(httpx.BaseTransport):
    """httpx retries with azure-core's rules: 408/429/5xx and connection errors, Retry-After honoured,
    exponential back-off otherwise; POST only when the service says when (Retry-After) or throttles. A
    certificate the connection's `trust` refuses is `UntrustedCertificate` at once, naming the host."""

    def __init__(self, inner: httpx.BaseTransport, sleeper: Sleeper, retry_total: int,
                 backoff_factor: float, trust: str) -> None:
        self._inner = inner
        self._sleeper = sleeper
        self._retry_total = retry_total
        self._backoff_factor = backoff_factor
        self._trust = trust

    def _backoff(self, attempt: int) -> float:
        return min(self._backoff_factor * (2 ** (attempt - 1)), BACKOFF_MAX) if attempt > 1 else 0.0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            response = self._attempt(request, attempt)
            if response is None:
                self._sleeper.sleep(self._backoff(attempt))
                continue
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            status = response.status_code
            retryable = status in RETRY_STATUSES and (
                request.method in IDEMPOTENT_METHODS or retry_after is not None or status == 429)
            if not retryable or attempt > self._retry_total:
                return response
            response.close()
            self._sleeper.sleep(retry_after if retry_after is not None else self._backoff(attempt))

    def _attempt(self, request: httpx.Request, attempt: int) -> httpx.Response | None:
        """One send: the response, or None when the connection failed in a way worth another attempt."""
        may_retry = attempt <= self._retry_total
        try:
            return self._inner.handle_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout) as refused:
            bad_certificate = certificate_error(refused)
            if bad_certificate is None:
                if may_retry:
                    return None
                raise
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # The server closed a kept-alive connection as we reused it: safe to resend a read only.
            if request.method in IDEMPOTENT_METHODS and may_retry:
                return None
            raise
        # raised outside the handler: the error carries no request (nor its bearer token)
        raise untrusted(bad_certificate, request.url.netloc.decode(), self._trust)

    def close(self) -> None:
        self._inner.close()


class BearerAuth(httpx.Auth):
    """Adds a bearer token for one scope; the credential caches and refreshes it. A sign-in refused for
    the authority's certificate is `UntrustedCertificate` naming the authority."""

    def __init__(self, credential: TokenCredential, scope: str, authority: str, trust: str) -> None:
        self._credential = credential
        self._scope = scope
        self._authority = authority
        self._trust = trust

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        try:
            token = self._credential.get_token(self._scope).token
        except AzureError as refused:
            if (bad_certificate := certificate_error(refused)) is None:
                raise
        else:
            bad_certificate = None
        if bad_certificate is not None:
            raise untrusted(bad_certificate, f"the sign-in authority {self._authority}", self._trust)
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def on_httpx_response(response: httpx.Response) -> None:
    _log_ids(response.request.method, str(response.request.url), response.status_code, response.headers)


# ---------------------------------------------------------------------------------------- error mapping


def error_from(response: httpx.Response) -> ServiceError:
    """The ServiceError for a refused request, with the service's code, message and ids."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    code = pick(body, "error", "code")
    message = pick(body, "error", "message") or response.text[:500] or response.reason_phrase
    headers = response.headers
    return service_error(
        response.status_code, code, str(message),
        request_id=headers.get("x-ms-request-id") or headers.get("x-ms-client-request-id"),
        correlation_id=headers.get("x-ms-correlation-id") or headers.get("x-ms-correlation-request-id"),
        path=response.request.url.path,
    )


def text(value: Any) -> str:
    """The wire value of an SDK enum member (str() of one gives 'JsonWebKeyType.RSA'), or str(value)."""
    return str(getattr(value, "value", value))


def error_code(exc: HttpResponseError) -> str | None:
    error = getattr(exc, "error", None)
    return getattr(error, "code", None)


def raise_service_error(exc: HttpResponseError) -> NoReturn:
    """Re-raise an SDK error as a ppcmk ServiceError (transient ones are TransientError too)."""
    error = getattr(exc, "error", None)
    raise service_error(
        exc.status_code or 0, error_code(exc), getattr(error, "message", None) or str(exc.message)
    ) from exc


@contextmanager
def service_errors() -> Iterator[None]:
    """Around a write: SDK errors surface as ppcmk ServiceErrors (status, code, hint; transient: retried)."""
    try:
        yield
    except HttpResponseError as exc:
        raise_service_error(exc)
