"""`ppcmk evidence` runs the evidence runbook against the sandbox and says where the pack is; `--verify`
checks a pack against its manifest and names a changed file."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ppcmk_cli import app


def test_evidence_writes_a_pack_for_one_environment_and_verify_checks_it(
        runner: CliRunner, profiled_cloud: object, prefect_backend: None, tmp_path: Path) -> None:
    pack = tmp_path / "pack"
    result = runner.invoke(app, ["evidence", "--environment", "Finance on CMK", "--days", "30", "--out",
                                 str(pack)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"evidence pack in {pack}" in result.output and "environments Finance on CMK" in result.output
    content = json.loads((pack / "evidence.json").read_text())
    assert [row["name"] for row in content["estate"]] == ["Finance on CMK"]
    assert content["period"]["end"].startswith("2026-12-01")  # the sandbox's clock, not the wall clock

    verified = runner.invoke(app, ["evidence", "--verify", str(pack)], env={"COLUMNS": "300"})
    assert verified.exit_code == 0 and "matches its manifest" in verified.output
    (pack / "evidence.html").write_text("<p>nothing to see</p>")
    changed = runner.invoke(app, ["evidence", "--verify", str(pack)])
    assert changed.exit_code == 1 and "evidence.html" in changed.output


def test_an_unknown_policy_is_a_configuration_error(runner: CliRunner, profiled_cloud: object,
                                                    prefect_backend: None, tmp_path: Path) -> None:
    result = runner.invoke(app, ["evidence", "--policy", "ep-nowhere", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "ep-nowhere" in result.output
