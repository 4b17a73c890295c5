"""`ppcmk approvals` / `ppcmk approve` answer a run waiting at a real ppcmk approval pause."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
from typer.testing import CliRunner

from ppcmk.cli import app
from ppcmk.cli.exit_codes import ExitCode

PLAN_HASH = "ab" * 32


def _paused_run_id(run_name: str, timeout: float = 30) -> UUID:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            named = FlowRunFilter(name=FlowRunFilterName(any_=[run_name]))
            runs = client.read_flow_runs(flow_run_filter=named)
            for run in runs:
                if run.state and run.state.is_paused():
                    return run.id
            time.sleep(0.1)
    raise TimeoutError(f"no paused run named {run_name}")


@pytest.fixture
def waiting_approval(prefect_backend: None, ppcmk_home: Path, request: pytest.FixtureRequest) -> Iterator[
        tuple[UUID, dict[str, Any]]]:
    """A real ppcmk approval pause (ppcmk.approvals.await_approval) waiting in a thread."""
    from ppcmk.approvals import await_approval

    key = f"cli-{request.node.name.replace('_', '-')[-40:]}"
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("state", await_approval(
        "### Onboard 3 environments\nLink env-a, env-b, env-c", PLAN_HASH, key, 60, 1, return_state=True)),
        daemon=True)
    thread.start()
    yield _paused_run_id(f"approval-{key}"), outcome
    thread.join(timeout=30)


def test_approvals_lists_the_waiting_run_with_its_plan(runner: CliRunner,
                                                       waiting_approval: tuple[UUID, dict[str, Any]]) -> None:
    run_id, _ = waiting_approval
    table = runner.invoke(app, ["approvals"])
    assert table.exit_code == 0, table.output
    assert "Runs waiting for approval" in table.output
    listed = runner.invoke(app, ["approvals", "--json"])
    assert listed.exit_code == 0, listed.output
    waiting = {item["run_id"]: item for item in json.loads(listed.output)}
    assert waiting[str(run_id)]["description"].startswith("### Onboard 3 environments")
    assert waiting[str(run_id)]["flow"] == "ppcmk-approval"
    runner.invoke(app, ["approve", str(run_id), "--as", "pp-admin@contoso.com"])


def test_approve_resumes_the_run_with_a_decision_bound_to_the_plan(
        runner: CliRunner, waiting_approval: tuple[UUID, dict[str, Any]]) -> None:
    run_id, outcome = waiting_approval
    result = runner.invoke(app, ["approve", str(run_id), "--as", "pp-admin@contoso.com", "--comment", "CHG-7",
                                 "--connection", "sandbox-pp-admin"])
    assert result.exit_code == 0, result.output
    deadline = time.monotonic() + 30
    while "state" not in outcome and time.monotonic() < deadline:
        time.sleep(0.05)
    decision = outcome["state"].result()
    assert decision["approve"] is True
    assert decision["approver"] == "pp-admin@contoso.com"
    assert decision["plan_hash"] == PLAN_HASH
    assert decision["comment"] == "CHG-7"
    assert decision["connection_block"] == "sandbox-pp-admin"


def test_reject_sends_a_no(runner: CliRunner, waiting_approval: tuple[UUID, dict[str, Any]]) -> None:
    run_id, outcome = waiting_approval
    result = runner.invoke(app, ["approve", str(run_id), "--as", "pp-admin@contoso.com", "--reject"])
    assert result.exit_code == 0, result.output
    assert "Rejected" in result.output
    deadline = time.monotonic() + 30
    while "state" not in outcome and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outcome["state"].result()["approve"] is False


def test_an_invalid_approver_is_refused_before_resuming(
        runner: CliRunner, waiting_approval: tuple[UUID, dict[str, Any]]) -> None:
    run_id, _ = waiting_approval
    refused = runner.invoke(app, ["approve", str(run_id), "--as", "two words"])
    assert refused.exit_code == ExitCode.USAGE
    assert "approver" in refused.output
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(run_id).state
        assert state is not None and state.is_paused()
    runner.invoke(app, ["approve", str(run_id), "--as", "pp-admin@contoso.com", "--reject"])


def test_approving_a_run_that_does_not_exist_is_a_usage_error(runner: CliRunner, prefect_backend: None,
                                                              ppcmk_home: Path) -> None:
    result = runner.invoke(app, ["approve", "00000000-0000-0000-0000-000000000000", "--as", "bob"])
    assert result.exit_code == ExitCode.USAGE
    assert "no flow run" in result.output
    not_an_id = runner.invoke(app, ["approve", "last-one", "--as", "bob"])
    assert not_an_id.exit_code == ExitCode.USAGE
    assert "ppcmk approvals" in not_an_id.output
