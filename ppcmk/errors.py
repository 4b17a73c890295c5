"""The ppcmk error hierarchy.

Every error a runbook can surface to an operator carries enough to act on: the field and the fix for bad
configuration, the status, code and request ids for a service refusal, plus a hint from a catalogue of known
service failures (the ones admins keep hitting, see the field survey).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime


class PpcmkError(Exception):
    """Base class of every error raised by ppcmk itself."""


class ConfigError(PpcmkError, ValueError):
    """Bad input, found before anything was changed. Names the offending field and how to fix it."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}. Fix: {fix}")


class TransientError(PpcmkError):
    """A failure worth retrying (throttling, 5xx, connection trouble)."""


class UntrustedCertificate(PpcmkError):
    """A TLS certificate the connection refuses (another CA's, expired, or not naming the host). Never
    transient: every retry would repeat the same refused handshake. The message names the host, the trust
    it was checked against and the fix (the connection's ca_bundle, or its address)."""


@dataclass(frozen=True)
class _KnownError:
    status: int | None
    code: re.Pattern[str] | None
    message: re.Pattern[str] | None
    path: re.Pattern[str] | None
    hint: str


def _rx(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern, re.IGNORECASE) if pattern else None


def _known(status: int | None, hint: str, *, code: str | None = None, message: str | None = None,
           path: str | None = None) -> _KnownError:
    return _KnownError(status, _rx(code), _rx(message), _rx(path), hint)


# Order matters: the first match wins, so the specific route rule precedes the generic 404 one.
KNOWN_ERRORS: tuple[_KnownError, ...] = (
    _known(404, "link/unlink was sent to the scopes/admin route, which does not exist for enterprise "
                "policies; use .../environments/{id}/enterprisePolicies/... without scopes/admin",
           path=r"/scopes/admin/environments/[^/]+/enterprisePolicies/"),
    _known(404, "the environment is invisible to the caller: a user needs the Power Platform "
                "Administrator (or Dynamics 365 Administrator) Entra role; a service principal must be "
                "registered as a Power Platform admin management application",
           code=r"^EnvironmentNotFound$"),
    _known(409, "another lifecycle operation is running on this environment; wait for it to finish, "
                "then retry",
           message=r"active lifecycle operation"),
    _known(403, "role assignments take up to 5 minutes to propagate; if the role was just granted, wait and "
                "retry before changing anything",
           code=r"ForbiddenByRbac"),
    _known(400, "the request body has the wrong shape; send the shape the scripts use (for example "
                "{\"SystemId\": ...} for link/unlink, the Encryption policy body for enterprise policies)",
           code=r"^InputValidationError$"),
    _known(None, "register the Microsoft.PowerPlatform resource provider in the subscription that holds the "
                 "policy (ppcmk does this during onboarding)",
           code=r"^MissingSubscriptionRegistration$"),
    _known(400, "an enterprise policy cannot be deleted while environments are linked to it; "
                "unlink them first",
           code=r"^EnterprisePolicyDeleteNotAllowed$"),
    _known(403, "the service principal is not registered as a Power Platform admin management application",
           message=r"does not have permission to access the path"),
)


def hint_for(status: int, code: str | None, message: str | None, path: str | None = None) -> str | None:
    """The fix for a known service failure, or None when the failure is not in the catalogue."""
    for known in KNOWN_ERRORS:
        if known.status is not None and known.status != status:
            continue
        if known.code and not (code and known.code.search(code)):
            continue
        if known.message and not (message and known.message.search(message)):
            continue
        if known.path and not (path and known.path.search(path)):
            continue
        return known.hint
    return None


class ServiceError(PpcmkError):
    """A cloud service refused a request. Carries what support needs (status, code, request ids)."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        request_id: str | None = None,
        correlation_id: str | None = None,
        path: str | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.path = path
        self.hint = hint_for(status, code, message, path)
        text = f"HTTP {status} {code or 'error'}: {message}"
        if correlation_id or request_id:
            text += f" (correlation id {correlation_id or '-'}, request id {request_id or '-'})"
        if self.hint:
            text += f". Hint: {self.hint}"
        super().__init__(text)

    @property
    def is_transient(self) -> bool:
        return self.status in (408, 429) or self.status >= 500


class ApprovalRejected(PpcmkError):
    """An approver rejected the plan (or approved a different plan than the one about to run)."""


class ApprovalExpired(PpcmkError):
    """No acceptable answer arrived before the approval timeout; nothing after the plan was changed."""


class ProofRefused(PpcmkError, ValueError):
    """Why a person's proof does not prove who answered, in one line they can act on."""


class SeparationOfDutyError(PpcmkError):
    """The approver is the requester (or otherwise not allowed to approve this plan)."""


class HoldActive(PpcmkError):
    """A safety hold (for example the 28-day key retention) has not expired yet."""

    def __init__(self, until: datetime, reason: str = "a safety hold is active") -> None:
        self.until = until
        super().__init__(f"{reason} until {until.isoformat()}")


class TransientServiceError(ServiceError, TransientError):
    """A service refusal that is worth retrying: 408, 429 or 5xx."""


def service_error(status: int, code: str | None, message: str, **ids: str | None) -> ServiceError:
    """Build the right ServiceError subclass for a status (transient ones are also TransientError)."""
    cls = TransientServiceError if status in (408, 429) or status >= 500 else ServiceError
    return cls(status, code, message, **ids)
