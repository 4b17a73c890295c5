"""Every runbook by its CLI/deployment name, the rotation schedule, the sandbox blocks and the Quick-run
defaults of the sandbox deployments.

One list used by `ppcmk run`, `ppcmk serve` (deployments/serve.py) and mirrored by deployments/prefect.yaml.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import asdict, dataclass, field
from typing import Any

from prefect import Flow

# Rotation: monthly, first Monday 06:00 Amsterdam time (cron day-of-month AND day-of-week, see day_or=False).
ROTATION_CRON = "0 6 1-7 * 1"
ROTATION_TIMEZONE = "Europe/Amsterdam"
ROTATION_IN_WORDS = f"the first Monday of every month at 06:00 ({ROTATION_TIMEZONE})"
WATCH_EVERY_MINUTES = 60
# The evidence pack: monthly, on the 1st at 07:00 Amsterdam time (the month just ended is in it).
EVIDENCE_CRON = "0 7 1 * *"
EVIDENCE_IN_WORDS = f"the 1st of every month at 07:00 ({ROTATION_TIMEZONE})"

# The default scenario's people and the environments a first onboarding touches (sandbox/scenarios/default).
KV_ADMIN_UPN = "kv-admin@contoso.example"
PP_ADMIN_UPN = "pp-admin@contoso.example"
FIRST_ENVIRONMENTS = ["Contoso Production", "Contoso Sandbox"]
# the policy the default scenario already links "Finance on CMK" to: what change/revert/lock act on
EXISTING_POLICY = "ep-existing"


@dataclass(frozen=True)
class Runbook:
    name: str
    summary: str
    scheduled: bool = False
    # Quick-run values of the sandbox deployment beyond the block names (see sandbox_parameters)
    sandbox_defaults: dict[str, Any] = field(default_factory=dict)
    # destructive runbooks plan only on Quick run; the description says so
    sandbox_dry_run: bool = False
    # acts on the policy the scenario already has (EXISTING_POLICY) instead of the one onboarding creates
    on_existing_policy: bool = False
    every_minutes: int | None = None  # an interval schedule (watch), besides the rotation cron
    cron: str | None = None  # a cron schedule of its own (evidence), in ROTATION_TIMEZONE
    cron_in_words: str = ""

    @property
    def entrypoint(self) -> str:
        return f"ppcmk_flows.{self.name}:{self.name}"

    def load(self) -> Flow[..., Any]:
        module = importlib.import_module(f"ppcmk_flows.{self.name}")
        flow = getattr(module, self.name)
        if not isinstance(flow, Flow):
            raise TypeError(f"ppcmk_flows.{self.name}.{self.name} is not a Prefect flow")
        return flow

    def parameter_names(self) -> list[str]:
        return list(inspect.signature(self.load().fn).parameters)


_HANDOFF = {"pp_admin": PP_ADMIN_UPN}

RUNBOOKS: dict[str, Runbook] = {runbook.name: runbook for runbook in (
    Runbook("onboard", "apply CMK: key, enterprise policy, grants, then the Power Platform admin links "
                       "environments",
            sandbox_defaults={**_HANDOFF, "selector": {"environment_ids": FIRST_ENVIRONMENTS}}),
    Runbook("rotate", "new key version, health check, 28-day guard on old versions", scheduled=True),
    Runbook("change_policy", "move environments to a new key/policy across two outage windows",
            sandbox_defaults={**_HANDOFF, "new_policy_name": "ep-cmk-europe-2", "new_key_name": "cmk-prod-2"},
            sandbox_dry_run=True, on_existing_policy=True),
    Runbook("revert", "back to the Microsoft-managed key, with a 30-day hold",
            sandbox_defaults={"requester": PP_ADMIN_UPN}, sandbox_dry_run=True, on_existing_policy=True),
    Runbook("migrate_byok", "move legacy BYOK environments to CMK", sandbox_defaults=_HANDOFF),
    Runbook("lock", "break-glass: revoke the policy's key access (locks environments)",
            sandbox_defaults={"requester": KV_ADMIN_UPN}, sandbox_dry_run=True, on_existing_policy=True),
    Runbook("unlock", "any lock, whoever caused it: repair the policy identity's key access, re-enable the "
                      "locked environments",
            sandbox_defaults={"requester": KV_ADMIN_UPN}, on_existing_policy=True),
    Runbook("report", "CMK state of every environment (read-only)"),
    Runbook("watch", "every drift of the estate with severity and fix; events on change (read-only)",
            every_minutes=WATCH_EVERY_MINUTES, sandbox_defaults={"pp_admins": [PP_ADMIN_UPN]}),
    Runbook("cleanup", "remove what is no longer needed once its hold expired"),
    Runbook("evidence", "an evidence pack for auditors: timelines, changes with approvals, controls, the "
                        "audit chain verified (read-only)",
            cron=EVIDENCE_CRON, cron_in_words=EVIDENCE_IN_WORDS),
)}


def sandbox_deployment_name(flow_name: str) -> str:
    """`onboard-sandbox`: lists and breadcrumbs name the runbook, not only where it runs."""
    return f"{flow_name}-sandbox"


@dataclass(frozen=True)
class SandboxBlocks:
    """Block names `ppcmk serve` / `ppcmk demo` create for the sandbox personas."""

    kv_admin: str = "sandbox-kv-admin"
    pp_admin: str = "sandbox-pp-admin"
    pp_admin_2: str = "sandbox-pp-admin-2"
    runbook: str = "sandbox-runbook"
    target: str = "sandbox-target"
    existing_target: str = "sandbox-target-ep-existing"

    @classmethod
    def with_prefix(cls, prefix: str) -> SandboxBlocks:
        """The same blocks named `<prefix>-...` (a second set beside the default `sandbox-...`)."""
        return cls(**{name: f"{prefix}{value.removeprefix('sandbox')}"
                      for name, value in asdict(cls()).items()})

    def persona_blocks(self) -> dict[str, str]:
        """Sandbox persona → block name."""
        return {"kv-admin": self.kv_admin, "pp-admin": self.pp_admin, "pp-admin-2": self.pp_admin_2,
                "runbook": self.runbook}


def default_parameters(runbook: Runbook, blocks: SandboxBlocks) -> dict[str, Any]:
    """Block-name defaults for the parameters this runbook actually declares (the rest keep flow defaults)."""
    by_role = {
        # report and revert read and change environments: the runbook identity (PP admin app + Azure)
        "connection": blocks.runbook if runbook.name in ("report", "revert", "watch", "evidence")
        else blocks.kv_admin,
        "kv_connection": blocks.kv_admin,
        "pp_connection": blocks.pp_admin,
        "target": blocks.existing_target if runbook.on_existing_policy else blocks.target,
    }
    return {name: by_role[name] for name in runbook.parameter_names() if name in by_role}


def sandbox_parameters(runbook: Runbook, blocks: SandboxBlocks) -> dict[str, Any]:
    """Everything a Quick run of the sandbox deployment needs: blocks, people, environments, dry run."""
    declared = runbook.parameter_names()
    chosen = {**default_parameters(runbook, blocks), **runbook.sandbox_defaults}
    if runbook.sandbox_dry_run:
        chosen["dry_run"] = True
    unknown = set(chosen) - set(declared)
    if unknown:
        raise TypeError(f"{runbook.name} declares no parameter(s) {sorted(unknown)}")
    return chosen


def sandbox_description(runbook: Runbook) -> str:
    """The deployment description: what it does and what a Quick run does in the sandbox."""
    summary = runbook.summary[0].upper() + runbook.summary[1:] + "."
    if runbook.scheduled:  # the deployments list shows a cron only as "+1"; the description says it in words
        summary += f" Scheduled: {ROTATION_IN_WORDS}."
    elif runbook.cron:
        summary += f" Scheduled: {runbook.cron_in_words}."
    if runbook.sandbox_dry_run:
        return (f"{summary} Quick run is a DRY RUN (plan only, nothing changes): this runbook is destructive "
                "and the sandbox cannot guess what you mean; set dry_run to false in Custom run to apply.")
    return summary
