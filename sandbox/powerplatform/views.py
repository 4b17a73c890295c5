"""JSON the Power Platform admin API returns: environments (reference §6) and lifecycle operations (§4.1)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ppcmk_sandbox.powerplatform.lifecycle import runtime, stage_states
from ppcmk_sandbox.powerplatform.records import (
    Environment,
    LifecycleOperation,
    OperationType,
)

if TYPE_CHECKING:
    from ppcmk_sandbox.powerplatform.state import PowerPlatformState

BAP = "/providers/Microsoft.BusinessAppPlatform"
# Environment types on which the service refuses CMK operations, and which operations.
_DISALLOWED: dict[str, tuple[str, ...]] = {
    "Default": ("NewCustomerManagedKey", "RotateCustomerManagedKey", "RevertToMicrosoftKey"),
    "Trial": ("NewCustomerManagedKey",),
    "Teams": ("NewCustomerManagedKey",),
}


# Who the runtime state names as having asked for it (the Terraform provider's recorded environments).
SYSTEM = {"displayName": "SYSTEM", "type": "NotSpecified"}


def iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


# What an environment without a CMK link may not do, recorded with the reason type EnvironmentCmkLinked and
# no message (the Terraform provider's test data for a managed environment).
_WITHOUT_CMK = ("RotateCustomerManagedKey", "RevertToMicrosoftKey")
WITHOUT_CMK_REASON = "EnvironmentCmkLinked"


def disallowed_operations(environment: Environment) -> tuple[str, ...]:
    """The operations the environment's type refuses (what the handlers enforce)."""
    return _DISALLOWED.get(environment.sku, ())


def _disallowed_json(environment: Environment) -> list[dict[str, Any]]:
    listed = [
        {"type": {"id": op}, "reason": {"message": f"{op} cannot be performed on environment of type "
                                                   f"{environment.sku}."}}
        for op in disallowed_operations(environment)
    ]
    if environment.cmk is None:
        listed += [{"type": {"id": op}, "reason": {"type": WITHOUT_CMK_REASON}}
                   for op in _WITHOUT_CMK if op not in disallowed_operations(environment)]
    return listed


def environment_json(state: PowerPlatformState, environment: Environment, now: datetime, admin: bool) -> dict:
    runtime_id, reason = runtime(state, environment, now)
    modified = environment.modified_at or environment.created_at
    policies: dict[str, Any] = {}
    if environment.cmk is not None:
        link = environment.cmk
        policies["customerManagedKeys"] = {
            "policyId": link.policy_guid,
            "location": link.location,
            "id": link.policy_id,
            "systemId": link.system_id,
            "linkStatus": link.link_status,
        }
    disallowed = _disallowed_json(environment)
    scope = "/scopes/admin" if admin else ""
    return {
        "id": f"{BAP}{scope}/environments/{environment.id}",
        "name": environment.id,
        "location": environment.location,
        "type": "Microsoft.BusinessAppPlatform/scopes/environments",
        "properties": {
            "displayName": environment.display_name,
            "azureRegion": environment.azure_region,
            "environmentSku": environment.sku,
            "isDefault": environment.sku == "Default",
            "provisioningState": "Succeeded",
            "createdTime": iso(environment.created_at) if environment.created_at else None,
            "lastModifiedTime": iso(modified) if modified else None,
            "states": {
                "management": {"id": "Ready"},
                "runtime": {"id": runtime_id, "runtimeReasonCode": reason, "requestedBy": SYSTEM},
            },
            "protectionStatus": {"keyManagedBy": environment.key_managed_by},
            "governanceConfiguration": {"protectionLevel": environment.protection_level},
            "enterprisePolicies": policies,
            "lifecycleOperationsEnforcement": {"allowedOperations": [], "disallowedOperations": disallowed},
            "linkedEnvironmentMetadata": {"instanceState": "Ready", "type": "Dynamics365Instance"},
            "databaseType": "CommonDataService",
        },
    }


_DISPLAY: dict[str, str] = {
    OperationType.GOVERNANCE: "Enable Managed Environment",
    OperationType.GOVERNANCE_OFF: "Disable Managed Environment",
    OperationType.LINK: "Update Customer Managed Key",
    OperationType.UNLINK: "Revert To Microsoft Managed Key",
    OperationType.REENABLE: "Enable Environment",
    OperationType.ROTATE: "Rotate Customer Managed Key",
}


def operation_path(operation: LifecycleOperation) -> str:
    return f"{BAP}/lifecycleOperations/{operation.id}"


def operation_json(operation: LifecycleOperation, now: datetime, with_error: bool) -> dict[str, Any]:
    """The operation as a poll shows it; a Failed one carries `error` only `with_error` (the recorded
    shape has none: settings.json `failed_operation_error`)."""
    last = operation.finished_at or min(now, operation.ends_at)
    body: dict[str, Any] = {
        "id": operation.id,
        "links": {
            "self": {"path": operation_path(operation)},
            "environment": {"path": f"{BAP}/environments/{operation.environment_id}"},
        },
        "type": {"id": operation.type},
        "typeDisplayName": _DISPLAY.get(operation.type, "Update Governance Configuration"),
        "state": {"id": operation.state},
        "createdDateTime": iso(operation.created_at),
        "lastActionDateTime": iso(last),
        "requestedBy": operation.requested_by,
        "stages": [
            {key: iso(value) if isinstance(value, datetime) else value for key, value in stage.items()}
            for stage in stage_states(operation, now)
        ],
    }
    if operation.state == "Failed" and with_error:
        body["error"] = {"code": "LifecycleOperationFailed", "message": operation.error or "Unknown error"}
    return body
