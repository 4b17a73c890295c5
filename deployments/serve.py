"""Serve every runbook as a deployment from one process: `python -m deployments.serve`.

Started by `ppcmk serve` (and the end-to-end test) with PREFECT_API_URL pointing at the server. Rotation runs
on its cron schedule; everything else on demand from the UI, `ppcmk run --deployment` or the API. Each flow
run executes in a child process, and approvals in deployment runs suspend, so a waiting run holds no process.
`ppcmk-wake/sandbox` resumes runs parked during long link/unlink waits every `--wake-every-minutes`.
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any, cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Interval

from deployments.catalog import ROTATION_CRON, ROTATION_TIMEZONE, RUNBOOKS, SandboxBlocks, default_parameters
from deployments.wake import DEFAULT_WAKE_MINUTES, wake

DEPLOYMENT_NAME = "sandbox"
# The sandbox's clock moves when a runbook waits (virtual time), so waiting inline costs nothing there, while
# a parked run would wait for real minutes of the sandbox clock. Sandbox runs park only when asked to
# (parameter waves.park_after_minutes); production deployments (prefect.yaml) park after the default 30 min.
SANDBOX_WAVES = {"park_after_minutes": None}


def sandbox_parameters(parameters: dict[str, Any], parameter_names: list[str]) -> dict[str, Any]:
    return {**parameters, "waves": SANDBOX_WAVES} if "waves" in parameter_names else parameters


def build_deployments(
    blocks: SandboxBlocks | None = None, wake_every: timedelta = timedelta(minutes=DEFAULT_WAKE_MINUTES)
) -> list[RunnerDeployment]:
    blocks = blocks or SandboxBlocks()
    deployments: list[RunnerDeployment] = []
    # to_deployment is sync here (called outside an event loop); its signature also admits a coroutine
    for runbook in RUNBOOKS.values():
        rotation = Cron(ROTATION_CRON, timezone=ROTATION_TIMEZONE, day_or=False)
        every = [Interval(timedelta(minutes=runbook.every_minutes))] if runbook.every_minutes else None
        schedules = [rotation] if runbook.scheduled else every
        deployments.append(cast(RunnerDeployment, runbook.load().to_deployment(
            name=DEPLOYMENT_NAME,
            description=runbook.summary,
            parameters=sandbox_parameters(default_parameters(runbook, blocks), runbook.parameter_names()),
            schedules=schedules,
            tags=["ppcmk", "sandbox"],
        )))
    deployments.append(cast(RunnerDeployment, wake.to_deployment(
        name=DEPLOYMENT_NAME,
        description="resume runs parked during long link/unlink waits",
        schedules=[Interval(wake_every)],
        tags=["ppcmk", "sandbox"],
    )))
    return deployments


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve every ppcmk runbook as a deployment.")
    parser.add_argument("--limit", type=int, default=4, help="maximum concurrent flow runs in this process")
    parser.add_argument("--wake-every-minutes", type=float, default=DEFAULT_WAKE_MINUTES,
                        help="how often ppcmk-wake resumes parked runs")
    arguments = parser.parse_args()
    if arguments.wake_every_minutes <= 0:
        parser.error("--wake-every-minutes: use a positive number of minutes (default 10)")
    # Keep the rotation schedule active across restarts: the next `ppcmk serve` continues where this stopped.
    serve(*build_deployments(wake_every=timedelta(minutes=arguments.wake_every_minutes)),
          limit=arguments.limit, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
