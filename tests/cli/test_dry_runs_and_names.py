"""A dry run is unmistakable wherever it shows (the command's words, the run's state in the runs list,
its plan's heading and logs speak of what would be done), and a plan names people and objects: onboard's
plan artifact holds no environment or object id without its name beside it."""

from __future__ import annotations

import json
import logging
import re
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner

from ppcmk.safety.plan import DRY_RUN
from ppcmk_cli import app
from tests.support.plans import plan_artifact, unnamed_ids


def latest_run(runner: CliRunner, runbook: str) -> dict[str, str]:
    listed = runner.invoke(app, ["runs", "list", "--json", "--limit", "5"])
    assert listed.exit_code == 0, listed.output
    return next(run for run in json.loads(listed.stdout) if run["runbook"] == runbook)


def test_a_dry_run_says_so_everywhere_a_person_looks(
    runner: CliRunner, profiled_cloud: Any, sandbox_blocks: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="prefect.flow_runs"):
        result = runner.invoke(app, ["run", "revert", "--dry-run"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert (f"revert dry-run: policy ep-existing in rg-cmk: {DRY_RUN}; a run without dry_run would make "
            "1 change(s) with 1 outage window(s)") in result.stdout
    assert any(DRY_RUN in record.getMessage() for record in caplog.records)
    run = latest_run(runner, "revert")
    assert run["state"] == "Dry run" and DRY_RUN in run["message"], run  # the runs list marks it
    listed = runner.invoke(app, ["runs", "list"], env={"COLUMNS": "200"})
    assert re.search(r"│ revert +│ Dry run +│", listed.stdout), listed.stdout
    description, _ = plan_artifact(UUID(run["run_id"]), "revert")
    assert description.startswith(f"## revert: {DRY_RUN} · plan "), description
    assert "Holds this run would record (none is recorded: a dry run)" in description
    assert "Holds recorded by this run" not in description and "**Would change:** 1" in description


def test_onboard_names_what_its_plan_identifies(
    runner: CliRunner, profiled_cloud: Any, sandbox_blocks: dict[str, str]
) -> None:
    result = runner.invoke(app, ["run", "onboard", "--dry-run"])
    assert result.exit_code == 0, result.output
    run = latest_run(runner, "onboard")
    description, rows = plan_artifact(UUID(run["run_id"]), "onboard")
    # the requester by name, not by the object id the run was given
    assert "**Requested by:** Key Vault Admin (kv-admin@contoso.example)" in description
    assert "Contoso Production (e1000000-0000-4000-8000-000000000001): uses the Microsoft-managed key" \
        in description
    assert not unnamed_ids(description, rows), (description, rows)
    assert "/subscriptions/" not in description
