"""Watch: read the whole estate, report every drift with its severity, since when and the fix. Read-only.

Runs hourly as a deployment (no approval: it changes nothing). Each run reads policies, their key access,
keys and versions, vault network, environments and their link/lock state, holds and ppcmk's lock records,
judges them (`ppcmk.watch.rules`, plus the desired state when one is given), and compares the findings with
those of the previous run: only a finding that appeared, changed severity or tier, or resolved is emitted as a
Prefect event `ppcmk.drift.<kind>` (the object as the resource, severity, fix in the payload), so an
automation can notify without repeating itself every hour. The previous run's findings are the rows of the
health table artifact `watch-health-<tenant>-<subscription>` on the Prefect server (a Variable holds at most
5,000 characters, too few for a tenant), read back at the start of the next run.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import cast

from prefect import flow, get_run_logger
from prefect.events import emit_event
from pydantic import BaseModel, Field

from ppcmk.audit import trail as audit
from ppcmk.cloud.parallel import DEFAULT_CONCURRENCY
from ppcmk.errors import ConfigError
from ppcmk.evidence.changes import drift_record
from ppcmk.safety.plan import publish_table
from ppcmk.safety.validation import check_parameters
from ppcmk.watch.desired import DesiredState, load_desired_state_file
from ppcmk.watch.drift import Drift, DriftChange, DriftSeverity, WatchState, changes, with_since, worst
from ppcmk.watch.estate import EstateFacts
from ppcmk.watch.rotation_pickup import NOT_PICKED_UP
from ppcmk.watch.rules import WatchRules, detect
from ppcmk_blocks import CmkConnection
from ppcmk_blocks.desired_state import CmkDesiredState
from ppcmk_flows._watch_state import health_rows, lock_facts, previous_state, state_key, target_blocks
from ppcmk_tasks.access import known_principals
from ppcmk_tasks.estate import read_estate_task

PROCEDURE = "watch"


class WatchResult(BaseModel):
    checked_at: datetime
    drifts: list[Drift] = Field(default_factory=list)
    changes: list[DriftChange] = Field(default_factory=list)
    environments: int = 0
    policies: int = 0

    @property
    def worst(self) -> DriftSeverity | None:
        return worst(self.drifts)

    @property
    def has_errors(self) -> bool:
        return any(d.severity in (DriftSeverity.CRITICAL, DriftSeverity.ERROR) for d in self.drifts)

    def count(self, severity: DriftSeverity) -> int:
        return sum(1 for d in self.drifts if d.severity == severity)

    def summary(self) -> str:
        counts = ", ".join(f"{self.count(s)} {s.value}" for s in DriftSeverity)
        return (f"{self.environments} environment(s), {self.policies} policy(ies): {counts}; "
                f"{len(self.changes)} change(s) since the previous run")


def load_desired(desired_state: str | None) -> DesiredState | None:
    """A desired-state YAML file, or the name of a `ppcmk desired state` block."""
    if not desired_state:
        return None
    if Path(desired_state).expanduser().is_file():
        return load_desired_state_file(desired_state)
    try:
        block = cast(CmkDesiredState, CmkDesiredState.load(desired_state))
    except ValueError:
        raise ConfigError("desired_state", f"{desired_state!r} is neither a file nor a ppcmk desired state "
                          "block", "give the path of a YAML file or the name of a block") from None
    return block.desired(desired_state)


def emit(change: DriftChange) -> None:
    """One Prefect event per change: the object is the resource; severity, tier and fix are in the payload."""
    emit_event(
        event=change.event,
        resource={"prefect.resource.id": f"ppcmk.{change.object_type}.{change.object_id.lower()}",
                  "prefect.resource.name": change.object, "ppcmk.object-type": change.object_type,
                  # a label, so that an automation can match on it (triggers match resources, not payloads)
                  "ppcmk.severity": change.severity.value if change.severity else "resolved"},
        payload={"change": change.change, "kind": change.kind, "severity": change.severity.value
                 if change.severity else "resolved", "tier": change.tier, "previous": change.previous_level,
                 "since": change.since.isoformat() if change.since else None, "message": change.message,
                 "fix": change.fix},
    )


def judge(facts: EstateFacts, previous: WatchState, desired: DesiredState | None,
          rules: WatchRules) -> tuple[list[Drift], list[DriftChange]]:
    drifts = with_since(detect(facts, previous, desired, rules), previous, facts.now)
    return drifts, changes(previous, drifts)


def still_to_pick_up(previous: WatchState) -> list[str]:
    """Environments that had not taken up their key's newest version at the previous run: their operations
    are read again, however old that version is now."""
    return [r.object_id for r in previous.open.values() if r.kind == NOT_PICKED_UP]


def desired_linked(desired: DesiredState | None) -> list[str]:
    return [name for policy in desired.policies for name in policy.environments] if desired else []


@flow(name="watch")
def watch(
    connection: str,
    desired_state: str | None = None,
    pp_admins: list[str] | None = None,
    rotation_cadence_days: int | None = None,
    link_expected_hours: float = 6.0,
    concurrency: int = DEFAULT_CONCURRENCY,
) -> WatchResult:
    """Every drift of the estate with severity, since when and fix; an event for each change since last run.
    Read-only.

    Args:
        connection: CmkConnection block of an identity that reads Azure (Reader on the vaults and policies,
            role assignments) and is a Power Platform admin or registered management app, e.g. runbook; in
            the sandbox sandbox-runbook.
        desired_state: A YAML file or a `ppcmk desired state` block describing what should be; empty: only
            the built-in rules.
        pp_admins: UPNs or object ids whose Reader role on the policies is checked, e.g.
            ["pp-admin@contoso.example"]; empty: the desired state's.
        rotation_cadence_days: A key whose current version is older than this many days is a finding;
            empty: no rotation check.
        link_expected_hours: A link or unlink running longer than this is a finding.
        concurrency: How many reads run at the same time.
    """
    check_parameters(rotation_cadence_days=rotation_cadence_days,
                     link_expected_hours=link_expected_hours, concurrency=concurrency)
    conn = CmkConnection.named(connection).settings()
    desired = load_desired(desired_state)
    admins = pp_admins if pp_admins is not None else (desired.pp_admins if desired else [])
    known_principals("pp_admins", conn, admins)
    rules = WatchRules(rotation_cadence_days=rotation_cadence_days, link_expected_hours=link_expected_hours)
    key = state_key(conn)
    previous = previous_state(key)
    facts = read_estate_task(conn, admins, desired_linked(desired) + still_to_pick_up(previous), concurrency)
    facts = facts.model_copy(update={"locks": lock_facts(), "targets": target_blocks()})
    drifts, found = judge(facts, previous, desired, rules)
    for change in found:
        emit(change)
    if found:  # the evidence pack's record of when each finding was open
        audit.record(drift_record(facts.now, found))
    # the table is also the state the next run compares with
    publish_table(health_rows(drifts), key, description=f"CMK estate health at {facts.now:%Y-%m-%d %H:%M} "
                  f"(cloud clock): {len(drifts)} finding(s)")
    result = WatchResult(checked_at=facts.now, drifts=drifts, changes=found,
                         environments=len(facts.environments), policies=len(facts.policies))
    get_run_logger().info(result.summary())
    return result
