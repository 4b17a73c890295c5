"""Watch's rules: estate facts (and the desired state, if any) in, drift findings out. Pure functions.

Severities: critical when environments are down or will be deleted (a lock and its countdown, a disabled,
deleted or expired key, the policy identity's key access gone while environments are linked); error when
something the environments or runbooks depend on is broken; warning when it will break later; info for what
opens up (a hold ends). Every finding carries its fix: the runbook with its parameters, or the `az` command.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from pydantic import BaseModel

from ppcmk.locks.causes import EXPIRY_EXTENSION
from ppcmk.locks.countdown import days_left
from ppcmk.watch.desired import DesiredPolicy, DesiredState
from ppcmk.watch.drift import Drift, DriftSeverity, WatchState, ordered
from ppcmk.watch.estate import EnvironmentFact, EstateFacts, KeyFact, PolicyFact, VaultFact
from ppcmk.watch.lock_rules import deleted_drifts, locked_drift
from ppcmk.watch.rotation_pickup import NOT_PICKED_UP, PICKUP_HOURS, follows_rotation, pickup

CRITICAL, ERROR, WARNING, INFO = (DriftSeverity.CRITICAL, DriftSeverity.ERROR, DriftSeverity.WARNING,
                                  DriftSeverity.INFO)
PREVIOUS_VERSION_HOLD = timedelta(days=28)  # Power Platform keeps using the previous version this long
CMK_OPERATIONS = ("newcustomermanagedkey", "reverttomicrosoftkey")
DAY = 86400.0


class WatchRules(BaseModel):
    """Thresholds (a desired state's rotation cadence and expiry horizon take precedence)."""

    expiry_warning_days: tuple[int, int] = (60, 30)
    expiry_error_days: int = 7
    rotation_cadence_days: int | None = None
    link_expected_hours: float = 6.0
    hold_notice_days: int = 7
    propagation_minutes: int = 10
    rotation_pickup_hours: float = PICKUP_HOURS


def _drift(kind: str, severity: DriftSeverity, obj: str, obj_id: str, obj_type: str, message: str, fix: str,
           since: datetime | None = None, tier: str = "") -> Drift:
    return Drift(kind=kind, severity=severity, tier=tier, object=obj, object_id=obj_id, object_type=obj_type,
                 since=since, message=message, fix=fix)


def _target_of(desired: DesiredState | None, estate: EstateFacts, policy_name: str) -> str:
    """The CmkTarget block naming the policy: the desired state's, else one saved on the server."""
    wanted = desired.policy(policy_name) if desired and policy_name else None
    if wanted and wanted.target:
        return wanted.target
    policy = estate.policy_named(policy_name) if policy_name else None
    saved = estate.target_for(policy) if policy else None
    return saved or f"<a CmkTarget block for {policy_name or 'its policy'}: ppcmk setup blocks>"


# ------------------------------------------------------------------------------------------------- vaults


def vault_drifts(vault: VaultFact, target: str | None = None) -> Iterator[Drift]:
    """`target`: the CmkTarget block of a policy on this vault with linked environments, if any."""
    def found(kind: str, message: str, fix: str) -> Drift:
        return _drift(kind, ERROR, vault.name, vault.vault_id, "vault", message, fix)

    if not vault.exists:
        yield _drift("vault.deleted", CRITICAL, vault.name, vault.vault_id, "vault",
                     "the vault no longer exists: every environment whose policy uses its keys locks",
                     _unlock_fix(target, "recovers the soft-deleted vault",
                                 f"az keyvault recover --name {vault.name}"))
        return
    if vault.network_restricted and not vault.trusted_services_bypass:
        yield found("vault.firewall", f"public access is {vault.public_network_access} (default action "
                    f"{vault.default_action}) without the trusted Microsoft services bypass: Power Platform "
                    "cannot reach the key and linked environments lock",
                    _unlock_fix(target, "lets trusted Microsoft services through the firewall",
                                f"az keyvault update --name {vault.name} --bypass AzureServices"))
    if not vault.purge_protection:
        yield found("vault.purge_protection", "purge protection is off: the key can be purged for good",
                    f"az keyvault update --name {vault.name} --enable-purge-protection true (irreversible)")
    if not vault.soft_delete:
        yield found("vault.soft_delete", "soft delete is off: a deleted key cannot be recovered",
                    f"az keyvault update --name {vault.name} --enable-soft-delete true")


# --------------------------------------------------------------------------------------------------- keys


def _unlock_fix(target: str | None, what: str, by_hand: str) -> str:
    """A lock of a policy's environments: unlock repairs `what` and re-enables them (the repair by hand
    alone leaves them locked: re-enabling is unlock's too); what no policy uses is repaired by hand."""
    if target is None:
        return by_hand
    alternative = f" (or by hand: {by_hand}; then run unlock)" if by_hand else ""
    return f"run unlock (target={target}): it {what} and re-enables the locked environments{alternative}"


def key_drifts(key: KeyFact, now: datetime, rules: WatchRules, horizon_days: int,
               target: str | None) -> Iterator[Drift]:
    """`target`: the CmkTarget block of the policy using the key (None when no policy uses it)."""
    vault = key.vault_name
    by_hand = f"az keyvault key rotate --vault-name {vault} --name {key.name}"
    rotate_fix = f"run rotate (target={target}); or {by_hand}" if target else by_hand
    if not key.exists:
        yield _drift("key.deleted", CRITICAL, key.label, f"{key.vault_id}/keys/{key.name}", "key",
                     "the key is deleted: every environment using it locks",
                     _unlock_fix(target, "recovers the key",
                                 f"az keyvault key recover --vault-name {vault} --name {key.name}"))
        return
    key_id = f"{key.vault_id}/keys/{key.name}"
    if not key.enabled:
        yield _drift("key.disabled", CRITICAL, key.label, key_id, "key",
                     f"the current version {key.current_version} is disabled: environments using it lock",
                     _unlock_fix(target, "enables the version",
                                 f"az keyvault key set-attributes --vault-name {vault} --name {key.name} "
                                 f"--version {key.current_version} --enabled true"))
    if key.not_before and key.not_before > now:
        yield _drift("key.not_yet_valid", ERROR, key.label, key_id, "key",
                     f"the current version is not valid before {key.not_before:%Y-%m-%d %H:%M}",
                     f"az keyvault key set-attributes --vault-name {vault} --name {key.name} --not-before "
                     f"{now:%Y-%m-%dT%H:%M:%SZ}, or wait until then")
    expired_fix = _unlock_fix(target, f"extends the expiry by {EXPIRY_EXTENSION.days} days", rotate_fix)
    yield from _expiry(key, key_id, now, rules, horizon_days, rotate_fix, expired_fix)
    yield from _rotation(key, key_id, now, rules, rotate_fix)
    yield from _versions(key, now, rules)


def _expiry(key: KeyFact, key_id: str, now: datetime, rules: WatchRules, horizon_days: int,
            fix: str, expired_fix: str) -> Iterator[Drift]:
    if key.expires_on is None:
        return
    remaining = (key.expires_on - now).total_seconds() / DAY
    when = f"{key.expires_on:%Y-%m-%d %H:%M}"
    if remaining <= 0:
        yield _drift("key.expiry", CRITICAL, key.label, key_id, "key",
                     f"the current version expired on {when}: environments using it are locked", expired_fix,
                     since=key.expires_on, tier="expired")
        return
    tiers = sorted({horizon_days, *rules.expiry_warning_days})
    if remaining <= rules.expiry_error_days:
        severity, tier = ERROR, f"{rules.expiry_error_days}d"
    else:
        within = [t for t in tiers if remaining <= t]
        if not within:
            return
        severity, tier = WARNING, f"{within[0]}d"
    yield _drift("key.expiry", severity, key.label, key_id, "key",
                 f"the current version expires in {days_left(key.expires_on, now)} days ({when}); at expiry "
                 "every environment using it goes down", fix, tier=tier)


def _rotation(key: KeyFact, key_id: str, now: datetime, rules: WatchRules, fix: str) -> Iterator[Drift]:
    cadence = rules.rotation_cadence_days or key.rotate_after_days
    if not cadence or key.created_on is None:
        return
    due = key.created_on + timedelta(days=cadence)
    if now > due:
        yield _drift("key.rotation_overdue", WARNING, key.label, key_id, "key",
                     f"the current version is {(now - key.created_on).days} days old; rotation is due every "
                     f"{cadence} days (since {due:%Y-%m-%d})", fix, since=due)


def _versions(key: KeyFact, now: datetime, rules: WatchRules) -> Iterator[Drift]:
    """Previous versions disabled while Power Platform may still need them, and holds about to end."""
    newer_created: datetime | None = None
    for version in key.versions:  # newest first
        version_id = f"{key.vault_id}/keys/{key.name}/versions/{version.version}"
        label = f"{key.label} version {version.version[:8]}"
        hold_end = version.hold_until or (newer_created + PREVIOUS_VERSION_HOLD if newer_created else None)
        if version.version != key.current_version and not version.enabled and hold_end and now < hold_end:
            yield _drift("key.previous_version_disabled", ERROR, label, version_id, "key-version",
                         f"disabled inside its 28-day hold (until {hold_end:%Y-%m-%d}): environments and "
                         "restores may still need it",
                         f"az keyvault key set-attributes --vault-name {key.vault_name} --name {key.name} "
                         f"--version {version.version} --enabled true")
        if version.hold_until:
            yield from _hold_ending(label, version_id, "key-version", version.hold_until, now, rules)
        newer_created = version.created_on or newer_created


def _hold_ending(label: str, obj_id: str, obj_type: str, until: datetime, now: datetime,
                 rules: WatchRules) -> Iterator[Drift]:
    if now < until <= now + timedelta(days=rules.hold_notice_days):
        yield _drift("hold.ending", INFO, label, obj_id, obj_type,
                     f"its hold ends in {days_left(until, now)} days ({until:%Y-%m-%d}): cleanup becomes "
                     "possible then", f"after {until:%Y-%m-%d}, run cleanup if it is no longer needed")


# ----------------------------------------------------------------------------------------------- policies


def policy_drifts(policy: PolicyFact, estate: EstateFacts, rules: WatchRules, target: str) -> Iterator[Drift]:
    linked = estate.linked_to(policy)
    if policy.key_grants is not None and policy.principal_id:
        vault = estate.vault(policy.key_vault_id)
        scope = policy.key_vault_id or "<vault id>"
        if not policy.key_grants:
            by_hand = ("az role assignment create --role \"Key Vault Crypto Service Encryption User\" "
                       f"--assignee-object-id {policy.principal_id} --assignee-principal-type "
                       f"ServicePrincipal --scope {scope}")
            yield _drift("access.key_removed", CRITICAL if linked else ERROR, policy.name, policy.policy_id,
                         "policy", f"the policy identity {policy.principal_id} has no key access on "
                         f"{vault.name if vault else scope}" + (f": {len(linked)} linked environment(s) lock"
                                                               if linked else ""),
                         _unlock_fix(target if linked else None, "gives the identity its key access back",
                                     by_hand))
        elif all(g.created_on and now_minus(estate.now, g.created_on) < rules.propagation_minutes * 60
                 for g in policy.key_grants):
            newest = max(g.created_on for g in policy.key_grants if g.created_on)
            yield _drift("access.not_propagated", WARNING, policy.name, policy.policy_id, "policy",
                         f"the policy identity's key access was granted at {newest:%H:%M} and may not have "
                         "propagated yet", "wait up to 10 minutes before linking or re-enabling environments",
                         since=newest)
    for reader in policy.readers:
        if not reader.has_reader:
            yield _drift("access.reader_removed", ERROR, f"{reader.admin} on {policy.name}",
                         f"{policy.policy_id}|{reader.admin}", "policy",
                         f"{reader.admin} has no Reader role on the policy: the Power Platform admin cannot "
                         "link environments to it",
                         f"az role assignment create --role Reader --assignee {reader.admin} --scope "
                         f"{policy.policy_id}")
    if (policy.health_status or "").lower() == "unhealthy":
        yield _drift("policy.unhealthy", ERROR, policy.name, policy.policy_id, "policy",
                     "the policy is Unhealthy: its identity cannot use the key",
                     _unlock_fix(target, "repairs what keeps the identity from its key", ""))
    if policy.hold_until:
        yield from _hold_ending(policy.name, policy.policy_id, "policy", policy.hold_until, estate.now, rules)


def now_minus(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds()


def desired_policy_drifts(wanted: DesiredPolicy, estate: EstateFacts) -> Iterator[Drift]:
    policy = estate.policy_named(wanted.name)
    if policy is None:
        yield _drift("desired.policy_missing", ERROR, wanted.name, f"policy/{wanted.name}", "desired-state",
                     "the desired state names this policy but the subscription has none by that name",
                     f"run onboard (target={wanted.target or '<CmkTarget block>'}) to create it")
        return
    key_ok = wanted.key is None or (policy.key_name or "").lower() == wanted.key.lower()
    if not (key_ok and wanted.vault_matches(policy.key_vault_id)):
        yield _drift("policy.key_changed", ERROR, policy.name, policy.policy_id, "policy",
                     f"the policy references {policy.key_name} in {policy.key_vault_id}, not "
                     f"{wanted.key or policy.key_name} in {wanted.vault or policy.key_vault_id}",
                     "run change_policy to move its environments to a policy on the desired key")


# ------------------------------------------------------------------------------------------- environments


def environment_drifts(env: EnvironmentFact, estate: EstateFacts, rules: WatchRules, previous: WatchState,
                       desired: DesiredState | None) -> Iterator[Drift]:
    policy = estate.policy(env.policy_id)
    if env.locked:
        yield locked_drift(env, estate, previous, _target_of(desired, estate, policy.name if policy else ""))
    yield from _operations(env, estate.now, rules)
    yield from rotation_pickup_drifts(env, estate, rules)
    if desired is not None:
        yield from _desired_placement(env, estate, desired)


def _operations(env: EnvironmentFact, now: datetime, rules: WatchRules) -> Iterator[Drift]:
    cmk = [o for o in env.operations or [] if o.name.lower() in CMK_OPERATIONS]
    latest = max(cmk, key=lambda o: o.start_time or now, default=None)
    if (env.link_status or "").lower() == "failed" or (latest and latest.failed and not env.linked):
        yield _drift("env.link_failed", ERROR, env.label, env.id, "environment",
                     f"the last customer-managed key operation ({latest.name if latest else 'link'}) failed",
                     f"fix the findings on its policy, then run the link again (onboard, "
                     f"selector.environment_ids=[{env.id}])", since=latest.end_time if latest else None)
    for operation in cmk:
        started = operation.start_time
        if operation.active and started and (now - started) > timedelta(hours=rules.link_expected_hours):
            hours = (now - started).total_seconds() / 3600
            yield _drift("env.link_slow", WARNING, env.label, env.id, "environment",
                         f"{operation.name} has been running for {hours:.0f} hours (expected under "
                         f"{rules.link_expected_hours:g})", "wait (large environments take up to 4 days); "
                         "if it does not move, open a support case naming the environment", since=started)


def rotation_pickup_drifts(env: EnvironmentFact, estate: EstateFacts, rules: WatchRules) -> Iterator[Drift]:
    """A linked environment that has not taken up its key's newest version within the documented hours."""
    policy = estate.policy(env.policy_id)
    key = estate.key(policy.key_vault_id, policy.key_name) if policy else None
    if env.operations is None or key is None or key.created_on is None:
        return
    if not follows_rotation(env, policy, key):
        return
    found = pickup(env.operations, key.created_on, estate.now, rules.rotation_pickup_hours)
    if found.status == "missing":
        yield _drift(NOT_PICKED_UP, WARNING, env.label, env.id, "environment",
                     f"has not taken up version {key.current_version} of {key.label} (created "
                     f"{key.created_on:%Y-%m-%d %H:%M}) within {rules.rotation_pickup_hours:g} hours: no "
                     "RotateCustomerManagedKey operation since; it still uses an older version",
                     f"keep the older versions of {key.label} enabled (no cleanup of them); check the "
                     "environment's History in the Power Platform admin center, then open a support case "
                     f"naming the environment and version {key.current_version}", since=found.due)


def _desired_placement(env: EnvironmentFact, estate: EstateFacts, desired: DesiredState) -> Iterator[Drift]:
    wanted = desired.place_of(env.id, env.label)
    current = estate.policy(env.policy_id)
    if isinstance(wanted, DesiredPolicy):
        if env.policy_id is None:
            yield _drift("env.unlinked", ERROR, env.label, env.id, "environment",
                         f"on the Microsoft-managed key; the desired state puts it on {wanted.name}",
                         f"ppcmk converge (onboard target={wanted.target}, "
                         f"selector.environment_ids=[{env.id}])")
        elif current is None or current.name.lower() != wanted.name.lower():
            on = current.name if current else env.policy_id
            yield _drift("env.other_policy", ERROR, env.label, env.id, "environment",
                         f"linked to {on}; the desired state puts it on {wanted.name}",
                         f"ppcmk converge (change_policy from {on} to {wanted.name})")
    elif wanted == "microsoft" and env.policy_id:
        on = current.name if current else env.policy_id
        yield _drift("env.not_microsoft_managed", ERROR, env.label, env.id, "environment",
                     f"linked to {on}; the desired state puts it on the Microsoft-managed key",
                     f"ppcmk converge (revert target={_target_of(desired, estate, on)}, "
                     f"selector.environment_ids=[{env.id}])")


def unknown_environments(estate: EstateFacts, desired: DesiredState) -> Iterator[Drift]:
    known = {e.id.lower() for e in estate.environments} | {e.label.lower() for e in estate.environments}
    listed = [e for p in desired.policies for e in p.environments] + desired.microsoft_managed
    for name in listed:
        if name.lower() not in known:
            yield _drift("desired.unknown_environment", ERROR, name, f"environment/{name.lower()}",
                         "desired-state", "the desired state names an environment the tenant does not have "
                         "(or the identity cannot see)", "fix the name or id in the desired state")


# ---------------------------------------------------------------------------------------------- the estate


def detect(estate: EstateFacts, previous: WatchState | None = None, desired: DesiredState | None = None,
           rules: WatchRules | None = None) -> list[Drift]:
    """Every drift of the estate, most severe first."""
    previous = previous or WatchState()
    rules = rules or WatchRules()
    if desired is not None and desired.rotation is not None:
        rules = rules.model_copy(update={"rotation_cadence_days": desired.rotation.cadence_days})
    horizon = desired.expiry_horizon_days if desired else max(rules.expiry_warning_days)
    found: list[Drift] = []
    for vault in estate.vaults:
        in_use = next((p for p in estate.policies if estate.linked_to(p)
                       and (p.key_vault_id or "").lower() == vault.vault_id.lower()), None)
        found.extend(vault_drifts(vault, _target_of(desired, estate, in_use.name) if in_use else None))
    for key in estate.vault_keys:
        policy = next((p for p in estate.policies if (p.key_name or "").lower() == key.name.lower()
                       and (p.key_vault_id or "").lower() == key.vault_id.lower()), None)
        found.extend(key_drifts(key, estate.now, rules, horizon,
                                _target_of(desired, estate, policy.name) if policy else None))
    for policy in estate.policies:
        found.extend(policy_drifts(policy, estate, rules, _target_of(desired, estate, policy.name)))
    for env in estate.environments:
        found.extend(environment_drifts(env, estate, rules, previous, desired))
    found.extend(deleted_drifts(estate, previous))
    if desired is not None:
        for wanted in desired.policies:
            found.extend(desired_policy_drifts(wanted, estate))
        found.extend(unknown_environments(estate, desired))
    for failure in estate.failures:
        found.append(_drift("read.failed", ERROR, failure.object, failure.object, "read",
                            f"could not read {failure.what}: {failure.message}",
                            "give the watching identity read access (or fix the id), then run again"))
    return ordered(found)
