"""Fixtures every runbook test module shares."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ppcmk.audit.trail import AuditLog


@pytest.fixture(autouse=True)
def audit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditLog]:
    """Each test audits into its own PPCMK_HOME, so an assertion on the log sees only that test's events."""
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    yield AuditLog(tmp_path / "audit")
