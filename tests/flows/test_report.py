"""report against the sandbox: one row per environment with its key chain, table + CSV + JSON, and the
restore/copy question answered both ways."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from ppcmk.errors import ConfigError
from ppcmk_flows.report import InventoryRow, may_overwrite, report
from tests.support.scenario import (
    FINANCE,
    KEY,
    LEGACY_BYOK,
    LINKED_POLICY,
    PRODUCTION,
    SANDBOX,
    UNMANAGED,
    VAULT,
)

pytestmark = pytest.mark.usefixtures("prefect_backend")


def test_inventory_rows_files_and_a_copy_question(
    cloud: Any, sandbox_blocks: dict[str, str], tmp_path: Path
) -> None:
    outcome = report(connection=sandbox_blocks["runbook"], output_dir=str(tmp_path),
                     overwrite_source="Contoso Production", overwrite_destination=FINANCE)
    assert outcome.status == "completed"
    rows = {row["environment_id"]: row for row in outcome.rows}
    assert len(rows) == len(cloud.world.powerplatform.environments) == 12
    finance = rows[FINANCE]
    assert (finance["policy"], finance["vault"], finance["key"]) == (LINKED_POLICY, VAULT, KEY)
    assert finance["key_version"] == "3c1f0e2a9b8d4c7e8f6a5b4c3d2e1f00"
    assert (finance["link_status"], finance["key_managed_by"]) == ("Linked", "Customer")
    assert finance["rotation_policy"] == "none" and finance["managed"]
    assert rows[PRODUCTION]["policy"] == "" and rows[PRODUCTION]["key_managed_by"] == "Microsoft"
    assert rows[LEGACY_BYOK]["key_managed_by"] == "CustomerViaMicrosoft"
    assert not rows[UNMANAGED]["managed"]
    assert f"copy {PRODUCTION} → {FINANCE}: NOT allowed" in outcome.message

    with (tmp_path / "cmk-inventory.csv").open(encoding="utf-8") as handle:
        written = list(csv.DictReader(handle))
    assert [r["environment_id"] for r in written] == list(rows)
    assert next(r for r in written if r["environment_id"] == FINANCE)["vault"] == VAULT
    assert json.loads((tmp_path / "cmk-inventory.json").read_text())[0].keys() == rows[PRODUCTION].keys()

    allowed = report(connection=sandbox_blocks["runbook"], output_dir=str(tmp_path),
                     overwrite_source=PRODUCTION, overwrite_destination="Contoso Sandbox")
    assert f"copy {PRODUCTION} → {SANDBOX}: ALLOWED (both environments use the Microsoft-managed key)" in (
        allowed.message)


def _row(environment_id: str, **fields: Any) -> InventoryRow:
    base = {"name": environment_id, "sku": "Production", "geo": "europe", "managed": True,
            "state": "Enabled", "key_managed_by": "Customer", "link_status": "Linked",
            "vault": "kv-a", "key": "cmk-a", "policy": "ep-a"}
    return InventoryRow(environment_id=environment_id, **{**base, **fields})


def test_restore_and_copy_need_the_same_customer_managed_key() -> None:
    a, b = _row("a"), _row("b", policy="ep-b")  # another policy on the same key still counts
    other_key = _row("c", key="cmk-c")
    assert may_overwrite(a, b, "copy").allowed
    assert not may_overwrite(a, other_key, "restore").allowed
    assert may_overwrite(a, a, "restore").allowed and not may_overwrite(a, a, "copy").allowed
    microsoft = _row("m", vault="", key="", policy="", link_status="", key_managed_by="Microsoft")
    refused = may_overwrite(a, microsoft, "copy")
    assert not refused.allowed and "reset" in refused.reason
    locked = _row("l", state="Disabled (CustomerManagedKeyLocked)")
    assert "locked" in may_overwrite(locked, a, "restore").reason
    assert not may_overwrite(a, _row("f", link_status="Failed"), "copy").allowed


def test_only_one_side_of_the_question_is_refused_before_reading(sandbox_blocks: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="overwrite_source / overwrite_destination"):
        report.fn(connection=sandbox_blocks["runbook"], overwrite_source=FINANCE)
