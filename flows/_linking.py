"""The runbooks that link the environments they choose to the target's policy (onboard, migrate_byok): one
parameter list and one body, written once.

A linking runbook is a `Linking` procedure: which environments it chooses and what it says. Its module
makes the flow with `link_runbook(Procedure)`, which gives the flow the procedure's name, module and
docstring (the run form's text), so `ppcmk_flows.onboard:onboard` is the flow Prefect loads and serves.
The body is the two-half procedure (flows/_two_half.py) with the link step in its waves:

    a parked run re-entering, or a fresh run's plan → Key Vault half → hand-off → Reader →
    link waves → verify → result
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from prefect import Flow, flow
from prefect.states import State

from ppcmk.approvals.request import Approving
from ppcmk.cloud.settings import ConnectionSettings, TargetSettings
from ppcmk.fleet.selection import FleetSelector
from ppcmk.fleet.waves import WaveSpec
from ppcmk.models.azure import PolicyInfo
from ppcmk.models.environments import Environment
from ppcmk.safety.claims import RELEASE_HOOKS
from ppcmk.safety.plan import Plan, RunOutcome
from ppcmk_flows._environment_steps import LinkLimits
from ppcmk_flows._run_form import run_form
from ppcmk_flows._runbook import final_state, load_target
from ppcmk_flows._two_half import HandoffWork, PlanEnvironments, TwoHalfProcedure, TwoHalfRequest, TwoHalfRun


@dataclass(frozen=True)
class Linking(TwoHalfProcedure):
    """A runbook linking the environments it chooses to the target's policy, Managed Environment first where
    `enable_managed` allows. Its docstring is the run form's description (with an Args section for the
    parameters it explains itself)."""

    target: TargetSettings
    selector: FleetSelector | None
    enable_managed: bool

    def environment_planner(self, kv: ConnectionSettings, pp_read: ConnectionSettings
                            ) -> PlanEnvironments:
        return self.plan_environments  # chosen from the listing alone: nothing else to read

    @abstractmethod
    def plan_environments(self, plan: Plan, policy: PolicyInfo | None, environments: Sequence[Environment]
                          ) -> None: ...

    @abstractmethod
    def finished(self, policy: PolicyInfo) -> str:
        """What the environments done are, in the result's "N of M <this>"."""


def link_runbook(procedure: type[Linking]) -> Flow[..., RunOutcome | State[RunOutcome]]:
    """The flow of a linking runbook, named and documented as `procedure`, and placed in its module."""

    def runbook(
        kv_connection: str,
        pp_connection: str,
        target: str,
        pp_admin: str,
        selector: FleetSelector | None = None,
        requester: str | None = None,
        enable_managed: bool = True,
        waves: WaveSpec | None = None,
        dry_run: bool = False,
        approval_timeout_s: int = 3 * 24 * 3600,
        approval_poll_s: int = 10,
        operation_deadline_days: float = 4,
        max_link_attempts: int = 3,
    ) -> RunOutcome | State[RunOutcome]:
        limits = LinkLimits.checked(operation_deadline_days, max_link_attempts)
        links = procedure(load_target(target), selector, enable_managed)
        request = TwoHalfRequest(kv_connection, pp_connection, pp_admin, requester, waves, dry_run,
                                 Approving(approval_timeout_s, approval_poll_s))
        run = TwoHalfRun.start(links, request, HandoffWork)

        approved = run.parked or run.until_approved()
        if isinstance(approved, RunOutcome):  # a dry run, nothing to hand off, or not approved
            return final_state(approved)
        verified, rows = run.verify(approved, run.link_waves(approved, limits))
        return run.finish(approved, verified, rows, links.finished(approved.work.policy))

    # Prefect names the flow's entrypoint and run form after the function: the procedure's own
    runbook.__name__ = runbook.__qualname__ = procedure.name
    runbook.__module__, runbook.__doc__ = procedure.__module__, procedure.__doc__
    return flow(name=procedure.name, **RELEASE_HOOKS)(run_form(runbook))
