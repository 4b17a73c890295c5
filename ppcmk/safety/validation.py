"""Checks of a runbook's input, made in its plan phase before the first write.

Each check raises a ConfigError naming the parameter (or block field) and the fix. The flows call
`check_parameters` with their numeric parameters, and the specific checks for what only a read can tell
(an ARM id in another subscription, a principal that does not exist, a selector that selects nothing, an
existing key of another type or size).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.errors import ConfigError
from ppcmk.models.arm_ids import parse_resource_id

# Parameter -> (least allowed value, what it counts, an example). The approval poll may be 0 in tests
# (poll as fast as possible); nothing else may be zero or negative.
NUMBER_RULES: dict[str, tuple[float, str, str]] = {
    "min_interval_hours": (1, "hours between two rotations", "24"),
    "operation_deadline_days": (0.001, "days an operation may take", "4 (the documented upper bound)"),
    "operation_deadline_hours": (0.01, "hours an operation may take", "96"),
    "reenable_deadline_minutes": (0.1, "minutes a re-enable may take", "30"),
    "approval_timeout_s": (1, "seconds to wait for the approver", "259200 (3 days)"),
    "approval_poll_s": (0, "seconds between looks at the approval", "10"),
    "max_link_attempts": (1, "link attempts", "3"),
    "rotate_after_days": (1, "days before a version rotates", "90"),
    "expire_after_days": (29, "days a version lives", "365"),
    "notify_before_days": (0, "days of notice before expiry", "30"),
    "rotation_cadence_days": (1, "days a key version may live before its rotation is overdue", "90"),
    "link_expected_hours": (0.01, "hours a link or unlink may run before it is a finding", "6"),
    "concurrency": (1, "reads at the same time", "16"),
    "days": (1, "days of the period, up to now", "365"),
}


def check_number(name: str, value: float | None) -> None:
    """One numeric parameter against its rule (None: not set, nothing to check)."""
    if value is None or name not in NUMBER_RULES:
        return
    least, counts, example = NUMBER_RULES[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, f"{value!r} is not a number", f"set {name} to a number of {counts}, e.g. "
                                                               f"{example}")
    if value < least:
        floor = "0 or more" if least == 0 else f"at least {least:g}"
        raise ConfigError(name, f"{value:g} is too small ({counts})", f"use {floor}, e.g. {example}")


def check_parameters(**values: Any) -> None:
    """Every numeric parameter a flow was given, by its name."""
    for name, value in values.items():
        check_number(name, value)


def check_rotation(rotate_after_days: int, expire_after_days: int | None, notify_before_days: int) -> None:
    """The rotation numbers each in range, and together: a version must outlive its rotation by the 28-day
    retention, and the notice must fall inside its lifetime."""
    check_parameters(rotate_after_days=rotate_after_days, expire_after_days=expire_after_days,
                     notify_before_days=notify_before_days)
    if expire_after_days is not None and expire_after_days < rotate_after_days + 28:
        raise ConfigError(
            "expire_after_days",
            f"versions would expire {expire_after_days} days after creation, less than 28 days after "
            f"rotation at day {rotate_after_days}",
            f"set expire_after_days to at least {rotate_after_days + 28}",
        )
    if expire_after_days is not None and notify_before_days >= expire_after_days:
        raise ConfigError("notify_before_days", f"{notify_before_days} is outside the version lifetime",
                          "use a number of days smaller than expire_after_days, e.g. 30")


def check_subscription(field: str, arm_id: str | None, connection: ConnectionSettings) -> None:
    """An ARM id a flow will write to lies in the connection's subscription (its credential's)."""
    if not arm_id:
        return
    try:
        rid = parse_resource_id(arm_id)
    except ValueError as exc:
        raise ConfigError(field, str(exc), "copy the Resource ID from the resource's JSON View") from None
    if rid.subscription.lower() != connection.subscription_id.lower():
        raise ConfigError(
            field,
            f"{rid.name} is in subscription {rid.subscription}, not the connection's "
            f"{connection.subscription_id}",
            "use a resource in the connection's subscription, or a connection block for that subscription",
        )


def check_not_requester(pp_admin: str, requester: str | None) -> None:
    """Separation of duties: the Power Platform admin who approves the link is not the requester."""
    if requester and pp_admin.strip().lower() == requester.strip().lower():
        raise ConfigError("pp_admin", f"{pp_admin} is also the requester",
                          "name another Power Platform admin: the requester may not approve their own change")


def check_principal(field: str, name: str, lookup: Callable[[str], Any]) -> Any:
    """The principal `name` exists (`lookup` raises ConfigError when it does not); the error names `field`."""
    try:
        return lookup(name)
    except ConfigError as missing:
        raise ConfigError(field, f"{name!r}: {missing.problem}",
                          f"set {field} to the UPN or object id of an existing user or service principal"
                          ) from None


def check_selected(chosen: Sequence[Any], field: str = "selector") -> None:
    """A selector that selects nothing is a mistake, not a run with nothing to do."""
    if not chosen:
        raise ConfigError(field, "selects no environment",
                          "check the ids, geo, types and name pattern (ppcmk report lists the environments)")


def check_key_shape(target: TargetSettings, key_type: str | None, key_size: int | None) -> None:
    """An existing key matches the target's type and size (a rotation policy or a new version would
    otherwise be written for a key the target does not describe)."""
    if key_type is not None and key_type.replace("-HSM", "") != target.key_type.replace("-HSM", ""):
        raise ConfigError("target.key_type", f"the key is {key_type}, the target says {target.key_type}",
                          "set the target's key_type to the key's")
    if key_size is not None and key_size != target.key_size:
        raise ConfigError("target.key_size", f"the key is {key_size} bits, the target says {target.key_size}",
                          f"set the target's key_size to {key_size}")
