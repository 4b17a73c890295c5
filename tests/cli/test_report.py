"""`ppcmk report` runs the report runbook against the sandbox and prints every environment."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ppcmk_cli import app
from tests.support.scenario import FINANCE, LEGACY_BYOK


def test_report_json_has_every_environment_and_writes_files(
        runner: CliRunner, profiled_cloud: object, prefect_backend: None, tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--json", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    rows = {row["environment_id"]: row for row in json.loads(result.output)}
    assert len(rows) == 12
    assert rows[FINANCE]["link_status"] == "Linked" and rows[FINANCE]["policy"].endswith("ep-existing")
    assert rows[LEGACY_BYOK]["link_status"] != "Linked"
    assert (tmp_path / "out" / "cmk-inventory.csv").exists()
    assert (tmp_path / "out" / "cmk-inventory.json").exists()


def test_report_table(runner: CliRunner, profiled_cloud: object, prefect_backend: None,
                      tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", "--out", str(tmp_path)], env={"COLUMNS": "220"})
    assert result.exit_code == 0, result.output
    assert "CMK state of 12 environment(s)" in result.output
    assert "Finance on CMK" in result.output and "ep-existing" in result.output
