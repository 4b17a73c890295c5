"""Power Platform admin API ("BAP") handlers: environments, Managed Environment, CMK link/unlink, re-enable,
lifecycle operations.

Validation order for link (inferred from the service's documented rules): environment visible to the
caller (Power Platform admin or admin management app, else 404 EnvironmentNotFound), no active operation
(409), policy found by systemId (404), caller holds a role on the policy (403), same geo, Managed
Environment, environment type allows CMK (400). Whether the policy identity can use the key is decided
when the operation completes.
Recorded shapes (docs/SANDBOX.md): a start on a busy environment is 409 OperationNotStartable; a
governanceConfiguration POST on a busy environment, or one already at that protection level, is 409 with an
empty body (settings.json `governance_conflict_body` "coded": OperationNotStartable instead).
Other error codes are not published; the sandbox's codes are placeholders.
"""

from __future__ import annotations

import re

from ppcmk_sandbox.arm.geos import same_geo
from ppcmk_sandbox.http import SandboxHttpError, SandboxRequest, SandboxResponse, bap_error
from ppcmk_sandbox.powerplatform.lifecycle import setting, settle_once, start_operation
from ppcmk_sandbox.powerplatform.state import (
    Environment,
    OperationType,
    PowerPlatformState,
)
from ppcmk_sandbox.powerplatform.views import (
    disallowed_operations,
    environment_json,
    operation_json,
)
from ppcmk_sandbox.rbac.roles import ARM_READERS

OPERATION_API_VERSION = "2023-06-01"


def _state(req: SandboxRequest) -> PowerPlatformState:
    if req.world.powerplatform is None:
        raise SandboxHttpError(bap_error(500, "InternalServerError", "Power Platform state is not loaded"))
    settle_once(req)  # operations advance with the clock even between mutating requests
    return req.world.powerplatform


def _is_admin(req: SandboxRequest) -> bool:
    return req.caller is not None and req.caller.is_power_platform_admin


def _environment(req: SandboxRequest, environment_id: str) -> Environment:
    """The environment, if it exists and the caller may see it: like the service, 404 for both cases."""
    environment = _state(req).environment(environment_id)
    if environment is None or not _is_admin(req):
        raise SandboxHttpError(
            bap_error(
                404,
                "EnvironmentNotFound",
                f"The environment '{environment_id}' could not be found in the tenant.",
            )
        )
    return environment


NOT_STARTABLE = "OperationNotStartable"


def _busy(environment: Environment) -> SandboxResponse:
    return bap_error(
        409,
        NOT_STARTABLE,
        "The operation cannot be performed because there is an active lifecycle operation on the "
        f"environment '{environment.id}'.",
    )


def _require_idle(req: SandboxRequest, environment: Environment) -> None:
    active = _state(req).active_operation(environment.id)
    if active is not None:
        response = _busy(environment)
        response.headers.update(_operation_headers(req, active.id))
        raise SandboxHttpError(response)


def _operation_headers(req: SandboxRequest, operation_id: str) -> dict[str, str]:
    url = f"{req.base_url}/providers/Microsoft.BusinessAppPlatform/lifecycleOperations/{operation_id}"
    url += f"?api-version={OPERATION_API_VERSION}"
    return {"operation-location": url, "Location": url, "Retry-After": _retry_after(req)}


def _retry_after(req: SandboxRequest) -> str:
    return str(int(setting(req.world, "lifecycle_retry_after_seconds", 60)))


def _accepted(
    req: SandboxRequest, environment: Environment, kind: str, duration: float, **target: str
) -> SandboxResponse:
    operation = start_operation(req.world, environment, kind, duration, req.caller, target)
    return SandboxResponse(202, None, _operation_headers(req, operation.id))


