"""The web app of the Prefect servers ppcmk starts on SQLite (the demo's and the tests' throwaway one, and
`ppcmk serve`'s): Prefect's own app, whose 503 answers say when to try again.

Prefect's server answers 503 when SQLite refuses a write that raced another one (SQLITE_BUSY or
SQLITE_BUSY_SNAPSHOT). Without a Retry-After header, Prefect's client waits 2, then 4, 8, 16 and 32 s. On
a local SQLite server these races are frequent, because the server's own event and task-run recorders
write beside every run, and each one is over in milliseconds. So this app asks for the retry within half a
second; the client still tries at most `PREFECT_CLIENT_MAX_RETRIES` times. A team's own Prefect server
(PostgreSQL, docs/WORKERS.md) is not wrapped.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

RETRY_AFTER_S = (0.05, 0.5)  # spread, so that the runs a race refused do not all come back together


class RetrySoonWhenBusy:
    """Adds `Retry-After` to a 503 answer that has none; every other answer passes unchanged."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_hint(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 503:
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"retry-after" for name, _ in headers):
                    seconds = random.uniform(*RETRY_AFTER_S)
                    message = {**message, "headers": [*headers, (b"retry-after", f"{seconds:.2f}".encode())]}
            await send(message)

        await self.app(scope, receive, send_with_hint)


def create_app() -> RetrySoonWhenBusy:
    """uvicorn's factory: Prefect's own app, wrapped (the server code loads in the server's process only)."""
    from prefect.server.api.server import create_app as prefect_app

    return RetrySoonWhenBusy(prefect_app())


def server_command(port: int, log_level: str) -> list[str]:
    """The command that serves this app on 127.0.0.1, as `prefect server start` serves Prefect's."""
    return [sys.executable, "-m", "uvicorn", "--factory", f"{__name__}:create_app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", log_level, "--lifespan", "on"]
