"""Refusals of the sandbox authority, shaped like Entra's: an OAuth `error`, and `error_description` starting
`AADSTS<code>: ` followed by the trace id, correlation id and timestamp lines, plus `error_codes`."""

from __future__ import annotations

import datetime
import uuid

from ppcmk_sandbox.http import SandboxHttpError, SandboxResponse


def aad_error(error: str, code: int, message: str, correlation_id: str | None = None) -> SandboxHttpError:
    """The error to raise from a token endpoint handler. `invalid_client` answers 401, anything else 400."""
    trace, correlation = str(uuid.uuid4()), correlation_id or str(uuid.uuid4())
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (
        f"AADSTS{code}: {message}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {stamp}"
    )
    return SandboxHttpError(
        SandboxResponse(
            401 if error == "invalid_client" else 400,
            {
                "error": error,
                "error_description": description,
                "error_codes": [code],
                "timestamp": stamp,
                "trace_id": trace,
                "correlation_id": correlation,
                "error_uri": f"https://login.microsoftonline.com/error?code={code}",
            },
        )
    )
