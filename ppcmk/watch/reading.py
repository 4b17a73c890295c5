"""Estate reads at tenant scale: every policy, its key access, keys and versions, vault network, every
environment and its link/lock state, with bounded concurrency.

Time grows with the number of objects divided by the concurrency: independent reads run on a bounded thread
pool (`bounded_map`). Throttling is honoured below this module: the SDK's retry policy and ppcmk's httpx
transport both wait for Retry-After on 429/503 before retrying. Power Platform clients are one per thread
(`ClientFactory.pp_api`, `pp_admin`): through one shared httpx pool, concurrent reads queue on its lock.
Each policy, vault and key is read once however many environments use it; an environment costs no call of
its own beyond the listing unless its lifecycle operations matter (a CMK operation running, or a desired
link missing). A read that fails becomes a `ReadFailure`, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from azure.core.exceptions import ResourceNotFoundError

from ppcmk.cloud.parallel import DEFAULT_CONCURRENCY, Item, Result, bounded_map, summary
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.errors import ServiceError
from ppcmk.models.arm_ids import MANAGED_HSM_TYPE, parse_resource_id
from ppcmk.models.azure import PolicyBasics, VaultStatus
from ppcmk.models.environments import Environment, EnvironmentOperation, pick
from ppcmk.safety.holds import HOLD_TAG, REASON_TAG
from ppcmk.services.factory import ClientFactory
from ppcmk.services.key_vault import epoch_time, read_key_via_arm, read_vault
from ppcmk.services.policies import policy_from_arm
from ppcmk.services.role_grants import POLICY_READ_ROLES, read_key_grants, read_role_grants, resolve_principal
from ppcmk.watch.estate import (
    ENVIRONMENT_LIST,
    EnvironmentFact,
    EstateFacts,
    GrantFact,
    KeyFact,
    KeyVersionFact,
    PolicyFact,
    ReaderFact,
    ReadFailure,
    VaultFact,
)
from ppcmk.watch.rotation_pickup import awaiting


def _tag_time(tags: dict[str, str] | None) -> tuple[datetime | None, str | None]:
    if not tags or HOLD_TAG not in tags:
        return None, None
    try:
        return datetime.fromisoformat(tags[HOLD_TAG]), tags.get(REASON_TAG)
    except ValueError:
        return None, None


def environment_fact(env: Environment) -> EnvironmentFact:
    return EnvironmentFact(
        id=env.id, name=env.display_name or env.id, sku=env.sku or "", runtime_state=env.runtime_state or "",
        runtime_reason=env.runtime_reason or "", policy_id=env.cmk.policy_id if env.cmk else None,
        link_status=env.cmk.link_status if env.cmk else None,
        key_managed_by=env.key_managed_by or "Microsoft", last_modified=env.last_modified)


def list_policies(factory: ClientFactory) -> list[PolicyFact]:
    """Every Encryption enterprise policy of the subscription (one paged ARM listing)."""
    found = []
    for policy in factory.powerplatform_mgmt().enterprise_policies.list_by_subscription():
        raw = policy.as_dict()
        if str(pick(raw, "kind", default="")).lower() != "encryption":
            continue
        info = policy_from_arm(raw)
        hold_until, hold_reason = _tag_time(pick(raw, "tags"))
        found.append(PolicyFact(
            **info.model_dump(include=set(PolicyBasics.model_fields)),
            resource_group=parse_resource_id(info.policy_id).resource_group,
            hold_until=hold_until, hold_reason=hold_reason))
    return found


def vault_fact(status: VaultStatus) -> VaultFact:
    return VaultFact(vault_id=status.vault_id, name=status.name, kind=status.kind,
                     soft_delete=status.soft_delete, purge_protection=status.purge_protection,
                     rbac_authorization=status.rbac_authorization,
                     public_network_access=status.public_network_access, default_action=status.default_action,
                     trusted_services_bypass=status.trusted_services_bypass)


def _vault_if_present(factory: ClientFactory, vault_id: str) -> VaultStatus | None:
    """The vault, or None when ARM says it does not exist (deleted: every policy on it locks)."""
    try:
        return read_vault(factory, vault_id)
    except ResourceNotFoundError:
        return None


def read_key_fact(factory: ClientFactory, vault_id: str, name: str) -> KeyFact:
    """The key, its rotation policy and every version (with hold tags) through ARM: no data-plane access is
    needed and the vault's firewall does not apply."""
    rid = parse_resource_id(vault_id)
    key, rotation = read_key_via_arm(factory, vault_id, name)
    if key is None:
        return KeyFact(vault_id=vault_id, vault_name=rid.name, name=name, exists=False)
    mgmt = factory.keyvault_mgmt()
    keys = mgmt.managed_hsm_keys if rid.is_type(*MANAGED_HSM_TYPE) else mgmt.keys
    versions = []
    for listed in keys.list_versions(rid.resource_group, rid.name, name):
        raw = listed.as_dict()
        attributes = pick(raw, "properties", "attributes", default={})
        hold_until, hold_reason = _tag_time(pick(raw, "tags"))
        versions.append(KeyVersionFact(
            version=str(pick(raw, "name", default="")).rsplit("/", 1)[-1], enabled=bool(pick(
                attributes, "enabled", default=True)), created_on=epoch_time(pick(attributes, "created")),
            not_before=epoch_time(pick(attributes, "nbf")), expires_on=epoch_time(pick(attributes, "exp")),
            hold_until=hold_until, hold_reason=hold_reason))
    versions.sort(key=lambda v: v.created_on or datetime.min.replace(tzinfo=UTC), reverse=True)
    after = rotation.rotate_after_create
    return KeyFact(vault_id=vault_id, vault_name=rid.name, name=name, current_version=key.version,
                   enabled=key.enabled, not_before=key.not_before, expires_on=key.expires_on,
                   created_on=key.created_on, updated_on=key.updated_on,
                   rotate_after_days=after.days if after else None, versions=versions)


