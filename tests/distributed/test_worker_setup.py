"""A worker's flow run refuses to start half set up (each missing setting named with its fix), and the
setup commands create every block the deployments name, or none."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prefect.blocks.core import Block
from prefect.filesystems import LocalFileSystem
from prefect.settings import (
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
    PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK,
    temporary_settings,
)
from typer.testing import CliRunner

from blocks import CmkConnection
from ppcmk import worker_setup
from ppcmk.cli import app
from ppcmk.cli.profile import SandboxProfile, save_profile
from ppcmk.cli.workers import PREFECT_FILE, block_names

ROOT = Path(__file__).resolve().parents[2]


def test_a_half_set_up_worker_names_every_missing_setting(
        prefect_backend: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for setting in (worker_setup.CODE_DIR_SETTING, worker_setup.AUDIT_SETTING, worker_setup.RESULTS_SETTING):
        monkeypatch.delenv(setting, raising=False)
    with pytest.raises(worker_setup.WorkerNotReady) as refused:
        worker_setup.worker_ready()
    message = str(refused.value)
    for setting in (worker_setup.CODE_DIR_SETTING, worker_setup.RESULTS_SETTING, worker_setup.AUDIT_SETTING,
                    worker_setup.HEARTBEAT_SETTING):
        assert setting in message, message
    assert "ppcmk setup workers --shared-dir" in message


def test_a_set_up_worker_starts_in_the_code_folder(
        prefect_backend: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    LocalFileSystem(basepath=str(tmp_path / "results")).save("ws-results", overwrite=True)
    LocalFileSystem(basepath=str(tmp_path / "audit")).save("ws-audit", overwrite=True)
    monkeypatch.setenv(worker_setup.CODE_DIR_SETTING, str(ROOT))
    monkeypatch.setenv(worker_setup.AUDIT_SETTING, "local-file-system/ws-audit")
    monkeypatch.chdir(tmp_path)
    with temporary_settings(updates={PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK: "local-file-system/ws-results",
                                     PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 30}):
        assert worker_setup.worker_ready() == {"directory": str(ROOT)}
        assert Path.cwd() == ROOT
        monkeypatch.setenv(worker_setup.AUDIT_SETTING, "local-file-system/not-there")
        with pytest.raises(worker_setup.WorkerNotReady, match="not-there"):
            worker_setup.worker_ready()


def test_the_deployments_name_their_blocks() -> None:
    assert block_names(PREFECT_FILE) == (["kv-admin", "pp-admin", "runbook"], ["cmk-target"])


def test_setup_blocks_from_a_file_saves_all_or_none(
        prefect_backend: None, sandbox_server: Any, tmp_path: Path) -> None:
    profile = SandboxProfile.from_endpoints(sandbox_server.endpoints, pid=-1)
    from ppcmk.cli.sandbox_blocks import sandbox_connection_data, sandbox_target_data

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
    assert CmkConnection.load("runbook").settings().sandbox_principal == "runbook"


def test_setup_blocks_from_the_sandbox(prefect_backend: None, sandbox_server: Any, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    save_profile(SandboxProfile.from_endpoints(sandbox_server.endpoints, pid=-1))
    saved = CliRunner().invoke(app, ["setup", "blocks", "--sandbox"])
    assert saved.exit_code == 0, saved.output
    assert CmkConnection.load("pp-admin").settings().sandbox_principal == "pp-admin"
