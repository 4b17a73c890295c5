"""Scenario timings and knobs (``settings.json``). Unknown keys are kept, so a service can add its own."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SandboxSettings(BaseModel):
    """Durations are in (virtual) seconds unless named otherwise."""

    model_config = ConfigDict(extra="allow")

    tenant_id: str
    subscription_id: str
    start_time: datetime = Field(description="virtual clock start (UTC)")
    link_duration_seconds: float = 3600
    unlink_duration_seconds: float = 3600
    role_propagation_seconds: float = 120
    policy_identity_delay_seconds: float = 60
    lock_deletion_days_sandbox: float = 7
    lock_deletion_days_other: float = 30
    # Per-caller request rate above which the ARM / BAP planes answer 429 (0 = no throttling).
    throttle_arm_per_minute: int = 0
    throttle_bap_per_minute: int = 0
    throttle_retry_after_seconds: int = 1  # the least Retry-After of a 429; it says when the window frees
    # How long (real seconds) a device code waits for its person to sign in at the verification page.
    device_code_seconds: float = 900
    # Seed for fault rules given a probability, so "random" faults repeat run to run.
    fault_seed: int = 7
    # Readings of the Power Platform admin API where the sources disagree (docs/SANDBOX.md):
    # a Failed operation carries no `error` (recorded) or an `error.message` naming the cause;
    failed_operation_error: Literal["omitted", "message"] = "omitted"
    # a finished operation's poll answers its state, or 404 (the service forgot it: the Terraform
    # provider takes a 404 for success);
    finished_operation_poll: Literal["state", "404"] = "state"
    # a governanceConfiguration POST refused (environment busy, or already at that protection level): 409
    # with an empty body (recorded) or with the code OperationNotStartable (what other starts answer);
    governance_conflict_body: Literal["empty", "coded"] = "empty"
    # keyManagedBy of a BYOK environment once linked to a CMK policy (the docs: CustomerViaMicrosoft).
    byok_migrated_key_managed_by: str = "CustomerViaMicrosoft"
    # When linked environments have picked up a new key version (the docs: up to 24 hours), and which
    # environments (ids or names) never do: sandbox/powerplatform/rotation.py.
    rotation_pickup_seconds: float = 6 * 3600
    rotation_pickup_stalled: list[str] = Field(default_factory=list)
