"""Prefect's zombie-run automation: a flow run that stops sending heartbeats (its machine or worker is gone)
is marked Crashed, which frees its deployment's concurrency slot and makes its claims stale
(ppcmk.safety.claims), so a re-run may take them over. Heartbeats come from
PREFECT_FLOWS_HEARTBEAT_FREQUENCY in the work pool's environment (deployments/prefect.yaml); the window is
that frequency times the heartbeats a run may miss.

Created idempotently (by name) by `ppcmk setup workers`.
"""

from __future__ import annotations

from datetime import timedelta

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState
from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

ZOMBIE_AUTOMATION = "ppcmk: crash runs that stopped sending heartbeats"
DEFAULT_HEARTBEAT_SECONDS = 30  # Prefect's minimum
DEFAULT_MISSED_HEARTBEATS = 2
# Any of these after a heartbeat says the run is alive or has ended by itself.
SIGNS_OF_LIFE = {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                 "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed", "prefect.flow-run.Suspended",
                 "prefect.flow-run.Paused"}


def zombie_automation(heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
                      missed: int = DEFAULT_MISSED_HEARTBEATS) -> AutomationCore:
    window = timedelta(seconds=heartbeat_seconds * missed)
    return AutomationCore(
        name=ZOMBIE_AUTOMATION,
        description=f"A flow run that sent no heartbeat for {int(window.total_seconds())} s "
                    f"({missed} x {heartbeat_seconds} s) is marked Crashed.",
        enabled=True,
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect=SIGNS_OF_LIFE,
            match={"prefect.resource.id": "prefect.flow-run.*"},
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=window,
        ),
        actions=[ChangeFlowRunState(
            state=StateType.CRASHED, name="Crashed", force=False,
            message=f"No heartbeat for {int(window.total_seconds())} s: the worker or its machine is gone. "
                    "Run it again: the re-run takes over this run's claims and converges.",
        )],
    )


def ensure_zombie_automation(client: SyncPrefectClient, heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS,
                             missed: int = DEFAULT_MISSED_HEARTBEATS) -> str:
    """Create or update (by name) the automation; returns its name."""
    wanted = zombie_automation(heartbeat_seconds, missed)
    existing = client.read_automations_by_name(ZOMBIE_AUTOMATION)
    if existing:
        client.update_automation(existing[0].id, wanted)
    else:
        client.create_automation(wanted)
    return ZOMBIE_AUTOMATION
