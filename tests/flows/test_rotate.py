"""The rotate flow end to end against the sandbox: new version, 28-day hold, no duplicates on re-run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ppcmk.audit.trail import AuditLog
from ppcmk.errors import HoldActive
from ppcmk.safety import holds
from ppcmk.services.factory import ClientFactory
from ppcmk_blocks import CmkConnection
from ppcmk_flows.rotate import rotate
from tests.support.arm import vault_id
from tests.support.sandbox import changes_the_cloud, save_connection, save_target
from tests.support.scenario import KEY, LINKED_POLICY, REQUESTER

pytestmark = pytest.mark.usefixtures("prefect_backend")

PREVIOUS = "3c1f0e2a9b8d4c7e8f6a5b4c3d2e1f00"


@pytest.fixture
def blocks(cloud: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    monkeypatch.setenv("PPCMK_HOME", str(tmp_path))
    save_connection(cloud, "kv-admin", "flows-kv-admin", operation_poll_floor=0)
    save_target(cloud, "flows-target", policy_name=LINKED_POLICY)
    yield {"conn": CmkConnection.load("flows-kv-admin").settings(), "vault_id": vault_id(cloud),
           "audit": AuditLog(tmp_path / "audit")}


def _run(**overrides: Any) -> Any:
    params: dict[str, Any] = {"connection": "flows-kv-admin", "target": "flows-target",
                              "requester": REQUESTER}
    return rotate(**{**params, **overrides})


def test_rotation_creates_one_version_holds_the_previous_and_converges(cloud: Any, blocks: dict) -> None:
    outcome = _run()
    assert outcome.status == "completed"
    current = next(row for row in outcome.rows if row["current"])
    assert current["version"] != PREVIOUS
    assert {row["version"] for row in outcome.rows} == {PREVIOUS, current["version"]}
    assert all(row["enabled"] for row in outcome.rows)  # never disables earlier versions

    hold = holds.key_version_hold(blocks["conn"], blocks["vault_id"], KEY, PREVIOUS)
    now = ClientFactory.for_settings(blocks["conn"]).now()
    assert hold is not None and timedelta(days=27) < hold.until - now <= timedelta(days=28)
    assert [e["event"]["event"] for e in blocks["audit"].entries()] == ["hold-recorded", "rotation"]

    # A re-run (e.g. after a crash after the rotation) finds the fresh version and adds none.
    again = _run()
    assert again.status == "nothing-to-do" and len(again.rows) == 2


def test_a_scheduled_run_names_the_connection_principal_as_requester(cloud: Any, blocks: dict) -> None:
    _run(requester=None)  # what a cron-triggered deployment run passes
    rotations = [e["event"] for e in blocks["audit"].entries() if e["event"]["event"] == "rotation"]
    assert rotations[-1]["requester"] == cloud.world.identities.require("kv-admin").object_id


def test_dry_run_changes_nothing(cloud: Any, blocks: dict) -> None:
    cloud.log.clear()
    outcome = _run(dry_run=True)
    assert outcome.status == "dry-run"
    assert [e for e in cloud.log.entries if changes_the_cloud(e.method, e.path)] == []


def test_the_hold_is_enforced_on_the_cloud_clock_until_it_expires(cloud: Any, blocks: dict) -> None:
    _run()
    factory = ClientFactory.for_settings(blocks["conn"])
    hold = holds.key_version_hold(blocks["conn"], blocks["vault_id"], KEY, PREVIOUS)
    assert hold is not None
    with pytest.raises(HoldActive, match=re.escape(f"until {hold.until.isoformat()}")):
        hold.enforce(factory.now())
    cloud.clock.advance(timedelta(days=28, minutes=1))
    hold.enforce(factory.now())  # released: the cleanup flow may now act on the previous version
