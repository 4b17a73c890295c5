"""A worker's flow run refuses to start half set up (each missing setting named with its fix), and the
setup commands create every block the deployments name, or none."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK,
    temporary_settings,
)
from typer.testing import CliRunner

from ppcmk import worker_setup
from ppcmk.audit import trail as audit
from ppcmk_blocks import CmkConnection
from ppcmk_cli import app
from ppcmk_cli.profile import SandboxProfile, save_profile
from ppcmk_cli.sandbox_blocks import service_credential
from ppcmk_cli.workers import PREFECT_FILE, block_names

ROOT = Path(__file__).resolve().parents[2]


def test_a_half_set_up_worker_names_every_missing_setting(
        prefect_backend: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for setting in (worker_setup.AUDIT_SETTING, worker_setup.RESULTS_SETTING):
        monkeypatch.delenv(setting, raising=False)
    with pytest.raises(worker_setup.WorkerNotReady) as refused:
        worker_setup.worker_ready()
    message = str(refused.value)
    for setting in (worker_setup.RESULTS_SETTING, worker_setup.AUDIT_SETTING, worker_setup.HEARTBEAT_SETTING):
        assert setting in message, message
    assert "ppcmk setup workers --shared-dir" in message


def test_a_set_up_worker_starts_wherever_it_is(
        prefect_backend: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The runbooks are imported from the installed package: no code folder, no change of directory."""
    LocalFileSystem(basepath=str(tmp_path / "results")).save("ws-results", overwrite=True)
    LocalFileSystem(basepath=str(tmp_path / "audit")).save("ws-audit", overwrite=True)
    monkeypatch.setenv(worker_setup.AUDIT_SETTING, "local-file-system/ws-audit")
    monkeypatch.chdir(tmp_path)
    with temporary_settings(updates={PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: "local-file-system/ws-results",
                                     PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        assert worker_setup.worker_ready() == {}
        assert Path.cwd() == tmp_path
        monkeypatch.setenv(worker_setup.AUDIT_SETTING, "local-file-system/not-there")
        with pytest.raises(worker_setup.WorkerNotReady, match="not-there"):
            worker_setup.worker_ready()


def test_the_deployments_name_their_blocks() -> None:
    assert block_names(PREFECT_FILE) == (["kv-admin", "pp-admin", "runbook"], ["cmk-target"])


def test_setup_blocks_from_a_file_saves_all_or_none(
        prefect_backend: None, sandbox_server: Any, tmp_path: Path) -> None:
    profile = SandboxProfile.from_endpoints(sandbox_server.endpoints, pid=-1)
    from ppcmk_cli.sandbox_blocks import sandbox_connection_data, sandbox_target_data

    connections = {name: sandbox_connection_data(profile, name) for name in ("kv-admin", "pp-admin")}
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps({"connections": connections, "targets": {"cmk-target": {"key_name": "k"}}}))
    refused = CliRunner().invoke(app, ["setup", "blocks", "--file", str(spec)])
    assert refused.exit_code == 2, refused.output
    assert "nothing was saved" in refused.output and "connections.runbook: missing" in refused.output
    assert "targets.cmk-target" in refused.output
    with pytest.raises(ValueError):
        Block.load("ppcmk-connection/kv-admin")

    connections["runbook"] = sandbox_connection_data(profile, "runbook")
    spec.write_text(json.dumps({"connections": connections, "targets": {"cmk-target": sandbox_target_data(
        profile)}}))
    saved = CliRunner().invoke(app, ["setup", "blocks", "--file", str(spec)])
    assert saved.exit_code == 0, saved.output
    assert CmkConnection.load("runbook").settings().client_id == connections["runbook"]["client_id"]


def test_setup_blocks_from_the_sandbox(prefect_backend: None, sandbox_server: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    save_profile(SandboxProfile.from_endpoints(sandbox_server.endpoints, pid=-1))
    saved = CliRunner().invoke(app, ["setup", "blocks", "--sandbox"])
    assert saved.exit_code == 0, saved.output
    pp_admin = service_credential(sandbox_server.endpoints.credentials, "pp-admin")
    assert CmkConnection.load("pp-admin").settings().client_id == pp_admin["client_id"]


def remote_block(name: str, folder: str) -> str:
    """A storage block of a remote type (fsspec's in-memory filesystem stands in for a bucket)."""
    bucket = f"memory://ppcmk-setup-{uuid.uuid4().hex[:8]}"
    RemoteFileSystem(basepath=f"{bucket}/{folder}").save(name, overwrite=True)
    return f"remote-file-system/{name}"


def setup_workers(*options: str) -> Any:
    return CliRunner().invoke(app, ["setup", "workers", *options])


def test_setup_workers_names_existing_remote_blocks_and_the_audit_chain_lives_there(
        prefect_backend: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))  # where the chain would go without PPCMK_AUDIT_STORAGE
    results, audit_store = remote_block("team-results", "results"), remote_block("team-audit", "audit")
    done = setup_workers("--results-block", results, "--audit-block", audit_store)
    assert done.exit_code == 0, done.output
    printed = f"{worker_setup.RESULTS_SETTING}={results}\n{worker_setup.AUDIT_SETTING}={audit_store}"
    assert printed in done.output
    assert "automation ready" in done.output
    monkeypatch.setenv(worker_setup.AUDIT_SETTING, audit_store)
    assert worker_setup.block_problem(worker_setup.RESULTS_SETTING, results, "results") is None
    audit.record({"event": "remote-store-check"})
    audit.record({"event": "remote-store-check-2"})
    verified = CliRunner().invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0 and "audit chain intact: 2 entries" in verified.output, verified.output
    assert not (tmp_path / "audit").exists()  # nothing went to a local folder


@pytest.mark.parametrize(("options", "named", "why"), [
    ([], "--shared-dir", "both --results-block and --audit-block"),
    (["--results-block", "REMOTE"], "--audit-block", "give --shared-dir DIR, or both"),
    (["--results-block", "remote-file-system/not-there", "--audit-block", "REMOTE"], "--results-block",
     "not-there"),
    (["--results-block", "REMOTE", "--audit-block", "SECRET"], "--audit-block",
     "not a writable filesystem block"),
    (["--results-block", "REMOTE", "--audit-block", "team-audit"], "--audit-block", "TYPE/NAME"),
    (["--shared-dir", "SHARED", "--audit-block", "remote-file-system/not-there"], "--audit-block",
     "not-there"),
])
def test_setup_workers_refuses_a_block_it_cannot_use_naming_the_option_and_saves_nothing(
        prefect_backend: None, tmp_path: Path, options: list[str], named: str, why: str) -> None:
    from prefect.blocks.system import Secret

    Secret(value="not storage").save("setup-not-storage", overwrite=True)
    values = {"REMOTE": remote_block("refusal-results", "results"), "SECRET": "secret/setup-not-storage",
              "SHARED": str(tmp_path / "shared")}
    refused = setup_workers(*(values.get(option, option) for option in options))
    assert refused.exit_code == 2, refused.output
    message = " ".join(refused.output.split())
    assert message.startswith(f"error: {named}") and why in message, message
    assert not (tmp_path / "shared").exists()  # all or none: no shared-dir block was saved either


def test_setup_workers_saves_a_shared_folder_block_only_for_the_storage_not_given(
        prefect_backend: None, tmp_path: Path) -> None:
    results = remote_block("mixed-results", "results")
    done = setup_workers("--shared-dir", str(tmp_path), "--results-block", results)
    assert done.exit_code == 0, done.output
    assert f"{worker_setup.RESULTS_SETTING}={results}\n" in done.output
    assert f"{worker_setup.AUDIT_SETTING}=local-file-system/ppcmk-audit" in done.output
    assert Block.load("local-file-system/ppcmk-audit").basepath == str((tmp_path / "audit").resolve())
    assert not (tmp_path / "results").exists()