def key_grants(factory: ClientFactory, vault: VaultStatus, policy: PolicyFact) -> list[GrantFact] | None:
    """What gives the policy identity key access; None when the caller may not read a managed HSM's roles."""
    try:
        grants = read_key_grants(factory, vault, policy.principal_id or "", policy.key_name)
    except ServiceError as refused:
        if vault.kind == "managedHSM" and refused.status in (401, 403):
            return None
        raise
    return [GrantFact(role=g.role_definition_id or g.mechanism, scope=g.scope, created_on=g.created_on)
            for g in grants]


def readers(factory: ClientFactory, policy: PolicyFact, admins: Sequence[str]) -> list[ReaderFact]:
    found = []
    for admin in admins:
        principal = resolve_principal(factory, admin)
        held = read_role_grants(factory, policy.policy_id, principal, POLICY_READ_ROLES)
        found.append(ReaderFact(admin=admin, has_reader=bool(held)))
    return found


def operations(factory: ClientFactory, environment_id: str) -> list[EnvironmentOperation]:
    return factory.pp_api().environment_operations(environment_id)


class _Estate:
    def __init__(self, factory: ClientFactory, concurrency: int) -> None:
        self.factory, self.concurrency = factory, concurrency
        self.failures: list[ReadFailure] = []

    def each(self, fn: Callable[[Item], Result], items: Sequence[Item], name: Callable[[Item], str],
             what: str) -> list[tuple[Item, Result]]:
        """`fn` over items concurrently; failures recorded, the rest returned with their item."""
        done = []
        for item, result in zip(items, bounded_map(fn, items, self.concurrency), strict=True):
            if isinstance(result, BaseException):
                self.failures.append(ReadFailure(object=name(item), what=what, message=summary(result)))
            else:
                done.append((item, result))
        return done

    def one(self, fn: Callable[[], Result], name: str, what: str) -> Result | None:
        return next((result for _, result in self.each(lambda _: fn(), [None], lambda _: name, what)), None)


def read_estate(conn: ConnectionSettings, pp_admins: Sequence[str] = (),
                operations_for: Callable[[EnvironmentFact], bool] | None = None,
                concurrency: int = DEFAULT_CONCURRENCY,
                environments: Sequence[Environment] | None = None) -> EstateFacts:
    """Everything watch judges. `operations_for` says which environments' lifecycle operations to read
    besides those with a CMK operation in progress (e.g. environments the desired state wants linked);
    `environments`: the environment list, when the caller has read it already."""
    factory = ClientFactory.for_settings(conn)
    estate = _Estate(factory, concurrency)
    now = factory.now()
    if environments is None:
        environments = estate.one(factory.pp_admin().list_environments, "environments", ENVIRONMENT_LIST)
    envs = [environment_fact(e) for e in environments or []]
    policies = estate.one(lambda: list_policies(factory), "enterprise policies", "the policy list") or []
    vault_ids = sorted({p.key_vault_id for p in policies if p.key_vault_id}, key=str.lower)
    read = dict(estate.each(lambda v: _vault_if_present(factory, v), vault_ids, str, "the vault"))
    statuses = {vault_id: status for vault_id, status in read.items() if status is not None}
    missing = [VaultFact(vault_id=v, name=parse_resource_id(v).name, exists=False) for v, s in read.items()
               if s is None]
    key_refs = sorted({(p.key_vault_id, p.key_name) for p in policies
                       if p.key_vault_id in statuses and p.key_name})
    keys = [k for _, k in estate.each(lambda ref: read_key_fact(factory, *ref), key_refs,
                                      lambda ref: f"{ref[0]}/keys/{ref[1]}", "the key")]
    with_access = [p for p in policies if p.principal_id and p.key_vault_id in statuses]
    for policy, grants in estate.each(lambda p: key_grants(factory, statuses[p.key_vault_id or ""], p),
                                      with_access, lambda p: p.policy_id, "the policy identity's key access"):
        policy.key_grants = grants
    if pp_admins:
        for policy, found in estate.each(lambda p: readers(factory, p, pp_admins), policies,
                                         lambda p: p.policy_id, "the admins' Reader role"):
            policy.readers = found
    picking_up = awaiting(envs, policies, keys, now)
    wanted = [e for e in envs if e.cmk_in_progress or e.id in picking_up
              or (operations_for is not None and operations_for(e))]
    for env, listed in estate.each(lambda e: operations(factory, e.id), wanted, lambda e: e.id,
                                   "the environment's lifecycle operations"):
        env.operations = listed
    return EstateFacts(now=now, vaults=[vault_fact(s) for s in statuses.values()] + missing, vault_keys=keys,
                       policies=policies, environments=envs, failures=estate.failures)
