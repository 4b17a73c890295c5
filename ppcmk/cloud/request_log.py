"""The request ids of the service calls made in a context, so that an audit entry can name the exact calls
behind a change: `request_ids()` collects the request and correlation ids of every HTTP exchange made inside
it, which the client factory's pipeline policy and httpx hook feed through `note_response`."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

REQUEST_ID_HEADERS = ("x-ms-request-id", "x-ms-correlation-request-id", "x-ms-correlation-id",
                      "x-ms-client-request-id")


class RequestRecord(BaseModel):
    method: str
    url: str
    status: int
    ids: dict[str, str]


_recorder: contextvars.ContextVar[list[RequestRecord] | None] = contextvars.ContextVar(
    "ppcmk_request_ids", default=None)


@contextmanager
def request_ids() -> Iterator[list[RequestRecord]]:
    """Collect the request ids of every service call made in this context (nested blocks each see theirs)."""
    records: list[RequestRecord] = []
    token = _recorder.set(records)
    outer = token.old_value if token.old_value is not contextvars.Token.MISSING else None
    try:
        yield records
    finally:
        _recorder.reset(token)
        if isinstance(outer, list):
            outer.extend(records)


def note_response(method: str, url: str, status: int, headers: Any) -> dict[str, str]:
    """Record the ids of one response in the active collector (if any); returns them for logging."""
    ids = {name: str(headers[name]) for name in REQUEST_ID_HEADERS if headers.get(name)}
    records = _recorder.get()
    if records is not None:
        # Query strings can carry SAS-style secrets in general, so only the path is kept.
        records.append(RequestRecord(method=method, url=url.split("?", 1)[0], status=status, ids=ids))
    return ids
