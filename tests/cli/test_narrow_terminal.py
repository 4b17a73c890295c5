"""At 80 columns `ppcmk doctor`, `report` and `watch` break no word: every word they print is one the
same command prints at 400 columns, where nothing needs wrapping (a word cut across two lines would be
two words that exist nowhere else). Columns left out for want of room are named in a caption instead."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ppcmk_cli import app
from ppcmk_cli.tables import LEFT_OUT
from tests.support.scenario import DESIRED

# the tables' frame, and the dot between a stacked row's first values
BOX = re.compile(r"[\u2500-\u257f·]")
CAPTION = re.compile(r"\(" + r"\s+".join(LEFT_OUT.split()) + r":.*?--json\s+shows\s+them\)", re.DOTALL)


def words(output: str) -> set[str]:
    """The words printed, without the frame, the caption of columns left out, and the punctuation that
    follows a word (a label's colon)."""
    text = CAPTION.sub(" ", BOX.sub(" ", output))
    return {word.rstrip(":;,") for word in text.split()}


@pytest.mark.parametrize("command", [["doctor"], ["report", "--out", "{tmp}"],
                                     ["watch", "--desired", "{tmp}/desired.yaml"]],
                         ids=["doctor", "report", "watch"])
def test_80_columns_break_no_word(command: list[str], runner: CliRunner, profiled_cloud: object,
                                  sandbox_blocks: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "desired.yaml").write_text(DESIRED)  # three differences from the scenario: findings
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in command]
    wide = runner.invoke(app, argv, env={"COLUMNS": "400"})
    narrow = runner.invoke(app, argv, env={"COLUMNS": "80"})
    assert wide.exit_code == narrow.exit_code, narrow.output
    table = [line for line in narrow.stdout.splitlines() if re.search(r"[\u2500-\u257f]", line)]
    assert max(len(line) for line in table or [""]) <= 80, narrow.stdout
    broken = words(narrow.stdout) - words(wide.stdout)
    assert not broken, f"split across lines at 80 columns: {sorted(broken)}\n{narrow.stdout}"
    assert len(words(narrow.stdout)) > 20  # the output is there, not an error
