"""Fault injection: rules by method + path regex: an error status (optionally with an empty body, as the
Power Platform admin API answers some 409s), latency, a dropped connection, or a connection dropped after
the request was applied (the write happened, the caller never learns it), or a crash: applied, unanswered,
and from then on every request of the caller dropped, as if its process died right after the write (until
the rules are cleared and a re-run starts).

A poll answered 409 while the operation runs (recorded, see docs/SANDBOX.md) is the rule
`poll_conflicts(times)` adds: GET on a lifecycle operation, status 409, empty body."""

from __future__ import annotations

import random
import re
import threading
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FaultRule(BaseModel):
    """One rule. ``times``: matching requests it hits (None = unlimited); ``status`` None: no error."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    method: str = "*"
    path: str = ".*"
    status: int | None = 503
    retry_after: str | None = None
    times: int | None = 1
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    latency: float = Field(default=0.0, ge=0.0)
    drop: bool = False
    drop_after: bool = False  # apply the request, then drop the connection instead of answering
    crash: bool = False  # drop_after, then drop every later request until cleared (the caller died)
    empty_body: bool = False  # the error status without a body
    code: str | None = None  # error code in the body; defaults per status

    @field_validator("path")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"path must be a regular expression: {exc}") from exc
        return value

    @field_validator("status")
    @classmethod
    def _error_status(cls, value: int | None) -> int | None:
        if value is not None and not 400 <= value <= 599:
            raise ValueError("status must be an HTTP error status (400-599), or null for latency/drop only")
        return value

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method.upper()) and re.search(self.path, path, re.IGNORECASE) is not None


DEFAULT_CODES = {
    429: "TooManyRequests",
    409: "Conflict",
    404: "NotFound",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


class Faults:
    """The active rules: the first matching rule with ``times`` left (winning its dice roll) applies."""

    def __init__(self, seed: int = 7) -> None:
        self._rules: list[FaultRule] = []
        self._guard = threading.Lock()
        self._random = random.Random(seed)
        self._dead = False  # a crash rule fired: every request is dropped until the rules are cleared

    def add(
        self,
        method: str = "*",
        path: str = ".*",
        status: int | None = 503,
        times: int | None = 1,
        retry_after: str | None = None,
        latency: float = 0.0,
        probability: float = 1.0,
        drop: bool = False,
        code: str | None = None,
        drop_after: bool = False,
        empty_body: bool = False,
    ) -> str:
        rule = FaultRule(
            method=method.upper(),
            path=path,
            status=None if drop_after else status,
            times=times,
            retry_after=retry_after,
            latency=latency,
            probability=probability,
            drop=drop,
            code=code,
            drop_after=drop_after,
            empty_body=empty_body,
        )
        return self.add_rule(rule)

    def crash_after(self, method: str, path: str) -> str:
        """The next matching request is applied, then the caller is gone: nothing it sends is answered."""
        return self.add_rule(FaultRule(method=method, path=path, status=None, drop_after=True, crash=True))

    def poll_conflicts(self, times: int | None = 1) -> str:
        """Lifecycle operation polls answer 409 with an empty body (`times` of them)."""
        return self.add("GET", r"/lifecycleOperations/", status=409, times=times, empty_body=True)

    def add_rule(self, rule: FaultRule) -> str:
        rule.method = rule.method.upper()
        with self._guard:
            self._rules.append(rule)
        return rule.id

    def clear(self, seed: int | None = None) -> None:
        with self._guard:
            self._rules.clear()
            self._dead = False
            if seed is not None:
                self._random.seed(seed)

    def rules(self) -> list[dict[str, Any]]:
        with self._guard:
            return [r.model_dump() for r in self._rules]

    def take(self, method: str, path: str) -> FaultRule | None:
        """The rule that applies to this request (consuming one of its ``times``), if any."""
        with self._guard:
            if self._dead:
                return FaultRule(status=None, drop=True)
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                if rule.times is not None:
                    rule.times -= 1
                    if rule.times <= 0:
                        self._rules.remove(rule)
                self._dead = rule.crash
                return rule
        return None
