"""The audit trail: one append-only hash chain every worker shares. An entry names the exact service calls
behind a change by their request ids (`ppcmk.cloud.request_log`).

The chain lives in a Prefect filesystem block (`PPCMK_AUDIT_STORAGE`, configured like result storage: a
LocalFileSystem for one machine, any fsspec/remote block for many; without it `$PPCMK_HOME/audit`). Every
entry is one object `entries/<sequence>.json` holding the previous entry's hash; `head.json` names the
last one. A writer extends the chain under a cross-worker lock (ppcmk.audit.store), so entries from many
workers and from a run resumed elsewhere form one chain, and `verify_chain()` finds an edited, removed or
reordered entry. Each entry is also emitted as the Prefect event `ppcmk.audit.<event>`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from ppcmk.cloud.clock import cloud_now

GENESIS = "0" * 64
# Field names whose values never belong in an audit entry, whatever a caller passes.
SECRET_FIELDS = frozenset({"client_secret", "secret", "password", "access_token", "refresh_token", "token",
                           "authorization", "key_material"})
REDACTED = "[redacted]"
HEAD = "head.json"


def digest(entry: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def scrubbed(value: Any) -> Any:
    """`value` as JSON data with secret-named fields and SecretStr values replaced."""
    if isinstance(value, SecretStr):
        return REDACTED
    if isinstance(value, BaseModel):
        return scrubbed(value.model_dump(mode="json"))
    if isinstance(value, dict):
        return {str(key): REDACTED if str(key).lower() in SECRET_FIELDS else scrubbed(item)
                for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrubbed(item) for item in value]
    return value


def _origin() -> dict[str, str]:
    """Which flow run (if any) and host wrote the entry: `ppcmk audit show --run` selects by it."""
    origin = {"host": socket.gethostname()}
    if worker := os.environ.get("PREFECT__WORKER_NAME"):  # a process worker names itself to its runs
        origin["worker"] = worker
    try:
        from prefect.context import FlowRunContext
    except ImportError:  # pragma: no cover - prefect is a dependency
        return origin
    context = FlowRunContext.get()
    if context is not None and context.flow_run is not None:
        origin.update(flow_run_id=str(context.flow_run.id), flow_run_name=context.flow_run.name)
    return origin


def new_entry(sequence: int, previous: str, event: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {"seq": sequence, "at": datetime.now(UTC).isoformat(), "by": _origin(),
                             "event": scrubbed(event), "prev": previous}
    if (cloud := cloud_now()) is not None:  # a virtual cloud clock: what a period on that clock selects by
        entry["cloud_at"] = cloud.isoformat()
    entry["hash"] = digest(entry)
    return entry


def entry_time(entry: dict[str, Any]) -> datetime:
    """When the entry was written on the cloud's clock (the wall clock unless a virtual one was in use)."""
    return datetime.fromisoformat(str(entry.get("cloud_at") or entry["at"]))


def chain_problems(entries: list[dict[str, Any]], head: dict[str, Any] | None) -> list[str]:
    """Problems in a chain read back in sequence order (empty when intact), each naming the entry."""
    problems: list[str] = []
    previous = GENESIS
    for expected, entry in enumerate(entries, start=1):
        number = entry.get("seq")
        if number != expected:
            problems.append(f"entry {expected}: missing (found entry {number} in its place)")
        body = {key: value for key, value in entry.items() if key != "hash"}
        if entry.get("prev") != previous:
            problems.append(f"entry {expected}: does not follow entry {expected - 1} (removed or reordered)")
        if entry.get("hash") != digest(body):
            problems.append(f"entry {expected}: content changed after it was written")
        previous = str(entry.get("hash") or "")
    if head is not None and (head.get("seq") != len(entries) or head.get("hash") != previous):
        problems.append(f"head names entry {head.get('seq')}, but the chain read back ends at entry "
                        f"{len(entries)} (entries removed or the head edited)")
    return problems


