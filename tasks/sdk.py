"""Small glue between the Azure SDK's objects and ppcmk's errors, shared by the task modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from azure.core.exceptions import HttpResponseError

from ppcmk.errors import service_error


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
