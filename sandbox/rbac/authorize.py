"""Azure RBAC as ARM enforces it on the sandbox's ARM routes: 403 AuthorizationFailed unless the caller holds
a suitable role at or above the scope (after the propagation delay)."""

from __future__ import annotations

from typing import Literal

from ppcmk_sandbox.http import SandboxHttpError, SandboxRequest, arm_error
from ppcmk_sandbox.rbac.roles import ARM_READERS, ARM_WRITERS, ROLE_ASSIGNMENT_WRITERS

Need = Literal["read", "write", "assign"]

_ROLES_FOR: dict[Need, frozenset[str]] = {
    "read": ARM_READERS,
    "write": ARM_WRITERS,
    "assign": ROLE_ASSIGNMENT_WRITERS,
}


def authorize(req: SandboxRequest, scope: str, need: Need, action: str) -> None:
    """Raise 403 AuthorizationFailed (ARM's wording) when the caller may not perform `action` at `scope`."""
    caller = req.caller
    rbac = req.world.rbac
    now = req.world.clock.now()
    if (
        caller is not None
        and rbac is not None
        and rbac.has_role(caller.object_id, scope, _ROLES_FOR[need], now)
    ):
        return
    who = f"'{caller.display_name}' with object id '{caller.object_id}'" if caller else "anonymous"
    raise SandboxHttpError(
        arm_error(
            403,
            "AuthorizationFailed",
            f"The client {who} does not have authorization to perform action '{action}' over scope '{scope}' "
            "or the scope is invalid. If access was recently granted, please refresh your credentials.",
        )
    )
