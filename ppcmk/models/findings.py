"""Findings: what a preflight check concluded about one object, and the fix; the report of them as
JSON."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field


class Severity(StrEnum):
    ERROR = "error"  # the procedure would fail or lock environments: fix before running
    WARNING = "warning"  # works today, but will break or surprise later
    INFO = "info"  # a fact worth knowing (current state), nothing to fix

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class Finding(BaseModel):
    """One conclusion of one check about one object."""

    check: str = Field(description="stable check id, e.g. 'vault.purge_protection'")
    severity: Severity
    subject: str = Field(description="the object concerned: a vault/key/policy id, an environment id, ...")
    name: str = Field(default="", description="what a person calls the subject (an environment's name)")
    message: str = Field(description="what was found")
    fix: str = Field(default="", description="how to fix it (empty for info findings)")

    @property
    def about(self) -> str:
        """The subject as a person reads it: its name, with the id after it where they differ."""
        named = self.name and self.name != self.subject
        return f"{self.name} ({self.subject})" if named else self.subject


def error(check: str, subject: str, message: str, fix: str) -> Finding:
    return Finding(check=check, severity=Severity.ERROR, subject=subject, message=message, fix=fix)


def warning(check: str, subject: str, message: str, fix: str) -> Finding:
    return Finding(check=check, severity=Severity.WARNING, subject=subject, message=message, fix=fix)


def info(check: str, subject: str, message: str) -> Finding:
    return Finding(check=check, severity=Severity.INFO, subject=subject, message=message)


@dataclass
class FindingsAbout:
    """What one check concludes about one subject, named once: each call adds a finding."""

    subject: str
    findings: list[Finding] = field(default_factory=list)

    def error(self, check: str, message: str, fix: str) -> None:
        self.findings.append(error(check, self.subject, message, fix))

    def warning(self, check: str, message: str, fix: str) -> None:
        self.findings.append(warning(check, self.subject, message, fix))


class DoctorReport(BaseModel):
    """Every finding of one preflight run, most severe first."""

    generated_at: datetime
    findings: list[Finding] = Field(default_factory=list)

    @classmethod
    def of(cls, generated_at: datetime, findings: Iterable[Finding]) -> DoctorReport:
        """Most severe first; a finding reached twice (e.g. two targets sharing a policy) is kept once."""
        unique = {(f.check, f.subject, f.message): f for f in findings}
        ordered = sorted(unique.values(), key=lambda f: (f.severity.rank, f.subject, f.check))
        return cls(generated_at=generated_at, findings=ordered)

    def by_severity(self, severity: Severity) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def errors(self) -> list[Finding]:
        return self.by_severity(Severity.ERROR)

    @property
    def warnings(self) -> list[Finding]:
        return self.by_severity(Severity.WARNING)

    @property
    def ok(self) -> bool:
        """True when nothing blocks the procedures (warnings and info allowed)."""
        return not self.errors

    def checks(self, subject: str | None = None) -> set[str]:
        """The ids of the checks that reported something (optionally about one subject)."""
        return {f.check for f in self.findings if subject is None or f.subject == subject}

    def summary(self) -> str:
        counts = {s: len(self.by_severity(s)) for s in Severity}
        return ", ".join(f"{n} {s.value}{'s' if n != 1 else ''}" for s, n in counts.items())

    def to_json(self) -> str:
        return json.dumps(
            {"ok": self.ok, "summary": self.summary(), **self.model_dump(mode="json")}, indent=2
        )

