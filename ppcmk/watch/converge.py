"""Converge: the runbook runs that take the estate to its desired state. Pure planning: facts in, runs out.

One run per change of place and per key, never per environment: every environment the desired state puts on
policy P that has no link is one `onboard` of P; those on policy Q that belong on P are one `change_policy`
from Q to P; those that belong on the Microsoft-managed key are one `revert` of their policy; a key whose
rotation is overdue or whose expiry is inside the horizon is one `rotate`. Starting a run changes nothing by
itself: each run plans and waits for its own approval, as when started by hand.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from pydantic import BaseModel

from ppcmk.errors import ConfigError
from ppcmk.watch.desired import DesiredPolicy, DesiredState
from ppcmk.watch.estate import EnvironmentFact, EstateFacts
from ppcmk.watch.rules import WatchRules, detect

ROTATE_KINDS = ("key.rotation_overdue", "key.expiry")


class PlannedRun(BaseModel):
    runbook: str
    parameters: dict[str, Any]
    reason: str

    def run_parameters(self) -> dict[str, Any]:
        """What the deployment run gets: a deployment may default to a dry run (the sandbox's Quick run of a
        destructive runbook does); converge means the real run, which still waits for its approval."""
        return {**self.parameters, "dry_run": False}

    def deployment(self, where: str) -> str:
        """The deployment's full name: `onboard/onboard-sandbox`, `rotate/rotate-production`, ..."""
        return f"{self.runbook}/{self.runbook}-{where}"


def _target(policy: DesiredPolicy, why: str) -> str:
    if not policy.target:
        raise ConfigError(f"policies[{policy.name}].target", f"converge needs the CmkTarget block of "
                          f"{policy.name} to {why}", "name the block in the policy's `target:`")
    return policy.target


def _selector(environments: list[EnvironmentFact]) -> dict[str, list[str]]:
    return {"environment_ids": [e.id for e in environments]}


def _names(environments: list[EnvironmentFact]) -> str:
    return ", ".join(e.label for e in environments)


def _people(desired: DesiredState, field: str) -> str:
    value = getattr(desired.runbooks, field)
    if not value:
        raise ConfigError(f"runbooks.{field}", "converge starts runbooks that need it",
                          f"set runbooks.{field} in the desired state (a UPN or object id)")
    return str(value)


def _moves(estate: EstateFacts, desired: DesiredState) -> tuple[dict[str, list[EnvironmentFact]],
                                                               dict[tuple[str, str], list[EnvironmentFact]],
                                                               dict[str, list[EnvironmentFact]]]:
    onboard: dict[str, list[EnvironmentFact]] = defaultdict(list)
    change: dict[tuple[str, str], list[EnvironmentFact]] = defaultdict(list)
    revert: dict[str, list[EnvironmentFact]] = defaultdict(list)
    for env in estate.environments:
        place = desired.place_of(env.id, env.label)
        current = estate.policy(env.policy_id)
        on = current.name if current else env.policy_id
        if isinstance(place, DesiredPolicy):
            if env.policy_id is None:
                onboard[place.name].append(env)
            elif on is not None and on.lower() != place.name.lower():
                change[(on, place.name)].append(env)
        elif place == "microsoft" and on is not None:
            revert[on].append(env)
    return onboard, change, revert


def _known(desired: DesiredState, name: str, why: str) -> DesiredPolicy:
    policy = desired.policy(name)
    if policy is None:
        raise ConfigError("policies", f"environments are linked to {name}, which the desired state does not "
                          f"list; converge needs its target block to {why}",
                          f"add {name} with its `target:` to policies")
    return policy


def plan_runs(estate: EstateFacts, desired: DesiredState) -> list[PlannedRun]:
    """Every run that reaches the desired state (empty: the estate is already there)."""
    onboard, change, revert = _moves(estate, desired)
    runs = [_onboard(desired, name, envs) for name, envs in onboard.items()]
    runs += [_change(estate, desired, old, new, envs) for (old, new), envs in change.items()]
    runs += [_revert(desired, name, envs) for name, envs in revert.items()]
    return runs + _rotations(estate, desired)


def _onboard(desired: DesiredState, name: str, envs: list[EnvironmentFact]) -> PlannedRun:
    target = _target(_known(desired, name, "onboard"), "onboard")
    return PlannedRun(runbook="onboard", reason=f"link {_names(envs)} to {name}", parameters={
        **desired.runbooks.given("kv_connection", "pp_connection", "requester"), "target": target,
        "pp_admin": _people(desired, "pp_admin"), "selector": _selector(envs)})


def _change(estate: EstateFacts, desired: DesiredState, old: str, new: str,
            envs: list[EnvironmentFact]) -> PlannedRun:
    wanted, existing = _known(desired, new, "move to it"), estate.policy_named(new)
    given_id = wanted.vault if wanted.vault and "/" in wanted.vault else None
    vault_id = existing.key_vault_id if existing else given_id
    key = wanted.key or (existing.key_name if existing else None)
    if not key:
        raise ConfigError(f"policies[{new}].key", "change_policy needs the new policy's key",
                          "name the key in the policy's `key:`")
    target = _target(_known(desired, old, "move from it"), "move from it")
    return PlannedRun(runbook="change_policy", reason=f"move {_names(envs)} from {old} to {new}", parameters={
        **desired.runbooks.given("kv_connection", "pp_connection", "requester"), "target": target,
        "new_policy_name": new, "new_key_name": key, "pp_admin": _people(desired, "pp_admin"),
        "selector": _selector(envs)} | ({"new_vault_id": vault_id} if vault_id else {}))


def _revert(desired: DesiredState, name: str, envs: list[EnvironmentFact]) -> PlannedRun:
    target = _target(_known(desired, name, "revert"), "revert")
    return PlannedRun(runbook="revert", reason=f"return {_names(envs)} to the Microsoft-managed key",
                      parameters={**desired.runbooks.given("connection"), "target": target,
                                  "requester": _people(desired, "requester"), "selector": _selector(envs)})


def _rotations(estate: EstateFacts, desired: DesiredState) -> list[PlannedRun]:
    due = {d.object_id.lower(): d for d in detect(estate, desired=desired, rules=WatchRules())
           if d.kind in ROTATE_KINDS}
    runs = []
    for wanted in desired.policies:
        policy = estate.policy_named(wanted.name)
        if policy is None or not policy.key_vault_id or not policy.key_name:
            continue
        drift = due.get(f"{policy.key_vault_id}/keys/{policy.key_name}".lower())
        if drift is not None:
            # rotate runs unattended on its schedule; started by converge it asks for approval first
            target = _target(wanted, "rotate its key")
            runs.append(PlannedRun(runbook="rotate", reason=f"{drift.object}: {drift.message}", parameters={
                **desired.runbooks.given("connection", "requester"), "target": target, "approval": True}))
    return runs
