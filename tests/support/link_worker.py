"""A worker process that links one environment, for tests that kill it (tests/faults/test_killed_worker.py).

`python -m tests.support.link_worker run <block> <environment> <system id> --die <moment>` runs `link_one`
(claim the environment, as a runbook's plan does, then the `link` task) in a flow run of its own, and sends
itself SIGKILL at `moment`: `before-token` when the service has accepted the link and the continuation token
is about to be kept in the claim, `after-token` once it is. `python -m tests.support.link_worker retry
<flow run id>` runs that flow run again, as a worker picks up a run retried from the UI. A run that ends
prints its EnvironmentChange as the last line.
"""

from __future__ import annotations

import argparse
import os
import signal
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect import flow
from prefect.flow_engine import load_flow_run, run_flow

from ppcmk.models.environments import EnvironmentChange
from ppcmk.safety import claims
from ppcmk.safety.claims import HeldClaim, OperationRecord
from ppcmk_flows._runbook import load_connection
from ppcmk_tasks.environments import link

DEATHS = ("before-token", "after-token")


@flow(name="link-one-environment")
def link_one(connection_block: str, environment_id: str, system_id: str) -> EnvironmentChange:
    """Claim the environment, then link it to the policy with `system_id` and wait."""
    subject = claims.Subject("environment", environment_id, intent=f"link to {system_id}")
    conflicts = claims.claim([subject], "link-one")
    if conflicts:
        raise RuntimeError(conflicts[0].finding().message)
    return link(load_connection(connection_block), environment_id, system_id)


def dying_at(moment: str) -> None:
    """SIGKILL this process at `moment` of the link: around the write of its continuation token."""
    note: Callable[[HeldClaim, OperationRecord | None], None] = HeldClaim.note

    def note_then_maybe_die(claim: HeldClaim, operation: OperationRecord | None) -> None:
        accepted = operation is not None and operation.token is not None
        if accepted and moment == "before-token":
            os.kill(os.getpid(), signal.SIGKILL)
        note(claim, operation)
        if accepted and moment == "after-token":
            os.kill(os.getpid(), signal.SIGKILL)

    HeldClaim.note = note_then_maybe_die  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(prog="link_worker")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run")
    run.add_argument("block")
    run.add_argument("environment")
    run.add_argument("system_id")
    run.add_argument("--die", choices=DEATHS)
    retry = commands.add_parser("retry")
    retry.add_argument("flow_run_id", type=UUID)
    args = parser.parse_args(argv)
    if args.command == "run":
        if args.die:
            dying_at(args.die)
        change = link_one(args.block, args.environment, args.system_id)
    else:
        change = run_flow(link_one, flow_run=load_flow_run(args.flow_run_id))
    print(EnvironmentChange.model_validate(change).model_dump_json())


if __name__ == "__main__":
    main()
