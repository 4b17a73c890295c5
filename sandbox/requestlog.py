"""The request log: every call the sandbox answered, for tests to assert call counts and statuses."""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class LogEntry:
    method: str
    path: str
    status: int
    duration_ms: float
    caller: str | None  # persona name of the authenticated caller
    origin: str  # "main" or the vault / managed HSM name
    at: str  # virtual time (ISO) when the request arrived
    api_version: str | None = None
    request_id: str = ""  # the x-ms-request-id the answer carried (also set for a dropped connection)
    correlation_id: str = ""


class RequestLog:
    def __init__(self) -> None:
        self._entries: list[LogEntry] = []
        self._guard = threading.Lock()

    def record(self, entry: LogEntry) -> None:
        with self._guard:
            self._entries.append(entry)

    @property
    def entries(self) -> list[LogEntry]:
        with self._guard:
            return list(self._entries)

    def count(
        self,
        method: str | None = None,
        path: str | None = None,
        caller: str | None = None,
        status: int | None = None,
    ) -> int:
        """Matching entries; ``path`` is a regex searched case-insensitively."""
        return sum(
            1
            for e in self.entries
            if (method is None or e.method == method.upper())
            and (path is None or re.search(path, e.path, re.IGNORECASE))
            and (caller is None or e.caller == caller)
            and (status is None or e.status == status)
        )

    def clear(self) -> None:
        with self._guard:
            self._entries.clear()

    def to_list(self) -> list[dict[str, object]]:
        return [asdict(e) for e in self.entries]