def list_environments(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    admin_route = bool(match.groupdict().get("admin"))
    state = _state(req)
    if not _is_admin(req):
        if admin_route:
            raise SandboxHttpError(bap_error(403, "Forbidden", "User does not have the required role."))
        return SandboxResponse(200, {"value": []})
    now = req.world.clock.now()
    return SandboxResponse(
        200, {"value": [environment_json(state, e, now, admin_route) for e in state.environments.values()]}
    )


def get_environment(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    environment = _environment(req, match["environment"])
    body = environment_json(
        _state(req), environment, req.world.clock.now(), bool(match.groupdict().get("admin"))
    )
    return SandboxResponse(200, body)


# The keys of `settings.extendedSettings` in the recorded request that turns Managed Environment on, each a
# string (docs/SANDBOX.md). That the service refuses a body lacking one, or a non-string value, is inferred.
EXTENDED_SETTINGS = (
    "excludeEnvironmentFromAnalysis", "isGroupSharingDisabled", "maxLimitUserSharing",
    "disableAiGeneratedDescriptions", "includeOnHomepageInsights", "limitSharingMode",
    "solutionCheckerMode", "suppressValidationEmails", "solutionCheckerRuleOverrides", "makerOnboardingUrl",
    "makerOnboardingMarkdown",
)


def _invalid_body(message: str) -> SandboxHttpError:
    return SandboxHttpError(bap_error(400, "InvalidRequestBody", message))


def _check_extended_settings(body: dict[str, object]) -> None:
    """Standard needs the whole `settings.extendedSettings` map with string values (Basic sends none)."""
    settings = body.get("settings")
    extended = settings.get("extendedSettings") if isinstance(settings, dict) else None
    if not isinstance(extended, dict):
        raise _invalid_body("settings.extendedSettings is required to enable a Managed Environment.")
    missing = [key for key in EXTENDED_SETTINGS if key not in extended]
    if missing:
        raise _invalid_body(f"settings.extendedSettings lacks {', '.join(missing)}.")
    not_strings = sorted(key for key, value in extended.items() if not isinstance(value, str))
    if not_strings:
        raise _invalid_body(f"settings.extendedSettings values must be strings: {', '.join(not_strings)}.")


def set_governance(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    environment = _environment(req, match["environment"])
    body = req.json_object(lambda m: bap_error(400, "InvalidRequestBody", m))
    level = body.get("protectionLevel")
    if level not in ("Basic", "Standard"):
        raise _invalid_body(f"protectionLevel must be 'Basic' or 'Standard' (got {level!r}).")
    if level == "Standard":
        _check_extended_settings(body)
    if _state(req).active_operation(environment.id) is not None or environment.protection_level == level:
        refused = _busy(environment)
        if req.world.settings.governance_conflict_body == "empty":
            refused.body = None
        raise SandboxHttpError(refused)
    duration = setting(req.world, "governance_duration_seconds", 60)
    kind = OperationType.GOVERNANCE if level == "Standard" else OperationType.GOVERNANCE_OFF
    return _accepted(req, environment, kind, duration, protection_level=level)


def _system_id(req: SandboxRequest) -> str:
    """The body's `SystemId`, whatever its key casing (the scripts send SystemId, Terraform systemId)."""
    body = req.json_object(lambda m: bap_error(400, "InvalidRequestBody", m))
    value = next((v for k, v in body.items() if k.lower() == "systemid"), None)
    if not isinstance(value, str) or not value.strip():
        raise SandboxHttpError(
            bap_error(400, "InvalidRequestBody", "The request body must carry the policy's SystemId.")
        )
    return value.strip()


def link_policy(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    world = req.world
    environment = _environment(req, match["environment"])
    system_id = _system_id(req)
    _require_idle(req, environment)
    now = world.clock.now()
    policy = world.arm.find_policy_by_system_id(system_id, now) if world.arm else None
    if policy is None:
        raise SandboxHttpError(
            bap_error(
                404, "EnterprisePolicyNotFound", f"No enterprise policy with systemId '{system_id}' found."
            )
        )
    caller_id = req.caller.object_id if req.caller else ""
    if world.rbac is None or not world.rbac.has_role(caller_id, policy.arm_id, ARM_READERS, now):
        raise SandboxHttpError(
            bap_error(
                403,
                "AuthorizationFailed",
                f"The caller does not have the Reader role on the enterprise policy '{policy.arm_id}'.",
            )
        )
    if not same_geo(environment.location, policy.location):
        raise SandboxHttpError(
            bap_error(
                400,
                "EnterprisePolicyLocationMismatch",
                f"Environment location '{environment.location}' does not match the enterprise policy "
                f"location '{policy.location}'. The environment and policy must be in the same location.",
            )
        )
    if not environment.managed:
        raise SandboxHttpError(
            bap_error(
                400,
                "EnvironmentNotManaged",
                f"The environment '{environment.id}' is not a Managed Environment; enable Managed "
                "Environment (governanceConfiguration protectionLevel Standard) first.",
            )
        )
    if OperationType.LINK in disallowed_operations(environment):
        raise SandboxHttpError(
            bap_error(
                400,
                "OperationNotAllowed",
                f"{OperationType.LINK} cannot be performed on environment of type {environment.sku}.",
            )
        )
    duration = world.settings.link_duration_seconds
    return _accepted(req, environment, OperationType.LINK, duration, policy_id=policy.arm_id,
                     system_id=policy.system_id)


def unlink_policy(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    environment = _environment(req, match["environment"])
    system_id = _system_id(req)
    _require_idle(req, environment)
    if environment.cmk is None:
        raise SandboxHttpError(
            bap_error(
                400,
                "NoEnterprisePolicyLinked",
                "No enterprise policy present to remove from the environment.",
            )
        )
    if environment.cmk.system_id.lower() != system_id.lower():
        raise SandboxHttpError(
            bap_error(
                400,
                "EnterprisePolicyMismatch",
                f"The given SystemId '{system_id}' does not match the linked policy "
                f"'{environment.cmk.system_id}'.",
            )
        )
    if OperationType.UNLINK in disallowed_operations(environment):
        raise SandboxHttpError(
            bap_error(
                400,
                "OperationNotAllowed",
                f"{OperationType.UNLINK} cannot be performed on environment of type {environment.sku}.",
            )
        )
    duration = req.world.settings.unlink_duration_seconds
    return _accepted(req, environment, OperationType.UNLINK, duration, policy_id=environment.cmk.policy_id)


def reenable_environment(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """Modelled on the admin center's "Re-enable environment" action (the API behind it is undocumented)."""
    environment = _environment(req, match["environment"])
    _require_idle(req, environment)
    duration = setting(req.world, "reenable_duration_seconds", 300)
    return _accepted(req, environment, OperationType.REENABLE, duration)


def get_operation(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    """A poll; with settings.json `finished_operation_poll` "404" the service has forgotten a finished
    operation (what the Terraform provider assumes after a delete)."""
    operation = _state(req).operation(match["operation"])
    settings = req.world.settings
    forgotten = operation is not None and not operation.active and settings.finished_operation_poll == "404"
    if operation is None or forgotten or not _is_admin(req):
        raise SandboxHttpError(
            bap_error(
                404, "LifecycleOperationNotFound", f"The operation '{match['operation']}' was not found."
            )
        )
    headers = {} if not operation.active else {"Retry-After": _retry_after(req)}
    body = operation_json(operation, req.world.clock.now(), settings.failed_operation_error == "message")
    return SandboxResponse(200, body, headers)
