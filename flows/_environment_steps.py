"""The per-environment steps the waves run, and the read-back that proves encryption.

`link_step` (Managed Environment where needed, then link) serves onboard, migrate_byok and change_policy;
`unlink_step` serves revert and change_policy. Each step is one task run per environment; with a `Waiting`
(a deployment run) a long operation parks, and a parked one is polled again instead of started again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

from prefect import get_run_logger

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ConfigError
from ppcmk.fleet.parking import ParkedOperation
from ppcmk.fleet.selection import FleetMember
from ppcmk.fleet.waves import EnvironmentResult, FleetReport, StepResult
from ppcmk.models.azure import PolicyInfo, linked_to
from ppcmk.models.environments import Environment, EnvironmentChange, OperationKind
from ppcmk_flows._parking import Waiting, parked_operation, parked_step
from ppcmk_flows._runbook import change_failed, state_of, step_state
from ppcmk_tasks.environments import OperationWait, get_environments, link, unlink


@dataclass(frozen=True)
class LinkLimits:
    """How long one link may take at the service, and how often a Failed link is run again."""

    deadline: timedelta
    max_attempts: int

    @classmethod
    def checked(cls, operation_deadline_days: float, max_link_attempts: int) -> LinkLimits:
        if max_link_attempts < 1 or operation_deadline_days <= 0:
            raise ConfigError(
                "max_link_attempts / operation_deadline_days",
                f"{max_link_attempts} attempts within {operation_deadline_days} days",
                "use at least 1 attempt and a positive deadline (default 3 attempts, 4 days)",
            )
        return cls(timedelta(days=operation_deadline_days), max_link_attempts)


class _Tried(NamedTuple):
    """One environment's task run: its change, what failed if it did not finish, the step's detail."""

    change: EnvironmentChange
    failure: str
    detail: str


def _step(
    conn: ConnectionSettings,
    kind: OperationKind,
    deadline: timedelta,
    waiting: Waiting | None,
    attempt: Callable[[FleetMember, ParkedOperation | None, OperationWait], _Tried],
) -> Callable[[FleetMember], StepResult]:
    """What link and unlink steps share: the operation a wake finds parked (polled, not started again),
    the task's wait arguments, and the outcome: parked while the operation runs on, failed when it did
    not finish, else done (a parked operation that finished meanwhile reads back Unchanged, but this run
    did it)."""
    waits = waiting or Waiting()

    def step(member: FleetMember) -> StepResult:
        saved = waits.saved(member.id, kind)
        tried = attempt(member, saved, waits.options(saved, deadline))
        if (parked := parked_operation(conn, tried.change, saved, deadline, waits)) is not None:
            return parked_step(parked)
        if not tried.change.done:
            raise RuntimeError(change_failed(tried.change, tried.failure))
        return StepResult(state=step_state(tried.change.status == "Unchanged" and saved is None),
                          detail=tried.detail)

    return step


def link_step(
    pp: ConnectionSettings, policy: PolicyInfo, limits: LinkLimits, waiting: Waiting | None = None
) -> Callable[[FleetMember], StepResult]:
    """Managed Environment where needed, then link and wait; a Failed link is re-run up to the limit."""

    def link_one(member: FleetMember, saved: ParkedOperation | None, options: OperationWait) -> _Tried:
        change = link(pp, member.id, policy.system_id or "", max_attempts=limits.max_attempts,
                      ensure_managed=True, wait=options)
        failure = ("enabling Managed Environment" if change.kind == "governance"
                   else f"link (after {change.attempts} attempt(s))")
        return _Tried(change, failure, f"{change.attempts} attempt(s)")

    return _step(pp, "link", limits.deadline, waiting, link_one)


def unlink_step(
    conn: ConnectionSettings, policy: PolicyInfo, deadline: timedelta, waiting: Waiting | None = None
) -> Callable[[FleetMember], StepResult]:
    """Unlink one environment from `policy` and wait; it is Disabled meanwhile (and the log says so)."""

    def unlink_one(member: FleetMember, saved: ParkedOperation | None, options: OperationWait) -> _Tried:
        if saved is None:
            get_run_logger().warning("%s (%s) is Disabled from now until its unlink from %s finishes",
                                     member.name, member.id, policy.name)
        change = unlink(conn, member.id, policy.system_id, wait=options)
        return _Tried(change, "unlink", f"now {state_of(change.environment)}")

    return _step(conn, "unlink", deadline, waiting, unlink_one)


def encrypted_with(env: Environment | None, policy: PolicyInfo) -> bool:
    return (
        env is not None
        and linked_to(env, policy)
        and env.cmk is not None
        and env.cmk.linked
        and env.customer_key
    )


def verify(
    pp: ConnectionSettings, policy: PolicyInfo, report: FleetReport, expected: Sequence[str]
) -> tuple[FleetReport, list[dict[str, object]]]:
    """Read every chosen environment back with ONE listing (a fleet costs one call, not one per environment).

    An environment reported done but not encrypted with the policy counts as failed; failed and not-started
    ones keep their own reason (e.g. the wave whose failures stopped them), the state read back is in `now`.
    """
    after = {env.id: env for env in get_environments(pp)}
    by_id = {r.environment_id: r for r in report.results}
    verified = FleetReport(stopped_after_wave=report.stopped_after_wave)
    rows: list[dict[str, object]] = []
    for environment_id in expected:
        env = after.get(environment_id)
        result = by_id.get(environment_id) or EnvironmentResult(
            environment_id=environment_id,
            name=(env.display_name or "") if env else "",
            wave=0,
            state="unchanged",
            detail="already encrypted before this run",
        )
        if result.state in ("succeeded", "unchanged") and not encrypted_with(env, policy):
            result = result.model_copy(update={"state": "failed", "detail": f"not verified: {state_of(env)}"})
        verified.results.append(result)
        rows.append(
            dict(
                result.model_dump(),
                link_status=env.cmk.link_status if env and env.cmk else "none",
                key_managed_by=env.key_managed_by if env else "",
                now=state_of(env),
            )
        )
    return verified, rows
