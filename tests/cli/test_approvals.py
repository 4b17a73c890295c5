"""`ppcmk approvals` / `ppcmk approve` against a run waiting at a real ppcmk approval: what is listed, what is
checked before resuming (exit 3, nothing submitted), and the run's verdict reported with its exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from ppcmk_cli import app
from ppcmk_cli import approvals as approvals_cli
from ppcmk_cli.exit_codes import ExitCode
from tests.flows.approval_harness import GHOST, POLICY, run, with_ghost
from tests.support.runs import PendingApproval, RunningFlow, wait_for_approval

pytestmark = pytest.mark.usefixtures("prefect_backend")


@pytest.fixture(scope="module")
def blocks(sandbox_blocks: dict[str, str]) -> dict[str, str]:
    return with_ghost(sandbox_blocks)


@pytest.fixture
def waiting(blocks: dict[str, str], ppcmk_home: Path) -> Iterator[tuple[RunningFlow, PendingApproval]]:
    running = run(blocks)
    pending = wait_for_approval(running)
    yield running, pending
    if running.thread.is_alive():  # leave no run waiting for the next test
        CliRunner().invoke(app, ["approve", str(pending.flow_run_id), "--connection", "sandbox-pp-admin",
                                 "--reject", "--wait", "10"])
        running.state()


def approve(runner: CliRunner, pending: PendingApproval, *options: str) -> Any:
    return runner.invoke(app, ["approve", str(pending.flow_run_id), *options, "--wait", "30"])


def said(result: Any) -> str:
    """The output as one line (the console wraps at 80 columns)."""
    return " ".join(result.output.split())


def still_waiting(pending: PendingApproval) -> bool:
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(pending.flow_run_id).state
    return state is not None and state.is_paused()


def test_approvals_lists_environments_requester_and_who_may_approve(
    runner: CliRunner, waiting: tuple[RunningFlow, PendingApproval], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, pending = waiting
    monkeypatch.setattr(approvals_cli.console, "width", 300)  # one line per run
    table = runner.invoke(app, ["approvals"])
    assert table.exit_code == 0, table.output
    assert "Contoso Sales" in table.output and "Key Vault Admin" in table.output
    listed = {item["run_id"]: item for item in json.loads(runner.invoke(app, ["approvals", "--json"]).output)}
    request = listed[str(pending.flow_run_id)]["request"]
    assert request["environments"] == ["Contoso Sales"]
    assert request["may_approve"].startswith("any administrator but the requester")


def test_an_approval_is_accepted_and_the_run_continues(
        runner: CliRunner, waiting: tuple[RunningFlow, PendingApproval]) -> None:
    running, pending = waiting
    prefix = str(pending.flow_run_id)[:8]  # the run by its first characters, as --plan takes the plan's
    result = runner.invoke(app, ["approve", prefix, "--connection", "sandbox-pp-admin", "--as",
                                 "pp-admin@contoso.example", "--comment", "CHG-7", "--plan",
                                 pending.plan_hash[:12], "--wait", "30"])
    assert result.exit_code == ExitCode.OK, result.output
    assert "Accepted: Power Platform Admin (pp-admin@contoso.example) approved" in said(result)
    assert running.result()["approvers"] == ["pp-admin@contoso.example"]


def test_a_rejection_exits_with_its_own_code(runner: CliRunner,
                                             waiting: tuple[RunningFlow, PendingApproval]) -> None:
    running, pending = waiting
    result = approve(runner, pending, "--connection", "sandbox-pp-admin", "--reject", "--comment", "not now")
    assert result.exit_code == ExitCode.REJECTED == 5, result.output
    assert "ends Rejected" in said(result) and "not now" in said(result)
    assert running.result()["status"] == "ApprovalRejected"


REFUSED_BEFORE_RESUMING = {
    "self-approval": (["--connection", "sandbox-kv-admin"], "requested this run and cannot approve it"),
    "unproven approver": (["--connection", GHOST], "could not sign in"),
    "typed UPN not backed": (["--connection", "sandbox-pp-admin", "--as", "pp-admin-2@contoso.example"],
                             "is not who connection block"),
    "unknown block": (["--connection", "no-such-block"], "is not one of them"),
    "stale plan": (["--connection", "sandbox-pp-admin", "--plan", "0" * 12], "the plan changed"),
}


@pytest.mark.parametrize("case", REFUSED_BEFORE_RESUMING)
def test_refused_before_resuming_with_exit_3(case: str, runner: CliRunner,
                                             waiting: tuple[RunningFlow, PendingApproval]) -> None:
    options, reason = REFUSED_BEFORE_RESUMING[case]
    _, pending = waiting
    result = approve(runner, pending, *options)
    assert result.exit_code == ExitCode.BLOCKED == 3, result.output
    assert "not resumed" in said(result) and reason in said(result)
    assert still_waiting(pending)


def test_lock_forms_need_the_confirmation(runner: CliRunner, blocks: dict[str, str],
                                          ppcmk_home: Path) -> None:
    running = run(blocks, approvers_needed=2, confirm_text=POLICY)
    pending = wait_for_approval(running)
    missing = approve(runner, pending, "--connection", "sandbox-pp-admin")
    assert missing.exit_code == ExitCode.BLOCKED and f"--confirm {POLICY}" in said(missing)
    first = approve(runner, pending, "--connection", "sandbox-pp-admin", "--confirm", POLICY)
    assert first.exit_code == ExitCode.OK and "1 more approver" in said(first)
    second = wait_for_approval(running)
    again = approve(runner, second, "--connection", "sandbox-pp-admin", "--confirm", POLICY)
    assert again.exit_code == ExitCode.BLOCKED and "already approved" in said(again)
    assert approve(runner, second, "--connection", "sandbox-pp-admin-2", "--confirm", POLICY).exit_code == 0
    assert running.result()["status"] == "approved"


def test_approving_a_run_that_does_not_exist_is_a_usage_error(runner: CliRunner, ppcmk_home: Path) -> None:
    result = runner.invoke(app, ["approve", "00000000-0000-0000-0000-000000000000", "--connection", "x"])
    assert result.exit_code == ExitCode.USAGE
    assert "no flow run" in said(result)
    not_an_id = runner.invoke(app, ["approve", "last-one", "--connection", "x"])
    assert not_an_id.exit_code == ExitCode.USAGE
    assert "ppcmk approvals" in not_an_id.output
