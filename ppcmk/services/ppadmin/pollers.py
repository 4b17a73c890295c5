"""Long-running lifecycle operations in the Azure SDK's shape: each `begin_*` call of the admin client returns
an `OperationPoller`; its `continuation_token()` (JSON, naming no credential) rebuilds it later, in another
process, without starting the operation again (`begin_*(..., continuation_token=...)`).

A poller waits through the client's sleeper and clock (virtual time in the sandbox), never sooner than the
service's Retry-After and within the client's [poll_floor, poll_ceiling]. Recorded service behaviour it copes
with (docs/SANDBOX.md names the sources): a poll may answer 409 while the operation runs (keep polling), and a
poll of a finished operation may answer 404 (judged by re-reading the environment, never taken as success).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ppcmk.errors import ConfigError, ServiceError
from ppcmk.models.environments import Environment, LifecycleOperation, OperationKind, WaitResult
from ppcmk.services.ppadmin.responses import next_delay

if TYPE_CHECKING:
    from ppcmk.services.ppadmin.client import PowerPlatformAdminClient

# Each poll waits this much longer than the previous one, up to the client's ceiling.
BACKOFF_GROWTH = 1.5

PollerStatus = Literal["InProgress", "Succeeded", "Failed"]
ProgressCallback = Callable[[LifecycleOperation], None]


def reached(kind: OperationKind, env: Environment, target: str | None = None) -> bool:
    """Whether the environment already shows what an operation of `kind` is for (`target`: a link's
    systemId), which is how a 409 on a start or a 404 on a poll is judged."""
    if kind == "governance":
        return env.managed
    if kind == "link":
        return env.cmk is not None and env.cmk.linked and (target is None or env.encrypted_by(target))
    if kind == "unlink":
        return env.cmk is None
    return env.enabled


class ContinuationToken(BaseModel):
    """What a poller needs to go on polling: where, what for, and since when."""

    model_config = ConfigDict(frozen=True)

    kind: OperationKind
    environment_id: str
    target: str | None = None  # a link's policy systemId: what a re-read must show when a poll is 404
    url: str | None = None  # where to poll; None when the service finished at once
    retry_after: float | None = None  # the start's Retry-After: when a first poll is worth making
    started_at: datetime

    def encode(self) -> str:
        return self.model_dump_json()

    @classmethod
    def decode(cls, token: str) -> ContinuationToken:
        try:
            return cls.model_validate_json(token)
        except ValidationError:
            raise ConfigError("continuation_token", "is not the continuation token of a lifecycle operation",
                              "pass what a poller's continuation_token() returned") from None


class OperationPoller:
    """One lifecycle operation: `status()` as last seen (no call), `done()`, `wait(deadline)` and the
    `continuation_token()` that resumes it. A poller whose operation the service finished at once is done,
    Succeeded, and never polls."""

    def __init__(self, client: PowerPlatformAdminClient, token: ContinuationToken) -> None:
        self._client = client
        self._token = token
        self.kind: OperationKind = token.kind
        self.environment_id = token.environment_id
        self._operation: LifecycleOperation | None = None
        self._status: PollerStatus = "InProgress" if token.url else "Succeeded"

    @classmethod
    def from_continuation_token(cls, client: PowerPlatformAdminClient, continuation_token: str,
                                kind: OperationKind | None = None, environment_id: str | None = None
                                ) -> OperationPoller:
        """The poller a `continuation_token()` came from (`kind` and `environment_id`, when given, must be
        the token's)."""
        token = ContinuationToken.decode(continuation_token)
        if kind is not None and token.kind != kind:
            raise ConfigError("continuation_token", f"resumes a {token.kind} operation, not a {kind}",
                              f"pass the token of the {kind} operation")
        if environment_id is not None and token.environment_id.lower() != environment_id.lower():
            raise ConfigError("continuation_token",
                              f"resumes an operation on {token.environment_id}, not on {environment_id}",
                              "pass the token of this environment's operation")
        return cls(client, token)

    @property
    def operation(self) -> LifecycleOperation | None:
        """The operation as the last poll read it (None before the first poll, or when it never ran)."""
        return self._operation

    def status(self) -> PollerStatus:
        return self._status

    def done(self) -> bool:
        return self._status != "InProgress"

    def continuation_token(self) -> str:
        return self._token.encode()

    def wait(self, deadline: timedelta | datetime, on_progress: ProgressCallback | None = None) -> WaitResult:
        """Poll until the operation ends or the deadline passes.

        `deadline` is a duration from now (encryption can take four days: `timedelta(days=4)`) or an absolute
        time, so a resumed wait can keep the original deadline. Failed is returned, not raised; at the
        deadline the result is StillRunning and the wait can go on later, even from the continuation token in
        another process.
        """
        url = self._token.url
        if url is None or self.done():
            return self._result(polls=0, waited=0.0)
        sleeper = self._client.sleeper
        start = sleeper.now()
        until = deadline if isinstance(deadline, datetime) else start + deadline
        polls, waited = 0, self._first_wait(start, until)
        backoff = self._client.poll_floor
        hinted = self._token.retry_after
        while True:
            polled, hinted_next = self._poll(url)
            polls += 1
            if polled is not None:
                self._operation = polled
                if on_progress is not None:
                    on_progress(polled)
                if polled.terminal:
                    self._status = "Succeeded" if polled.succeeded else "Failed"
                    return self._result(polls, waited)
            hinted = hinted_next if hinted_next is not None else hinted
            remaining = (until - sleeper.now()).total_seconds()
            if remaining <= 0:
                return self._result(polls, waited)
            delay = min(self._delay(hinted, backoff), remaining)
            backoff *= BACKOFF_GROWTH
            sleeper.sleep(delay)
            waited += delay

    def _delay(self, retry_after: float | None, backoff: float) -> float:
        return next_delay(retry_after, backoff, self._client.poll_floor, self._client.poll_ceiling)

    def _first_wait(self, start: datetime, until: datetime) -> float:
        """The start's Retry-After says when a first poll is worth making (a poll sooner only costs a call);
        a wait resumed long after the start polls at once."""
        hinted = self._token.retry_after
        if hinted is None:
            return 0.0
        due = self._token.started_at + timedelta(seconds=self._delay(hinted, self._client.poll_floor))
        early = min((due - start).total_seconds(), (until - start).total_seconds())
        if early <= 0:
            return 0.0
        self._client.sleeper.sleep(early)
        return early

    def _poll(self, url: str) -> tuple[LifecycleOperation | None, float | None]:
        """A poll; a 404 (the service forgot a finished operation) is judged by reading the environment:
        Succeeded only when it shows what the operation was for, else the 404 stands."""
        try:
            return self._client.read_operation(url)
        except ServiceError as gone:
            if gone.status != 404:
                raise
            try:
                env = self._client.get_environment(self.environment_id)
            except ServiceError:
                raise gone from None
            if not reached(self.kind, env, self._token.target):
                raise
            return LifecycleOperation(id=None, state="Succeeded"), None

    def _result(self, polls: int, waited: float) -> WaitResult:
        status = "StillRunning" if self._status == "InProgress" else self._status
        return WaitResult(status=status, operation=self._operation, polls=polls, waited_seconds=waited)
