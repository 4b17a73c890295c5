"""Every runbook by its CLI/deployment name, the rotation schedule, and the sandbox block names.

One list used by `ppcmk run`, `ppcmk serve` (deployments/serve.py) and mirrored by deployments/prefect.yaml.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from prefect import Flow

# Rotation: monthly, first Monday 06:00 Amsterdam time (cron day-of-month AND day-of-week, see day_or=False).
ROTATION_CRON = "0 6 1-7 * 1"
ROTATION_TIMEZONE = "Europe/Amsterdam"
WATCH_EVERY_MINUTES = 60


@dataclass(frozen=True)
class Runbook:
    name: str
    summary: str
    scheduled: bool = False
    every_minutes: int | None = None  # an interval schedule (watch), besides the rotation cron

    @property
    def entrypoint(self) -> str:
        return f"flows/{self.name}.py:{self.name}"

    def load(self) -> Flow[..., Any]:
        module = importlib.import_module(f"flows.{self.name}")
        flow = getattr(module, self.name)
        if not isinstance(flow, Flow):
            raise TypeError(f"flows.{self.name}.{self.name} is not a Prefect flow")
        return flow

    def parameter_names(self) -> list[str]:
        return list(inspect.signature(self.load().fn).parameters)


RUNBOOKS: dict[str, Runbook] = {runbook.name: runbook for runbook in (
    Runbook("onboard", "apply CMK: key, enterprise policy, grants, then the Power Platform admin links "
                       "environments"),
    Runbook("rotate", "new key version, health check, 28-day guard on old versions", scheduled=True),
    Runbook("change_policy", "move environments to a new key/policy across two outage windows"),
    Runbook("revert", "back to the Microsoft-managed key, with a 30-day hold"),
    Runbook("migrate_byok", "move legacy BYOK environments to CMK"),
    Runbook("lock", "break-glass: revoke the policy's key access (locks environments)"),
    Runbook("unlock", "restore access to the original key and re-enable environments"),
    Runbook("report", "CMK state of every environment (read-only)"),
    Runbook("watch", "every drift of the estate with severity and fix; events on change (read-only)",
            every_minutes=WATCH_EVERY_MINUTES),
    Runbook("cleanup", "remove what is no longer needed once its hold expired"),
)}


@dataclass(frozen=True)
class SandboxBlocks:
    """Block names `ppcmk serve` / `ppcmk demo` create for the sandbox personas."""

    kv_admin: str = "sandbox-kv-admin"
    pp_admin: str = "sandbox-pp-admin"
    pp_admin_2: str = "sandbox-pp-admin-2"
    runbook: str = "sandbox-runbook"
    target: str = "sandbox-target"

    def persona_blocks(self) -> dict[str, str]:
        """Sandbox persona → block name."""
        return {"kv-admin": self.kv_admin, "pp-admin": self.pp_admin, "pp-admin-2": self.pp_admin_2,
                "runbook": self.runbook}


def default_parameters(runbook: Runbook, blocks: SandboxBlocks) -> dict[str, Any]:
    """Block-name defaults for the parameters this runbook actually declares (the rest keep flow defaults)."""
    by_role = {
        # report and revert read and change environments: the runbook identity (PP admin app + Azure)
        "connection": blocks.runbook if runbook.name in ("report", "revert", "watch") else blocks.kv_admin,
        "kv_connection": blocks.kv_admin,
        "pp_connection": blocks.pp_admin,
        "target": blocks.target,
    }
    return {name: by_role[name] for name in runbook.parameter_names() if name in by_role}
