"""Serve every runbook as a deployment from one process: `python -m deployments.serve`.

Started by `ppcmk serve` (and the end-to-end test) with PREFECT_API_URL pointing at the server. Rotation runs
on its cron schedule; everything else on demand from the UI, `ppcmk run --deployment` or the API. Each flow
run executes in a child process, and approvals in deployment runs suspend, so a waiting run holds no process.
"""

from __future__ import annotations

import argparse
from typing import cast

from prefect import serve
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from deployments.catalog import ROTATION_CRON, ROTATION_TIMEZONE, RUNBOOKS, SandboxBlocks, default_parameters

DEPLOYMENT_NAME = "sandbox"


def build_deployments(blocks: SandboxBlocks | None = None) -> list[RunnerDeployment]:
    blocks = blocks or SandboxBlocks()
    deployments: list[RunnerDeployment] = []
    for runbook in RUNBOOKS.values():
        rotation = Cron(ROTATION_CRON, timezone=ROTATION_TIMEZONE, day_or=False)
        schedules = [rotation] if runbook.scheduled else None
        # to_deployment is sync here (called outside an event loop); its signature also admits a coroutine
        deployments.append(cast(RunnerDeployment, runbook.load().to_deployment(
            name=DEPLOYMENT_NAME,
            description=runbook.summary,
            parameters=default_parameters(runbook, blocks),
            schedules=schedules,
            tags=["ppcmk", "sandbox"],
        )))
    return deployments


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve every ppcmk runbook as a deployment.")
    parser.add_argument("--limit", type=int, default=4, help="maximum concurrent flow runs in this process")
    arguments = parser.parse_args()
    # Keep the rotation schedule active across restarts: the next `ppcmk serve` continues where this stopped.
    serve(*build_deployments(), limit=arguments.limit, pause_on_shutdown=False)


if __name__ == "__main__":
    main()
