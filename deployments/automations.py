"""The notification automations of ppcmk, created idempotently on a Prefect server by `ppcmk serve --notify`
and `ppcmk setup automations` (after `prefect deploy`), sending through one notification block the operator
chooses (webhook, Slack, Microsoft Teams, e-mail: any of Prefect's notification blocks).

Adding one is a `Notification(...)` in NOTIFICATIONS: a name, the trigger and the message templates (Jinja,
with `event`, `flow_run`, `flow` and the `ui_url` filter; `flow_run|ui_url` needs PREFECT_UI_URL on the
server, which `ppcmk serve` sets).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from prefect.client.orchestration import SyncPrefectClient
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

from ppcmk.approvals.notify import APPROVAL_WAITING_EVENT
from ppcmk.watch.drift import EVENT_PREFIX as DRIFT_EVENT_PREFIX
from ppcmk_deployments.catalog import RUNBOOKS
from ppcmk_deployments.wake import WAKE_FLOW_NAME

PPCMK_FLOWS = [*RUNBOOKS, WAKE_FLOW_NAME]
ANY_FLOW_RUN = {"prefect.resource.id": "prefect.flow-run.*"}


@dataclass(frozen=True)
class Notification:
    name: str
    description: str
    trigger: EventTrigger
    subject: str
    body: str

    def automation(self, block_document_id: UUID) -> AutomationCore:
        action = SendNotification(block_document_id=block_document_id, subject=self.subject, body=self.body)
        return AutomationCore(name=self.name, description=self.description, enabled=True,
                              trigger=self.trigger, actions=[action])


def on_events(*events: str, flows: list[str] | None = None) -> EventTrigger:
    """React to each of these events of a flow run (of one of `flows`, when given)."""
    related = {"prefect.resource.role": "flow", "prefect.resource.name": flows} if flows else {}
    return EventTrigger(expect=set(events), match=ANY_FLOW_RUN, match_related=related,  # type: ignore[arg-type]
                        posture=Posture.Reactive, threshold=1)


NOTIFICATIONS: tuple[Notification, ...] = (
    Notification(
        name="ppcmk: run waiting for approval",
        description="A ppcmk run suspended or paused until an approver answers its form.",
        trigger=on_events(APPROVAL_WAITING_EVENT),
        subject="ppcmk: {{ event.payload.runbook }} run {{ event.resource.name }} waits for approval",
        body="{{ event.payload.runbook }} run {{ event.resource.name }} waits for "
             "{{ event.payload.waits_for }}.\n"
             "Who may approve: {{ event.payload.who_may_approve }}.\n"
             "Requested by: {{ event.payload.requester }}.\n"
             "Open it and click Resume: {{ event.payload.ui_url or (flow_run|ui_url) }}\n"
             "Or from a terminal: ppcmk approvals, then ppcmk approve {{ flow_run.id }} --as YOU",
    ),
    Notification(
        name="ppcmk: run failed or crashed",
        description="A ppcmk runbook run ended Failed or Crashed.",
        trigger=on_events("prefect.flow-run.Failed", "prefect.flow-run.Crashed", flows=PPCMK_FLOWS),
        subject="ppcmk: {{ flow.name }} run {{ flow_run.name }} ended {{ flow_run.state.name }}",
        body="{{ flow.name }} run {{ flow_run.name }} ended {{ flow_run.state.name }}: "
             "{{ flow_run.state.message }}\nSee its logs: {{ flow_run|ui_url }}\n"
             "Or from a terminal: prefect flow-run logs {{ flow_run.id }}",
    ),
    Notification(
        name="ppcmk: critical or error drift",
        description="ppcmk watch found a critical or error drift (emitted when it appears or changes "
                    "severity, never every hour).",
        # watch puts the severity on the event's resource: triggers match resource labels, not payloads
        trigger=EventTrigger(expect={f"{DRIFT_EVENT_PREFIX}.*"},
                             match={"ppcmk.severity": ["critical", "error"]},
                             posture=Posture.Reactive, threshold=1),
        subject="ppcmk {{ event.payload.severity }}: {{ event.payload.kind }} on {{ event.resource.name }}",
        body="{{ event.payload.message }}\n\nFix: {{ event.payload.fix }}\n\n"
             "Since {{ event.payload.since }} ({{ event.payload.change }}; "
             "was {{ event.payload.previous }}).",
    ),
)


def ensure_automations(client: SyncPrefectClient, block_document_id: UUID) -> list[str]:
    """Create or update (by name) every ppcmk notification automation; running it again changes nothing but
    the block it sends through. Returns the automations' names."""
    for notification in NOTIFICATIONS:
        wanted = notification.automation(block_document_id)
        existing = client.read_automations_by_name(notification.name)
        if existing:
            client.update_automation(existing[0].id, wanted)
            for duplicate in existing[1:]:
                client.delete_automation(duplicate.id)
        else:
            client.create_automation(wanted)
    return [notification.name for notification in NOTIFICATIONS]
