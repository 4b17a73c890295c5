"""What `ppcmk approve` does before it resumes a run: it signs the person in at the tenant's identity provider
(a device code, or their Azure CLI login) for the proof the run asks, and refuses what the run would refuse
(`ppcmk.approvals.request`): a stale plan, a missing confirmation, the requester, the same person twice, a
missing Power Platform role, no Reader on the policy as the Key Vault admin's view showed it when the run
asked (a fresh Reader shows there at once, in its holder's own reads only minutes later). A refusal here
changes nothing: the run is not resumed. The run judges everything again itself (the proof's signature,
age and single use, Reader, Key Vault rights)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from ppcmk.approvals.forms import REQUEST
from ppcmk.approvals.request import POWER_PLATFORM_ROLES
from ppcmk.errors import ProofRefused
from ppcmk.identity.keys import TenantKeys
from ppcmk.identity.proof import Expected, ProvenPerson, verify
from ppcmk.identity.signin import SignIn
from ppcmk_cli.errors import error_console
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.prefect_api import WaitingRun


def request_of(waiting: WaitingRun) -> dict[str, Any]:
    """The request a ppcmk approval stored in its form's schema ({} for any other pause)."""
    request = waiting.schema.get(REQUEST)
    return request if isinstance(request, dict) else {}


def refuse(reason: str) -> CliError:
    return CliError(f"not resumed: {reason}", ExitCode.BLOCKED)


def sign_in_of(waiting: WaitingRun) -> SignIn:
    """Where the run's question says to sign in (tenant, authority, the approvals scope)."""
    described = request_of(waiting).get("sign_in")
    if not isinstance(described, dict):
        raise CliError(f"run {waiting.run.id} does not say where to sign in (asked by an older ppcmk); "
                       "answer it in the Prefect UI", ExitCode.USAGE)
    return SignIn.model_validate(described)


def show_device_code(verification_uri: str, user_code: str, expires_on: datetime) -> None:
    error_console.print(f"To prove who you are, open {verification_uri} and enter the code {user_code} "
                        f"(valid until {expires_on:%H:%M} UTC), then sign in as yourself.", soft_wrap=True)


def proof_for(signin: SignIn, azure_cli: bool, ca_bundle: str | None) -> str:
    """The person's fresh token for the approvals app: through their Azure CLI login, or a device code."""
    return signin.azure_cli_token() if azure_cli else signin.device_code_token(show_device_code, ca_bundle)


def who_proved(signin: SignIn, proof: str, ca_bundle: str | None) -> ProvenPerson:
    """Who the proof names, checked as the run will (the run also checks its age against the question and
    that it is used once)."""
    keys = TenantKeys(signin.authority, signin.tenant_id, ca_bundle)
    expected = Expected(signin.tenant_id, signin.audiences, signin.scope.rsplit("/", 1)[-1],
                        asked_at=time.time() - 3600)
    try:
        return verify(proof, expected, keys)
    except ProofRefused as why:
        raise refuse(str(why)) from None


def check_plan(waiting: WaitingRun, plan: str | None) -> None:
    """The plan the person reviewed (`--plan`) is still the one asked about: checked before they sign in."""
    asked = request_of(waiting).get("plan_hash", "")
    if plan and not asked.startswith(plan.lower()):
        raise refuse(
            f"the run now asks about plan {asked[:12] or '?'}, not {plan[:12]} (the plan changed since you "
            "reviewed it): review it with `ppcmk approvals --full`"
        )


def check_answer(waiting: WaitingRun, run_input: dict[str, Any], person: ProvenPerson) -> str:
    """Refuse (exit 3) what the run would refuse; returns the answerer's readable name."""
    request = request_of(waiting)
    if run_input["decision"] == "reject":
        return person.label
    if request.get("confirm_text") is not None and (run_input.get("confirmation") or "") != request[
            "confirm_text"]:
        raise refuse(f"this approval needs --confirm {request['confirm_text']} (the enterprise policy name)")
    if person.object_id.lower() == request.get("requester_id"):
        raise refuse(f"{person.label} requested this run and cannot approve it; another administrator "
                     "answers, signed in as themselves")
    if person.object_id.lower() in request.get("approved_by", []):
        raise refuse(f"{person.label} already approved; {request.get('approvers_needed')} different people "
                     "are required")
    if request.get("kind") in ("handoff", "lock") and not set(person.roles) & set(POWER_PLATFORM_ROLES):
        raise refuse(f"{person.label} holds neither {' nor '.join(POWER_PLATFORM_ROLES.values())}; a Power "
                     "Platform admin answers")
    if request.get("kind") == "handoff" and person.object_id.lower() not in request.get("reader_ids", []):
        policy = str(request.get("policy_id") or "").rstrip("/").split("/")[-1]
        raise refuse(f"{person.label} has no Reader role on the enterprise policy {policy}; the Key Vault "
                     "admin grants it (role acdd72a7-3385-48ef-bd42-f606fba81ae7)")
    return person.label
