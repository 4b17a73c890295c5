"""The first-tenant guide: its script is valid bash and grants exactly the least-privilege table of
docs/AZURE.md, the guide shows the script word for word, and its example blocks file is accepted by
`ppcmk setup blocks --file`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ppcmk_blocks import APPROVALS_BLOCK
from ppcmk_cli.workers import PREFECT_FILE, block_names, blocks_file, validated_blocks

DOCS = Path(__file__).resolve().parents[2] / "docs"
SCRIPT = DOCS / "first-tenant.sh"
GUIDE = DOCS / "FIRST-TENANT.md"
# the script's variables for the identities and the scopes, and what the table calls them
IDENTITIES = {"KV_HALF": "kv-admin", "PP_HALF": "pp-admin", "RUNBOOK": "runbook"}
SCOPES = {"VAULT_ID": "the vault", "POLICY_RG_ID": "the policy's resource group"}


def granted_by_the_script() -> set[tuple[str, str, str]]:
    """(block, role, scope) of every `grant` in the script, the one function that assigns Azure roles."""
    script = SCRIPT.read_text()
    assert script.count("az role assignment create") == 1, "every role assignment goes through grant()"
    return {
        (IDENTITIES[who], role, SCOPES[scope])
        for who, role, scope in re.findall(r'(?m)^grant "\$(\w+)" "([^"]+)" "\$(\w+)"$', script)
    }


def least_privilege_table() -> list[dict[str, str]]:
    """The rows of docs/AZURE.md's least-privilege table of Azure roles, by column."""
    section = (DOCS / "AZURE.md").read_text().split("## Least privileges", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    assert header == ["Who", "Azure role", "Scope", "Granted by", "Why"], header
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) != len(header):
            break  # the next table
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def test_the_script_is_valid_bash() -> None:
    checked = subprocess.run(["bash", "-n", str(SCRIPT)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_the_script_grants_exactly_the_least_privilege_table() -> None:
    table = {
        (re.search(r"`([^`]+)`", row["Who"]).group(1),  # type: ignore[union-attr]
         row["Azure role"].strip("*"), row["Scope"])
        for row in least_privilege_table() if row["Granted by"] == "first-tenant.sh"
    }
    assert len(table) >= 7
    assert granted_by_the_script() == table


def test_the_guide_shows_every_step_of_the_script_word_for_word() -> None:
    steps = re.split(r"(?m)^(?=# --- step )", SCRIPT.read_text())[1:]
    guide = GUIDE.read_text()
    assert len(steps) >= 8
    for step in steps:
        assert f"```bash\n{step.rstrip()}\n```" in guide, step.splitlines()[0]


def test_the_example_blocks_file_is_what_setup_blocks_accepts() -> None:
    connections, targets = block_names(PREFECT_FILE)
    ready = validated_blocks(blocks_file(DOCS / "first-tenant-blocks.yaml"), connections, targets)
    assert sorted(name for name, _ in ready) == sorted([*connections, *targets, APPROVALS_BLOCK])
    assert (DOCS / "first-tenant-blocks.yaml").read_text().rstrip() in GUIDE.read_text()


def test_the_readme_links_the_guide_and_stays_short() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert "(docs/FIRST-TENANT.md)" in readme
    assert len(readme.encode()) <= 12 * 1024
