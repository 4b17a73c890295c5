"""Every failure at a task's boundary becomes an error that names the step and carries no request.

An azure-core error keeps the request it failed on (with its `Authorization: Bearer` header) and the
transport's response; requests' and httpx's errors keep theirs. Prefect persists a failed task's exception
(result storage, its state), so none of those may leave a task: `step_errors` turns them, and ppcmk's own
service errors, into `StepFailed` (status, code and the service's message; transient ones still retried).
A certificate the connection refuses is never transient; ppcmk's own clients say so naming the host
(`UntrustedCertificate`, passed unchanged), the SDKs' errors here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import requests
from azure.core.exceptions import AzureError, HttpResponseError

from ppcmk.cloud.certificates import SOME_TRUST, certificate_error, untrusted
from ppcmk.cloud.transport import error_code
from ppcmk.errors import PpcmkError, ServiceError, TransientError, service_error

RERUN = "a re-run reads what exists before it writes and continues from this step"


class StepFailed(ServiceError):
    """A task's step failed: names the step (the task run, hence the object) and what the service said.
    A ServiceError (status 0 when no answer came), so callers that judge a refusal by status still can."""

    def __init__(self, step: str, problem: str, status: int | None = None, code: str | None = None) -> None:
        self.step = step
        self.problem = problem
        self.status = status or 0
        self.code = code
        self.message = problem
        self.request_id = self.correlation_id = self.path = self.hint = None
        PpcmkError.__init__(self, f"{step} failed: {problem}; {RERUN}")

    @property
    def is_transient(self) -> bool:
        return isinstance(self, TransientError)

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:  # pickles by its fields, never a request
        return type(self), (self.step, self.problem, self.status, self.code)


class TransientStepFailure(StepFailed, TransientError):
    """A step failure worth retrying (throttling, 5xx, a dropped connection)."""


def _problem(exc: BaseException) -> tuple[str, int | None, str | None, bool]:
    """(what went wrong, status, code, transient) without anything a request or response carries."""
    if (bad_cert := certificate_error(exc)) is not None:
        return str(untrusted(bad_cert, "the service", SOME_TRUST)), None, None, False
    if isinstance(exc, ServiceError):
        return str(exc), exc.status, exc.code, exc.is_transient
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        converted = service_error(status, error_code(exc), str(getattr(exc.error, "message", None)
                                                               or exc.reason or "no message"))
        return str(converted), status, converted.code, converted.is_transient
    if isinstance(exc, TransientError):
        return str(exc), None, None, True
    return f"could not reach the service ({type(exc).__name__})", None, None, True


def converted(exc: BaseException, step: str) -> StepFailed:
    problem, status, code, transient = _problem(exc)
    cls = TransientStepFailure if transient else StepFailed
    return cls(step, problem, status, code)


CONVERTED = (ServiceError, TransientError, AzureError, httpx.HTTPError, requests.RequestException)


@contextmanager
def step_errors(step: str) -> Iterator[None]:
    """Run a step: cloud failures leave it as StepFailed naming `step` (the cause chain is cut, so no SDK
    object travels with it); ppcmk's other errors (bad input, holds, refusals) pass unchanged."""
    try:
        yield
    except StepFailed:
        raise
    except CONVERTED as exc:
        raise converted(exc, step) from None
