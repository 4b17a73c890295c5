"""TLS certificate failures are final: retrying a handshake against a certificate the trust store refuses
repeats the same refusal (a managed-identity connection with a wrong CA bundle once made 64 handshakes in
97 s, every retry layer multiplying the others). `certificate_error` finds one anywhere in an error's
chain; the SDK retry policy and the httpx transport stop at it, and so does the task-level retry.
"""

from __future__ import annotations

import ssl
from typing import Any

from azure.core.pipeline.policies import RetryPolicy

# Methods whose dropped connection is worth re-sending: ARM and Key Vault PATCHes (tags, key properties)
# merge the same properties again, so they are idempotent like PUT.
IDEMPOTENT_PATCH = frozenset({"PATCH"})


def certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification failure anywhere in `exc`'s chain: causes, contexts, the SDK's
    `inner_exception`, urllib3's `reason`, and exceptions carried as arguments."""
    seen: set[int] = set()
    pending: list[Any] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return current
        pending += [current.__cause__, current.__context__, getattr(current, "inner_exception", None),
                    getattr(current, "reason", None), *current.args]
    return None


class CertificateAwareRetryPolicy(RetryPolicy):
    """azure-core's retry policy, except that a certificate failure is never retried and a dropped
    connection on a PATCH is (as on PUT)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._method_whitelist = frozenset(self._method_whitelist) | IDEMPOTENT_PATCH

    def increment(self, settings: dict[str, Any], response: Any = None,
                  error: Exception | None = None) -> bool:
        if error is not None and certificate_error(error) is not None:
            return False
        return super().increment(settings, response=response, error=error)
