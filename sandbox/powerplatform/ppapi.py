"""The Power Platform API's "Operation - Get Operations For Environment", fed from the lifecycle operations.

`GET /environmentmanagement/environments/{id}/operations?api-version=2022-03-01-preview` (optional `limit`,
`continuationToken`) lists OperationExecutionResult items, newest first. Inferred, not in our sources: the
operation names (link/unlink follow `lifecycleOperationsEnforcement`), the page size, the continuation field
(the sandbox answers `continuationToken`), the error body, and 403 for a caller who is not a Power Platform
admin.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from ppcmk_sandbox.http import SandboxHttpError, SandboxRequest, SandboxResponse, ppapi_error
from ppcmk_sandbox.powerplatform.lifecycle import settle_once, stage_states
from ppcmk_sandbox.powerplatform.records import OperationType
from ppcmk_sandbox.powerplatform.state import LifecycleOperation
from ppcmk_sandbox.powerplatform.views import iso

DEFAULT_PAGE_SIZE = 20
NAMES: dict[str, str] = {
    OperationType.LINK: "NewCustomerManagedKey",
    OperationType.UNLINK: "RevertToMicrosoftKey",
    OperationType.GOVERNANCE: "UpdateGovernanceConfiguration",
    OperationType.GOVERNANCE_OFF: "UpdateGovernanceConfiguration",
    OperationType.REENABLE: "EnableEnvironment",
    OperationType.ROTATE: "RotateCustomerManagedKey",
}
STATUSES = {"NotStarted": "Queued", "Running": "InProgress", "Succeeded": "Succeeded", "Failed": "Failed"}


def _job_status(state: str) -> str:
    return STATUSES.get(state, state)


def operation_result_json(operation: LifecycleOperation, now: datetime, tenant_id: str) -> dict[str, Any]:
    """One OperationExecutionResult."""
    jobs = []
    for stage in stage_states(operation, now):
        state = stage["state"]["id"]
        jobs.append(
            {
                "name": stage["name"],
                "status": _job_status(state),
                "startTime": iso(stage["firstActionDateTime"]) if state != "NotStarted" else None,
                "endTime": None,
            }
        )
    body: dict[str, Any] = {
        "operationId": operation.id,
        "name": NAMES.get(operation.type, operation.type),
        "status": _job_status(operation.state),
        "startTime": iso(operation.starts_at) if operation.state != "NotStarted" else None,
        "endTime": iso(operation.finished_at) if operation.finished_at else None,
        "requestedBy": {
            "displayName": operation.requested_by.get("displayName"),
            "tenantId": tenant_id,
            "userId": operation.requested_by.get("id"),
        },
        "jobStatuses": jobs,
    }
    if operation.state == "Failed":
        body["errorDetail"] = {"code": "LifecycleOperationFailed", "fieldErrors": {}}
    return body


def _positive_int(req: SandboxRequest, name: str, default: int) -> int:
    value = req.query.get(name)
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise SandboxHttpError(ppapi_error(400, "InvalidParameter", f"{name} must be a positive integer."))
    return int(value)


def list_environment_operations(req: SandboxRequest, match: re.Match[str]) -> SandboxResponse:
    if not req.query.get("api-version"):
        raise SandboxHttpError(
            ppapi_error(400, "MissingApiVersion", "The api-version query parameter is required.")
        )
    if req.caller is None or not req.caller.is_power_platform_admin:
        raise SandboxHttpError(
            ppapi_error(
                403,
                "Forbidden",
                "The caller is not a Power Platform administrator (nor a registered admin management app).",
            )
        )
    world = req.world
    state = world.powerplatform
    environment_id = match["environment"]
    if state is None or state.environment(environment_id) is None:
        raise SandboxHttpError(
            ppapi_error(404, "EnvironmentNotFound", f"The environment '{environment_id}' could not be found.")
        )
    settle_once(req)
    limit = _positive_int(req, "limit", DEFAULT_PAGE_SIZE)
    offset = _positive_int(req, "continuationToken", 0) if req.query.get("continuationToken") else 0
    operations = sorted(state.operations_of(environment_id), key=lambda o: o.created_at, reverse=True)
    now = world.clock.now()
    page = operations[offset : offset + limit]
    body: dict[str, Any] = {"value": [operation_result_json(o, now, world.tenant_id) for o in page]}
    if offset + limit < len(operations):
        body["continuationToken"] = str(offset + limit)
    return SandboxResponse(200, body)
