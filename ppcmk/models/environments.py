"""Typed models at the edges: what the Power Platform admin API returns, lifecycle operations and waits on
them, and the outcome of one lifecycle change.

The service's JSON casing varies (customerManagedKeys vs CustomerManagedKeys, state.id vs State.Id), so every
`from_api` reads fields case-insensitively through `pick`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OperationKind = Literal["link", "unlink", "governance", "reenable"]
TERMINAL_STATES = ("succeeded", "failed", "canceled", "cancelled")
# keyManagedBy of an environment encrypted with a customer-managed key: "Customer" after a CMK link, and
# "CustomerViaMicrosoft" for a BYOK environment, which it keeps after its migration to a CMK policy
# (cmk-migrate-from-byok: "shows that it is managed by CustomerViaMicrosoft").
CUSTOMER_KEY_MANAGERS = ("customer", "customerviamicrosoft")
BYOK_KEY_MANAGER = "customerviamicrosoft"
LOCKED_REASON = "customermanagedkeylocked"  # runtimeReasonCode of an environment whose key is unusable


def pick(data: Any, *path: str, default: Any = None) -> Any:
    """Follow `path` through nested mappings, matching each key case-insensitively."""
    current = data
    for key in path:
        if not isinstance(current, Mapping):
            return default
        if key in current:
            current = current[key]
            continue
        wanted = key.lower()
        for candidate, value in current.items():
            if isinstance(candidate, str) and candidate.lower() == wanted:
                current = value
                break
        else:
            return default
    return default if current is None else current


class CmkLink(BaseModel):
    """The customer-managed key policy linked to an environment."""

    model_config = ConfigDict(frozen=True)

    policy_id: str | None  # ARM id of the enterprise policy
    system_id: str | None
    link_status: str | None
    location: str | None = None

    @property
    def linked(self) -> bool:
        return (self.link_status or "").lower() == "linked"


class DisallowedOperation(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str
    reason: str | None = None


class Environment(BaseModel):
    """A Power Platform environment as the admin API reports it."""

    model_config = ConfigDict(frozen=True)

    id: str
    display_name: str | None
    geo: str | None
    sku: str | None
    is_default: bool = False
    protection_level: str | None
    runtime_state: str | None
    runtime_reason: str | None
    cmk: CmkLink | None
    key_managed_by: str | None
    disallowed_operations: tuple[DisallowedOperation, ...] = ()
    last_modified: datetime | None = None  # lastModifiedTime: the service's last change of the environment
    created_time: datetime | None = None

    @property
    def managed(self) -> bool:
        return (self.protection_level or "").lower() == "standard"

    @property
    def enabled(self) -> bool:
        return (self.runtime_state or "").lower() == "enabled"

    @property
    def locked(self) -> bool:
        """Runtime disabled because its key became unusable (the service's CustomerManagedKeyLocked)."""
        return (self.runtime_reason or "").lower() == LOCKED_REASON

    @property
    def customer_key(self) -> bool:
        """keyManagedBy says a customer's key encrypts the environment (either documented value)."""
        return (self.key_managed_by or "").lower() in CUSTOMER_KEY_MANAGERS

    @property
    def on_byok(self) -> bool:
        """Legacy BYOK not yet migrated: the key is the customer's, managed through Microsoft, and no CMK
        policy is linked (a migrated environment keeps CustomerViaMicrosoft but has its policy link)."""
        return (self.key_managed_by or "").lower() == BYOK_KEY_MANAGER and self.cmk is None

    def encrypted_by(self, system_id: str | None = None, policy_id: str | None = None) -> bool:
        """Encrypted through this policy: judged by what the service says about the link (Linked, to this
        policy's systemId or ARM id), and a customer key as keyManagedBy reports it."""
        link = self.cmk
        if link is None or not link.linked or not self.customer_key:
            return False
        wanted = [(link.system_id, system_id), (link.policy_id, policy_id)]
        asked = [(have, want) for have, want in wanted if want]
        return all((have or "").lower() == want.lower() for have, want in asked)

    def disallows(self, operation_type: str) -> DisallowedOperation | None:
        for operation in self.disallowed_operations:
            if operation.type.lower() == operation_type.lower():
                return operation
        return None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> Environment:
        props = pick(raw, "properties", default={})
        name = pick(raw, "name") or str(pick(raw, "id", default="")).rstrip("/").rsplit("/", 1)[-1]
        cmk_raw = pick(props, "enterprisePolicies", "customerManagedKeys")
        cmk = None
        if isinstance(cmk_raw, Mapping) and cmk_raw:
            cmk = CmkLink(policy_id=pick(cmk_raw, "id"), system_id=pick(cmk_raw, "systemId"),
                          link_status=pick(cmk_raw, "linkStatus"), location=pick(cmk_raw, "location"))
        disallowed = tuple(
            DisallowedOperation(type=str(pick(item, "type", "id")),
                                reason=pick(item, "reason", "message") or pick(item, "reason", "type"))
            for item in pick(props, "lifecycleOperationsEnforcement", "disallowedOperations", default=[])
            if pick(item, "type", "id")
        )
        return cls(
            id=str(name),
            display_name=pick(props, "displayName"),
            geo=pick(raw, "location") or pick(props, "location"),
            sku=pick(props, "environmentSku"),
            is_default=bool(pick(props, "isDefault", default=False)),
            protection_level=pick(props, "governanceConfiguration", "protectionLevel"),
            runtime_state=pick(props, "states", "runtime", "id"),
            runtime_reason=pick(props, "states", "runtime", "runtimeReasonCode"),
            cmk=cmk,
            key_managed_by=pick(props, "protectionStatus", "keyManagedBy"),
            disallowed_operations=disallowed,
            last_modified=pick(props, "lastModifiedTime"),
            created_time=pick(props, "createdTime"),
        )


class OperationStage(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    state: str | None
    last_action: str | None = None  # lastActionDateTime, as the service writes it


class LifecycleOperation(BaseModel):
    """A Power Platform lifecycle operation (link, unlink, governance change, re-enable)."""

    model_config = ConfigDict(frozen=True)

    id: str | None
    state: str
    type: str | None = None
    stages: tuple[OperationStage, ...] = ()
    error_message: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state.lower() in TERMINAL_STATES

    @property
    def succeeded(self) -> bool:
        return self.state.lower() == "succeeded"

    @property
    def failed(self) -> bool:
        return self.terminal and not self.succeeded

    @property
    def failed_stage(self) -> str | None:
        return next((stage.id for stage in self.stages if (stage.state or "").lower() == "failed"), None)

    @property
    def failure(self) -> str | None:
        """Why it failed: the service's error message, or (a recorded Failed operation carries no `error`)
        the stage that failed."""
        if not self.failed:
            return None
        if self.error_message:
            return self.error_message
        stage = self.failed_stage
        return f"the operation {self.state} in stage {stage}" if stage else f"the operation {self.state}"

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> LifecycleOperation:
        state = pick(raw, "state", "id") or pick(raw, "status") or "Unknown"
        stages = tuple(
            OperationStage(id=str(pick(stage, "id") or pick(stage, "name")), state=pick(stage, "state", "id"),
                           last_action=pick(stage, "lastActionDateTime"))
            for stage in pick(raw, "stages", default=[])
        )
        return cls(id=pick(raw, "id"), state=str(state), type=pick(raw, "type", "id"), stages=stages,
                   error_message=pick(raw, "error", "message"))


class WaitResult(BaseModel):
    """The outcome of waiting on an operation: Succeeded, Failed (a result, not an exception) or StillRunning
    when the deadline passed first (its poller's continuation token resumes the wait later)."""

    model_config = ConfigDict(frozen=True)

    status: Literal["Succeeded", "Failed", "StillRunning"]
    operation: LifecycleOperation | None
    polls: int
    waited_seconds: float

    @property
    def error_message(self) -> str | None:
        return self.operation.failure if self.operation else None


# ------------------------------------------------------------- Power Platform API: environment operations

# OperationExecutionResult.status values that mean the operation still holds the environment. "Validated"
# (checked but not run yet) counts as active: inferred, the API reference does not say.
ACTIVE_OPERATION_STATES = ("queued", "inprogress", "validated")
FAILED_OPERATION_STATES = ("failed", "validationerror")


class OperationRequester(BaseModel):
    model_config = ConfigDict(frozen=True)

    display_name: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None


class OperationJob(BaseModel):
    """A job of an environment operation (jobStatuses), and what the operation itself shares with its jobs."""

    model_config = ConfigDict(frozen=True)

    name: str | None
    status: str | None
    start_time: datetime | None = None
    end_time: datetime | None = None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> OperationJob:
        return cls(**cls._job_fields(raw))

    @staticmethod
    def _job_fields(raw: Mapping[str, Any]) -> dict[str, Any]:
        return {"name": pick(raw, "name"), "status": pick(raw, "status"),
                "start_time": pick(raw, "startTime"), "end_time": pick(raw, "endTime")}


class EnvironmentOperation(OperationJob):
    """One environment lifecycle operation as the Power Platform API lists it (OperationExecutionResult)."""

    operation_id: str | None
    status: str  # Queued | InProgress | Succeeded | ValidationError | Failed | NoOperation | Validated
    requested_by: OperationRequester | None = None
    error_code: str | None = None
    jobs: tuple[OperationJob, ...] = ()

    @property
    def active(self) -> bool:
        return self.status.lower() in ACTIVE_OPERATION_STATES

    @property
    def failed(self) -> bool:
        return self.status.lower() in FAILED_OPERATION_STATES

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> EnvironmentOperation:
        requester = pick(raw, "requestedBy")
        job = {**cls._job_fields(raw), "status": str(pick(raw, "status", default="Unknown"))}
        return cls(
            **job,
            operation_id=pick(raw, "operationId"),
            requested_by=OperationRequester(display_name=pick(requester, "displayName"),
                                            tenant_id=pick(requester, "tenantId"),
                                            user_id=pick(requester, "userId"))
            if isinstance(requester, Mapping) else None,
            error_code=pick(raw, "errorDetail", "code"),
            jobs=tuple(OperationJob.from_api(job) for job in pick(raw, "jobStatuses", default=[])
                       if isinstance(job, Mapping)),
        )


class EnvironmentChange(BaseModel):
    """The outcome of one lifecycle change (managed, link, unlink, re-enable) on one environment."""

    environment_id: str
    kind: OperationKind
    status: Literal["Unchanged", "Succeeded", "Failed", "StillRunning"]
    attempts: int = Field(default=0, description="operations started by this task run (0: nothing to do)")
    continuation_token: str | None = Field(
        default=None, description="resumes the wait on its operation (begin_*(continuation_token=...))")
    error_message: str | None = None
    environment: Environment | None = Field(default=None, description="the environment as read afterwards")

    @property
    def done(self) -> bool:
        return self.status in ("Unchanged", "Succeeded")
