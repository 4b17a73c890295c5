"""The app of the Prefect servers ppcmk starts on SQLite tells a client refused by a busy database when to try
again, and leaves every other answer alone; Prefect's client waits that long, not its own 2 to 32 s."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
import pytest
from prefect.client.base import PrefectHttpxSyncClient
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from ppcmk_cli.prefect_app import RETRY_AFTER_S, RetrySoonWhenBusy


def _answer(request: Request) -> Response:
    status = int(request.query_params.get("status", "200"))
    hint = request.query_params.get("hint")
    return PlainTextResponse("x", status_code=status, headers={"Retry-After": hint} if hint else None)


APP = RetrySoonWhenBusy(Starlette(routes=[Route("/", _answer)]))


def _get(params: dict[str, str]) -> httpx.Response:
    async def get() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(APP), base_url="http://127.0.0.1") as c:
            return await c.get("/", params=params)

    return asyncio.run(get())


def test_a_busy_answer_gets_a_retry_within_half_a_second() -> None:
    answer = _get({"status": "503"})
    assert answer.status_code == 503 and answer.text == "x"
    assert RETRY_AFTER_S[0] <= float(answer.headers["retry-after"]) <= RETRY_AFTER_S[1]


@pytest.mark.parametrize(("status", "hint", "expected"), [("200", None, None), ("500", None, None),
                                                          ("503", "7", "7"), ("429", "3", "3")])
def test_other_answers_and_a_servers_own_hint_pass_unchanged(status: str, hint: str | None,
                                                             expected: str | None) -> None:
    params = {"status": status, **({"hint": hint} if hint else {})}
    assert _get(params).headers.get("retry-after") == expected


def test_prefects_client_waits_as_long_as_the_hint_says(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter([httpx.Response(503, headers={"Retry-After": "0.2"}), httpx.Response(200)])
    waits: list[float] = []
    this_thread, sleep = threading.current_thread(), time.sleep

    def recorded(seconds: float) -> None:  # other threads (Prefect's own workers) sleep as before
        if threading.current_thread() is this_thread:
            waits.append(seconds)
        else:
            sleep(seconds)

    monkeypatch.setattr(time, "sleep", recorded)
    client = PrefectHttpxSyncClient(transport=httpx.MockTransport(lambda request: next(answers)),
                                    base_url="http://127.0.0.1:1/api")
    assert client.get("/health").status_code == 200
    assert len(waits) == 1 and 0.2 <= waits[0] <= 0.2 * 1.2 + 1e-9  # Prefect adds up to 20% jitter
