"""Doctor report ordering, summary and the two renderings."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from rich.console import Console

from ppcmk.models.findings import DoctorReport, Severity, error, info, warning
from ppcmk_cli.doctor import findings_table, notes


def _report() -> DoctorReport:
    return DoctorReport.of(
        datetime(2026, 1, 1, tzinfo=UTC),
        [
            info("env.encryption", "env-a", "uses the Microsoft-managed key"),
            warning("key.expiry", "kv/cmk", "expires in 12 days", "extend the expiry"),
            error("vault.purge_protection", "kv", "purge protection is off", "enable purge protection"),
        ],
    )


def test_report_orders_by_severity_and_summarises() -> None:
    report = _report()
    assert [f.severity for f in report.findings] == [Severity.ERROR, Severity.WARNING, Severity.INFO]
    assert not report.ok
    assert report.summary() == "1 error, 1 warning, 1 info"
    assert report.checks("kv") == {"vault.purge_protection"}


def test_json_and_table_carry_every_finding() -> None:
    report = _report()
    data = json.loads(report.to_json())
    assert data["ok"] is False
    checks = [f["check"] for f in data["findings"]]
    assert checks == ["vault.purge_protection", "key.expiry", "env.encryption"]
    console = Console(record=True, width=200)
    console.print(findings_table(report, "ppcmk doctor"))
    text = console.export_text()
    assert "enable purge protection" in text and "kv/cmk" in text and "1 error" in text
    assert notes(report) == ["info: env-a: uses the Microsoft-managed key"]
