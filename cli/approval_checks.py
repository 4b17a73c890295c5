"""What `ppcmk approve` checks before it resumes a run, the same rules the flow applies to the answer
(`ppcmk.approvals.gate`): the proven approver, separation of duty, Reader, the confirmation, the plan hash. A
refusal here changes nothing: the run is not resumed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from azure.core.exceptions import HttpResponseError

from ppcmk.approvals.forms import REQUEST
from ppcmk.approvals.proof import Refused, sign_in
from ppcmk.cloud.settings import ConnectionSettings
from ppcmk.services.factory import ClientFactory
from ppcmk_cli.exit_codes import CliError, ExitCode
from ppcmk_cli.prefect_api import WaitingRun


def request_of(waiting: WaitingRun) -> dict[str, Any]:
    """The request a ppcmk approval stored in its form's schema ({} for any other pause)."""
    request = waiting.schema.get(REQUEST)
    return request if isinstance(request, dict) else {}


def refuse(reason: str) -> CliError:
    return CliError(f"not resumed: {reason}", ExitCode.BLOCKED)


@dataclass(frozen=True)
class Answerer:
    """Who the named connection block signs in as."""

    object_id: str
    label: str
    factory: ClientFactory


def check_answer(waiting: WaitingRun, run_input: dict[str, Any], typed: str | None, plan: str | None) -> str:
    """Refuse (exit 3) what the flow would refuse; returns the approver's readable name."""
    request = request_of(waiting)
    if plan and not request.get("plan_hash", "").startswith(plan.lower()):
        raise refuse(
            f"the run now asks about plan {request.get('plan_hash', '?')[:12]}, not {plan[:12]} (the "
            "plan changed since you reviewed it): review it with `ppcmk approvals --full`"
        )
    answerer = _signed_in(waiting, run_input["connection_block"])
    _check_typed(answerer, typed, run_input["connection_block"])
    if run_input["decision"] == "reject":
        return answerer.label
    if (
        request.get("confirm_text") is not None
        and (run_input.get("confirmation") or "") != request["confirm_text"]
    ):
        raise refuse(f"this approval needs --confirm {request['confirm_text']} (the enterprise policy name)")
    if answerer.object_id == request.get("requester_id"):
        raise refuse(
            f"{answerer.label} requested this run and cannot approve it; a second administrator "
            "answers with their own --connection"
        )
    if answerer.object_id in request.get("approved_by", []):
        raise refuse(
            f"{answerer.label} already approved; {request.get('approvers_needed')} different "
            "approvers are required"
        )
    if request.get("kind") == "handoff" and request.get("policy_id"):
        _check_reader(answerer, request["policy_id"], request.get("reader_ids") or [])
    return answerer.label


def _signed_in(waiting: WaitingRun, block: str) -> Answerer:
    offered = waiting.schema.get("properties", {}).get("connection_block", {}).get("enum")
    if offered and block not in offered:
        raise refuse(
            f"the form offers the connection blocks {', '.join(offered)}; {block!r} is not one of them "
            "(a block created after the run asked is offered when it asks again)"
        )
    try:
        proven = sign_in(block, _load_connection)
    except Refused as refused:
        raise refuse(str(refused)) from None
    return Answerer(proven.object_id, proven.label, ClientFactory.for_settings(proven.connection))


def _load_connection(block: str) -> ConnectionSettings:
    from ppcmk_blocks import CmkConnection

    return cast(CmkConnection, CmkConnection.load(block)).settings()


def _check_typed(answerer: Answerer, typed: str | None, block: str) -> None:
    """--as is a claim; it must be who the block signs in as."""
    if not typed:
        return
    from ppcmk_tasks.access import lookup_principal

    try:
        claimed = lookup_principal(answerer.factory, typed).object_id.lower()
    except Exception:  # an unknown name backs nothing
        claimed = typed.strip().lower()
    if claimed != answerer.object_id:
        raise refuse(
            f"--as {typed} is not who connection block {block!r} signs in as ({answerer.label}); "
            "name your own block, or leave --as out"
        )


def _check_reader(answerer: Answerer, policy_id: str, reader_ids: list[str]) -> None:
    """Refuse only an answerer who neither held Reader (or higher) on the policy when the run asked, as the
    Key Vault admin saw it (`reader_ids`), nor shows it in their own read: a fresh Reader shows in its
    holder's own reads only minutes later. The run checks again with the Key Vault admin's view."""
    if answerer.object_id.lower() in {object_id.lower() for object_id in reader_ids}:
        return
    from ppcmk_tasks.access import POLICY_READ_ROLES, read_role_grants

    try:
        grants = read_role_grants(answerer.factory, policy_id, answerer.object_id, POLICY_READ_ROLES)
    except HttpResponseError as denied:
        # a Reader granted after the run asked is refused (403) to its holder until it applies: the run
        # checks it with the Key Vault admin's view after resuming
        if denied.status_code in (401, 403):
            return
        raise
    if not grants:
        policy = policy_id.rstrip("/").split("/")[-1]
        raise refuse(
            f"{answerer.label} has no Reader role on the enterprise policy {policy}; the Key Vault "
            "admin grants it (role acdd72a7-3385-48ef-bd42-f606fba81ae7)"
        )
