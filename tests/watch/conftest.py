"""Fixtures of the watch tests: the session sandbox reset per test, the watch runbook run against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from ppcmk.audit.trail import AuditLog
from tests.support.watching import clear_watch_state
from tests.support.watching import run_watch as watch_once


@pytest.fixture(autouse=True)
def audit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditLog]:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    yield AuditLog(tmp_path / "audit")


@pytest.fixture
def fresh_state(prefect_backend: None) -> Iterator[None]:
    """Each test starts without a previous watch run: the state artifacts of earlier tests are deleted."""
    clear_watch_state()
    yield


@pytest.fixture
def run_watch(cloud: Any, sandbox_blocks: dict[str, str], fresh_state: None) -> Callable[..., Any]:
    return partial(watch_once, sandbox_blocks)
