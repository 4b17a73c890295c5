"""Every case of the catalogue (cases.py), run in-process as a person would type it, against the running
sandbox and Prefect: the documented exit code, one short message on stderr that names what is wrong, no
traceback, and nothing written to the cloud (a request other than a read, a sign-in or the sandbox's own
admin routes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import certifi
import click
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from ppcmk_cli import app
from ppcmk_cli.exit_codes import EXIT_CODES_HELP, ExitCode
from ppcmk_deployments.catalog import RUNBOOKS
from tests.cli.bad_input.cases import CASES, COMMAND_LINES, RUN_PARAMETERS, WRONG_CA_BLOCK, Case, files
from tests.support.sandbox import changes_the_cloud, save_connection

MOST_LINES = 4  # "one line (or a short table)"


def writes(cloud: Any) -> list[str]:
    return [f"{e.method} {e.path}" for e in cloud.log.entries if changes_the_cloud(e.method, e.path)]


def filled(text: str, folder: Path) -> str:
    return text.replace("{tmp}", str(folder)).replace("{wrong_ca}", WRONG_CA_BLOCK)


@pytest.fixture
def wrong_ca(cloud: Any, sandbox_blocks: dict[str, str]) -> str:
    """The runbook's connection, except that it trusts another CA (certifi's public roots)."""
    return save_connection(cloud, "runbook", WRONG_CA_BLOCK, ca_bundle=certifi.where())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_bad_command_line_is_one_line_naming_it_and_changes_nothing(
    case: Case, runner: CliRunner, profiled_cloud: Any, sandbox_blocks: dict[str, str], wrong_ca: str,
    tmp_path: Path,
) -> None:
    files(tmp_path)
    result = runner.invoke(app, [filled(arg, tmp_path) for arg in case.argv], env={"COLUMNS": "200"})
    said = result.stderr.strip().splitlines()
    assert result.exit_code == case.code, result.output
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert 1 <= len(said) <= MOST_LINES and said[0].startswith("error: "), result.stderr
    for name in case.names:
        assert filled(name, tmp_path) in result.stderr, result.stderr
    assert writes(profiled_cloud) == []


def test_the_catalogue_covers_every_command_and_every_runbook() -> None:
    assert len(CASES) >= 40

    def commands(group: click.Group, path: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
        found = set()
        for name, command in group.commands.items():
            if isinstance(command, click.Group):
                found |= commands(command, (*path, name))
            else:
                found.add((*path, name))
        return found

    every = commands(get_command(app))  # type: ignore[arg-type]
    uncovered = {path for path in every
                 if path != ("sandbox", "clock", "show") and path != ("sandbox", "faults", "clear")
                 and not any(c.argv[:len(path)] == path for c in COMMAND_LINES + RUN_PARAMETERS)}
    assert not uncovered, f"no bad-input case for {sorted(uncovered)}"
    run = {c.argv[1] for c in RUN_PARAMETERS if c.argv[0] == "run"}
    assert set(RUNBOOKS) <= run, f"no bad run parameter for {sorted(set(RUNBOOKS) - run)}"


def test_each_exit_code_has_one_meaning() -> None:
    meanings = dict(part.split(" ", 1) for part in EXIT_CODES_HELP.removeprefix("Exit codes: ")
                    .rstrip(".").split("; "))
    assert set(meanings) == {str(int(code)) for code in ExitCode}
    assert [code for code, meaning in meanings.items() if "reject" in meaning] == ["5"], meanings
    assert [code for code, meaning in meanings.items() if "block" in meaning] == ["3"], meanings
