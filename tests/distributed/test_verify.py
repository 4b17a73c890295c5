"""A step that reports an environment done does not make it so: the read-back decides, whoever changed the
environment meanwhile (another run, another worker, someone in the admin center)."""

from __future__ import annotations

from typing import Any

from ppcmk.fleet.waves import EnvironmentResult, FleetReport
from ppcmk_blocks import CmkConnection
from ppcmk_flows._runbook import read_back
from tests.support.scenario import FINANCE, PRODUCTION


def test_an_environment_that_does_not_read_back_as_intended_fails(
        cloud: Any, sandbox_blocks: dict[str, str]) -> None:
    conn = CmkConnection.load(sandbox_blocks["runbook"]).settings()
    reported = FleetReport(results=[
        EnvironmentResult(environment_id=FINANCE, name="Finance on CMK", wave=1, state="succeeded"),
        EnvironmentResult(environment_id=PRODUCTION, name="Contoso Production", wave=1, state="succeeded"),
    ])
    verified, rows = read_back(conn, reported, lambda env: env is not None and env.cmk is None,
                               "the Microsoft-managed key")
    states = {r.environment_id: (r.state, r.detail) for r in verified.results}
    assert states[PRODUCTION] == ("succeeded", "")  # on the Microsoft-managed key, as intended
    assert states[FINANCE][0] == "failed"  # still linked to ep-existing: the unlink did not stick
    assert "not verified: wanted the Microsoft-managed key" in states[FINANCE][1]
    assert [row["environment_id"] for row in rows] == [FINANCE, PRODUCTION]
