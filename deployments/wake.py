"""The waker: resume every flow run parked during a long link/unlink (`ppcmk-park-<n>`), so it polls its
operations once and either finishes or parks again. Deployed as `ppcmk-wake` on an interval (serve.py,
prefect.yaml) and run on demand by `ppcmk runs wake`.

Approvals are left alone: only a suspension whose pause key starts with the park prefix is resumed, and it
is resumed without input (a parked run waits for no answer).
"""

from __future__ import annotations

from uuid import UUID

from prefect import flow, get_run_logger
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateName,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.client.schemas.responses import SetStateStatus

from ppcmk.approvals.pause import expire_overdue
from ppcmk.fleet.parking import is_parked
from ppcmk.safety import claims

WAKE_FLOW_NAME = "ppcmk-wake"
DEFAULT_WAKE_MINUTES = 10
PAGE = 200  # the most the Prefect API returns per read


def parked_runs(client: SyncPrefectClient) -> list[FlowRun]:
    """Suspended flow runs whose pause key is a park key."""
    suspended = FlowRunFilter(state=FlowRunFilterState(
        type=FlowRunFilterStateType(any_=[StateType.PAUSED]),
        name=FlowRunFilterStateName(any_=["Suspended"]),
    ))
    suspended_runs: list[FlowRun] = []
    while page := client.read_flow_runs(flow_run_filter=suspended, limit=PAGE, offset=len(suspended_runs)):
        suspended_runs += page
        if len(page) < PAGE:
            break
    return [run for run in suspended_runs if is_parked(run)]


def wake_parked_runs(client: SyncPrefectClient) -> list[UUID]:
    """Resume every parked run; returns the ids Prefect accepted (a run resumed meanwhile is skipped)."""
    woken = []
    for run in parked_runs(client):
        if client.resume_flow_run(run.id).status == SetStateStatus.ACCEPT:
            woken.append(run.id)
    return woken


@flow(name=WAKE_FLOW_NAME, persist_result=False)
def wake() -> list[str]:
    """Resume the flow runs parked while the service links or unlinks their environments; end the runs whose
    approval deadline passed Expired."""
    with get_client(sync_client=True) as client:
        woken = wake_parked_runs(client)
        expired = expire_overdue(client)
    get_run_logger().info("resumed %d parked run(s); %d unanswered approval(s) expired", len(woken),
                          len(expired))
    if released := claims.release_stale():  # runs that ended without releasing theirs (a crash)
        get_run_logger().info("released %d stale claim(s): %s", len(released), "; ".join(released))
    return [str(run_id) for run_id in woken]
