"""Power Platform environment tasks: select environments, Managed Environment, link/unlink the Encryption
policy, re-enable a locked environment, and wait on lifecycle operations.

A task starts an operation and polls it inside itself (honouring Retry-After through the admin client), so a
four-day encryption is one task run, not thousands. Each task reads the environment first and does nothing
when it is already in the wanted state.

`link` and `unlink` also wait cheaply across days: `patience` bounds the inline wait (the task then returns
the change StillRunning with its handle, so a deployment run can park), and `resume` picks such a handle up
again instead of starting a second operation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError, ServiceError
from ppcmk.fleet.selection import FleetMember, FleetSelector
from ppcmk.models.arm_ids import same_id
from ppcmk.models.environments import (
    Environment,
    EnvironmentChange,
    OperationHandle,
    OperationKind,
    WaitResult,
)
from ppcmk.safety.retry import LeftForRetry, cmk_task
from ppcmk.services.factory import ClientFactory
from ppcmk.services.ppadmin import PowerPlatformAdminClient
from ppcmk.services.ppadmin.client import reached

DEFAULT_DEADLINE = timedelta(days=4)  # the documented upper bound of an encryption
MAX_LINK_ATTEMPTS = 3  # a Failed link is re-run ("the service resumes where it left off"), but not forever
MANAGED_DEADLINE = timedelta(hours=2)  # a governance change takes minutes; hours means something is wrong


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


def read_environment(admin: PowerPlatformAdminClient, environment_id: str) -> Environment | None:
    """The environment, or None when the service says it does not exist (or the caller cannot see it)."""
    try:
        return admin.get_environment(environment_id)
    except ServiceError as exc:
        if exc.status == 404:
            return None
        raise


def _require(admin: PowerPlatformAdminClient, environment_id: str) -> Environment:
    env = read_environment(admin, environment_id)
    if env is None:
        raise ConfigError(
            "environment_id",
            f"environment {environment_id} does not exist or is not visible",
            "check the id; the caller needs the Power Platform Administrator role",
        )
    return env


def _finish(
    admin: PowerPlatformAdminClient,
    kind: OperationKind,
    environment_id: str,
    handle: OperationHandle | None,
    deadline: timedelta | datetime,
    attempts: int,
) -> EnvironmentChange:
    """Wait for a started operation (None: the service finished at once) and read the environment after."""
    if handle is None:
        return EnvironmentChange(
            environment_id=environment_id,
            kind=kind,
            status="Succeeded",
            attempts=attempts,
            environment=read_environment(admin, environment_id),
        )
    result = admin.wait_operation(handle, deadline)
    return _change(admin, kind, environment_id, result, attempts)


def _change(
    admin: PowerPlatformAdminClient,
    kind: OperationKind,
    environment_id: str,
    result: WaitResult,
    attempts: int,
) -> EnvironmentChange:
    return EnvironmentChange(
        environment_id=environment_id,
        kind=kind,
        status=result.status,
        attempts=attempts,
        handle=result.handle,
        error_message=result.error_message,
        environment=read_environment(admin, environment_id),
    )


def _unchanged(kind: OperationKind, env: Environment) -> EnvironmentChange:
    return EnvironmentChange(environment_id=env.id, kind=kind, status="Unchanged", environment=env)


# The operation an environment task's try started last, with the attempts so far. A retry of the same task
# run picks it up (as a parked run's), so it neither reads its own earlier try's change as "already done"
# nor starts a second one.
_STARTED: LeftForRetry[tuple[OperationHandle, int]] = LeftForRetry()


def _carried_over(resume: OperationHandle | None, attempts_so_far: int) -> tuple[OperationHandle | None, int]:
    earlier = _STARTED.kept()
    return earlier if resume is None and earlier is not None else (resume, attempts_so_far)


def _run_with_reruns(
    admin: PowerPlatformAdminClient,
    kind: OperationKind,
    environment_id: str,
    start: Callable[[], OperationHandle | None],
    deadline: datetime,
    max_attempts: int,
    attempts_so_far: int = 0,
    target: str | None = None,
) -> EnvironmentChange:
    """Start and wait; a Failed operation is started again, at most `max_attempts` times in all (counting
    the `attempts_so_far` an earlier entry of a parked run started). So is one that succeeded without the
    environment showing its result: the start found another run's operation of the same kind running (a
    link to another policy, say) and waited on that one."""
    def started(attempt: int) -> OperationHandle | None:
        handle = start()
        if handle is not None:
            _STARTED.keep((handle, attempt))
        return handle

    attempt = attempts_so_far + 1
    change = _finish(admin, kind, environment_id, started(attempt), deadline, attempt)
    while _again(change, target) and attempt < max_attempts:
        attempt += 1
        change = _finish(admin, kind, environment_id, started(attempt), deadline, attempt)
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


def _settle_saved(
    admin: PowerPlatformAdminClient, saved: OperationHandle, until: datetime, attempts: int, max_attempts: int
) -> EnvironmentChange | None:
    """Wait on an operation an earlier entry of a parked run started, BEFORE anything else: a still-running
    one costs one poll and no second start. None when the caller must decide afresh from a read of the
    environment: the operation Failed with attempts left, or the service no longer knows it (404)."""
    try:
        result = admin.wait_operation(saved, until)
    except ServiceError as gone:
        if gone.status != 404:
            raise
        return None
    if result.status == "StillRunning":  # the environment is mid-operation: reading it would say nothing new
        return EnvironmentChange(environment_id=saved.environment_id, kind=saved.kind, status="StillRunning",
                                 attempts=attempts, handle=saved)
    if result.status == "Failed" and attempts < max_attempts:
        return None
    return _change(admin, saved.kind, saved.environment_id, result, attempts)


def _change_once(
    conn: ConnectionSettings,
    environment_id: str,
    kind: OperationKind,
    done: Callable[[Environment], bool],
    start: Callable[[PowerPlatformAdminClient, str], OperationHandle | None],
    deadline: timedelta,
) -> EnvironmentChange:
    """Unchanged when the environment already reads `done`; else the operation started once and waited for
    up to `deadline`. A retry of the task run waits on the operation its earlier try started."""
    factory = ClientFactory.for_settings(conn)
    admin = factory.pp_admin()
    earlier = _STARTED.kept()
    if earlier is not None:
        return _finish(admin, kind, environment_id, earlier[0], factory.now() + deadline, earlier[1])
    env = _require(admin, environment_id)
    if done(env):
        return _unchanged(kind, env)
    handle = start(admin, env.id)
    if handle is not None:
        _STARTED.keep((handle, 1))
    return _finish(admin, kind, env.id, handle, factory.now() + deadline, 1)


@dataclass(frozen=True)
class _Entry:
    """How a link or an unlink task run starts: its clients, when its inline wait stops, the attempts made
    so far, and for a parked run re-entering (`resume`) or a retry of this task run, the change the saved
    operation settled to (None: decide afresh from a read of the environment)."""

    factory: ClientFactory
    admin: PowerPlatformAdminClient
    until: datetime
    attempts_so_far: int
    settled: EnvironmentChange | None = None

    @classmethod
    def of(
        cls,
        conn: ConnectionSettings,
        deadline: timedelta | datetime,
        patience: timedelta | None,
        resume: OperationHandle | None,
        attempts_so_far: int,
        max_attempts: int,
    ) -> _Entry:
        factory = ClientFactory.for_settings(conn)
        admin = factory.pp_admin()
        until = _wait_until(factory, deadline, patience)
        resume, attempts_so_far = _carried_over(resume, attempts_so_far)
        if resume is None:
            return cls(factory, admin, until, attempts_so_far)
        attempts = max(attempts_so_far, 1)  # the saved operation is one
        settled = _settle_saved(admin, resume, until, attempts, max_attempts)
        return cls(factory, admin, until, attempts, settled)


# ------------------------------------------------------------------------------------------------- tasks


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
                        PowerPlatformAdminClient.enable_managed_environment, deadline)


@cmk_task(task_run_name="link-{environment_id}")
def link(
    conn: ConnectionSettings,
    environment_id: str,
    system_id: str,
    deadline: timedelta | datetime = DEFAULT_DEADLINE,
    max_attempts: int = MAX_LINK_ATTEMPTS,
    ensure_managed: bool = False,
    patience: timedelta | None = None,
    resume: OperationHandle | None = None,
    attempts_so_far: int = 0,
) -> EnvironmentChange:
    """Link (or swap to) the Encryption policy with `system_id` and wait; a Failed link is re-run.

    With `ensure_managed`, an environment that is not yet a Managed Environment (a CMK prerequisite) is made
    one first, from the same read and in the same task run: a fleet pays one read and one task run per
    environment, not two. A governance change that does not finish is returned as it is (kind governance).

    `deadline` (a duration from now or an absolute time) fails the link; `patience` only ends this task
    run's wait: the change comes back StillRunning with its handle. `resume` (with the `attempts_so_far`
    it took) waits on that handle first and starts nothing while it runs.
    """
    if max_attempts < 1:
        raise ConfigError("max_attempts", f"{max_attempts} is below 1", "use 1 or more (default 3)")
    entry = _Entry.of(conn, deadline, patience, resume, attempts_so_far, max_attempts)
    if entry.settled is not None:
        return entry.settled
    admin = entry.admin
    env = _require(admin, environment_id)
    if env.cmk is not None and env.cmk.linked and same_id(env.cmk.system_id, system_id):
        return _unchanged("link", env)
    if ensure_managed and not env.managed:
        managed = _finish(admin, "governance", env.id, admin.enable_managed_environment(env.id),
                          entry.factory.now() + MANAGED_DEADLINE, 1)
        if not managed.done:
            return managed
    _run_logger().warning("%s (%s) is Disabled from now until its link to %s finishes",
                          env.display_name or env.id, env.id, system_id)

    def start() -> OperationHandle | None:
        return admin.link_policy(env.id, system_id)

    return _run_with_reruns(admin, "link", env.id, start, entry.until, max_attempts, entry.attempts_so_far,
                            system_id)


@cmk_task(task_run_name="unlink-{environment_id}")
def unlink(
    conn: ConnectionSettings,
    environment_id: str,
    system_id: str | None = None,
    deadline: timedelta | datetime = DEFAULT_DEADLINE,
    max_attempts: int = MAX_LINK_ATTEMPTS,
    patience: timedelta | None = None,
    resume: OperationHandle | None = None,
    attempts_so_far: int = 0,
) -> EnvironmentChange:
    """Revert to the Microsoft-managed key. `system_id`, when given, must be the linked policy's.
    `deadline`, `patience`, `resume` and `attempts_so_far` as for `link`."""
    entry = _Entry.of(conn, deadline, patience, resume, attempts_so_far, max_attempts)
    if entry.settled is not None:
        return entry.settled
    admin = entry.admin
    env = _require(admin, environment_id)
    if env.cmk is None or not env.cmk.system_id:
        return _unchanged("unlink", env)
    if system_id is not None and not same_id(env.cmk.system_id, system_id):
        raise ConfigError(
            "system_id",
            f"environment {env.id} is linked to {env.cmk.system_id}, not {system_id}",
            "pass the systemId of the policy the environment is linked to (or none)",
        )
    linked = env.cmk.system_id

    def start() -> OperationHandle | None:
        try:
            return admin.unlink_policy(env.id, linked)
        except ServiceError as refused:
            # The start waits out a 409 while another operation runs; when that was the unlink of a crashed
            # run, the environment is unlinked by the time this POST goes out and the service refuses it.
            if refused.status == 400 and _require(admin, env.id).cmk is None:
                return None  # already done: the final read reports it
            raise

    return _run_with_reruns(admin, "unlink", env.id, start, entry.until, max_attempts, entry.attempts_so_far)


@cmk_task(task_run_name="wait-operation-{handle.environment_id}")
def wait_operation(
    conn: ConnectionSettings, handle: OperationHandle, deadline: timedelta | datetime = DEFAULT_DEADLINE
) -> EnvironmentChange:
    """Wait on an operation started earlier (e.g. resumed after a restart from a saved handle)."""
    admin = ClientFactory.for_settings(conn).pp_admin()
    return _change(admin, handle.kind, handle.environment_id, admin.wait_operation(handle, deadline), 0)


@cmk_task(task_run_name="reenable-environment-{environment_id}")
def reenable_environment(
    conn: ConnectionSettings, environment_id: str, deadline: timedelta = timedelta(minutes=30)
) -> EnvironmentChange:
    """Re-enable an environment that was disabled (locked) once access to its key is restored."""
    return _change_once(conn, environment_id, "reenable", lambda env: env.enabled,
                        PowerPlatformAdminClient.reenable_environment, deadline)
