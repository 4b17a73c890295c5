"""Reading Power Platform admin API responses: active-operation conflicts, operation locations, Retry-After,
and where a token may be sent."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from ppcmk.cloud.transport import parse_retry_after
from ppcmk.errors import ConfigError, ServiceError, TransientError

ACTIVE_OPERATION_MARKER = "active lifecycle operation"
# The code the service gives a start refused while another lifecycle operation holds the environment (the
# Terraform provider retries on it: internal/services/environment/api_environment.go).
NOT_STARTABLE_CODE = "operationnotstartable"


def is_busy_conflict(error: ServiceError) -> bool:
    """A 409 that may mean "another operation holds the environment" or "already in that state": the
    message says so, the code is OperationNotStartable, or the body is empty (recorded for governance)."""
    if error.status != 409:
        return False
    code = (error.code or "").lower()
    return not code or code == NOT_STARTABLE_CODE or ACTIVE_OPERATION_MARKER in error.message.lower()


def operation_url(response: httpx.Response) -> str | None:
    """Where to poll a started operation: operation-location first (scripts, module), then Location (TF)."""
    return response.headers.get("operation-location") or response.headers.get("location")


def retry_after(response: httpx.Response) -> float | None:
    return parse_retry_after(response.headers.get("retry-after"))


def check_bap_url(url: str, bap: str, api: str = "Power Platform admin API") -> str:
    """Refuse to send a Power Platform token anywhere but the API's own hosts (`api` names it in the error).

    Operation URLs come from response headers or from a saved handle, so they are checked before use: https,
    and the admin host itself or one of its regional subdomains (europe.api.bap.microsoft.com).
    """
    target, home = urlsplit(url), urlsplit(bap)
    host, home_host = (target.hostname or "").lower(), (home.hostname or "").lower()
    same_origin = host == home_host and target.port == home.port
    regional = host.endswith("." + home_host) and target.port is None and home.port is None
    if target.scheme != "https" or not (same_origin or regional):
        raise ConfigError("url", f"{url!r} is not a {api} address",
                          f"use an address returned by {bap}")
    return url


def transport_failure(exc: httpx.TransportError, what: str, api: str = "Power Platform admin API"
                      ) -> TransientError:
    return TransientError(f"could not reach the {api} to {what}: {exc.__class__.__name__}")


def next_delay(retry_after_seconds: float | None, backoff: float, floor: float, ceiling: float) -> float:
    """Never sooner than the service asked (Retry-After), growing with our own back-off so a four-day
    operation is not polled every minute, always within [floor, ceiling]."""
    wanted = max(retry_after_seconds or 0.0, backoff)
    return min(max(wanted, floor), ceiling)
