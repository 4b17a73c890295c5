"""End to end: `ppcmk converge FILE` (no --dry-run) against the served deployments starts exactly the three
runs the desired state needs; each plans and then waits for its approval, and nothing has changed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterExpectedStartTime
from prefect.states import Cancelled
from prefect.types._datetime import now as prefect_now
from typer.testing import CliRunner

from ppcmk_cli import app
from ppcmk_cli.profile import save_profile
from ppcmk_deployments.serve import deployment_full_name
from tests.e2e.test_serve_onboard import (  # noqa: F401 - the module's served deployments (fixtures)
    E2E_BLOCKS,
    FINAL_STATES,
    deployment_ready,
    pause_key,
    serve_dir,
    served,
    state_name,
    wait_for,
)
from tests.support.runs import forget_run_state
from tests.support.sandbox import profile
from tests.support.scenario import DESIRED, FINANCE, KEY
from tests.support.scenario import PRODUCTION as CONTOSO_PRODUCTION
from tests.support.world import vault

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]

# DESIRED's target block names ep-existing (the served e2e target names another policy)
SERVED_DESIRED = DESIRED + f"""
  kv_connection: {E2E_BLOCKS.kv_admin}
  pp_connection: {E2E_BLOCKS.pp_admin}
  connection: {E2E_BLOCKS.runbook}
"""


def test_converge_starts_the_three_runs_and_each_waits_for_approval(
        served: subprocess.Popen[bytes], cloud: Any, sandbox_blocks: dict[str, str], tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path / "home"))
    save_profile(profile(cloud))
    desired = tmp_path / "desired.yaml"
    desired.write_text(SERVED_DESIRED, encoding="utf-8")
    versions = len(vault(cloud.world).keys[KEY].versions)
    forget_run_state()  # runs of other tests on this session server may still hold the reset environments
    started = prefect_now("UTC")
    with get_client(sync_client=True) as client:
        for runbook in ("onboard", "revert", "rotate"):
            wait_for(f"the {runbook} deployment", lambda r=runbook: deployment_ready(
                client, deployment_full_name(r)), 120, served)
        result = CliRunner().invoke(app, ["converge", str(desired)], env={"COLUMNS": "250"})
        assert result.exit_code == 0, result.output
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            expected_start_time=FlowRunFilterExpectedStartTime(after_=started)))
        runs = [run for run in runs if run.deployment_id is not None and not run.auto_scheduled
                and run.parameters.get("target") == sandbox_blocks["target"]]  # not the rotation's schedule
        assert len(runs) == 3, [run.name for run in runs]
        try:
            for run in runs:
                waited = wait_for(f"{run.name} to wait for approval or end", lambda r=run: pause_key(
                    client, r.id) or (state_name(client, r.id) in FINAL_STATES and "ended"), 240, served)
                assert waited != "ended", f"{run.name} ended {state_name(client, run.id)}"
            assert cloud.log.count(method="POST", path=r"/(link|unlink)$") == 0
            assert cloud.world.powerplatform.environment(FINANCE).cmk is not None
            assert cloud.world.powerplatform.environment(CONTOSO_PRODUCTION).cmk is None
            assert len(vault(cloud.world).keys[KEY].versions) == versions
        finally:
            for run in runs:  # other tests list the runs waiting for approval on this server
                client.set_flow_run_state(run.id, Cancelled(), force=True)
