"""Reading a run's published plan as a person does: its artifact (the summary above, the steps below),
and whether an id in it stands without the name of what it identifies."""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# "Contoso Production (e1000000-...)": a name, then the id in parentheses
NAMED = re.compile(rf"[^\s()`|][^()`|\n]*? \(({GUID.pattern})\)")


def plan_artifact(run_id: UUID, procedure: str) -> tuple[str, list[dict[str, Any]]]:
    """The run's plan: the artifact's description and its table rows."""
    key = f"{procedure.replace('_', '-')}-plan"
    mine = ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]),
                          key=ArtifactFilterKey(any_=[key]))
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=mine)
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    return artifact.description or "", rows


def unnamed_ids(description: str, rows: list[dict[str, Any]]) -> list[str]:
    """Every GUID that stands without a name: in the summary, one not written as `name (id)`; in the
    table, one in a row whose `name` is empty or an id itself."""
    named = set(NAMED.findall(description))
    loose = [guid for guid in GUID.findall(description) if guid not in named]
    for row in rows:
        cells = " ".join(str(value) for value in row.values())
        if GUID.search(cells) and (not row.get("name") or GUID.search(str(row["name"]))):
            loose += GUID.findall(cells)
    return loose
