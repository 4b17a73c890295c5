"""Gathering an evidence pack: the estate (as watch reads it), the audit chain and its verification, the
lifecycle operations of the environments with a history, the keys' type, size and rotation policy, and who
holds which role on the vaults and policies; then the pack built and written. Read-only.

Reads grow with the environments that have a history, not with the tenant: one listing covers every other
environment, and each policy, key and vault is read once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from pydantic import BaseModel

from ppcmk.audit.store import describe
from ppcmk.audit.trail import AuditLog, chain_problems
from ppcmk.cloud.parallel import DEFAULT_CONCURRENCY, bounded_map, summary
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import PpcmkError
from ppcmk.evidence.build import build_pack, needs_operations, select
from ppcmk.evidence.controls import KeyReading
from ppcmk.evidence.files import write_pack
from ppcmk.evidence.history import Reading
from ppcmk.evidence.model import DEFAULT_PERIOD, ChainCheck, ManifestEntry, Period, RoleHolder, Scope
from ppcmk.home import ppcmk_home
from ppcmk.models.environments import EnvironmentOperation
from ppcmk.safety.plan import artifact_key
from ppcmk.safety.retry import cmk_task
from ppcmk.safety.validation import check_number
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import read_key_via_arm
from ppcmk.services.role_grants import lookup_principal
from ppcmk.watch.estate import PolicyFact
from ppcmk.watch.reading import read_estate


class EvidenceResult(BaseModel):
    """What a run says about the pack it wrote (the pack itself is in `directory`)."""

    directory: str
    files: list[ManifestEntry]
    period: Period
    scope: str
    changes: int
    environments: int
    on_cmk: int
    chain_intact: bool
    chain_problems: list[str]
    last_hash: str
    pickups_missing: int
    findings: int
    notes: list[str]

    def rows(self) -> list[dict[str, object]]:
        """The summary table (the run's artifact, the command's output)."""
        problems = len(self.chain_problems)
        chain = "intact" if self.chain_intact else f"FAILED verification ({problems} problem(s))"
        return [
            {"what": "period (cloud clock)", "value": f"{self.period.start:%Y-%m-%d %H:%M} to "
                                                      f"{self.period.end:%Y-%m-%d %H:%M}"},
            {"what": "scope", "value": self.scope},
            {"what": "changes", "value": self.changes},
            {"what": "environments on a customer-managed key now", "value": f"{self.on_cmk} of "
                                                                           f"{self.environments}"},
            {"what": "audit chain", "value": chain},
            {"what": "hash of the chain's last entry", "value": self.last_hash},
            {"what": "new key versions not taken up within 24 h", "value": self.pickups_missing},
            {"what": "drift findings open in the period", "value": self.findings},
            {"what": "files", "value": ", ".join(f"{f.file} sha256 {f.sha256}" for f in self.files)},
        ]


def chain_check(log: AuditLog) -> tuple[ChainCheck, list[dict[str, object]]]:
    entries, head = log.entries(), log.head()
    problems = chain_problems(entries, head)
    last = entries[-1] if entries else {}
    return ChainCheck(store=describe(log.store.storage), entries=len(entries), intact=not problems,
                      problems=problems, last_seq=int(str(last.get("seq", 0))),
                      last_hash=str(last.get("hash", ""))), entries


class _Directory:
    """Principals by name, each looked up once (a role holder the directory does not know keeps its id)."""

    def __init__(self, factory: ClientFactory) -> None:
        self.factory, self.names, self.roles = factory, dict[str, str](), dict[str, str]()

    def principal(self, object_id: str) -> str:
        if object_id not in self.names:
            try:
                found = lookup_principal(self.factory, object_id)
                self.names[object_id] = found.user_principal_name or found.display_name or object_id
            except PpcmkError:  # not in the directory (or not readable): the id is all there is to show
                self.names[object_id] = object_id
        return self.names[object_id]

    def role(self, definition_id: str) -> str:
        if definition_id not in self.roles:
            definition = self.factory.authorization().role_definitions.get_by_id(definition_id)
            self.roles[definition_id] = str(definition.role_name or definition_id.rsplit("/", 1)[-1])
        return self.roles[definition_id]


def role_holders(factory: ClientFactory, policies: Sequence[PolicyFact]) -> list[RoleHolder]:
    """Who holds which role on each policy and on its vault (assigned there or above)."""
    directory = _Directory(factory)
    scopes = {p.policy_id: p.name for p in policies}
    scopes |= {p.key_vault_id: p.key_vault_id.rstrip("/").rsplit("/", 1)[-1]
               for p in policies if p.key_vault_id}
    holders = []
    for scope, name in scopes.items():
        for a in factory.authorization().role_assignments.list_for_scope(scope, filter="atScope()"):
            holders.append(RoleHolder(scope=name, role=directory.role(str(a.role_definition_id)),
                                      principal=directory.principal(str(a.principal_id)),
                                      principal_id=str(a.principal_id)))
    return sorted(holders, key=lambda h: (h.scope, h.role, h.principal))


def _operations(factory: ClientFactory, ids: list[str],
                notes: list[str]) -> dict[str, list[EnvironmentOperation]]:
    read = bounded_map(lambda i: factory.pp_api().environment_operations(i), ids, DEFAULT_CONCURRENCY)
    found = {}
    for environment_id, result in zip(ids, read, strict=True):
        if isinstance(result, BaseException):
            notes.append(f"the lifecycle operations of {environment_id} could not be read: {summary(result)}")
        else:
            found[environment_id] = result
    return found


def pack_directory(output_dir: str | None, scope: Scope, end: datetime) -> Path:
    if output_dir:
        return Path(output_dir).expanduser().resolve()
    return ppcmk_home() / "evidence" / artifact_key(f"{end:%Y-%m-%d-%H%M}", scope.label)


def evidence_pack(conn: ConnectionSettings, scope: Scope, days: int | None = None,
                  output_dir: str | None = None, log: AuditLog | None = None) -> EvidenceResult:
    """Read, build and write one pack for the last `days` (default a year) on the cloud's clock."""
    check_number("days", days)
    factory = ClientFactory.for_settings(conn)
    now = factory.now()
    period = Period(start=now - (timedelta(days=days) if days else DEFAULT_PERIOD), end=now)
    listed = factory.pp_admin().list_environments()
    facts = read_estate(conn, concurrency=DEFAULT_CONCURRENCY, environments=listed)
    chain, entries = chain_check(log or AuditLog())
    reading = Reading(facts, listed, entries=entries, tenant_id=conn.tenant_id,
                      subscription_id=conn.subscription_id)
    selection = select(reading, scope)
    notes = [f"could not read {f.what} of {f.object}: {f.message}" for f in facts.failures]
    reading.operations = _operations(factory, needs_operations(reading, selection), notes)
    keys = [KeyReading(k.vault_id, k.name, *read_key_via_arm(factory, k.vault_id, k.name))
            for k in selection.keys(reading)]
    pack = build_pack(reading, chain, period, scope, keys, role_holders(factory, selection.policies), now)
    pack = pack.model_copy(update={"notes": notes})
    directory = pack_directory(output_dir, scope, now)
    files = write_pack(pack, directory)
    return EvidenceResult(
        directory=str(directory), files=files, period=period, scope=scope.label, changes=len(pack.changes),
        environments=len(pack.estate), on_cmk=sum(r.on_cmk for r in pack.estate), chain_intact=chain.intact,
        chain_problems=chain.problems, last_hash=chain.last_hash,
        pickups_missing=sum(p.status == "missing" for p in pack.pickups), findings=len(pack.findings),
        notes=notes)


evidence_pack_task = cmk_task(task_run_name="evidence-pack")(evidence_pack)
