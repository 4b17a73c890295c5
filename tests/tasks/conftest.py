"""Task-test fixtures: the runbook identity's connection to the session sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from ppcmk.cloud.settings import ConnectionSettings
from tests.support.sandbox import connection


@pytest.fixture
def conn(cloud: Any) -> ConnectionSettings:
    return connection(cloud)
