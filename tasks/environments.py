"""Power Platform environment tasks: select environments, Managed Environment, link/unlink the Encryption
policy, re-enable a locked environment.

A task starts an operation and polls it inside itself (honouring Retry-After through the admin client's
poller), so a four-day encryption is one task run, not thousands. Each task reads the environment first and
does nothing when it is already in the wanted state. The operation it starts is kept in the environment's
claim (ppcmk.safety.operations) before the start is sent: a retried task, a retried flow run or a re-run
waits on it and reports the change as its own, even when the process that started it was killed.

`link` and `unlink` also wait cheaply across days (`OperationWait`): `patience` bounds the inline wait
(the task then returns the change StillRunning with its continuation token, so a deployment run can
park), and `continuation_token` picks such an operation up again instead of starting a second one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from pydantic import BaseModel, ConfigDict

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError, ServiceError
from ppcmk.fleet.selection import FleetMember, FleetSelector
from ppcmk.models.arm_ids import same_id
from ppcmk.models.environments import Environment, EnvironmentChange, OperationKind, WaitResult
from ppcmk.safety.operations import StartedOperations
from ppcmk.safety.retry import cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.ppadmin import PowerPlatformAdminClient
from ppcmk.services.ppadmin.pollers import OperationPoller, reached

DEFAULT_DEADLINE = timedelta(days=4)  # the documented upper bound of an encryption
MAX_LINK_ATTEMPTS = 3  # a Failed link is re-run ("the service resumes where it left off"), but not forever
MANAGED_DEADLINE = timedelta(hours=2)  # a governance change takes minutes; hours means something is wrong


class OperationWait(BaseModel):
    """How a link or unlink task waits. `deadline` (a duration from now or an instant) fails the
    operation; `patience` only ends this task run's wait: the change comes back StillRunning with its
    continuation token (None: wait up to the deadline). `continuation_token`, with the `attempts_so_far`
    it took, waits on that operation first and starts nothing while it runs; without one, the operation
    a retry's or a re-run's predecessor started is found in the environment's claim."""

    model_config = ConfigDict(frozen=True)

    deadline: timedelta | datetime = DEFAULT_DEADLINE
    patience: timedelta | None = None
    continuation_token: str | None = None
    attempts_so_far: int = 0


def select_environments(environments: Iterable[Environment], selector: FleetSelector) -> list[Environment]:
    """The environments the fleet selector matches (ids, geo, types, name pattern), in the given order; an id
    asked for but not visible is an error, not a silent skip."""
    by_id = {env.id.lower(): env for env in environments}
    members = [
        FleetMember(id=e.id, name=e.display_name or e.id, sku=e.sku or "", geo=e.geo or "")
        for e in by_id.values()
    ]
    return [by_id[member.id.lower()] for member in selector.select(members)]


def _run_logger() -> logging.Logger | logging.LoggerAdapter[Any]:
    """The task run's logger (its lines reach the Prefect UI), or a plain one when called outside a run."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("ppcmk.environments")


def _require(admin: PowerPlatformAdminClient, environment_id: str) -> Environment:
    env = admin.find_environment(environment_id)
    if env is None:
        raise ConfigError(
            "environment_id",
            f"environment {environment_id} does not exist or is not visible",
            "check the id; the caller needs the Power Platform Administrator role",
        )
    return env


def _waited(
    operations: StartedOperations, poller: OperationPoller, until: datetime, attempts: int
) -> EnvironmentChange:
    return _change(operations, poller, poller.wait(until), attempts)


def _change(
    operations: StartedOperations, poller: OperationPoller, result: WaitResult, attempts: int
) -> EnvironmentChange:
    """The outcome of a wait, with the environment as read after it."""
    return EnvironmentChange(
        environment_id=operations.environment_id,
        kind=poller.kind,
        status=result.status,
        attempts=attempts,
        continuation_token=poller.continuation_token(),
        error_message=result.error_message,
        environment=operations.admin.find_environment(operations.environment_id),
    )


def _unchanged(kind: OperationKind, env: Environment) -> EnvironmentChange:
    return EnvironmentChange(environment_id=env.id, kind=kind, status="Unchanged", environment=env)


def _run_with_reruns(
    operations: StartedOperations,
    kind: OperationKind,
    begin: Callable[[], OperationPoller],
    until: datetime,
    max_attempts: int,
    attempts_so_far: int = 0,
    target: str | None = None,
) -> EnvironmentChange:
    """Start and wait; a Failed operation is started again, at most `max_attempts` times in all (counting
    the `attempts_so_far` made before). So is one that succeeded without the environment showing its result:
    the start found another run's operation of the same kind running (a link to another policy, say) and
    waited on that one."""
    attempt = attempts_so_far + 1
    change = _waited(operations, operations.start(kind, attempt, begin, target), until, attempt)
    while _again(change, target) and attempt < max_attempts:
        attempt += 1
        change = _waited(operations, operations.start(kind, attempt, begin, target), until, attempt)
    return change


def _again(change: EnvironmentChange, target: str | None) -> bool:
    if change.status == "Failed":
        return True
    env = change.environment
    return change.status == "Succeeded" and env is not None and not reached(change.kind, env, target)


def _wait_until(
    factory: ClientFactory, deadline: timedelta | datetime, patience: timedelta | None
) -> datetime:
    """When the inline wait stops: the operation's deadline, or sooner when `patience` runs out first."""
    if patience is not None and patience < timedelta(0):
        raise ConfigError(
            "patience", f"{patience} is negative", "use 0 or more, or None to wait up to the deadline"
        )
    now = factory.now()
    until = deadline if isinstance(deadline, datetime) else now + deadline
    return until if patience is None else min(until, now + patience)


