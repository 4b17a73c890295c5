"""The demo's story: the CMK life cycle of the default sandbox scenario, chapter by chapter.

Each chapter runs the real runbook (a local Prefect flow run) with the sandbox blocks; the approvals are
answered by scripted admins through Prefect's resume API, and the output says who answered what.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ppcmk.fleet.selection import FleetSelector
from ppcmk.models.findings import DoctorReport
from ppcmk.safety.plan import RunOutcome
from ppcmk_cli.demo_admin import AnsweredApproval, ScriptedAnswer, drive
from ppcmk_cli.doctor import DoctorInputs, findings_table, run_checks
from ppcmk_cli.profile import SandboxProfile
from ppcmk_cli.tables import rows_table
from ppcmk_deployments.catalog import RUNBOOKS, SandboxBlocks

KV_ADMIN = "kv-admin@contoso.example"
PP_ADMIN = "pp-admin@contoso.example"
PP_ADMIN_2 = "pp-admin-2@contoso.example"

# Environments of the default scenario the story works on.
PRODUCTION = "e1000000-0000-4000-8000-000000000001"
SANDBOX_ENV = "e1000000-0000-4000-8000-000000000002"
UNMANAGED = "e1000000-0000-4000-8000-000000000009"  # becomes a Managed Environment on the way
ONBOARDED = (PRODUCTION, SANDBOX_ENV, UNMANAGED)
NEW_POLICY = "ep-cmk-europe-v2"
NEW_KEY = "cmk-prod-v2"
PLAN_COLUMNS = ["name", "what changes", "outage windows"]
REPORT_COLUMNS = ["name", "sku", "policy", "key", "link_status"]
APPROVAL_POLL_S = 1  # how often a paused local run looks for its answer (real seconds)


@dataclass(frozen=True)
class Chapter:
    """One runbook run of the story."""

    title: str
    runbook: str
    narration: str
    parameters: Callable[[SandboxBlocks], dict[str, Any]]
    answer: ScriptedAnswer | None = None
    result_columns: list[str] | None = None  # of the outcome rows; default all
    result_title: str = "result"


def story(blocks: SandboxBlocks, report_dir: Path) -> list[Chapter]:
    """The chapters in order."""
    hand_off = ScriptedAnswer(PP_ADMIN, "Power Platform admin", persona="pp-admin")
    return [
        Chapter(
            "Onboard three environments", "onboard",
            "The Key Vault admin prepares key, policy and grants; the Power Platform admin approves the "
            "hand-off and links the environments.",
            lambda b: {"kv_connection": b.kv_admin, "pp_connection": b.pp_admin, "target": b.target,
                       "pp_admin": PP_ADMIN, "requester": KV_ADMIN,
                       "selector": FleetSelector(environment_ids=list(ONBOARDED)),
                       "approval_poll_s": APPROVAL_POLL_S},
            hand_off, ["name", "state", "link_status", "key_managed_by"],
        ),
        Chapter(
            "Rotate the key", "rotate",
            "A new key version; the previous one is held for 28 days. No downtime, no approval.",
            lambda b: {"connection": b.kv_admin, "target": b.target, "requester": KV_ADMIN},
            result_columns=["version", "current", "enabled", "created"],
        ),
        Chapter(
            "Change the policy of Contoso Production", "change_policy",
            f"A new key {NEW_KEY} behind a new policy {NEW_POLICY}: unlink (outage window 1), then link "
            "(outage window 2); the old key and policy are held 30 days.",
            lambda b: {"kv_connection": b.kv_admin, "pp_connection": b.pp_admin, "target": b.target,
                       "new_policy_name": NEW_POLICY, "new_key_name": NEW_KEY, "pp_admin": PP_ADMIN,
                       "requester": KV_ADMIN, "selector": FleetSelector(environment_ids=[PRODUCTION]),
                       "approval_poll_s": APPROVAL_POLL_S},
            hand_off, ["name", "state", "link_status", "key_managed_by"],
        ),
        Chapter(
            "Revert one environment", "revert",
            "Contoso Sandbox goes back to the Microsoft-managed key; key and policy are held 30 days.",
            # the runbook identity: Power Platform admin reads and unlinks, Azure writes the holds
            lambda b: {"connection": b.runbook, "target": b.target, "requester": KV_ADMIN,
                       "selector": FleetSelector(environment_ids=[SANDBOX_ENV]),
                       "approval_poll_s": APPROVAL_POLL_S},
            hand_off,
            ["name", "state", "now"],
        ),
        Chapter(
            "Migrate the BYOK environment", "migrate_byok",
            "Legacy BYOK moves from the bring-your-own key to the customer-managed key (brief downtime); "
            "the old BYOK key stays 28 days.",
            lambda b: {"kv_connection": b.kv_admin, "pp_connection": b.pp_admin, "target": b.target,
                       "pp_admin": PP_ADMIN, "requester": KV_ADMIN, "approval_poll_s": APPROVAL_POLL_S},
            hand_off, ["name", "state", "link_status", "key_managed_by"],
        ),
        Chapter(
            "Report", "report",
            "Read-only: the CMK state of every environment (also a Prefect table artifact, CSV and JSON).",
            lambda b: {"connection": b.runbook, "output_dir": str(report_dir)},
            result_columns=REPORT_COLUMNS, result_title="the CMK state of every environment",
        ),
    ]


@dataclass
class StoryResult:
    doctor: DoctorReport
    outcomes: dict[str, RunOutcome] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(outcome.status in ("completed", "nothing-to-do") for outcome in self.outcomes.values())


class StoryTeller:
    """Runs the chapters and narrates them on a rich console."""

    def __init__(self, console: Console, doctor_inputs: DoctorInputs,
                 cloud_now: Callable[[], Any], report_dir: Path, profile: SandboxProfile) -> None:
        self.console = console
        self.report_dir = report_dir
        self.doctor_inputs = doctor_inputs
        self.cloud_now = cloud_now
        self.profile = profile  # where the scripted people sign in

    def tell(self, blocks: SandboxBlocks, checked: DoctorReport | None = None) -> StoryResult:
        """The chapters with these blocks, after the doctor (pass its report when it already ran)."""
        started = time.monotonic()
        result = StoryResult(doctor=checked or self.doctor())
        for number, chapter in enumerate(story(blocks, self.report_dir), start=2):
            outcome = self.chapter(number, chapter, blocks)
            result.outcomes[chapter.runbook] = outcome
            if outcome.status not in ("completed", "nothing-to-do"):
                break
        result.seconds = time.monotonic() - started
        return result

    def heading(self, number: int, title: str, narration: str) -> None:
        self.console.rule(f"[bold]{number}. {title}")
        self.console.print(narration, style="dim")

    def doctor(self) -> DoctorReport:
        self.heading(1, "Doctor", "Everything the runbooks need, checked at once; the scenario has problems "
                                  "seeded on purpose.")
        with self.console.status("doctor: reading vaults, keys, policies and environments ..."):
            report = run_checks(self.doctor_inputs, None, None, scan=True)
        self.console.print(findings_table(report, "Seeded problems"))
        self.console.print("The story below works on the healthy vault kv-cmk-prod and three healthy "
                           "environments.", style="dim")
        return report

    def chapter(self, number: int, chapter: Chapter, blocks: SandboxBlocks) -> RunOutcome:
        self.heading(number, chapter.title, chapter.narration)
        started = time.monotonic()
        flow_fn = RUNBOOKS[chapter.runbook].load()
        with self.console.status(f"{chapter.runbook}: running") as status:

            def tick() -> None:
                status.update(f"{chapter.runbook}: running · sandbox clock {self.cloud_now():%Y-%m-%d %H:%M}")

            def approved(approval: AnsweredApproval) -> None:
                self.show_approval(chapter, approval)

            state = drive(flow_fn, chapter.parameters(blocks), chapter.runbook, chapter.answer,
                          approved, tick, self.profile)
        if not state.is_completed():
            self.console.print(f"[bold red]✗ {chapter.runbook} ended {state.name}:[/] {state.message or ''}")
            return RunOutcome(procedure=chapter.runbook, status="partial", plan_hash="",
                              message=f"run ended {state.name}")
        outcome: RunOutcome = state.result()
        mark = "[bold green]✓[/]" if outcome.status in ("completed", "nothing-to-do") else "[bold red]✗[/]"
        took = time.monotonic() - started
        self.console.print(f"{mark} {chapter.runbook} {outcome.status} in {took:.1f} s: {outcome.message}")
        if outcome.rows:
            self.console.print(rows_table(f"{chapter.runbook}: {chapter.result_title}", outcome.rows,
                                          chapter.result_columns))
        return outcome

    def show_approval(self, chapter: Chapter, approval: AnsweredApproval) -> None:
        answer = chapter.answer
        assert answer is not None  # only chapters with an answer get approvals answered
        if approval.plan_rows:
            self.console.print(rows_table(f"{chapter.runbook} plan {approval.plan_hash[:12]} "
                                          "(what the approver sees)", approval.plan_rows,
                                          PLAN_COLUMNS))
        self.console.print(
            f"[bold cyan]→ scripted {answer.role} {answer.approver}[/] signed in at the tenant's identity "
            f"provider and approved plan {approval.plan_hash[:12]} of run {approval.run.run.name} through "
            "Prefect's resume API with that proof.")
