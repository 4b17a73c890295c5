"""The CLI finds what is running, or says so: each sandbox keeps its own profile, so one stopping leaves the
other findable; without a Prefect API the commands stop with exit 4 and the fix (never a temporary server);
bad parameters end with exit 2 and one line, locally and through a deployment; a plan with errors is its exit
code and its message, never a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ppcmk_blocks import CmkTarget
from ppcmk_cli import app
from ppcmk_cli.exit_codes import ExitCode
from ppcmk_cli.profile import SandboxProfile, find_profile, instance_path, profile_path
from ppcmk_deployments.serve import build_deployments, deployment_full_name

ROOT = Path(__file__).resolve().parents[2]


def start_sandbox_up(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ppcmk_cli", "sandbox", "up"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def own_profile(process: subprocess.Popen[str]) -> SandboxProfile:
    """Waits for the instance's profile (it is written before the endpoints line)."""
    assert process.stdout is not None
    process.stdout.readline()
    return SandboxProfile.model_validate_json(instance_path(process.pid).read_text())


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(timeout=20)


def test_a_second_sandbox_stopping_leaves_the_first_one_findable(ppcmk_home: Path, runner: CliRunner) -> None:
    env = {**os.environ, "PPCMK_HOME": str(ppcmk_home), "PYTHONPATH": str(ROOT)}
    first = start_sandbox_up(env)
    try:
        first_profile = own_profile(first)
        second = start_sandbox_up(env)
        try:
            assert own_profile(second).url != first_profile.url
            assert find_profile() is not None and find_profile().pid == second.pid  # type: ignore[union-attr]
        finally:
            stop(second)
        assert not instance_path(second.pid).exists()
        found = find_profile()
        assert found is not None and found.url == first_profile.url
        assert SandboxProfile.model_validate_json(profile_path().read_text()).pid == first.pid
        shown = runner.invoke(app, ["sandbox", "clock", "show"])
        assert shown.exit_code == 0, shown.output
    finally:
        stop(first)
    assert find_profile() is None and not profile_path().exists()


def test_a_killed_sandbox_profile_is_not_taken_for_a_running_one(ppcmk_home: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    from ppcmk_cli.profile import save_profile

    save_profile(SandboxProfile(url="https://127.0.0.1:1", ca="ca.pem", tenant_id="t", subscription_id="s",
                                pid=gone.pid))
    assert find_profile() is None


@pytest.mark.parametrize("command", [["approvals"], ["run", "report"], ["runs", "wake"]],
                         ids=["approvals", "run", "runs-wake"])
def test_without_a_prefect_api_the_cli_says_so_and_starts_no_server(tmp_path: Path,
                                                                    command: list[str]) -> None:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_API")}
    env.update(PPCMK_HOME=str(tmp_path / "ppcmk"), PREFECT_HOME=str(tmp_path / "prefect"),
               PYTHONPATH=str(ROOT))
    finished = subprocess.run([sys.executable, "-m", "ppcmk_cli", *command], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == ExitCode.UNAVAILABLE, finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1 and "ppcmk serve" in lines[0] and "PREFECT_API_URL" in lines[0], finished.stderr
    assert "temporary" not in finished.stderr.lower() and "Traceback" not in finished.stderr
    assert not list((tmp_path / "prefect").glob("*.db")), "a Prefect server database was created"


def one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("error:") and "Traceback" not in output, output
    return lines[0]


def onboard_blocks(blocks: dict[str, str]) -> list[str]:
    return ["-p", f"kv_connection={blocks['kv-admin']}", "-p", f"pp_connection={blocks['pp-admin']}",
            "-p", f"target={blocks['target']}", "-p", "pp_admin=pp-admin@contoso.example",
            "-p", 'selector={"environment_ids": ["Contoso Production"]}']


def test_a_bad_parameter_of_a_local_run_is_exit_2_and_one_line(
        runner: CliRunner, ppcmk_home: Path, sandbox_blocks: dict[str, str]) -> None:
    result = runner.invoke(app, ["run", "onboard", *onboard_blocks(sandbox_blocks),
                                 "-p", "approval_poll_s=often"])
    assert result.exit_code == ExitCode.USAGE
    line = one_error_line(result.output)
    assert "approval_poll_s" in line and "--param" in line


def test_a_bad_parameter_through_the_deployment_is_exit_2_and_one_line(
        runner: CliRunner, ppcmk_home: Path, sandbox_blocks: dict[str, str]) -> None:
    (onboard,) = [d for d in build_deployments() if d.flow_name == "onboard"]
    onboard.apply()  # registered as `ppcmk serve` does; no process needs to serve it to be refused
    assert deployment_full_name("onboard").startswith("onboard/")
    result = runner.invoke(app, ["run", "onboard", "--deployment", "-p", "approval_poll_s=often"])
    assert result.exit_code == ExitCode.USAGE
    line = one_error_line(result.output)  # checked here, before the server is asked
    assert "--param approval_poll_s" in line and "not a number" in line
    refused = runner.invoke(app, ["run", "onboard", "--deployment", "-p", "dry_run=maybe"])
    assert refused.exit_code == ExitCode.USAGE
    line = one_error_line(refused.output)  # a type only the flow's schema knows: the server refuses it
    assert "dry_run" in line and "refused the parameters" in line


def test_a_plan_with_errors_is_exit_1_with_its_findings_and_no_traceback(
        runner: CliRunner, ppcmk_home: Path, sandbox_blocks: dict[str, str], cloud: Any) -> None:
    CmkTarget.load(sandbox_blocks["target"]).model_copy(update={"policy_name": "ep-nowhere"}).save(
        "cli-target-no-policy", overwrite=True)
    result = runner.invoke(app, ["run", "revert", "--dry-run",
                                 "-p", f"connection={sandbox_blocks['runbook']}",
                                 "-p", "target=cli-target-no-policy",
                                 "-p", "requester=pp-admin@contoso.example"])
    assert result.exit_code == ExitCode.FAILED
    assert "the plan has 1 error(s)" in result.output and "ep-nowhere" in result.output
    assert "Traceback" not in result.output and "Encountered exception" not in result.output
