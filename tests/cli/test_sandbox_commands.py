"""`ppcmk sandbox ...` against the in-process sandbox, through its admin routes over verified HTTPS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
from typer.testing import CliRunner

from ppcmk_cli import app
from ppcmk_cli.exit_codes import ExitCode
from ppcmk_cli.profile import SandboxProfile


def test_clock_advance_moves_the_sandbox_clock(runner: CliRunner, profiled_cloud: object) -> None:
    before = profiled_cloud.clock.now()  # type: ignore[attr-defined]
    result = runner.invoke(app, ["sandbox", "clock", "advance", "1d2h"])
    assert result.exit_code == 0, result.output
    assert profiled_cloud.clock.now() - before >= timedelta(days=1, hours=2)  # type: ignore[attr-defined]
    assert "Sandbox clock is now" in result.output


def test_bad_duration_is_a_usage_error_naming_the_format(runner: CliRunner, ppcmk_home: Path) -> None:
    result = runner.invoke(app, ["sandbox", "clock", "advance", "two hours"])
    assert result.exit_code == ExitCode.USAGE
    assert "90s, 2h, 7d" in result.output


def test_without_a_running_sandbox_the_command_says_how_to_start_one(runner: CliRunner,
                                                                      ppcmk_home: Path) -> None:
    result = runner.invoke(app, ["sandbox", "faults", "clear"])
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "ppcmk sandbox up" in result.output


def test_faults_add_then_clear(runner: CliRunner, profiled_cloud: object) -> None:
    endpoints = profiled_cloud.endpoints  # type: ignore[attr-defined]
    added = runner.invoke(app, ["sandbox", "faults", "add", "--path", "^/subscriptions/", "--status", "429",
                                "--times", "1", "--retry-after", "1"])
    assert added.exit_code == 0, added.output
    url = f"{endpoints.url}/subscriptions/{endpoints.subscription_id}/providers/Microsoft.PowerPlatform"
    token = profiled_cloud.token_for("kv-admin", "https://management.azure.com")  # type: ignore[attr-defined]
    with httpx.Client(verify=str(endpoints.ca)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        throttled = client.get(url, params={"api-version": "2021-04-01"}, headers=headers)
        assert throttled.status_code == 429
        runner.invoke(app, ["sandbox", "faults", "add", "--path", "^/subscriptions/", "--status", "503"])
        cleared = runner.invoke(app, ["sandbox", "faults", "clear"])
        assert cleared.exit_code == 0, cleared.output
        after = client.get(url, params={"api-version": "2021-04-01"}, headers=headers)
        assert after.status_code not in (429, 503)


def test_fault_probability_out_of_range_is_refused_before_any_call(runner: CliRunner,
                                                                   ppcmk_home: Path) -> None:
    result = runner.invoke(app, ["sandbox", "faults", "add", "--path", "x", "--probability", "2"])
    assert result.exit_code == ExitCode.USAGE
    assert "--probability" in result.output


def test_sandbox_up_publishes_a_profile_and_cleans_up_on_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "PPCMK_HOME": str(tmp_path)}
    process = subprocess.Popen([sys.executable, "-m", "ppcmk_cli", "sandbox", "up"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    profile_file = tmp_path / "sandbox.json"
    try:
        deadline = time.monotonic() + 30
        while not profile_file.exists():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, "sandbox up did not publish its profile"
            time.sleep(0.05)
        profile = SandboxProfile.model_validate_json(profile_file.read_text())
        assert profile.pid == process.pid
        with httpx.Client(verify=profile.ca) as client:
            assert client.get(f"{profile.url}/_sandbox/clock").status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=20)
    assert process.returncode == 0, output
    assert "Sandbox stopped." in output
    assert not profile_file.exists()
    # where the principals' secrets and passwords are, never what they are
    assert profile.credentials and profile.credentials in output and "passwords" in output
    assert "client_secret" not in output and "password\"" not in output


def test_run_names_the_runbooks_when_the_flow_is_unknown(runner: CliRunner, ppcmk_home: Path) -> None:
    result = runner.invoke(app, ["run", "rotate-everything"])
    assert result.exit_code == ExitCode.USAGE
    assert "onboard" in result.output and "migrate_byok" in result.output
