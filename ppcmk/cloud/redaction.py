"""No bearer token outlives its request: once an SDK call has its answer (or has failed), the request it
sent forgets its Authorization header, and so does the transport's copy of it.

An azure-core error keeps the request and the response it failed on, and Prefect persists a failed run's
exception (a pickle, in result storage that parking shares), so a token left in those headers would sit at
rest. Tasks convert their errors (`ppcmk.safety.step_errors`); this policy covers an SDK error raised anywhere
else, such as a flow's own read. It runs once per call, outside the retries: each retry (and the
credential policy's challenge handling) sets the header afresh before sending.
"""

from __future__ import annotations

import sys
from typing import Any

from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.core.pipeline.policies import SansIOHTTPPolicy

SECRET_HEADERS = ("Authorization", "x-ms-authorization-auxiliary")


def forget_secrets(headers: Any) -> None:
    """Drop the secret headers from a headers mapping (case-insensitive mappings and plain dicts)."""
    if headers is None:
        return
    for name in list(headers.keys()):
        if name.lower() in {h.lower() for h in SECRET_HEADERS}:
            del headers[name]


def _transport_request(obj: Any) -> Any:
    """The transport's own request object (requests' PreparedRequest), which copied the headers."""
    return getattr(getattr(obj, "internal_response", None), "request", None) or getattr(obj, "request", None)


class ForgetTokensPolicy(SansIOHTTPPolicy):
    """Removes the Authorization header from a finished call's request objects."""

    def on_response(self, request: PipelineRequest, response: PipelineResponse) -> None:
        forget_secrets(request.http_request.headers)
        forget_secrets(getattr(_transport_request(response.http_response), "headers", None))

    def on_exception(self, request: PipelineRequest) -> None:
        forget_secrets(request.http_request.headers)
        error = sys.exc_info()[1]
        seen: set[int] = set()
        while isinstance(error, BaseException) and id(error) not in seen:
            seen.add(id(error))
            forget_secrets(getattr(_transport_request(error), "headers", None))
            response = getattr(error, "response", None)
            forget_secrets(getattr(getattr(response, "request", None), "headers", None))
            error = getattr(error, "inner_exception", None) or error.__cause__ or error.__context__