def _go_on(
    operations: StartedOperations,
    earlier: tuple[OperationPoller, int] | None,
    until: datetime,
    max_attempts: int,
) -> EnvironmentChange | None:
    """Wait on the operation an earlier try, entry or run started, BEFORE anything else: a still-running
    one costs one poll and no second start. None when the caller must decide afresh from a read of the
    environment: none was started, it Failed with attempts left, or the service no longer knows it (404)."""
    if earlier is None:
        return None
    poller, attempts = earlier
    try:
        result = poller.wait(until)
    except ServiceError as gone:
        if gone.status != 404:
            raise
        return None
    if result.status == "StillRunning":  # the environment is mid-operation: reading it would say nothing new
        return EnvironmentChange(environment_id=operations.environment_id, kind=poller.kind,
                                 status="StillRunning", attempts=attempts,
                                 continuation_token=poller.continuation_token())
    if result.status == "Failed" and attempts < max_attempts:
        return None
    return _change(operations, poller, result, attempts)


@dataclass(frozen=True)
class _Entry:
    """How an environment task run starts: its clients and the record of what it starts, when its inline wait
    stops, the attempts made so far, and the change the operation started before (a parked run's, or one its
    claim records) settled to; None: decide afresh from a read of the environment."""

    factory: ClientFactory
    operations: StartedOperations
    until: datetime
    attempts_so_far: int
    settled: EnvironmentChange | None

    @classmethod
    def of(
        cls,
        conn: ConnectionSettings,
        environment_id: str,
        kind: OperationKind,
        target: str | None,
        wait: OperationWait,
        max_attempts: int = 1,
    ) -> _Entry:
        factory = ClientFactory.for_settings(conn)
        operations = StartedOperations.of(factory.pp_admin(), environment_id)
        until = _wait_until(factory, wait.deadline, wait.patience)
        earlier = operations.earlier(kind, target, wait.continuation_token, wait.attempts_so_far)
        settled = _go_on(operations, earlier, until, max_attempts)
        return cls(factory, operations, until, earlier[1] if earlier else wait.attempts_so_far, settled)

    @property
    def admin(self) -> PowerPlatformAdminClient:
        return self.operations.admin

    def outcome(self, change: EnvironmentChange) -> EnvironmentChange:
        """The task's result; the claim forgets its operation unless it still runs (a parked run waits on
        it)."""
        if change.status != "StillRunning":
            self.operations.settled()
        return change

    def decide(self, change: Callable[[Environment], EnvironmentChange]) -> EnvironmentChange:
        """The task's result: what the operation started before settled to, or else what `change` makes
        of the environment as read now (it must exist). Every environment task ends here, so none can
        skip the earlier operation or the claim's bookkeeping."""
        if self.settled is not None:
            return self.outcome(self.settled)
        return self.outcome(change(_require(self.admin, self.operations.environment_id)))


def _change_once(
    conn: ConnectionSettings,
    environment_id: str,
    kind: OperationKind,
    done: Callable[[Environment], bool],
    begin: Callable[[PowerPlatformAdminClient, str], OperationPoller],
    deadline: timedelta,
) -> EnvironmentChange:
    """Unchanged when the environment already reads `done`; else the operation started once and waited for
    up to `deadline`. A retry or a re-run waits on the operation started before instead."""
    entry = _Entry.of(conn, environment_id, kind, None, OperationWait(deadline=deadline))

    def change(env: Environment) -> EnvironmentChange:
        if done(env):
            return _unchanged(kind, env)
        poller = entry.operations.start(kind, 1, lambda: begin(entry.admin, env.id))
        return _waited(entry.operations, poller, entry.until, 1)

    return entry.decide(change)