class AuditLog:
    """The shared audit chain in one store: the configured one, or a local folder `location`."""

    def __init__(self, location: Path | None = None) -> None:
        from prefect.filesystems import LocalFileSystem

        from ppcmk.audit.store import ChainStore

        self.store = ChainStore(LocalFileSystem(basepath=str(location)) if location else None)

    @staticmethod
    def entry_path(sequence: int) -> str:
        return f"entries/{sequence:012d}.json"

    def record(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append `event` (JSON data; secret-named fields are redacted) and return the stored entry."""
        with self.store.lock():
            head = self.store.read(HEAD) or {"seq": 0, "hash": GENESIS}
            entry = new_entry(int(head["seq"]) + 1, str(head["hash"]), event)
            self.store.write(self.entry_path(entry["seq"]), entry)
            # The head moves last: a writer that dies before it leaves no half-added entry in the chain.
            self.store.write(HEAD, {"seq": entry["seq"], "hash": entry["hash"]})
        emit(entry)
        return entry

    def head(self) -> dict[str, Any] | None:
        return self.store.read(HEAD)

    def entries(self) -> list[dict[str, Any]]:
        """The entries up to the head, in sequence order (a removed one is simply absent)."""
        last = int((self.head() or {}).get("seq", 0))
        found = (self.store.read(self.entry_path(sequence)) for sequence in range(1, last + 1))
        return [entry for entry in found if entry is not None]

    def verify_chain(self) -> list[str]:
        """Problems found in the chain (empty when intact), each naming the entry."""
        return chain_problems(self.entries(), self.head())

    def of_run(self, flow_run_id: str) -> list[dict[str, Any]]:
        """The entries of the flow run with this id, or of the runs whose id starts with it."""
        wanted = flow_run_id.lower()
        return [e for e in self.entries() if str(e.get("by", {}).get("flow_run_id")).startswith(wanted)]



def _related(event: dict[str, Any]) -> list[dict[str, str]]:
    """The policies and environments an entry names, as Prefect related resources."""
    related: dict[str, dict[str, str]] = {}
    for field in ("policy", "old_policy", "new_policy"):
        if isinstance(name := event.get(field), str) and name:
            related[f"ppcmk.policy.{name}"] = {"prefect.resource.role": "policy",
                                               "prefect.resource.name": name}
    environments = event.get("environments") or []
    if isinstance(event.get("environment_id"), str):
        environments = [*environments, event["environment_id"]]
    for item in environments if isinstance(environments, list) else []:
        env = item.get("environment_id") if isinstance(item, dict) else item
        if isinstance(env, str) and env:
            related[f"ppcmk.environment.{env}"] = {"prefect.resource.role": "environment"}
    return [{"prefect.resource.id": rid, **labels} for rid, labels in related.items()]


def emit(entry: dict[str, Any]) -> None:
    """The entry as the Prefect event `ppcmk.audit.<event>`, so the Event Feed and automations see it."""
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():  # no server to tell (and no throwaway one started just for this)
        return
    event = entry["event"]
    name = str(event.get("event") or "entry") if isinstance(event, dict) else "entry"
    emit_event(
        event=f"ppcmk.audit.{name}",
        resource={"prefect.resource.id": f"ppcmk.audit.entry.{entry['seq']}",
                  "prefect.resource.name": f"audit entry {entry['seq']}"},
        related=_related(event) if isinstance(event, dict) else [],
        payload={"seq": entry["seq"], "hash": entry["hash"], "by": entry["by"], "event": event},
    )


def record(event: dict[str, Any]) -> dict[str, Any]:
    """Append an event to the configured audit trail (PPCMK_AUDIT_STORAGE, else $PPCMK_HOME/audit)."""
    return AuditLog().record(event)


def verify_chain() -> list[str]:
    """Verify the configured audit trail; returns the problems found (empty when intact)."""
    return AuditLog().verify_chain()
