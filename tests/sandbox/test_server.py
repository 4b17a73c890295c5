"""The sandbox server: TLS, endpoints, tokens, audiences, admin routes, persistence, the `up` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from azure.identity import ManagedIdentityCredential
from typer.testing import CliRunner

from ppcmk_cli import app
from ppcmk_cli.exit_codes import ExitCode
from ppcmk_sandbox import Sandbox
from tests.support.arm import vault_id
from tests.support.sdk_clients import http, key_client

REPO = Path(__file__).resolve().parents[2]


def test_endpoints_name_one_origin_per_vault_and_a_ca_that_verifies(cloud: Sandbox) -> None:
    endpoints = cloud.endpoints
    assert set(endpoints.vaults) == {"kv-cmk-prod", "kv-nopurge", "kv-private", "hsm-cmk"}
    assert len({endpoints.url, *endpoints.vaults.values()}) == 5
    with httpx.Client(verify=endpoints.ca) as client:
        assert client.get(f"{endpoints.url}/_sandbox/endpoints").json()["vaults"] == endpoints.vaults
    with pytest.raises(httpx.ConnectError):  # an unknown CA is refused: TLS is really verified
        httpx.get(f"{endpoints.url}/_sandbox/clock")


def test_urls_follow_the_request_host(cloud: Sandbox) -> None:
    localhost = cloud.endpoints.url.replace("127.0.0.1", "localhost")
    with httpx.Client(verify=cloud.endpoints.ca) as client:
        vaults = client.get(f"{localhost}/_sandbox/endpoints").json()["vaults"]
    assert vaults["kv-cmk-prod"].startswith("https://localhost:")


def test_wrong_audience_and_missing_token_are_401(cloud: Sandbox) -> None:
    path = vault_id(cloud)
    with http(cloud, "kv-admin", audience="https://vault.azure.net") as wrong:
        response = wrong.get(path, params={"api-version": "2026-05-15"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    with http(cloud) as anonymous:
        assert anonymous.get(path, params={"api-version": "2026-05-15"}).status_code == 401
    with http(cloud, "kv-admin") as right:
        assert right.get(path, params={"api-version": "2026-05-15"}).status_code == 200
        missing = right.get(path)
    assert missing.status_code == 400 and missing.json()["error"]["code"] == "MissingApiVersionParameter"


def test_managed_identity_credential_works_against_the_identity_endpoint(
    cloud: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", cloud.endpoints.identity)
    monkeypatch.setenv("IDENTITY_HEADER", cloud.authority.credentials.of("runbook").identity_header)
    credential = ManagedIdentityCredential(connection_verify=cloud.endpoints.ca)
    token = credential.get_token("https://management.azure.com/.default")
    with httpx.Client(base_url=cloud.endpoints.url, verify=cloud.endpoints.ca) as client:
        response = client.get(
            vault_id(cloud),
            params={"api-version": "2026-05-15"},
            headers={"Authorization": f"Bearer {token.token}"},
        )
    assert response.status_code == 200
    assert cloud.log.entries[-1].caller == "runbook"


def test_admin_routes_move_the_clock_and_reset(cloud: Sandbox) -> None:
    start = cloud.clock.now()
    with http(cloud) as client:
        moved = client.post("/_sandbox/clock/advance", json={"seconds": 3600}).json()
        assert moved["now"] == (start.replace(hour=start.hour + 1)).isoformat()
        bad = client.post("/_sandbox/clock/advance", json={"seconds": -5})
        assert bad.status_code == 400 and "seconds" in bad.json()["error"]["message"]
        key_client(cloud, "kv-cmk-prod").rotate_key("cmk-prod")
        assert client.post("/_sandbox/reset").status_code == 200
    assert cloud.clock.now() == start
    assert len(cloud.world.keyvault.get("kv-cmk-prod").key("cmk-prod").versions) == 1
    assert [e.path for e in cloud.log.entries] == ["/_sandbox/reset"]  # the log starts afresh


def test_state_file_restores_the_world_and_ports_after_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with Sandbox(state_file=state) as first:
        client = key_client(first, "kv-nopurge")
        created = client.create_rsa_key("survivor", size=2048)
        first.advance(timedelta(days=3))
        endpoints = first.endpoints
    with Sandbox(state_file=state) as second:
        assert second.endpoints.url == endpoints.url and second.endpoints.vaults == endpoints.vaults
        assert second.clock.now() == first.clock.now()
        restored = key_client(second, "kv-nopurge").get_key("survivor")
        assert restored.id == created.id and restored.key.n == created.key.n


UP_COMMANDS = {"python-m-sandbox": ["-m", "ppcmk_sandbox", "up"],
               "ppcmk": ["-m", "ppcmk_cli", "sandbox", "up"]}


@pytest.mark.parametrize("command", UP_COMMANDS.values(), ids=UP_COMMANDS.keys())
def test_up_prints_one_json_line_and_stops_on_sigterm(tmp_path: Path, command: list[str]) -> None:
    """Both commands share `serve_forever`; `ppcmk sandbox up` also publishes its profile before the line."""
    profile = tmp_path / "home" / "sandbox.json"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, *command, "--state", str(tmp_path / "s.json")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), "PPCMK_HOME": str(tmp_path / "home")},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        elapsed = time.perf_counter() - started
        endpoints = json.loads(line)
        assert {"arm", "bap", "graph", "vaults", "ca", "token", "identity", "url", "now"} <= set(endpoints)
        with httpx.Client(verify=endpoints["ca"]) as client:
            assert client.get(f"{endpoints['url']}/_sandbox/clock").status_code == 200
        if "cli" in command:
            assert json.loads(profile.read_text())["url"] == endpoints["url"]
        print(f"{' '.join(command)}: endpoints line after {elapsed:.2f}s")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    assert not profile.exists()
    assert process.stdout.read() == ""  # nothing but the one line on stdout


def test_ppcmk_sandbox_up_on_a_taken_port_is_a_usage_error_naming_the_option(
    cloud: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    result = CliRunner().invoke(app, ["sandbox", "up", "--port", str(cloud.port)])
    assert result.exit_code == ExitCode.USAGE
    assert "--port" in result.output and "choose another port" in result.output
    assert not (tmp_path / "sandbox.json").exists()