@cmk_task(task_run_name="get-environments")
def get_environments(conn: ConnectionSettings, selector: FleetSelector | None = None) -> list[Environment]:
    """The environments matching the selector (all visible ones without a selector)."""
    environments = ClientFactory.for_settings(conn).pp_admin().list_environments()
    return select_environments(environments, selector or FleetSelector())


@cmk_task(task_run_name="enable-managed-environment-{environment_id}")
def enable_managed_environment(
    conn: ConnectionSettings, environment_id: str, deadline: timedelta = MANAGED_DEADLINE
) -> EnvironmentChange:
    """Turn on Managed Environment (protection level Standard), a prerequisite of CMK."""
    return _change_once(conn, environment_id, "governance", lambda env: env.managed,
                        PowerPlatformAdminClient.begin_enable_managed, deadline)


@cmk_task(task_run_name="link-{environment_id}")
def link(
    conn: ConnectionSettings,
    environment_id: str,
    system_id: str,
    max_attempts: int = MAX_LINK_ATTEMPTS,
    ensure_managed: bool = False,
    wait: OperationWait | None = None,
) -> EnvironmentChange:
    """Link (or swap to) the Encryption policy with `system_id` and wait as `wait` says (by default up to
    four days); a Failed link is re-run.

    With `ensure_managed`, an environment that is not yet a Managed Environment (a CMK prerequisite) is made
    one first, from the same read and in the same task run: a fleet pays one read and one task run per
    environment, not two. A governance change that does not finish is returned as it is (kind governance).
    """
    if max_attempts < 1:
        raise ConfigError("max_attempts", f"{max_attempts} is below 1", "use 1 or more (default 3)")
    entry = _Entry.of(conn, environment_id, "link", system_id, wait or OperationWait(), max_attempts)
    admin, operations = entry.admin, entry.operations

    def change(env: Environment) -> EnvironmentChange:
        if env.cmk is not None and env.cmk.linked and same_id(env.cmk.system_id, system_id):
            return _unchanged("link", env)
        if ensure_managed and not env.managed:
            governance = operations.start("governance", 1, lambda: admin.begin_enable_managed(env.id))
            managed = _waited(operations, governance, entry.factory.now() + MANAGED_DEADLINE, 1)
            if not managed.done:
                return managed
        _run_logger().warning("%s (%s) is Disabled from now until its link to %s finishes",
                              env.display_name or env.id, env.id, system_id)
        return _run_with_reruns(operations, "link", lambda: admin.begin_link(env.id, system_id),
                                entry.until, max_attempts, entry.attempts_so_far, system_id)

    return entry.decide(change)


@cmk_task(task_run_name="unlink-{environment_id}")
def unlink(
    conn: ConnectionSettings,
    environment_id: str,
    system_id: str | None = None,
    max_attempts: int = MAX_LINK_ATTEMPTS,
    wait: OperationWait | None = None,
) -> EnvironmentChange:
    """Revert to the Microsoft-managed key, waiting as `wait` says (by default up to four days); a Failed
    unlink is re-run. `system_id`, when given, must be the linked policy's."""
    entry = _Entry.of(conn, environment_id, "unlink", None, wait or OperationWait(), max_attempts)

    def change(env: Environment) -> EnvironmentChange:
        if env.cmk is None or not env.cmk.system_id:
            return _unchanged("unlink", env)
        if system_id is not None and not same_id(env.cmk.system_id, system_id):
            raise ConfigError(
                "system_id",
                f"environment {env.id} is linked to {env.cmk.system_id}, not {system_id}",
                "pass the systemId of the policy the environment is linked to (or none)",
            )
        linked, admin = env.cmk.system_id, entry.admin
        return _run_with_reruns(entry.operations, "unlink", lambda: admin.begin_unlink(env.id, linked),
                                entry.until, max_attempts, entry.attempts_so_far)

    return entry.decide(change)


@cmk_task(task_run_name="reenable-environment-{environment_id}")
def reenable_environment(
    conn: ConnectionSettings, environment_id: str, deadline: timedelta = timedelta(minutes=30)
) -> EnvironmentChange:
    """Re-enable an environment that was disabled (locked) once access to its key is restored."""
    return _change_once(conn, environment_id, "reenable", lambda env: env.enabled,
                        PowerPlatformAdminClient.begin_reenable, deadline)
