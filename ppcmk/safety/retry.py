"""One retry discipline for every ppcmk task: transient failures only, jittered exponential backoff.

The Azure SDKs already retry 429/5xx inside a call (honouring Retry-After); these task-level retries catch
what escapes them (a POST throttled without Retry-After, a gateway 502 after the SDK gave up, a dropped
connection, a token refresh hiccup). Validation errors (other 4xx) never retry: repeating a wrong request
changes nothing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import httpx
import requests
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from prefect import Task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State

from ppcmk.cloud.certificates import certificate_error
from ppcmk.errors import ServiceError, TransientError
from ppcmk.safety.step_errors import step_errors

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_RETRIES = 3
BASE_DELAY_SECONDS = 2.0
MAX_DELAY_SECONDS = 60.0
JITTER_FACTOR = 0.5
DELAY_SCALE_ENV = "PPCMK_RETRY_DELAY_SCALE"


def status_is_transient(status: int | None) -> bool:
    """429 (throttled), 408 (timeout) and every 5xx are worth another attempt; other statuses are not."""
    return status is not None and (status in (408, 429) or status >= 500)


def is_transient_error(exc: BaseException) -> bool:
    """Whether `exc` (or anything in its cause chain) is a failure that may succeed when repeated. A
    certificate that fails verification never is: every retry would repeat the same handshake."""
    if certificate_error(exc) is not None:
        return False
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TransientError):
            return True
        if isinstance(current, ServiceError):
            return current.is_transient
        if isinstance(current, HttpResponseError) and current.status_code is not None:
            return status_is_transient(current.status_code)
        if isinstance(current, httpx.HTTPStatusError):
            return status_is_transient(current.response.status_code)
        if isinstance(
            current,
            ServiceRequestError
            | ServiceResponseError
            | httpx.TransportError
            | requests.ConnectionError
            | requests.Timeout
            | ConnectionError
            | TimeoutError,
        ):
            return True
        current = current.__cause__ or current.__context__
    return False


def is_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Prefect `retry_condition_fn`: retry only when the task failed with a transient error."""
    try:
        state.result()
    except Exception as exc:
        return is_transient_error(exc)
    return False


def delay_scale() -> float:
    """Multiplier for every retry delay (`PPCMK_RETRY_DELAY_SCALE`; tests set 0: keep retries, skip waits)."""
    raw = os.environ.get(DELAY_SCALE_ENV, "1")
    try:
        scale = float(raw)
    except ValueError as exc:
        raise ValueError(
            f"{DELAY_SCALE_ENV}={raw!r} is not a number: set it to a non-negative number such as 1 or 0"
        ) from exc
    if scale < 0:
        raise ValueError(f"{DELAY_SCALE_ENV}={raw!r} is negative: set a non-negative number such as 1 or 0")
    return scale


def retry_delays(retries: int, scale: float | None = None) -> list[float]:
    """Exponential delays (2 s, 4 s, 8 s, … capped at 60 s) times the scale; Prefect adds the jitter."""
    factor = delay_scale() if scale is None else scale
    return [min(BASE_DELAY_SECONDS * 2**attempt, MAX_DELAY_SECONDS) * factor for attempt in range(retries)]


def cmk_task(
    *, task_run_name: str, retries: int = DEFAULT_RETRIES, **options: Any
) -> Callable[[Callable[P, R]], Task[P, R]]:
    """Declare a ppcmk task: transient-only retries with jittered backoff, and no result caching.

    Cloud failures leave the task as `ppcmk.safety.step_errors.StepFailed` naming the task run (the step and
    its object), never as the SDK's own error, which holds the request and its bearer token (Prefect persists
    it).

    Caching is off on purpose: every task re-reads the cloud so that a second run sees the first run's change
    (that is what makes the tasks idempotent), and a cached read inside one flow would hide a change made
    between two calls.
    """

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        @functools.wraps(fn)
        def step(*args: P.args, **kwargs: P.kwargs) -> R:
            with step_errors(_step_name(fn)):
                return fn(*args, **kwargs)

        return Task(
            fn=step,
            name=fn.__name__.replace("_", "-"),
            task_run_name=task_run_name,
            retries=retries,
            retry_delay_seconds=retry_delays(retries),
            retry_jitter_factor=JITTER_FACTOR,
            retry_condition_fn=is_transient,
            cache_policy=NO_CACHE,
            **options,
        )

    return decorate


def _step_name(fn: Callable[..., Any]) -> str:
    """The running task run's name (it names the object: `rotate-key-now-cmk-prod`), else the task's."""
    context = TaskRunContext.get()
    if context is not None and context.task_run is not None:
        return context.task_run.name
    return fn.__name__.replace("_", "-")
