"""The audit trail: request ids per change, and an append-only hash-chained JSONL log.

`request_ids()` collects the service request/correlation ids of every HTTP exchange made inside it
(the client factory's pipeline policy and httpx hook feed it), so an audit record can name the exact
calls behind a change. Each log line carries the hash of the previous line; `verify_chain()` finds any
edited, removed or reordered line.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

REQUEST_ID_HEADERS = ("x-ms-request-id", "x-ms-correlation-request-id", "x-ms-correlation-id",
                      "x-ms-client-request-id")


class RequestRecord(BaseModel):
    method: str
    url: str
    status: int
    ids: dict[str, str]


_recorder: contextvars.ContextVar[list[RequestRecord] | None] = contextvars.ContextVar(
    "ppcmk_request_ids", default=None)


@contextmanager
def request_ids() -> Iterator[list[RequestRecord]]:
    """Collect the request ids of every service call made in this context (nested blocks each see theirs)."""
    records: list[RequestRecord] = []
    token = _recorder.set(records)
    outer = token.old_value if token.old_value is not contextvars.Token.MISSING else None
    try:
        yield records
    finally:
        _recorder.reset(token)
        if isinstance(outer, list):
            outer.extend(records)


def note_response(method: str, url: str, status: int, headers: Any) -> dict[str, str]:
    """Record the ids of one response in the active collector (if any); returns them for logging."""
    ids = {name: str(headers[name]) for name in REQUEST_ID_HEADERS if headers.get(name)}
    records = _recorder.get()
    if records is not None:
        # Query strings can carry SAS-style secrets in general, so only the path is kept.
        records.append(RequestRecord(method=method, url=url.split("?", 1)[0], status=status, ids=ids))
    return ids


def ppcmk_home() -> Path:
    return Path(os.environ.get("PPCMK_HOME") or Path.home() / ".ppcmk")


_GENESIS = "0" * 64
_write_lock = threading.Lock()


def _digest(entry: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class AuditLog:
    """An append-only JSONL file where every line includes the previous line's hash."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or ppcmk_home() / "audit.jsonl"

    def _last_hash(self) -> str:
        if not self.path.exists():
            return _GENESIS
        last = ""
        with self.path.open("rb") as handle:
            for line in handle:
                if line.strip():
                    last = line.decode()
        return json.loads(last)["hash"] if last else _GENESIS

    def record(self, event: dict[str, Any]) -> dict[str, Any]:
        """Append `event` (JSON-serialisable) and return the stored entry with its chain hashes."""
        with _write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            entry: dict[str, Any] = {"at": datetime.now(UTC).isoformat(), "event": event,
                                     "prev": self._last_hash()}
            entry["hash"] = _digest(entry)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            return entry

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def verify_chain(self) -> list[str]:
        """Problems found in the chain (empty when intact), each naming the line number."""
        problems: list[str] = []
        previous = _GENESIS
        for number, entry in enumerate(self.entries(), start=1):
            stored = entry.get("hash")
            body = {key: value for key, value in entry.items() if key != "hash"}
            if entry.get("prev") != previous:
                problems.append(f"line {number}: does not follow line {number - 1} (removed or reordered)")
            if stored != _digest(body):
                problems.append(f"line {number}: content changed after it was written")
            previous = stored or ""
        return problems


def record(event: dict[str, Any]) -> dict[str, Any]:
    """Append an event to the default audit log ($PPCMK_HOME/audit.jsonl)."""
    return AuditLog().record(event)


def verify_chain() -> list[str]:
    """Verify the default audit log; returns the problems found (empty when intact)."""
    return AuditLog().verify_chain()
