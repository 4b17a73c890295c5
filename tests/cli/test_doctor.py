"""`ppcmk doctor` against the in-process sandbox: every seeded problem of the default scenario is listed."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ppcmk_cli import app
from ppcmk_cli.exit_codes import ExitCode
from tests.support.scenario import (
    BUSY_SANDBOX,
    DEFAULT_ENVIRONMENT,
    FINANCE,
    LEGACY_BYOK,
    TEAMS,
    TRIAL,
    UNMANAGED,
    US_PRODUCTION,
)

# (check, end of the subject) for every problem the default scenario seeds on purpose.
SEEDED_PROBLEMS = {
    ("provider.registered", "Microsoft.PowerPlatform"),
    ("vault.purge_protection", "kv-nopurge"),
    ("vault.network", "kv-private"),
    ("key.type", "kv-nopurge/keys/legacy-ec"),
    ("key.expiry", "kv-nopurge/keys/cmk-expiring"),
    ("rotation.policy", "kv-cmk-prod/keys/cmk-prod"),
    ("env.sku", TRIAL),
    ("env.sku", TEAMS),
    ("env.default", DEFAULT_ENVIRONMENT),
    ("env.geo", US_PRODUCTION),  # vs a europe policy
    ("env.managed", UNMANAGED),
    ("env.byok", LEGACY_BYOK),
    ("env.encryption", FINANCE),  # on another policy
    ("env.busy", BUSY_SANDBOX),  # a Managed Environment change runs
}


def test_doctor_json_lists_every_seeded_problem_and_exits_1(
        runner: CliRunner, profiled_cloud: object) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == ExitCode.FAILED, result.output
    report = json.loads(result.output)
    assert report["ok"] is False
    found = {(f["check"], f["subject"]) for f in report["findings"] if f["severity"] != "info"}
    missing = {problem for problem in SEEDED_PROBLEMS
               if not any(check == problem[0] and subject.endswith(problem[1]) for check, subject in found)}
    assert not missing, f"doctor did not report {sorted(missing)}"
    assert all(f["fix"] for f in report["findings"] if f["severity"] == "error")
    # the managed HSM's key is read (through managed_hsm_keys) and judged like any other key
    hsm_key = [f for f in report["findings"] if f["subject"].endswith("hsm-cmk/keys/cmk-hsm")]
    assert hsm_key and not any(f["check"] == "key.exists" for f in hsm_key)


def test_doctor_table_names_objects_and_says_what_each_error_blocks(
        runner: CliRunner, profiled_cloud: object) -> None:
    # environments by id or by name
    result = runner.invoke(app, ["doctor", "--no-scan-vaults", "--environment", LEGACY_BYOK,
                                 "--environment", "Contoso Trial", "--environment", "Finance on CMK"],
                           env={"COLUMNS": "250"})
    assert result.exit_code == ExitCode.FAILED, result.output
    assert "provider.registered" in result.output and "env.byok" in result.output
    assert "kv-nopurge" not in result.output  # not scanned
    rows = {line.split("│")[2].strip(): line
            for line in result.output.splitlines() if line.count("│") > 3}
    # objects by name, never an environment id or a full ARM id
    assert {"Legacy BYOK", "Contoso Trial", "provider Microsoft.PowerPlatform"} <= set(rows), rows
    assert "e1000000-" not in result.output and "/subscriptions/" not in result.output
    assert "onboard, change_policy, migrate_byok here" in rows["Contoso Trial"]  # the error blocks these
    assert "info: Finance on CMK: encrypted with another policy" not in result.output  # a warning: a row
    assert "each error blocks the runbooks in its blocks column" in result.output


def test_doctor_refuses_an_environment_that_is_neither_an_id_nor_a_name(
        runner: CliRunner, profiled_cloud: object) -> None:
    result = runner.invoke(app, ["doctor", "--environment", "Contoso Nowhere"])
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("error: --environment Contoso Nowhere: neither an environment id")


def test_doctor_needs_both_block_names(runner: CliRunner, ppcmk_home: Path) -> None:
    result = runner.invoke(app, ["doctor", "--connection", "sandbox-runbook"])
    assert result.exit_code == ExitCode.USAGE
    assert "--target" in result.output


def test_doctor_without_a_sandbox_says_how_to_start_one(runner: CliRunner, ppcmk_home: Path) -> None:
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "ppcmk sandbox up" in result.output


def test_doctor_with_blocks_checks_that_target(runner: CliRunner, cloud: object, ppcmk_home: Path,
                                               sandbox_blocks: dict[str, str]) -> None:
    result = runner.invoke(app, ["doctor", "--json", "--connection", sandbox_blocks["runbook"],
                                 "--target", sandbox_blocks["target"]])
    report = json.loads(result.output)
    subjects = {f["subject"] for f in report["findings"]}
    assert any(subject.endswith("enterprisePolicies/ep-existing") for subject in subjects)
    assert not any("kv-nopurge" in subject for subject in subjects)  # blocks: no vault scan by default
    missing = runner.invoke(app, ["doctor", "--connection", "nope", "--target", sandbox_blocks["target"]])
    assert missing.exit_code == ExitCode.USAGE and "--connection nope" in missing.output
