"""The retry discipline: what counts as transient, the delays, and Prefect honouring both."""

from __future__ import annotations

import httpx
import pytest
import requests
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from prefect import flow

from ppcmk.errors import ConfigError, TransientError, service_error
from ppcmk.safety.retry import cmk_task, is_transient_error, retry_delays


def _http_error(status: int) -> HttpResponseError:
    error = HttpResponseError(message=f"status {status}")
    error.status_code = status
    return error


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    assert is_transient_error(_http_error(status))
    assert is_transient_error(service_error(status, "x", "y"))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_other_client_errors_are_not(status: int) -> None:
    assert not is_transient_error(_http_error(status))
    assert not is_transient_error(service_error(status, "BadRequest", "no"))


def test_connection_failures_and_wrapped_causes_are_transient() -> None:
    assert is_transient_error(ServiceRequestError("connection refused"))
    assert is_transient_error(httpx.ConnectError("refused"))
    assert is_transient_error(requests.ConnectionError("reset"))
    assert is_transient_error(TransientError("try later"))
    try:
        try:
            raise _http_error(503)
        except HttpResponseError as inner:
            raise RuntimeError("while rotating") from inner
    except RuntimeError as outer:
        assert is_transient_error(outer)
    assert not is_transient_error(ConfigError("key_size", "4096 is not allowed", "use 2048"))
    assert not is_transient_error(ValueError("bad"))


def test_delays_grow_exponentially_capped_and_scale() -> None:
    assert retry_delays(7, scale=1) == [2, 4, 8, 16, 32, 60, 60]
    assert retry_delays(3, scale=0) == [0, 0, 0]
    assert retry_delays(2, scale=0.5) == [1, 2]


def test_bad_scale_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPCMK_RETRY_DELAY_SCALE", "fast")
    with pytest.raises(ValueError, match="PPCMK_RETRY_DELAY_SCALE"):
        retry_delays(3)


def test_prefect_retries_transient_failures_only(prefect_backend: None) -> None:
    attempts: list[str] = []

    @cmk_task(task_run_name="flaky-{kind}", retries=3)
    def flaky(kind: str) -> int:
        attempts.append(kind)
        if kind == "throttled" and attempts.count(kind) < 3:
            raise service_error(429, "TooManyRequests", "slow down")
        if kind == "invalid":
            raise service_error(400, "BadParameter", "key size 1024 is not allowed")
        return attempts.count(kind)

    @flow
    def run(kind: str) -> int:
        return flaky(kind)

    assert run("throttled") == 3
    with pytest.raises(Exception, match="BadParameter"):
        run("invalid")
    assert attempts.count("invalid") == 1
