"""Fixtures of the watch tests: the session sandbox reset per test, the watch runbook run against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ppcmk.audit import AuditLog
from tests.support.scenario import PP_ADMIN


@pytest.fixture(autouse=True)
def audit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AuditLog]:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    yield AuditLog(tmp_path / "audit")


@pytest.fixture
def fresh_state(prefect_backend: None) -> Iterator[None]:
    """Each test starts without a previous watch run: the state artifacts of earlier tests are deleted."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.watch import STATE_KEY_PREFIX

    def clear() -> None:
        with get_client(sync_client=True) as client:
            for artifact in client.read_artifacts(artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(like_=STATE_KEY_PREFIX))):
                client.delete_artifact(artifact.id)

    clear()
    yield


@pytest.fixture
def run_watch(cloud: Any, sandbox_blocks: dict[str, str], fresh_state: None) -> Callable[..., Any]:
    from flows.watch import watch

    def run(**parameters: Any) -> Any:
        parameters.setdefault("pp_admins", [PP_ADMIN])
        return watch(connection=sandbox_blocks["runbook"], **parameters)

    return run
