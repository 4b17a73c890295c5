"""What watch remembers between runs, kept on the Prefect server, and what other runbooks read of it (the
report lists the environments a lock cost): the previous run's findings (the rows of the health table
artifact `watch-health-<tenant>-<subscription>`: a Variable holds at most 5,000 characters, too few for a
tenant), ppcmk's lock records (Variables `ppcmk-lock-*`) and the saved CmkTarget blocks by policy.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.safety.plan import artifact_key
from ppcmk.watch.drift import Drift, DriftSeverity, Remembered, WatchState
from ppcmk.watch.estate import LockFact, TargetFact
from ppcmk_blocks import CmkTarget
from ppcmk_flows._lock_record import LockRecord

LOCK_PREFIX = "ppcmk-lock-"
STATE_KEY_PREFIX = "watch-health"
TARGET_FIELDS = ("policy_name", "resource_group", "vault_id", "key_name")


def state_key(conn: ConnectionSettings) -> str:
    return artifact_key(STATE_KEY_PREFIX, conn.tenant_id, conn.subscription_id)


def health_rows(drifts: list[Drift]) -> list[dict[str, str]]:
    """The health table: what a person reads, and what the next run reads back as this run's state."""
    return [{"severity": d.severity.value, "tier": d.tier, "kind": d.kind, "object": d.object,
             "since": d.since.isoformat() if d.since else "", "until": d.until.isoformat() if d.until else "",
             "finding": d.message, "fix": d.fix, "object_id": d.object_id, "object_type": d.object_type}
            for d in drifts]


def previous_state(key: str) -> WatchState:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(limit=1, sort=ArtifactSort.UPDATED_DESC,
                                      artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    artifact = found[0] if found else None
    if artifact is None:
        return WatchState()
    rows: Any = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    remembered = [Remembered(kind=r["kind"], object=r["object"], object_id=r["object_id"],
                             object_type=r["object_type"], severity=DriftSeverity(r["severity"]),
                             tier=r["tier"], since=_instant(r["since"]), until=_instant(r.get("until")))
                  for r in rows if isinstance(r, dict) and "kind" in r]
    return WatchState(checked_at=artifact.updated,
                      open={r.key: r for r in remembered})


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def lock_facts() -> list[LockFact]:
    """ppcmk's lock records (Prefect Variables `ppcmk-lock-*`): when each locked environment is deleted."""
    with get_client(sync_client=True) as client:
        response = client.request("POST", "/variables/filter",
                                  json={"variables": {"name": {"like_": LOCK_PREFIX}}})
    facts = []
    for variable in response.json():
        if not str(variable.get("name", "")).startswith(LOCK_PREFIX) or not isinstance(variable.get("value"),
                                                                                         dict):
            continue
        record = LockRecord.model_validate(variable["value"])
        facts.append(LockFact(policy_id=record.policy_id, policy_name=record.policy_name, state=record.state,
                              locked_at=record.locked_at,
                              deleted_after={e.id: e.deleted_after for e in record.environments},
                              names={e.id: e.name for e in record.environments}))
    return facts


def target_blocks() -> list[TargetFact]:
    """The saved CmkTarget blocks, so that a fix names one to run with."""
    with get_client(sync_client=True) as client:
        try:
            documents = client.read_block_documents_by_type(CmkTarget.get_block_type_slug(),
                                                            include_secrets=False)
        except ObjectNotFound:  # no CmkTarget block was ever saved on this server
            return []
        except PrefectHTTPStatusError as missing:  # nor its block type registered (a 404 for the type)
            if missing.response.status_code != 404:
                raise
            return []
    return [TargetFact(block=d.name, **{field: str(d.data.get(field, "")) for field in TARGET_FIELDS})
            for d in documents if d.name and d.data]
