"""Serve every runbook as a deployment from one process: `python -m ppcmk_deployments.serve`.

Started by `ppcmk serve` (and the end-to-end tests) with PREFECT_API_URL pointing at the server. Rotation runs
on its cron schedule; everything else on demand from the UI, `ppcmk run --deployment` or the API. Each flow
run executes in a child process, and approvals in deployment runs suspend, so a waiting run holds no process.
`ppcmk-wake/ppcmk-wake-sandbox` resumes runs parked during long link/unlink waits (`--wake-every-minutes`).

Every deployment runs from Quick run against the sandbox: its parameters default to the sandbox blocks, the
scenario's people and the environments a first run touches (deployments/catalog.py); the run form describes
each parameter from the flow's docstring.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any, cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Interval

from ppcmk_deployments.catalog import (
    ROTATION_CRON,
    ROTATION_TIMEZONE,
    RUNBOOKS,
    Runbook,
    SandboxBlocks,
    sandbox_deployment_name,
    sandbox_description,
    sandbox_parameters,
)
from ppcmk_deployments.wake import DEFAULT_WAKE_MINUTES, WAKE_FLOW_NAME, wake

TAGS = ["ppcmk", "sandbox"]
# The sandbox's clock moves when a runbook waits (virtual time), so waiting inline costs nothing there, while
# a parked run would wait for real minutes of the sandbox clock. Sandbox runs park only when asked to
# (parameter waves.park_after_minutes); production deployments (prefect.yaml) park after the default 30 min.
SANDBOX_WAVES = {"park_after_minutes": None}


def deployment_full_name(flow_name: str) -> str:
    """`flow/deployment`, as run_deployment and `prefect deployment run` take it."""
    return f"{flow_name}/{sandbox_deployment_name(flow_name)}"


def quick_run_parameters(runbook: Runbook, blocks: SandboxBlocks) -> dict[str, Any]:
    parameters = sandbox_parameters(runbook, blocks)
    return {**parameters, "waves": SANDBOX_WAVES} if "waves" in runbook.parameter_names() else parameters


def runbook_deployment(runbook: Runbook, blocks: SandboxBlocks) -> RunnerDeployment:
    # the deployments list shows a cron only as "+1" (its text does not fit); the description says it in words
    schedules = None
    if runbook.scheduled:
        schedules = [Cron(ROTATION_CRON, timezone=ROTATION_TIMEZONE, day_or=False)]
    elif runbook.cron:
        schedules = [Cron(runbook.cron, timezone=ROTATION_TIMEZONE)]
    elif runbook.every_minutes:
        schedules = [Interval(timedelta(minutes=runbook.every_minutes))]
    flow = runbook.load()
    # to_deployment is sync here (called outside an event loop); its signature also admits a coroutine
    return cast(RunnerDeployment, flow.to_deployment(
        name=sandbox_deployment_name(flow.name),
        description=sandbox_description(runbook),
        parameters=quick_run_parameters(runbook, blocks),
        schedules=schedules,
        tags=TAGS,
    ))


def build_deployments(
    blocks: SandboxBlocks | None = None, wake_every: timedelta = timedelta(minutes=DEFAULT_WAKE_MINUTES)
) -> list[RunnerDeployment]:
    blocks = blocks or SandboxBlocks()
    deployments = [runbook_deployment(runbook, blocks) for runbook in RUNBOOKS.values()]
    deployments.append(cast(RunnerDeployment, wake.to_deployment(
        name=sandbox_deployment_name(WAKE_FLOW_NAME),
        description="Resume runs parked during long link/unlink waits (no parameters).",
        schedules=[Interval(wake_every)],
        tags=TAGS,
    )))
    return deployments


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve every ppcmk runbook as a deployment.")
    parser.add_argument("--limit", type=int, default=4, help="maximum concurrent flow runs in this process")
    parser.add_argument("--wake-every-minutes", type=float, default=DEFAULT_WAKE_MINUTES,
                        help="how often ppcmk-wake resumes parked runs")
    parser.add_argument("--blocks-prefix", default="sandbox",
                        help="the deployments default to the blocks PREFIX-kv-admin, PREFIX-target, ...")
    arguments = parser.parse_args()
    if arguments.wake_every_minutes <= 0:
        parser.error("--wake-every-minutes: use a positive number of minutes (default 10)")
    # Keep the rotation schedule active across restarts: the next `ppcmk serve` continues where this stopped.
    blocks = SandboxBlocks.with_prefix(arguments.blocks_prefix)
    serve(*build_deployments(blocks, wake_every=timedelta(minutes=arguments.wake_every_minutes)),
          limit=arguments.limit, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
