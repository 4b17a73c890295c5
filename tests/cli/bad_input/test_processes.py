"""A few cases as real processes (`python -m ppcmk_cli`), as a terminal sees them: stderr ends with the
one error line and nothing after it (no queue service of Prefect's warning as the process exits, no
traceback); a run the command started logs its progress before it. `--debug` is how a person asks for the
traceback."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from prefect.settings import PREFECT_API_URL

from ppcmk_cli.exit_codes import ExitCode

ROOT = Path(__file__).resolve().parents[3]
LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| INFO +\| ")  # a run's progress, as Prefect logs it


@pytest.fixture
def ppcmk(profiled_cloud: Any, sandbox_blocks: dict[str, str], ppcmk_home: Path) -> Any:
    """`ppcmk ARGS...` in a process of its own, against the test's sandbox and Prefect."""
    env = {**os.environ, "PPCMK_HOME": str(ppcmk_home), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    env.pop("PPCMK_DEBUG", None)

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ppcmk_cli", *argv], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=300)

    return run


@pytest.mark.parametrize("argv, names", [
    (["report", "--connection", "no-such-block"], "--connection no-such-block"),
    (["watch", "--rotation-cadence-days", "-5"], "--rotation-cadence-days"),
    (["run", "onboard", "-p", 'selector={"envs": ["Contoso Production"]}'], "no such key envs"),
    (["approve", "zz"], "RUN_ID"),
], ids=["missing block", "negative option", "unknown selector key", "run id too short"])
def test_refused_before_anything_runs_is_exactly_one_line(ppcmk: Any, argv: list[str],
                                                          names: str) -> None:
    done = ppcmk(*argv)
    assert done.returncode == ExitCode.USAGE, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and names in lines[0], done.stderr


def test_a_run_refused_by_its_plan_ends_with_the_error_line_after_its_progress(ppcmk: Any) -> None:
    done = ppcmk("run", "onboard", "-p", "pp_admin=nobody@contoso.example")
    assert done.returncode == ExitCode.USAGE, done.stderr
    *progress, last = done.stderr.strip().splitlines()
    assert last.startswith("error: pp_admin: 'nobody@contoso.example'"), done.stderr
    assert all(LOG_LINE.match(line) for line in progress), done.stderr  # no warning, no traceback


def test_debug_adds_the_traceback(ppcmk: Any) -> None:
    done = ppcmk("--debug", "report", "--connection", "no-such-block")
    assert done.returncode == ExitCode.USAGE
    assert done.stderr.startswith("Traceback") and "CliError" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: --connection no-such-block")


def test_help_gives_each_exit_code_one_meaning(ppcmk: Any) -> None:
    said = " ".join(ppcmk("--help").stdout.split()) + " ".join(ppcmk("approve", "--help").stdout.split())
    assert re.findall(r"(\d) (?:the plan was )?rejected", said) and \
        set(re.findall(r"(\d) (?:the plan was )?rejected", said)) == {"5"}, said
    assert "3 blocked" in said and "rejected or blocked" not in said
