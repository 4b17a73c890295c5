"""TLS certificate failures are final: retrying a handshake against a certificate the trust store refuses
repeats the same refusal (a managed-identity connection with a wrong CA bundle once made 64 handshakes in
97 s, every retry layer multiplying the others). `certificate_error` finds one anywhere in an error's
chain; the SDK retry policy and the httpx transport stop at it, and so does the task-level retry.
`untrusted` says it in words a person acts on: which host, checked against which trust, and the fix (a
corporate TLS-inspection proxy is the first thing many tenants meet).
"""

from __future__ import annotations

import ssl
from typing import Any

from azure.core.pipeline.policies import RetryPolicy

from ppcmk.errors import UntrustedCertificate

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


# OpenSSL's verify codes for a certificate that does not name the host (or IP address) connected to
NAME_MISMATCH_CODES = frozenset({62, 64})
TRUST_FIX = ("set the connection's ca_bundle to the PEM file of the CA that issued it (behind a "
             "TLS-inspection proxy: the proxy's root CA), or leave ca_bundle empty to trust the "
             "system's CAs")
NAME_FIX = ("connect by a host name the certificate names (the connection's cloud or sandbox_url), or "
            "have the certificate issued for this one")


# the trust an error names when it does not know the connection's
SOME_TRUST = "the connection's ca_bundle (or, without one, the system's trust store)"


def trust_of(ca_bundle: str | None) -> str:
    """What a connection's certificates are checked against, in words."""
    return f"the CA bundle {ca_bundle}" if ca_bundle else "the system's trust store"


def untrusted(bad: ssl.SSLCertVerificationError, host: str, trust: str) -> UntrustedCertificate:
    """The refused certificate of `host`, checked against `trust`, as one line with its fix."""
    reason = bad.verify_message or bad.reason or "verification failed"
    if bad.verify_code in NAME_MISMATCH_CODES:
        problem, fix = f"TLS certificate of {host} does not name that host ({reason})", NAME_FIX
    else:
        problem, fix = f"TLS certificate of {host} is not trusted by {trust} ({reason})", TRUST_FIX
    return UntrustedCertificate(f"{problem}; fix: {fix}. Not retried: every retry repeats the same "
                                "handshake")


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
