"""The pack assembled from a reading: what is in scope, the changes, timelines, pickups, coverage, controls,
findings and the current estate. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ppcmk.checks.byok import may_have_been_reverted
from ppcmk.errors import ConfigError
from ppcmk.evidence.changes import changes_in, named_with, recorded_findings
from ppcmk.evidence.controls import KeyReading, controls
from ppcmk.evidence.history import Reading, coverage, environment_lane, estate_rows, key_lane, pickups
from ppcmk.evidence.model import ChainCheck, EvidencePack, FindingSpan, Lane, Period, RoleHolder, Scope
from ppcmk.models.environments import Environment
from ppcmk.watch.drift import DriftSeverity
from ppcmk.watch.estate import KeyFact, PolicyFact
from ppcmk.watch.rules import detect


@dataclass
class Selection:
    """What a scope covers: environments, policies, and the names and ids a change must name (None: all)."""

    environments: list[Environment]
    policies: list[PolicyFact]
    wanted: set[str] | None

    def keys(self, reading: Reading) -> list[KeyFact]:
        found = [reading.facts.key(p.key_vault_id, p.key_name) for p in self.policies]
        unique = {(k.vault_id.lower(), k.name.lower()): k for k in found if k is not None}
        return list(unique.values())


def _names(environments: list[Environment], policies: list[PolicyFact]) -> set[str]:
    names = {v.lower() for e in environments for v in (e.id, e.display_name or "") if v}
    for policy in policies:
        names |= {policy.policy_id.lower(), policy.name.lower(), (policy.key_name or "").lower()}
    return names - {""}


def select(reading: Reading, scope: Scope) -> Selection:
    listed, policies = reading.listed, reading.facts.policies
    if scope.policy:
        chosen = [p for p in policies if p.name.lower() == scope.policy.lower()]
        if not chosen:
            raise ConfigError("policy", f"the subscription has no enterprise policy {scope.policy!r}",
                              "name a policy the report lists, or leave it out for the whole tenant")
        related = named_with(reading.entries, _names([], chosen))
        ids = {chosen[0].policy_id.lower()}
        environments = [e for e in listed if (e.cmk and (e.cmk.policy_id or "").lower() in ids)
                        or e.id.lower() in related]
        return Selection(environments, chosen, _names(environments, chosen))
    if scope.environments:
        asked = {name.lower() for name in scope.environments}
        environments = [e for e in listed if {e.id.lower(), (e.display_name or "").lower()} & asked]
        if not environments:
            raise ConfigError("environments", f"none of {scope.environments} is visible",
                              "use ids or names from the report")
        linked = {(e.cmk.policy_id or "").lower() for e in environments if e.cmk}
        chosen = [p for p in policies if p.policy_id.lower() in linked]
        return Selection(environments, chosen, _names(environments, chosen))
    return Selection(list(listed), list(policies), None)


def needs_operations(reading: Reading, selection: Selection) -> list[str]:
    """The environments whose lifecycle operations the pack reads: on a customer-managed key (or linking),
    named by a change in the audit chain, or old enough to have been on BYOK at its end of support."""
    named = named_with(reading.entries, {e.id.lower() for e in selection.environments})
    return [e.id for e in selection.environments
            if e.cmk is not None or e.id.lower() in named or may_have_been_reverted(e)]


def _findings(reading: Reading, period: Period, wanted: set[str] | None) -> list[FindingSpan]:
    recorded = recorded_findings(reading.entries, period)
    open_keys = {f"{f.kind}|{f.object_id.lower()}" for f in recorded if f.resolved is None}
    now = [FindingSpan(kind=d.kind, severity=d.severity.value, object=d.object, object_id=d.object_id,
                       since=d.since, resolved=None, message=d.message, fix=d.fix)
           for d in detect(reading.facts) if d.key not in open_keys and d.severity != DriftSeverity.INFO]
    every = recorded + now
    if wanted is None:
        return every
    return [f for f in every if any(w in f.object_id.lower() or w == f.object.lower() for w in wanted)]


def build_pack(reading: Reading, chain: ChainCheck, period: Period, scope: Scope,
               key_readings: list[KeyReading], roles: list[RoleHolder],
               generated_at: datetime) -> EvidencePack:
    selection = select(reading, scope)
    keys = selection.keys(reading)
    findings = _findings(reading, period, selection.wanted)
    reading.locked_findings = [f for f in findings if f.kind == "env.locked"]
    lanes: dict[str, Lane] = {}
    for env in selection.environments:
        if env.cmk is not None or env.id in reading.operations:
            lane = environment_lane(env, reading, period)
            if any(period.overlaps(s.start, s.end) for s in lane.spans) or any(
                    period.covers(m.at) for m in lane.marks):
                lanes[env.id] = lane
    in_scope = {(k.vault_id.lower(), k.name.lower()) for k in keys}
    facts = reading.facts
    return EvidencePack(
        title=f"Customer-managed key evidence: {scope.label}", tenant_id=reading.tenant_id,
        subscription_id=reading.subscription_id, generated_at=generated_at, period=period, scope=scope,
        chain=chain, changes=changes_in(reading.entries, period, selection.wanted),
        keys=[key_lane(k, [p for p in selection.policies if (p.key_name or "").lower() == k.name.lower()],
                       reading.entries) for k in keys],
        environments=sorted(lanes.values(), key=lambda lane: lane.name.lower()),
        pickups=pickups(reading, lanes, keys, period),
        coverage=coverage(list(lanes.values()), len(selection.environments) - len(lanes), period),
        controls=controls(facts, selection.policies,
                          [k for k in key_readings if (k.vault_id.lower(), k.name.lower()) in in_scope]),
        roles=roles, findings=findings,
        estate=estate_rows(reading, lanes, selection.environments, period))
