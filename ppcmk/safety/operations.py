"""The lifecycle operations an environment task starts, kept where a retry or a re-run finds them: the claim
its flow run holds on the environment (ppcmk.safety.claims), never the memory of the process.

Before a start is sent, the claim records what is being started and when; once the service accepts it, the
record gets the poller's continuation token; once the task settles it, the record goes. A later try of the
task, a retry of the flow run or a re-run that takes the claim over therefore finds the operation its
predecessor started, whenever that predecessor's process died:
- with a token: it waits on the operation (no second start);
- without one (the process died between the start and the token's write): it asks the service, which shows
  the operation done, running or ended since the start was sent, or shows nothing, so the start never
  arrived and is sent now.
Either way the change is reported as the run's own (Succeeded, with its attempt), never as Unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from ppcmk.models.arm_ids import same_id
from ppcmk.models.environments import OperationKind
from ppcmk.safety.claims import HeldClaim, OperationRecord, Subject, held
from ppcmk.services.ppadmin import PowerPlatformAdminClient
from ppcmk.services.ppadmin.pollers import OperationPoller


class StartedOperations:
    """The lifecycle operations one task run starts on one environment, and the one an earlier try, entry or
    run started there and did not settle. Without a claim (outside a flow run, or a run that claimed
    nothing) nothing is kept: such a run has no retry or re-run that could look."""

    def __init__(self, admin: PowerPlatformAdminClient, environment_id: str, claim: HeldClaim | None) -> None:
        self.admin = admin
        self.environment_id = environment_id
        self._claim = claim

    @classmethod
    def of(cls, admin: PowerPlatformAdminClient, environment_id: str) -> StartedOperations:
        return cls(admin, environment_id, held(Subject("environment", environment_id)))

    def earlier(self, kind: OperationKind, target: str | None = None, continuation_token: str | None = None,
                attempts_so_far: int = 0) -> tuple[OperationPoller, int] | None:
        """The operation of `kind` (on `target`, when given) started before, with the attempts it makes: a
        parked run's saved token first, else the claim's record. None when none was started, or when its
        start never reached the service."""
        if continuation_token is not None:
            return self._resumed(kind, continuation_token), max(attempts_so_far, 1)  # the saved one is one
        record = self._claim.operation if self._claim is not None else None
        if record is None or record.kind != kind or not (target is None or same_id(record.target, target)):
            return None
        if record.token is not None:
            return self._resumed(kind, record.token), record.attempt
        found = self.admin.find_started(kind, self.environment_id, record.posted_at, target)
        return (found, record.attempt) if found is not None else None

    def _resumed(self, kind: OperationKind, token: str) -> OperationPoller:
        return OperationPoller.from_continuation_token(self.admin, token, kind, self.environment_id)

    def start(self, kind: OperationKind, attempt: int, begin: Callable[[], OperationPoller],
              target: str | None = None) -> OperationPoller:
        """`begin()` the operation, recorded in the claim before the start is sent (on the cloud's clock) and
        with its continuation token once the service accepted it."""
        if self._claim is None:
            return begin()
        posted_at = self.admin.sleeper.now()
        record = OperationRecord(kind=kind, target=target, posted_at=posted_at, attempt=attempt)
        self._claim.note(record)
        poller = begin()
        self._claim.note(record.model_copy(update={"token": poller.continuation_token()}))
        return poller

    def settled(self) -> None:
        """What was started is over (or was never needed): nothing is left to wait on."""
        if self._claim is not None:
            self._claim.note(None)
