"""A worker process killed with SIGKILL right after the service accepted its link, before or after the
operation's continuation token reached the environment's claim. Whether the crashed flow run is retried by
another process or a new run takes the environment over, the link is not sent again, and the re-run reports
it as its own change (Succeeded, attempt 1), although the service finished it while no process of the run
existed (a design that forgets the started operation with its process reads it as Unchanged)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL
from prefect.states import AwaitingRetry, Crashed

from ppcmk.models.environments import EnvironmentChange
from ppcmk.safety import claims
from tests.support.link_worker import link_one
from tests.support.runs import forget_run_state
from tests.support.scenario import LINKED_POLICY_SYSTEM_ID, PRODUCTION

# Each worker process starts Python, Prefect and ppcmk: 5 s on an idle machine, a minute on a loaded one.
WORKER_TIMEOUT_S = 150
pytestmark = [pytest.mark.usefixtures("prefect_backend"), pytest.mark.timeout(2 * WORKER_TIMEOUT_S + 60)]

ROOT = Path(__file__).resolve().parents[2]
LINK_POSTS = rf"/{PRODUCTION}/enterprisePolicies/Encryption/link$"
OPERATIONS_LIST = rf"/environmentmanagement/environments/{PRODUCTION}/operations$"


@pytest.fixture(autouse=True)
def no_claims() -> Iterator[None]:
    forget_run_state()  # other tests' runs on this session server may claim the reset environment
    yield
    forget_run_state()  # the crashed run's claim must not reach a later test


def worker(*arguments: str) -> subprocess.CompletedProcess[str]:
    """Run tests/support/link_worker.py in a process of its own, on this test's Prefect server."""
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    return subprocess.run([sys.executable, "-m", "tests.support.link_worker", *arguments], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=WORKER_TIMEOUT_S)


def holder() -> claims.Holder:
    with get_client(sync_client=True) as client:
        variable = client.read_variable_by_name(claims.Subject("environment", PRODUCTION).variable)
    assert variable is not None, "the environment is not claimed"
    return claims.Holder.model_validate(variable.value)


def killed(cloud: Any, blocks: dict[str, str], moment: str) -> claims.Holder:
    """A worker linking PRODUCTION dies at `moment`; the server marks its run Crashed (as the zombie-run
    automation does once its heartbeats stop), and the service finishes the link meanwhile. Returns the
    claim the dead run left."""
    died = worker("run", blocks["pp-admin"], PRODUCTION, LINKED_POLICY_SYSTEM_ID, "--die", moment)
    assert died.returncode == -signal.SIGKILL, died.stderr[-3000:]
    assert cloud.log.count(method="POST", path=LINK_POSTS) == 1
    left = holder()
    assert left.operation is not None and left.operation.kind == "link"
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(UUID(left.flow_run_id), Crashed(), force=True)
    cloud.advance(timedelta(seconds=cloud.world.settings.link_duration_seconds))
    return left


def linked(cloud: Any, change: EnvironmentChange) -> None:
    """The re-run's outcome: the dead worker's link as its own change, the environment encrypted by it, the
    link sent once in all, and nothing left in the claim to wait on."""
    assert change.status == "Succeeded" and change.attempts == 1, change
    assert change.environment is not None and change.environment.encrypted_by(LINKED_POLICY_SYSTEM_ID)
    assert cloud.log.count(method="POST", path=LINK_POSTS) == 1
    assert holder().operation is None


def test_a_retry_of_the_killed_run_reports_the_link_it_sent_before_it_died(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    left = killed(cloud, sandbox_blocks, "before-token")
    assert left.operation is not None and left.operation.token is None  # it died before keeping the token
    with get_client(sync_client=True) as client:  # Retry in the UI
        client.set_flow_run_state(UUID(left.flow_run_id), AwaitingRetry(), force=True)

    retried = worker("retry", left.flow_run_id)
    assert retried.returncode == 0, retried.stderr[-3000:]
    linked(cloud, EnvironmentChange.model_validate_json(retried.stdout.strip().splitlines()[-1]))
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(left.flow_run_id)).state
    assert state is not None and state.is_completed()  # the crashed run itself, retried
    assert holder().flow_run_id == left.flow_run_id


def test_a_new_run_takes_the_killed_runs_link_over_from_its_token(
    cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    left = killed(cloud, sandbox_blocks, "after-token")
    assert left.operation is not None and left.operation.token is not None
    asked_before = cloud.log.count(method="GET", path=OPERATIONS_LIST)

    change = link_one(sandbox_blocks["pp-admin"], PRODUCTION, LINKED_POLICY_SYSTEM_ID)
    linked(cloud, change)
    assert holder().flow_run_id != left.flow_run_id  # taken over, the started operation with it
    assert cloud.log.count(method="GET", path=OPERATIONS_LIST) == asked_before  # the token said where to look
