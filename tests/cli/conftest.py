"""CLI fixtures: an isolated $PPCMK_HOME and a sandbox profile pointing at the session sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ppcmk_cli.profile import SandboxProfile, save_profile


@pytest.fixture
def ppcmk_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "ppcmk-home"
    monkeypatch.setenv("PPCMK_HOME", str(home))
    return home


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def profiled_cloud(cloud: object, ppcmk_home: Path) -> Iterator[object]:
    """The session sandbox, published in this test's profile the way `ppcmk sandbox up` does."""
    save_profile(SandboxProfile.from_endpoints(cloud.endpoints, pid=-1))  # type: ignore[attr-defined]
    yield cloud
