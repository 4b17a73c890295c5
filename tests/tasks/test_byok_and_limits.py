"""The doctor and the report after BYOK's end of support: the environment still on BYOK, and the one the
platform reverted to the Microsoft-managed key (US Production in the default scenario); the doctor's count
of environments on a customer-managed key against Power Automate's limit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.models.findings import Severity
from ppcmk_flows.report import report
from ppcmk_tasks.doctor import doctor_report
from tests.support.sandbox import target
from tests.support.scenario import LEGACY_BYOK, US_PRODUCTION


def about(reading: Any, check: str, subject: str) -> list[Any]:
    return [f for f in reading.findings if f.check == check and f.subject == subject]


def test_the_doctor_recognises_byok_leftovers_reverted_environments_and_counts_cmk(
        cloud: Any, conn: ConnectionSettings) -> None:
    reading = doctor_report(conn, target(cloud, key="cmk-prod", policy="ep-existing"))
    (byok,) = about(reading, "env.byok", LEGACY_BYOK)
    assert byok.severity == Severity.WARNING and "BYOK support ended on 2026-01-06" in byok.message
    (reverted,) = about(reading, "env.byok_reverted", US_PRODUCTION)
    assert "reverted to the Microsoft-managed key by the platform on 2026-01-06" in reverted.message
    assert "onboard" in reverted.fix
    (count,) = about(reading, "power_automate.count", "tenant")
    assert count.message.startswith("1 environment(s) on a customer-managed key") and "allows 25" in \
        count.message


@pytest.mark.usefixtures("prefect_backend")
def test_the_report_notes_byok_leftovers_and_reverted_environments(
        cloud: Any, sandbox_blocks: dict[str, str], tmp_path: Path) -> None:
    rows = {row["environment_id"]: row for row in report(connection=sandbox_blocks["runbook"],
                                                         output_dir=str(tmp_path)).rows}
    assert "BYOK support ended on 2026-01-06" in rows[LEGACY_BYOK]["note"]
    assert "still on its BYOK key" in rows[LEGACY_BYOK]["note"]
    reverted = "reverted to the Microsoft-managed key by the platform on 2026-01-06"
    assert [r["environment_id"] for r in rows.values() if reverted in r["note"]] == [US_PRODUCTION]
