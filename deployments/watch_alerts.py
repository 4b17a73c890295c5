"""The automation that notifies on critical and error drift: every `ppcmk.drift.*` event whose resource is
labelled `ppcmk.severity` critical or error sends the finding and its fix through a notification block
(Slack, Teams, e-mail or a webhook: any Prefect notification block). Events come only when a finding
appears or changes severity (watch compares with its previous run), so nothing repeats every hour.

    python -m deployments.watch_alerts <notification block, e.g. slack-webhook/cmk-oncall>
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from uuid import UUID

from prefect.automations import Automation, EventTrigger, SendNotification
from prefect.blocks.core import Block
from prefect.client.orchestration import get_client
from prefect.events.schemas.automations import Posture

ALERT_NAME = "ppcmk drift: critical and error findings"
ALERT_SEVERITIES = ["critical", "error"]
SUBJECT = "ppcmk {{ event.payload.severity }}: {{ event.payload.kind }} on {{ event.resource.name }}"
BODY = ("{{ event.payload.message }}\n\nFix: {{ event.payload.fix }}\n\n"
        "Since {{ event.payload.since }} ({{ event.payload.change }}; was {{ event.payload.previous }}).")


def drift_alert(notification_block_id: UUID) -> Automation:
    return Automation(
        name=ALERT_NAME,
        description="Notify on every critical or error finding of ppcmk watch, with its fix.",
        trigger=EventTrigger(expect={"ppcmk.drift.*"}, match={"ppcmk.severity": ALERT_SEVERITIES},
                             posture=Posture.Reactive, threshold=1, within=timedelta(0)),
        actions=[SendNotification(block_document_id=notification_block_id, subject=SUBJECT, body=BODY)],
    )


def ensure_drift_alert(notification_block: str) -> Automation:
    """Create (or replace) the automation, notifying through the named block (`<type slug>/<name>`)."""
    block = Block.load(notification_block)
    block_id = block._block_document_id
    if block_id is None:
        raise ValueError(f"{notification_block} is not a saved block")
    with get_client(sync_client=True) as client:
        for existing in client.read_automations_by_name(name=ALERT_NAME):
            client.delete_automation(existing.id)
    created: Automation = drift_alert(block_id).create()
    return created


def main() -> None:
    parser = argparse.ArgumentParser(description="Notify on ppcmk watch's critical and error findings.")
    parser.add_argument("notification_block", help="a saved notification block, e.g. slack-webhook/oncall")
    automation = ensure_drift_alert(parser.parse_args().notification_block)
    print(f"automation {automation.name!r} ({automation.id}) notifies on {', '.join(ALERT_SEVERITIES)} drift")


if __name__ == "__main__":
    main()
