"""`ppcmk approvals` / `ppcmk approve` against a run waiting at a real ppcmk approval: what is listed, how
`ppcmk approve` signs the person in (a device code they enter at the identity provider's verification page),
what is checked before resuming (exit 3, nothing submitted), and the run's verdict reported with its exit
code."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from typer.testing import CliRunner

from ppcmk_cli import app
from ppcmk_cli import approvals as approvals_cli
from ppcmk_cli.exit_codes import ExitCode
from tests.cli.test_narrow_terminal import words
from tests.flows.approval_harness import POLICY, run
from tests.support.approving import over_https, ppcmk_approve
from tests.support.runs import PendingApproval, RunningFlow, answer, wait_for_approval
from tests.support.scenario import PP_ADMIN

pytestmark = pytest.mark.usefixtures("prefect_backend")


@pytest.fixture(scope="module")
def blocks(sandbox_blocks: dict[str, str]) -> dict[str, str]:
    return sandbox_blocks


@pytest.fixture
def waiting(blocks: dict[str, str], ppcmk_home: Path) -> Iterator[tuple[RunningFlow, PendingApproval]]:
    running = run(blocks)
    pending = wait_for_approval(running)
    yield running, pending
    if running.thread.is_alive():  # leave no run waiting for the next test
        answer(pending, approve=False, approver=PP_ADMIN)
        running.state()


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
    assert "--connection" not in table.output and "signs you in" in table.output
    listed = {item["run_id"]: item for item in json.loads(runner.invoke(app, ["approvals", "--json"]).output)}
    request = listed[str(pending.flow_run_id)]["request"]
    assert request["environments"] == ["Contoso Sales"]
    assert request["may_approve"].startswith("any administrator but the requester")


def test_approvals_at_80_columns_break_no_word(
    runner: CliRunner, waiting: tuple[RunningFlow, PendingApproval], monkeypatch: pytest.MonkeyPatch
) -> None:
    printed = {}
    for width in (400, 80):
        monkeypatch.setattr(approvals_cli.console, "width", width)
        printed[width] = runner.invoke(app, ["approvals"]).stdout
    table = [line for line in printed[80].splitlines() if re.search(r"[\u2500-\u257f]", line)]
    assert table and max(len(line) for line in table) <= 80, printed[80]
    assert str(waiting[1].flow_run_id) in printed[80]  # the id whole, on one line
    broken = words(printed[80]) - words(printed[400])
    assert not broken, f"split across lines at 80 columns: {sorted(broken)}\n{printed[80]}"


def test_the_person_signs_in_with_a_device_code_and_the_run_continues(
        cloud: Any, ppcmk_home: Path, waiting: tuple[RunningFlow, PendingApproval]) -> None:
    running, pending = waiting
    prefix = str(pending.flow_run_id)[:8]  # the run by its first characters, as --plan takes the plan's
    result = ppcmk_approve(cloud, ppcmk_home, over_https(cloud, "pp-admin"), prefix, "--comment", "CHG-7",
                           "--plan", pending.plan_hash[:12])
    assert result.exit_code == ExitCode.OK, result.output
    assert "To prove who you are, open" in result.output
    assert "Accepted: Power Platform Admin (pp-admin@contoso.example) approved" in result.output
    assert running.result()["approvers"] == ["pp-admin@contoso.example"]


def test_a_rejection_exits_with_its_own_code(cloud: Any, ppcmk_home: Path,
                                             waiting: tuple[RunningFlow, PendingApproval]) -> None:
    running, pending = waiting
    result = ppcmk_approve(cloud, ppcmk_home, over_https(cloud, "pp-admin"), str(pending.flow_run_id),
                           "--reject", "--comment", "not now")
    assert result.exit_code == ExitCode.REJECTED == 5, result.output
    assert "ends Rejected" in result.output and "not now" in result.output
    assert running.result()["status"] == "ApprovalRejected"


def test_the_requester_signed_in_is_refused_before_resuming(
        cloud: Any, ppcmk_home: Path, waiting: tuple[RunningFlow, PendingApproval]) -> None:
    _, pending = waiting
    result = ppcmk_approve(cloud, ppcmk_home, over_https(cloud, "kv-admin"), str(pending.flow_run_id))
    assert result.exit_code == ExitCode.BLOCKED == 3, result.output
    assert "not resumed" in result.output and "requested this run and cannot approve it" in result.output
    assert still_waiting(pending)


def test_a_changed_plan_is_refused_before_anyone_signs_in(
        cloud: Any, ppcmk_home: Path, waiting: tuple[RunningFlow, PendingApproval]) -> None:
    _, pending = waiting
    result = ppcmk_approve(cloud, ppcmk_home, None, str(pending.flow_run_id), "--plan", "0" * 12)
    assert result.exit_code == ExitCode.BLOCKED and "the plan changed" in result.output
    assert still_waiting(pending)


def test_lock_forms_need_the_confirmation_a_power_platform_role_and_two_people(
        cloud: Any, blocks: dict[str, str], ppcmk_home: Path) -> None:
    running = run(blocks, approvers_needed=2, confirm_text=POLICY)
    pending = wait_for_approval(running)
    run_id = str(pending.flow_run_id)
    missing = ppcmk_approve(cloud, ppcmk_home, over_https(cloud, "pp-admin"), run_id)
    assert missing.exit_code == ExitCode.BLOCKED and f"--confirm {POLICY}" in missing.output
    outsider = ppcmk_approve(cloud, ppcmk_home, over_https(cloud, "outsider"), run_id, "--confirm", POLICY)
    assert outsider.exit_code == ExitCode.BLOCKED and "holds neither" in outsider.output
    first = ppcmk_approve(cloud, ppcmk_home, over_https(cloud, "pp-admin"), run_id, "--confirm", POLICY)
    assert first.exit_code == ExitCode.OK and "1 more approver" in first.output, first.output
    second = str(wait_for_approval(running).flow_run_id)
    again = ppcmk_approve(cloud, ppcmk_home, over_https(cloud, "pp-admin"), second, "--confirm", POLICY)
    assert again.exit_code == ExitCode.BLOCKED and "already approved" in again.output
    other = ppcmk_approve(cloud, ppcmk_home, over_https(cloud, "pp-admin-2"), second, "--confirm", POLICY)
    assert other.exit_code == ExitCode.OK, other.output
    assert running.result()["status"] == "approved"


def test_approving_a_run_that_does_not_exist_is_a_usage_error(runner: CliRunner, ppcmk_home: Path) -> None:
    result = runner.invoke(app, ["approve", "00000000-0000-0000-0000-000000000000"])
    assert result.exit_code == ExitCode.USAGE
    assert "no flow run" in said(result)
    not_an_id = runner.invoke(app, ["approve", "last-one"])
    assert not_an_id.exit_code == ExitCode.USAGE
    assert "ppcmk approvals" in not_an_id.output
