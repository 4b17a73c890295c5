"""The watch runbook as tests run it: against the sandbox, from a clean slate (no previous run's findings)."""

from __future__ import annotations

import re
from typing import Any

from tests.support.scenario import PP_ADMIN


def clear_watch_state() -> None:
    """Delete the health tables earlier runs left, so the next run has no previous findings."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from ppcmk_flows._watch_state import STATE_KEY_PREFIX

    with get_client(sync_client=True) as client:
        for artifact in client.read_artifacts(artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(like_=STATE_KEY_PREFIX))):
            client.delete_artifact(artifact.id)


def run_watch(blocks: dict[str, str], **parameters: Any) -> Any:
    """One watch run as the sandbox's runbook identity, checking PP_ADMIN's Reader unless told otherwise."""
    from ppcmk_flows.watch import watch

    parameters.setdefault("pp_admins", [PP_ADMIN])
    return watch(connection=blocks["runbook"], **parameters)


def fix_runs_unlock_on(fix: str, policy_name: str) -> bool:
    """Whether the fix says to run unlock with a CmkTarget block that names `policy_name` (several saved
    blocks may name it: any of them is the right advice)."""
    from typing import cast

    from ppcmk_blocks import CmkTarget

    found = re.match(r"run unlock \(target=([\w-]+)\)", fix)
    return found is not None and \
        cast(CmkTarget, CmkTarget.load(found.group(1))).policy_name.lower() == policy_name.lower()
