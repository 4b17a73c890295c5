"""Events: a finding is emitted once when it appears, again when its severity changes, and resolved once
repaired; a run that finds the same as the previous one emits nothing. Read back from the Prefect server."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter
from prefect.types._datetime import now as prefect_now

from ppcmk_flows.report import report
from ppcmk_flows.watch import WatchResult
from tests.support.scenario import FINANCE, KEY, LINKED_POLICY_GRANT, VAULT
from tests.support.world import change, current_version

Watch = Callable[..., WatchResult]
EXPIRY_EVENT = "ppcmk.drift.key.expiry"


def server_events(since: Any, expected: int) -> list[Any]:
    """The watch events the server recorded since `since`, oldest first (waits for them to arrive)."""
    event_filter = EventFilter(event=EventNameFilter(prefix=["ppcmk.drift."]),  # every kind: no stray one
                               occurred=EventOccurredFilter(since=since))
    deadline = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_events(filter=event_filter, limit=50)
            events = sorted(page.events, key=lambda e: e.occurred)
            if len(events) >= expected or time.monotonic() > deadline:
                return events
            time.sleep(0.5)


def test_expiry_event_appears_changes_and_resolves_once_each(cloud: Any, run_watch: Watch) -> None:
    started = prefect_now("UTC")  # the events of earlier tests occurred before
    change(cloud, lambda world: setattr(current_version(world), "exp", world.clock.now() + timedelta(days=8)))
    first = run_watch()
    assert [(c.change, c.kind, c.severity) for c in first.changes] == [("appeared", "key.expiry", "warning")]
    assert run_watch().changes == []  # the next hour: same finding, no event
    cloud.clock.advance(timedelta(days=2))
    second = run_watch()
    assert [(c.change, c.severity, c.previous_level) for c in second.changes] == [
        ("changed", "error", "warning:30d")]
    change(cloud, lambda world: setattr(current_version(world), "exp",
                                        world.clock.now() + timedelta(days=365)))
    third = run_watch()
    assert [(c.change, c.kind) for c in third.changes] == [("resolved", "key.expiry")]
    assert run_watch().changes == []

    events = server_events(started, expected=3)
    assert [(e.event, e.payload["change"], e.payload["severity"]) for e in events] == [
        (EXPIRY_EVENT, "appeared", "warning"), (EXPIRY_EVENT, "changed", "error"),
        (EXPIRY_EVENT, "resolved", "resolved")]
    resource = events[0].resource
    assert resource.name == f"{VAULT}/{KEY}"
    assert resource.id.endswith(f"/vaults/{VAULT}/keys/{KEY}")
    assert "run rotate" in events[1].payload["fix"]
    assert [e.resource["ppcmk.severity"] for e in events] == ["warning", "error", "resolved"]


def test_the_drift_notification_matches_critical_and_error_events(prefect_backend: None) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    from ppcmk_deployments.automations import ensure_automations

    block = CustomWebhookNotificationBlock(name="oncall", url="https://127.0.0.1:9/hook")
    block_id = block.save("cmk-oncall-drift", overwrite=True)
    with get_client(sync_client=True) as client:
        ensure_automations(client, block_id)
        [automation] = client.read_automations_by_name(name="ppcmk: critical or error drift")
    trigger = automation.trigger
    assert trigger.expect == {"ppcmk.drift.*"}  # type: ignore[union-attr]
    assert trigger.match.model_dump()["ppcmk.severity"] == ["critical", "error"]  # type: ignore[union-attr]
    assert "event.payload.fix" in automation.actions[0].body  # type: ignore[union-attr]


def test_nobody_unlocks_escalates_once_per_tier_then_the_loss_stays_open(
        cloud: Any, run_watch: Watch, sandbox_blocks: dict[str, str], tmp_path: Path) -> None:
    """A lock made by hand that nobody ends: one event as it appears and one per escalation tier (7, 3, 1
    days left), whatever the number of runs; at the deadline the service deletes the environment and the
    finding becomes `env.deleted`, critical, never resolved; the report lists the loss."""
    started = prefect_now("UTC")
    change(cloud, lambda world: world.rbac.remove(next(
        a for a in world.rbac.assignments.values() if a.name == LINKED_POLICY_GRANT)))
    locked_at = cloud.clock.now()
    found = []
    for day in (0, 1, 2, 22, 23.5, 24, 27.5, 29.2, 29.5, 30.1, 31):
        cloud.clock.advance(locked_at + timedelta(days=day) - cloud.clock.now())
        found += [(day, c.change, c.kind, c.tier) for c in run_watch().changes
                  if c.kind.startswith("env.")]
    assert found == [(0, "appeared", "env.locked", "locked"), (23.5, "changed", "env.locked", "7d"),
                     (27.5, "changed", "env.locked", "3d"), (29.2, "changed", "env.locked", "1d"),
                     (30.1, "changed", "env.deleted", "deleted")]
    assert cloud.world.powerplatform.environment(FINANCE) is None  # the service deleted it at 30 days
    final = run_watch()
    [deleted] = [d for d in final.drifts if d.object_id == FINANCE]
    assert (deleted.kind, deleted.severity, deleted.since) == ("env.deleted", "critical",
                                                               locked_at + timedelta(days=30))
    events = [e for e in server_events(started, expected=5) if e.event.startswith("ppcmk.drift.env.")]
    assert [(e.event, e.payload["change"], e.payload["tier"]) for e in events] == [
        ("ppcmk.drift.env.locked", "appeared", "locked"), ("ppcmk.drift.env.locked", "changed", "7d"),
        ("ppcmk.drift.env.locked", "changed", "3d"), ("ppcmk.drift.env.locked", "changed", "1d"),
        ("ppcmk.drift.env.deleted", "changed", "deleted")]
    assert events[-1].resource["ppcmk.severity"] == "critical"
    rows = {r["environment_id"]: r for r in report(sandbox_blocks["runbook"], output_dir=str(tmp_path)).rows}
    assert rows[FINANCE]["state"].startswith("Deleted (was locked; gone since")
    assert rows[FINANCE]["name"] == "Finance on CMK"
